import MossaicCore

/// Consistency checks and repairs for `fsck`. Each check is one aggregate query, never a
/// query per inode, so a filesystem of millions of files is checked in seconds — and never a
/// correlated subquery over a column without an index (`dentries.ino`, `inodes.parent`,
/// `file_chunks.hash`): SQLite scans the whole table for each outer row there, which at 10⁶
/// files never finishes. Grouped subqueries (`GROUP BY`, `UPDATE … FROM`) and `NOT IN` over
/// a non-correlated subquery (one temporary index) instead.
extension SQLiteMetaStore {
    public func checkConsistency() throws(MetaError) -> [MetaProblem] {
        try read(snapshot: true) { (c) throws(MetaError) in
            var problems: [MetaProblem] = []
            let directory = Int64(FileKind.directory.rawValue)
            for (hash, stored, actual) in try c.query("""
                SELECT c.hash, c.refcount, coalesce(f.n, 0) FROM chunks c
                LEFT JOIN (SELECT hash, count(*) AS n FROM file_chunks GROUP BY hash) f ON f.hash = c.hash
                WHERE c.refcount != coalesce(f.n, 0)
                """, row: { ($0.blob(0), $0.int(1), $0.int(2)) }) {
                problems.append(.init(kind: .refcount, detail: "chunk \(ChunkHash(bytes: hash)) has refcount \(stored), \(actual) references"))
            }
            for (ino, idx, hash) in try c.query("""
                SELECT f.ino, f.idx, f.hash FROM file_chunks f LEFT JOIN chunks c ON c.hash = f.hash WHERE c.hash IS NULL
                """, row: { ($0.int(0), $0.int(1), $0.blob(2)) }) {
                problems.append(.init(kind: .danglingReference, detail: "inode \(ino) chunk \(idx) names \(ChunkHash(bytes: hash))"))
            }
            for (ino, idx) in try c.query("""
                SELECT f.ino, f.idx FROM file_chunks f JOIN chunks c ON c.hash = f.hash WHERE f.length > \(Self.pageExtent("f", "c"))
                """, row: { ($0.int(0), $0.int(1)) }) {
                problems.append(.init(kind: .referenceTooLong, detail: "inode \(ino) chunk \(idx)"))
            }
            for (ino, idx) in try c.query("""
                SELECT DISTINCT p.ino, p.idx FROM chunk_patches p
                WHERE NOT EXISTS (SELECT 1 FROM file_chunks f WHERE f.ino = p.ino AND f.idx = p.idx)
                """, row: { ($0.int(0), $0.int(1)) }) {
                problems.append(.init(kind: .strayPatch, detail: "inode \(ino) chunk \(idx)"))
            }
            for (ino, idx) in try c.query("""
                SELECT f.ino, f.idx FROM file_chunks f JOIN inodes i ON i.ino = f.ino WHERE f.idx * ? >= i.size
                """, [.int(Int64(FormatConstants.chunkSize))], row: { ($0.int(0), $0.int(1)) }) {
                problems.append(.init(kind: .referencePastEnd, detail: "inode \(ino) chunk \(idx)"))
            }
            // Non-directories: one link per name. Directories: 2 + one per subdirectory.
            for (ino, nlink, expected) in try c.query("""
                SELECT i.ino, i.nlink,
                  CASE WHEN i.kind = ? THEN 2 + coalesce(s.n, 0) ELSE coalesce(d.n, 0) END AS expected
                FROM inodes i
                LEFT JOIN (SELECT ino, count(*) AS n FROM dentries GROUP BY ino) d ON d.ino = i.ino
                LEFT JOIN (SELECT i2.parent AS ino, count(*) AS n FROM inodes i2 WHERE i2.kind = ? AND i2.ino != 1 GROUP BY i2.parent) s ON s.ino = i.ino
                WHERE i.nlink != expected AND NOT (i.kind != ? AND i.nlink = 0)
                """, [.int(directory), .int(directory), .int(directory)], row: { ($0.int(0), $0.int(1), $0.int(2)) }) {
                problems.append(.init(kind: .linkCount, detail: "inode \(ino) has nlink \(nlink), expected \(expected)"))
            }
            for (parent, ino) in try c.query("""
                SELECT d.parent, d.ino FROM dentries d LEFT JOIN inodes i ON i.ino = d.ino WHERE i.ino IS NULL
                """, row: { ($0.int(0), $0.int(1)) }) {
                problems.append(.init(kind: .danglingEntry, detail: "entry in directory \(parent) names inode \(ino)"))
            }
            for ino in try c.query("""
                SELECT i.ino FROM inodes i WHERE i.ino != 1 AND i.nlink > 0 AND i.ino NOT IN (SELECT ino FROM dentries)
                """, row: { $0.int(0) }) {
                problems.append(.init(kind: .unreachable, detail: "inode \(ino)"))
            }
            for ino in try c.query("""
                SELECT i.ino FROM inodes i WHERE i.nlink = 0 AND i.ino NOT IN (SELECT ino FROM orphans)
                """, row: { $0.int(0) }) {
                problems.append(.init(kind: .unlistedOrphan, detail: "inode \(ino)"))
            }
            for (ino, parent) in try c.query("""
                SELECT i.ino, i.parent FROM inodes i JOIN dentries d ON d.ino = i.ino WHERE i.kind = ? AND i.parent != d.parent
                """, [.int(directory)], row: { ($0.int(0), $0.int(1)) }) {
                problems.append(.init(kind: .directoryParent, detail: "directory \(ino) says its parent is \(parent)"))
            }
            for (ino, stored, actual) in try c.query("""
                SELECT i.ino, i.allocated, coalesce(f.n, 0) FROM inodes i
                LEFT JOIN (SELECT ino, sum(\(Self.blockBytes)) AS n FROM file_chunks GROUP BY ino) f ON f.ino = i.ino
                WHERE i.kind = ? AND i.allocated != coalesce(f.n, 0)
                """, [.int(Int64(FileKind.regular.rawValue))], row: { ($0.int(0), $0.int(1), $0.int(2)) }) {
                problems.append(.init(kind: .allocation, detail: "inode \(ino) says \(stored) bytes, its chunks hold \(actual)"))
            }
            for (ino, stored, actual) in try Self.wrongReservations(c) {
                problems.append(.init(kind: .reservation, detail: "inode \(ino) says \(stored) bytes reserved beyond its data, \(actual) are"))
            }
            // The statfs totals the triggers keep (Schema.v7).
            let (kept, counted) = try Self.usageTotals(c)
            if kept != counted {
                let says = kept.map { "\($0[0]) inodes and \($0[1]) bytes" } ?? "nothing"
                problems.append(.init(kind: .usage, detail: "statfs says \(says), the tables hold \(counted[0]) inodes and \(counted[1]) bytes"))
            }
            return problems
        }
    }

    /// Fixes what the metadata alone can fix, in one transaction: refcounts and link counts are
    /// recounted, references to unknown chunks and past the end become holes, entries naming
    /// nothing are removed, inodes with links but no name are given one in `/lost+found` (as
    /// e2fsck does, so nothing is discarded), directory parents follow their entries.
    /// Returns how many rows changed.
    public func repairConsistency() throws(MetaError) -> Int {
        try write(durable: true) { (c) throws(MetaError) in
            var changed = 0
            let directory = Int64(FileKind.directory.rawValue)
            try c.run("DELETE FROM file_chunks WHERE hash NOT IN (SELECT hash FROM chunks)"); changed += c.changes
            try c.run("""
                DELETE FROM file_chunks WHERE idx * ? >= (SELECT i.size FROM inodes i WHERE i.ino = file_chunks.ino)
                """, [.int(Int64(FormatConstants.chunkSize))])
            changed += c.changes
            try c.run("""
                UPDATE file_chunks SET length = (SELECT \(Self.pageExtent("file_chunks", "c")) FROM chunks c WHERE c.hash = file_chunks.hash)
                WHERE length > (SELECT \(Self.pageExtent("file_chunks", "c")) FROM chunks c WHERE c.hash = file_chunks.hash)
                """)
            changed += c.changes
            try c.run("""
                DELETE FROM chunk_patches WHERE NOT EXISTS (SELECT 1 FROM file_chunks f WHERE f.ino = chunk_patches.ino AND f.idx = chunk_patches.idx)
                """)
            changed += c.changes
            try c.run("UPDATE chunks SET refcount = 0 WHERE refcount != 0 AND hash NOT IN (SELECT hash FROM file_chunks)")
            changed += c.changes
            try c.run("""
                UPDATE chunks SET refcount = r.n FROM (SELECT hash, count(*) AS n FROM file_chunks GROUP BY hash) AS r
                WHERE chunks.hash = r.hash AND chunks.refcount != r.n
                """)
            changed += c.changes
            try c.run("DELETE FROM chunks WHERE refcount = 0 AND state = ?", [.int(ChunkState.inline.rawValue)]); changed += c.changes
            try c.run("DELETE FROM dentries WHERE ino NOT IN (SELECT ino FROM inodes)"); changed += c.changes
            changed += try Self.linkUnreachableIntoLostAndFound(c)
            try c.run("""
                UPDATE inodes SET parent = d.parent FROM dentries AS d
                WHERE d.ino = inodes.ino AND inodes.kind = ? AND inodes.ino != 1 AND d.parent != inodes.parent
                """, [.int(directory)])
            changed += c.changes
            try c.run("""
                UPDATE inodes SET nlink = d.n FROM (SELECT ino, count(*) AS n FROM dentries GROUP BY ino) AS d
                WHERE inodes.ino = d.ino AND inodes.kind != ? AND inodes.nlink != d.n
                """, [.int(directory)])
            changed += c.changes
            try c.run("UPDATE inodes SET nlink = 0 WHERE kind != ? AND nlink != 0 AND ino NOT IN (SELECT ino FROM dentries)", [.int(directory)])
            changed += c.changes
            let subdirectories = "SELECT parent, count(*) AS n FROM inodes WHERE kind = ? AND ino != 1 AND parent IS NOT NULL GROUP BY parent"
            try c.run("""
                UPDATE inodes SET nlink = 2 + s.n FROM (\(subdirectories)) AS s
                WHERE inodes.ino = s.parent AND inodes.kind = ? AND inodes.nlink != 2 + s.n
                """, [.int(directory), .int(directory)])
            changed += c.changes
            try c.run("""
                UPDATE inodes SET nlink = 2 WHERE kind = ? AND nlink != 2 AND ino NOT IN (SELECT parent FROM (\(subdirectories)))
                """, [.int(directory), .int(directory)])
            changed += c.changes
            try c.run("INSERT OR IGNORE INTO orphans(ino) SELECT ino FROM inodes WHERE nlink = 0"); changed += c.changes
            try c.run("""
                UPDATE inodes SET allocated = (SELECT coalesce(sum(\(Self.blockBytes)), 0) FROM file_chunks f WHERE f.ino = inodes.ino)
                WHERE kind = ? AND allocated != (SELECT coalesce(sum(\(Self.blockBytes)), 0) FROM file_chunks f WHERE f.ino = inodes.ino)
                """, [.int(Int64(FileKind.regular.rawValue))])
            changed += c.changes
            try c.run("DELETE FROM allocations WHERE ino NOT IN (SELECT ino FROM inodes WHERE kind = ?)", [.int(Int64(FileKind.regular.rawValue))])
            changed += c.changes
            for (ino, _, actual) in try Self.wrongReservations(c) {
                try c.run("UPDATE inodes SET reserved = ? WHERE ino = ?", [.int(actual), .int(ino)])
                changed += 1
            }
            // Last, after every change above (which the triggers counted already).
            let (kept, counted) = try Self.usageTotals(c)
            if kept != counted {
                try c.run("INSERT OR REPLACE INTO usage(id, inodes, bytes) VALUES(0, ?, ?)", [.int(counted[0]), .int(counted[1])])
                changed += 1
            }
            return changed
        }
    }

    /// The `usage` row (inodes, bytes), nil if missing, and the same totals counted from the tables.
    private static func usageTotals(_ c: SQLiteConnection) throws(MetaError) -> (kept: [Int64]?, counted: [Int64]) {
        let pair = { (s: Statement) -> [Int64] in [s.int(0), s.int(1)] }
        return (try c.queryOne("SELECT inodes, bytes FROM usage WHERE id = 0", row: pair),
                try c.queryOne(Schema.usageFromTables, row: pair) ?? [0, 0])
    }

    /// SQL for the bytes page row `page` (of `file_chunks`) can hold: its chunk's (row `chunk`)
    /// or as far as its patches reach.
    private static func pageExtent(_ page: String, _ chunk: String) -> String {
        "max(\(chunk).length, coalesce((SELECT max(p.offset + p.length) FROM chunk_patches p WHERE p.ino = \(page).ino AND p.idx = \(page).idx), 0))"
    }

    /// Names every inode that has links but no entry `#<ino>` in `/lost+found`, creating it.
    private static func linkUnreachableIntoLostAndFound(_ c: SQLiteConnection) throws(MetaError) -> Int {
        let lost = try c.query("""
            SELECT ino, kind FROM inodes i WHERE i.ino != 1 AND i.nlink > 0 AND i.ino NOT IN (SELECT ino FROM dentries)
            """, row: { ($0.int(0), $0.int(1)) })
        guard !lost.isEmpty else { return 0 }
        let name = Array("lost+found".utf8)
        var folder = try c.queryOne("SELECT ino FROM dentries WHERE parent = 1 AND name = ?", [.blob(name)]) { $0.int(0) }
        if folder == nil {
            let now = Timestamp.now().nanoseconds
            try c.run("""
                INSERT INTO inodes(kind, mode, uid, gid, size, nlink, rdev, atime_ns, mtime_ns, ctime_ns, generation, parent)
                VALUES(?, 448, 0, 0, 0, 2, 0, ?, ?, ?, 0, 1)
                """, [.int(Int64(FileKind.directory.rawValue)), .int(now), .int(now), .int(now)])
            folder = c.lastInsertRowID
            try c.run("INSERT INTO dentries(parent, name, ino) VALUES(1, ?, ?)", [.blob(name), .int(folder!)])
        }
        for (ino, kind) in lost {
            try c.run("INSERT INTO dentries(parent, name, ino) VALUES(?, ?, ?)", [.int(folder!), .blob(Array("#\(ino)".utf8)), .int(ino)])
            if kind == Int64(FileKind.directory.rawValue) { try c.run("UPDATE inodes SET parent = ? WHERE ino = ?", [.int(folder!), .int(ino)]) }
        }
        return lost.count
    }

    /// Every stored chunk a file references, where it is and its stored length (what must
    /// exist in the store: `length` bytes at the location's range of its object).
    public func referencedStoredChunkLengths() throws(MetaError) -> [(chunk: LocatedChunk, length: Int)] {
        try read { (c) throws(MetaError) in
            try c.query("SELECT hash, \(ChunkLocation.selected()) FROM chunks WHERE state = ? AND refcount > 0",
                        [.int(ChunkState.stored.rawValue)]) { (LocatedChunk.read($0, from: 0), Int($0.int(3))) }
        }
    }

    /// Every chunk row naming an object (referenced or awaiting garbage collection), with the
    /// object it names: an object no row names is garbage for `gc`.
    public func knownStoredChunks() throws(MetaError) -> [LocatedChunk] {
        try read { (c) throws(MetaError) in
            try c.query("SELECT hash, \(ChunkLocation.selected()) FROM chunks WHERE state = ?", [.int(ChunkState.stored.rawValue)]) {
                LocatedChunk.read($0, from: 0)
            }
        }
    }
}
