import MossaicCore

extension SQLiteMetaStore {
    /// Counts and byte totals for `status` and `statfs` (aggregate queries over inodes and chunks).
    public func usageDetails() throws(MetaError) -> UsageDetails {
        try read(snapshot: true) { (c) throws(MetaError) in
            let regular = Int64(FileKind.regular.rawValue), directory = Int64(FileKind.directory.rawValue)
            let inodes = try c.queryOne("""
                SELECT count(*), count(*) FILTER (WHERE kind = ?), count(*) FILTER (WHERE kind = ?),
                       coalesce(sum(size) FILTER (WHERE kind = ?), 0) FROM inodes
                """, [.int(regular), .int(directory), .int(regular)]) { (s: Statement) -> [Int64] in [s.int(0), s.int(1), s.int(2), s.int(3)] } ?? [0, 0, 0, 0]
            // Stored chunks by what they take in the store (compressed or not) and by their
            // plaintext, whose difference is what compression saves.
            let chunks = try c.queryOne("""
                SELECT count(*), coalesce(sum(stored_length) FILTER (WHERE state = ?), 0), coalesce(sum(length) FILTER (WHERE state = ?), 0),
                       coalesce(sum(length) FILTER (WHERE state = ?), 0)
                FROM chunks WHERE refcount > 0
                """, [.int(ChunkState.stored.rawValue), .int(ChunkState.inline.rawValue), .int(ChunkState.stored.rawValue)]) {
                (s: Statement) -> [Int64] in [s.int(0), s.int(1), s.int(2), s.int(3)]
            } ?? [0, 0, 0, 0]
            // Patches (small writes) hold file bytes in the metadata, as inline chunks do.
            let patches = try c.queryOne("SELECT coalesce(sum(length(data)), 0) FROM chunk_patches") { $0.int(0) } ?? 0
            // The partial index on refcount = 0 keeps this to the released rows.
            let released = try c.queryOne("SELECT coalesce(sum(stored_length), 0) FROM chunks WHERE refcount = 0 AND state = ?",
                                          [.int(ChunkState.stored.rawValue)]) { $0.int(0) } ?? 0
            return UsageDetails(files: UInt64(inodes[1]), directories: UInt64(inodes[2]), inodes: UInt64(inodes[0]),
                                logicalBytes: UInt64(inodes[3]), chunks: UInt64(chunks[0]), storedBytes: UInt64(chunks[1]),
                                inlineBytes: UInt64(chunks[2] + patches), releasedBytes: UInt64(released),
                                uncompressedBytes: UInt64(chunks[3]))
        }
    }
}
