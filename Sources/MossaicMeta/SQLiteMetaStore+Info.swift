import MossaicCore

extension SQLiteMetaStore {
    /// The inode `ino` and, for a directory, every inode below it (a recursive walk of the
    /// directory entries; UNION, not UNION ALL, counts a hard-linked file once).
    private static let tree = """
        WITH RECURSIVE tree(ino) AS (SELECT ? UNION SELECT d.ino FROM dentries d JOIN tree t ON d.parent = t.ino)
        """

    /// Totals over `ino` (a file) or the tree below it (a directory).
    public func treeUsage(_ ino: InodeNumber) throws(MetaError) -> TreeUsage {
        try read(snapshot: true) { (c) throws(MetaError) in
            let root = SQLValue.int(Int64(ino.rawValue))
            let regular = Int64(FileKind.regular.rawValue), directory = Int64(FileKind.directory.rawValue)
            var u = TreeUsage()
            let counts = try c.queryOne("""
                \(Self.tree)
                SELECT count(*) FILTER (WHERE i.kind = ?), count(*) FILTER (WHERE i.kind = ?), count(*),
                       coalesce(sum(i.size) FILTER (WHERE i.kind = ?), 0)
                FROM tree JOIN inodes i ON i.ino = tree.ino
                """, [root, .int(regular), .int(directory), .int(regular)]) { (s: Statement) -> [Int64] in [s.int(0), s.int(1), s.int(2), s.int(3)] } ?? [0, 0, 0, 0]
            u.files = UInt64(counts[0]); u.directories = UInt64(counts[1]); u.others = UInt64(counts[2] - counts[0] - counts[1])
            u.size = UInt64(counts[3])
            // Per distinct chunk: the bytes it takes (in the store, compressed or not, or
            // inline), how often the tree names it, how often anything does.
            let rows = try c.query("""
                \(Self.tree)
                SELECT c.stored_length, r.n, c.refcount, c.state FROM
                  (SELECT f.hash, count(*) AS n FROM file_chunks f JOIN tree t ON f.ino = t.ino GROUP BY f.hash) r
                JOIN chunks c ON c.hash = r.hash
                """, [root]) { (s: Statement) -> (length: UInt64, n: Int64, refcount: Int64, state: Int64) in
                (length: UInt64(s.int(0)), n: s.int(1), refcount: s.int(2), state: s.int(3))
            }
            Self.tally(rows, into: &u)
            return u
        }
    }

    /// Adds the tree's distinct chunks to `u`: each one's length, how often the tree names it
    /// (`n`), how often anything does (`refcount`) and its state.
    static func tally(_ rows: [(length: UInt64, n: Int64, refcount: Int64, state: Int64)], into u: inout TreeUsage) {
        var referenced: UInt64 = 0
        for row in rows {
            u.chunks += 1
            u.chunkReferences += UInt64(row.n)
            u.storedBytes += row.length
            if row.state == ChunkState.inline.rawValue { u.inlineBytes += row.length }
            referenced += UInt64(row.n) * row.length
            if row.refcount <= row.n { u.exclusiveBytes += row.length }
        }
        u.deduplicatedBytes = referenced - u.exclusiveBytes
    }

    /// The distinct chunks stored as objects that the files of `ino`'s tree name, ordered by
    /// object and offset, so that the chunks of one pack come one after another.
    public func treeStoredChunks(_ ino: InodeNumber) throws(MetaError) -> [(hash: ChunkHash, location: ChunkLocation, length: Int)] {
        try read { (c) throws(MetaError) in
            try c.query("""
                \(Self.tree)
                SELECT c.hash, c.length, \(ChunkLocation.selected("c.")) FROM
                  (SELECT DISTINCT f.hash FROM file_chunks f JOIN tree t ON f.ino = t.ino) r
                JOIN chunks c ON c.hash = r.hash WHERE c.state = ?
                ORDER BY coalesce(c.pack, c.hash), coalesce(c.pack_offset, 0)
                """, [.int(Int64(ino.rawValue)), .int(ChunkState.stored.rawValue)]) { (s: Statement) -> (hash: ChunkHash, location: ChunkLocation, length: Int) in
                (hash: ChunkHash(bytes: s.blob(0)), location: ChunkLocation.read(s, from: 2), length: Int(s.int(1)))
            }
        }
    }
}
