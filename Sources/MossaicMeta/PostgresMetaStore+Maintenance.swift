import MossaicCore

/// fsck's checks and repairs, as the SQLite engine's (SQLiteMetaStore+Check documents each),
/// and the SQLite engine's mounted reclaim sweep, which this engine answers with nothing (its
/// own is PostgresMetaStore+Sweep).
///
/// Two of SQLite's checks cannot fail here: there is no refcount column to disagree with the
/// references, and the foreign key from `file_chunks` to `chunks` keeps every reference to a
/// known chunk.
extension PostgresMetaStore {
    private static let directory = SQLValue.int(Int64(FileKind.directory.rawValue))
    private static let regular = SQLValue.int(Int64(FileKind.regular.rawValue))

    /// The bytes page row `page` (of `file_chunks`) can hold: its chunk's (row `chunk`) or as
    /// far as its patches reach.
    private static func pageExtent(_ page: String, _ chunk: String) -> String {
        "greatest(\(chunk).length, coalesce((SELECT max(p.\"offset\" + p.length) FROM chunk_patches p WHERE p.ino = \(page).ino AND p.idx = \(page).idx), 0))"
    }

    private static let allocatedBytes = "(SELECT coalesce(sum(\(SQLiteMetaStore.blockBytes)), 0)::bigint FROM file_chunks f WHERE f.ino = i.ino)"
    private static let fileLinks = "(SELECT count(*) FROM dentries d WHERE d.ino = i.ino)"
    private static let directoryLinks = "2 + (SELECT count(*) FROM inodes s WHERE s.kind = $1 AND s.parent = i.ino AND s.ino != 1)"

    public func checkConsistency() throws(MetaError) -> [MetaProblem] {
        try read(snapshot: true) { (c) throws(MetaError) in
            var problems: [MetaProblem] = []
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
                SELECT f.ino, f.idx FROM file_chunks f JOIN inodes i ON i.ino = f.ino WHERE f.idx * $1 >= i.size
                """, [.int(Int64(FormatConstants.chunkSize))], row: { ($0.int(0), $0.int(1)) }) {
                problems.append(.init(kind: .referencePastEnd, detail: "inode \(ino) chunk \(idx)"))
            }
            for (ino, nlink, expected) in try c.query("""
                SELECT ino, nlink, expected FROM (
                  SELECT i.ino, i.kind, i.nlink, CASE WHEN i.kind = $1 THEN \(Self.directoryLinks) ELSE \(Self.fileLinks) END AS expected
                  FROM inodes i) x
                WHERE nlink != expected AND NOT (kind != $1 AND nlink = 0)
                """, [Self.directory], row: { ($0.int(0), $0.int(1), $0.int(2)) }) {
                problems.append(.init(kind: .linkCount, detail: "inode \(ino) has nlink \(nlink), expected \(expected)"))
            }
            for (parent, ino) in try c.query("""
                SELECT d.parent, d.ino FROM dentries d LEFT JOIN inodes i ON i.ino = d.ino WHERE i.ino IS NULL
                """, row: { ($0.int(0), $0.int(1)) }) {
                problems.append(.init(kind: .danglingEntry, detail: "entry in directory \(parent) names inode \(ino)"))
            }
            for ino in try c.query("""
                SELECT i.ino FROM inodes i WHERE i.ino != 1 AND i.nlink > 0 AND NOT EXISTS (SELECT 1 FROM dentries d WHERE d.ino = i.ino)
                """, row: { $0.int(0) }) {
                problems.append(.init(kind: .unreachable, detail: "inode \(ino)"))
            }
            for ino in try c.query("""
                SELECT i.ino FROM inodes i WHERE i.nlink = 0 AND NOT EXISTS (SELECT 1 FROM orphans o WHERE o.ino = i.ino)
                """, row: { $0.int(0) }) {
                problems.append(.init(kind: .unlistedOrphan, detail: "inode \(ino)"))
            }
            for (ino, parent) in try c.query("""
                SELECT i.ino, i.parent FROM inodes i JOIN dentries d ON d.ino = i.ino WHERE i.kind = $1 AND i.parent != d.parent
                """, [Self.directory], row: { ($0.int(0), $0.int(1)) }) {
                problems.append(.init(kind: .directoryParent, detail: "directory \(ino) says its parent is \(parent)"))
            }
            for (ino, stored, actual) in try c.query("""
                SELECT ino, allocated, actual FROM (SELECT i.ino, i.allocated, \(Self.allocatedBytes) AS actual FROM inodes i WHERE i.kind = $1) x
                WHERE allocated != actual
                """, [Self.regular], row: { ($0.int(0), $0.int(1), $0.int(2)) }) {
                problems.append(.init(kind: .allocation, detail: "inode \(ino) says \(stored) bytes, its chunks hold \(actual)"))
            }
            for (ino, stored, actual) in try Self.wrongReservations(c) {
                problems.append(.init(kind: .reservation, detail: "inode \(ino) says \(stored) bytes reserved beyond its data, \(actual) are"))
            }
            // statfs's counter rows (schema 10), in this snapshot as the tables are.
            let (kept, counted) = try Self.usageTotals(c)
            if kept != counted {
                problems.append(.init(kind: .usage, detail: "statfs says \(kept[0]) inodes and \(kept[1]) bytes, the tables hold \(counted[0]) inodes and \(counted[1]) bytes"))
            }
            return problems
        }
    }

    /// Fixes what the metadata alone can fix, in one transaction, as the SQLite engine's
    /// `repairConsistency`. Returns how many rows changed.
    public func repairConsistency() throws(MetaError) -> Int {
        try write(durable: true) { (c) throws(MetaError) in
            var changed = 0
            let past = try c.query("""
                DELETE FROM file_chunks f USING inodes i WHERE i.ino = f.ino AND f.idx * $1 >= i.size RETURNING f.hash
                """, [.int(Int64(FormatConstants.chunkSize))]) { $0.blob(0) }
            changed += past.count
            changed += try c.update("""
                UPDATE file_chunks f SET length = \(Self.pageExtent("f", "c")) FROM chunks c
                WHERE c.hash = f.hash AND f.length > \(Self.pageExtent("f", "c"))
                """)
            changed += try c.update("""
                DELETE FROM chunk_patches p WHERE NOT EXISTS (SELECT 1 FROM file_chunks f WHERE f.ino = p.ino AND f.idx = p.idx)
                """)
            try Self.dropUnreferencedInline(c, past)
            changed += try c.update("DELETE FROM dentries d WHERE NOT EXISTS (SELECT 1 FROM inodes i WHERE i.ino = d.ino)")
            changed += try Self.linkUnreachableIntoLostAndFound(c)
            changed += try c.update("""
                UPDATE inodes i SET parent = d.parent FROM dentries d
                WHERE d.ino = i.ino AND i.kind = $1 AND i.ino != 1 AND d.parent != i.parent
                """, [Self.directory])
            changed += try c.update("UPDATE inodes i SET nlink = \(Self.fileLinks) WHERE i.kind != $1 AND i.nlink != \(Self.fileLinks)", [Self.directory])
            changed += try c.update("UPDATE inodes i SET nlink = \(Self.directoryLinks) WHERE i.kind = $1 AND i.nlink != \(Self.directoryLinks)",
                                    [Self.directory])
            changed += try c.update("INSERT INTO orphans(ino) SELECT ino FROM inodes WHERE nlink = 0 ON CONFLICT DO NOTHING")
            changed += try c.update("UPDATE inodes i SET allocated = \(Self.allocatedBytes) WHERE i.kind = $1 AND i.allocated != \(Self.allocatedBytes)",
                                    [Self.regular])
            changed += try c.update("DELETE FROM allocations a WHERE NOT EXISTS (SELECT 1 FROM inodes i WHERE i.ino = a.ino AND i.kind = $1)",
                                    [Self.regular])
            for (ino, _, actual) in try Self.wrongReservations(c) {
                try c.update("UPDATE inodes SET reserved = $1 WHERE ino = $2", [.int(actual), .int(ino)])
                changed += 1
            }
            // Last, after every change above (which the triggers counted already).
            let (kept, counted) = try Self.usageTotals(c)
            if kept != counted {
                try c.execute(PostgresSchema.recountUsage)
                changed += 1
            }
            return changed
        }
    }

    /// Names every inode that has links but no entry `#<ino>` in `/lost+found`, creating it.
    private static func linkUnreachableIntoLostAndFound(_ c: PostgresConnection) throws(MetaError) -> Int {
        let lost = try c.query("""
            SELECT ino, kind FROM inodes i WHERE i.ino != 1 AND i.nlink > 0 AND NOT EXISTS (SELECT 1 FROM dentries d WHERE d.ino = i.ino)
            """, row: { ($0.int(0), $0.int(1)) })
        guard !lost.isEmpty else { return 0 }
        let name = Array("lost+found".utf8)
        var folder = try entry(c, .root, name)
        if folder == nil {
            let created = try c.queryOne("""
                INSERT INTO inodes(kind, mode, uid, gid, size, nlink, rdev, atime_ns, mtime_ns, ctime_ns, generation, parent)
                VALUES($1, 448, 0, 0, 0, 2, 0, $2, $2, $2, 0, 1) RETURNING ino
                """, [directory, .int(Timestamp.now().nanoseconds)]) { InodeNumber(UInt64($0.int(0))) }
            guard let created else { throw .incompatible("INSERT INTO inodes returned no number") }
            try c.update("INSERT INTO dentries(parent, name, ino) VALUES(1, $1, $2)", [.blob(name), .int(Int64(created.rawValue))])
            folder = created
        }
        let into = SQLValue.int(Int64(folder!.rawValue))
        for (ino, kind) in lost {
            try c.update("INSERT INTO dentries(parent, name, ino) VALUES($1, $2, $3)", [into, .blob(Array("#\(ino)".utf8)), .int(ino)])
            if kind == Int64(FileKind.directory.rawValue) { try c.update("UPDATE inodes SET parent = $1 WHERE ino = $2", [into, .int(ino)]) }
        }
        return lost.count
    }

    /// The SQLite engine's mounted sweep reclaims releases settled by published snapshots; this
    /// engine publishes none, so none is ever settled and that sweep finds nothing: stored
    /// chunks no file references are reclaimed by the mounted hosts' own mark-and-sweep
    /// (PostgresMetaStore+Sweep), or by `mossaicfs gc` (`chunkRowsForCollection`,
    /// `dropUnreferencedStoredChunks`) with no host mounted.
    public func settleReleasedChunks() throws(MetaError) -> Int { 0 }

    public func releasedChunks(before releasedBefore: Timestamp, limit: Int) throws(MetaError) -> [ReleasedChunk] { [] }

    public func sweepReleasedChunks(_ candidates: [ReleasedChunk], sparedHashes: Set<ChunkHash>,
                                    sparedKeys: Set<String>) throws(MetaError) -> ChunkSweep {
        ChunkSweep()
    }
}
