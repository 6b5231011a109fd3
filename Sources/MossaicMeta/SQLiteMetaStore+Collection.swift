import MossaicCore

/// What `mossaicfs gc` asks of the metadata: which chunk objects it must keep, and dropping the
/// rows of stored chunks no file references any more.
extension SQLiteMetaStore {
    /// The chunk rows as the garbage collector sees them. `live`: hashes whose object must stay
    /// (referenced, or not a plain stored chunk — a staged chunk's object may be half uploaded).
    /// `unreferenced`: stored chunks at refcount 0, whose object may go once no snapshot needs it.
    public func chunkRowsForCollection() throws(MetaError) -> (live: Set<ChunkHash>, unreferenced: Set<ChunkHash>) {
        try withConnection { (c) throws(MetaError) in
            var live: Set<ChunkHash> = [], unreferenced: Set<ChunkHash> = []
            for (hash, refcount, state) in try c.query("SELECT hash, refcount, state FROM chunks WHERE state <> ?",
                                                       [.int(ChunkState.inline.rawValue)],
                                                       row: { (ChunkHash(bytes: $0.blob(0)), $0.int(1), $0.int(2)) }) {
                if refcount == 0 && state == ChunkState.stored.rawValue { unreferenced.insert(hash) } else { live.insert(hash) }
            }
            return (live, unreferenced)
        }
    }

    /// Deletes the rows of `hashes` that are still stored chunks at refcount 0, in one durable
    /// transaction; returns how many went. The row must go BEFORE its object: a commit
    /// deduplicates against any row, so a row whose object is gone would let new data reference
    /// a missing chunk, while an object without a row is only garbage for the next run.
    public func dropUnreferencedStoredChunks(_ hashes: [ChunkHash]) throws(MetaError) -> Int {
        guard !hashes.isEmpty else { return 0 }
        return try write(durable: true) { (c) throws(MetaError) in
            var dropped = 0
            for hash in hashes {
                try c.run("DELETE FROM chunks WHERE hash = ? AND refcount = 0 AND state = ?",
                          [.blob(hash.bytes), .int(ChunkState.stored.rawValue)])
                dropped += c.changes
            }
            return dropped
        }
    }
}
