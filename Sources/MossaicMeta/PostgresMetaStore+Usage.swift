import MossaicCore

/// Totals for `status`, `statfs` and `mossaicfs info`, and the chunk lists `fsck` and `gc`
/// read. "Referenced" is "some `file_chunks` row names it" (no refcount column here).
extension PostgresMetaStore {
    private static let referenced = "EXISTS (SELECT 1 FROM file_chunks f WHERE f.hash = c.hash)"
    private static let stored = SQLValue.int(ChunkState.stored.rawValue)

    /// The sum of every connection's counter row (schema 10, `PostgresSchema.usage`): as many
    /// rows as connections, whatever the number of files.
    public func usage() throws(MetaError) -> MetaUsage {
        try read { (c) throws(MetaError) in
            let row = try c.queryOne(Self.keptUsage, row: Self.usagePair) ?? [0, 0]
            return MetaUsage(inodes: UInt64(max(row[0], 0)), usedBytes: UInt64(max(row[1], 0)))
        }
    }

    /// The totals the counter rows keep: inodes, bytes.
    private static let keptUsage = "SELECT coalesce(sum(inodes), 0)::bigint, coalesce(sum(bytes), 0)::bigint FROM usage_counts"
    private static func usagePair(_ s: PostgresRow) -> [Int64] { [s.int(0), s.int(1)] }

    /// The counter rows and the same totals counted from the tables, for fsck.
    static func usageTotals(_ c: PostgresConnection) throws(MetaError) -> (kept: [Int64], counted: [Int64]) {
        (try c.queryOne(keptUsage, row: usagePair) ?? [0, 0],
         try c.queryOne("SELECT \(PostgresSchema.countedUsage)", row: usagePair) ?? [0, 0])
    }

    /// Folds the counter rows of connections that have ended into row 0, so that the table
    /// holds one row per open connection, not one per connection ever opened. Moves values,
    /// never recounts: each row goes with the values of the version it deletes, so a row its
    /// connection (or a new connection with the same process id) changes meanwhile is folded
    /// as it then is, or waited for. Called by the sweep's mark step, under its lock.
    static func foldUsageCounts(_ c: PostgresConnection) throws(MetaError) {
        try c.update("""
            WITH gone AS (
                DELETE FROM usage_counts u WHERE u.pid <> 0 AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = u.pid)
                RETURNING u.inodes, u.bytes)
            INSERT INTO usage_counts AS u(pid, inodes, bytes)
            SELECT 0, coalesce(sum(inodes), 0), coalesce(sum(bytes), 0) FROM gone HAVING count(*) > 0
            ON CONFLICT(pid) DO UPDATE SET inodes = u.inodes + excluded.inodes, bytes = u.bytes + excluded.bytes
            """)
    }

    public func usageDetails() throws(MetaError) -> UsageDetails {
        try read(snapshot: true) { (c) throws(MetaError) in
            let regular = SQLValue.int(Int64(FileKind.regular.rawValue)), directory = SQLValue.int(Int64(FileKind.directory.rawValue))
            let inodes = try c.queryOne("""
                SELECT count(*), count(*) FILTER (WHERE kind = $1), count(*) FILTER (WHERE kind = $2),
                       coalesce(sum(size) FILTER (WHERE kind = $1), 0)::bigint FROM inodes
                """, [regular, directory]) { (s: PostgresRow) -> [Int64] in [s.int(0), s.int(1), s.int(2), s.int(3)] } ?? [0, 0, 0, 0]
            // Stored chunks by what they take in the store and by their plaintext (the
            // difference is what compression saves), as the SQLite engine counts them.
            let chunks = try c.queryOne("""
                SELECT count(*), coalesce(sum(stored_length) FILTER (WHERE state = $1), 0)::bigint,
                       coalesce(sum(length) FILTER (WHERE state = $2), 0)::bigint, coalesce(sum(length) FILTER (WHERE state = $1), 0)::bigint
                FROM chunks c WHERE \(Self.referenced)
                """, [Self.stored, .int(ChunkState.inline.rawValue)]) { (s: PostgresRow) -> [Int64] in [s.int(0), s.int(1), s.int(2), s.int(3)] } ?? [0, 0, 0, 0]
            let patches = try c.queryOne("SELECT coalesce(sum(length(data)), 0)::bigint FROM chunk_patches") { $0.int(0) } ?? 0
            let released = try c.queryOne("SELECT coalesce(sum(stored_length), 0)::bigint FROM chunks c WHERE state = $1 AND NOT \(Self.referenced)",
                                          [Self.stored]) { $0.int(0) } ?? 0
            return UsageDetails(files: UInt64(inodes[1]), directories: UInt64(inodes[2]), inodes: UInt64(inodes[0]),
                                logicalBytes: UInt64(inodes[3]), chunks: UInt64(chunks[0]), storedBytes: UInt64(chunks[1]),
                                inlineBytes: UInt64(chunks[2] + patches), releasedBytes: UInt64(released),
                                uncompressedBytes: UInt64(chunks[3]))
        }
    }

    /// `ino` and, for a directory, every inode below it (UNION counts a hard-linked file once).
    private static let tree = "WITH RECURSIVE tree(ino) AS (SELECT $1::bigint UNION SELECT d.ino FROM dentries d JOIN tree t ON d.parent = t.ino)"

    public func treeUsage(_ ino: InodeNumber) throws(MetaError) -> TreeUsage {
        try read(snapshot: true) { (c) throws(MetaError) in
            let root = SQLValue.int(Int64(ino.rawValue))
            var u = TreeUsage()
            let counts = try c.queryOne("""
                \(Self.tree)
                SELECT count(*) FILTER (WHERE i.kind = $2), count(*) FILTER (WHERE i.kind = $3), count(*),
                       coalesce(sum(i.size) FILTER (WHERE i.kind = $2), 0)::bigint
                FROM tree JOIN inodes i ON i.ino = tree.ino
                """, [root, .int(Int64(FileKind.regular.rawValue)), .int(Int64(FileKind.directory.rawValue))]) { (s: PostgresRow) -> [Int64] in
                [s.int(0), s.int(1), s.int(2), s.int(3)]
            } ?? [0, 0, 0, 0]
            u.files = UInt64(counts[0]); u.directories = UInt64(counts[1]); u.others = UInt64(counts[2] - counts[0] - counts[1])
            u.size = UInt64(counts[3])
            let rows = try c.query("""
                \(Self.tree)
                SELECT c.stored_length, r.n, (SELECT count(*) FROM file_chunks a WHERE a.hash = c.hash), c.state FROM
                  (SELECT f.hash, count(*) AS n FROM file_chunks f JOIN tree t ON f.ino = t.ino GROUP BY f.hash) r
                JOIN chunks c ON c.hash = r.hash
                """, [root]) { (s: PostgresRow) -> (length: UInt64, n: Int64, refcount: Int64, state: Int64) in
                (length: UInt64(s.int(0)), n: s.int(1), refcount: s.int(2), state: s.int(3))
            }
            SQLiteMetaStore.tally(rows, into: &u)
            return u
        }
    }

    public func treeStoredChunks(_ ino: InodeNumber) throws(MetaError) -> [(hash: ChunkHash, location: ChunkLocation, length: Int)] {
        try read { (c) throws(MetaError) in
            try c.query("""
                \(Self.tree)
                SELECT c.hash, c.length, \(ChunkLocation.selected("c.")) FROM
                  (SELECT DISTINCT f.hash FROM file_chunks f JOIN tree t ON f.ino = t.ino) r
                JOIN chunks c ON c.hash = r.hash WHERE c.state = $2
                ORDER BY coalesce(c.pack, c.hash), coalesce(c.pack_offset, 0)
                """, [.int(Int64(ino.rawValue)), Self.stored]) { s in
                (hash: ChunkHash(bytes: s.blob(0)), location: ChunkLocation.read(s, from: 2), length: Int(s.int(1)))
            }
        }
    }

    public func referencedStoredChunkLengths() throws(MetaError) -> [(chunk: LocatedChunk, length: Int)] {
        try read { (c) throws(MetaError) in
            try c.query("SELECT hash, \(ChunkLocation.selected()) FROM chunks c WHERE state = $1 AND \(Self.referenced)", [Self.stored]) {
                (LocatedChunk.read($0, from: 0), Int($0.int(3)))
            }
        }
    }

    public func knownStoredChunks() throws(MetaError) -> [LocatedChunk] {
        try read { (c) throws(MetaError) in
            try c.query("SELECT hash, \(ChunkLocation.selected()) FROM chunks WHERE state = $1", [Self.stored]) { LocatedChunk.read($0, from: 0) }
        }
    }

    /// As the SQLite engine's (SQLiteMetaStore+Collection): `live` must stay, `unreferenced`
    /// are stored chunks no file names.
    public func chunkRowsForCollection() throws(MetaError) -> (live: [LocatedChunk], unreferenced: [LocatedChunk]) {
        try read(snapshot: true) { (c) throws(MetaError) in
            SQLiteMetaStore.sortForCollection(try c.query("""
                SELECT hash, \(ChunkLocation.selected()), CASE WHEN \(Self.referenced) THEN 1 ELSE 0 END, state FROM chunks c WHERE state <> $1
                """, [.int(ChunkState.inline.rawValue)], row: { (LocatedChunk.read($0, from: 0), $0.int(5) == 1, $0.int(6)) }))
        }
    }

    /// Deletes the rows of `hashes` that are still unreferenced stored chunks, in one durable
    /// transaction (before their objects: SQLiteMetaStore+Collection says why). A commit
    /// referencing one meanwhile makes the foreign key refuse the delete: retried, it is kept.
    public func dropUnreferencedStoredChunks(_ hashes: [ChunkHash]) throws(MetaError) -> Int {
        guard !hashes.isEmpty else { return 0 }
        return try write(durable: true) { (c) throws(MetaError) in
            var dropped = 0
            for hash in hashes {
                dropped += try c.update("DELETE FROM chunks c WHERE c.hash = $1 AND c.state = $2 AND NOT \(Self.referenced)",
                                        [.blob(hash.bytes), Self.stored])
            }
            return dropped
        }
    }
}
