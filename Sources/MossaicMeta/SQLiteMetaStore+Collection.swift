import MossaicCore

extension LocatedChunk {
    /// Columns `first` (hash) and `first + 1` to `first + 4` (`ChunkLocation.selected`) of a row.
    static func read(_ s: some ResultRow, from first: Int32) -> LocatedChunk {
        LocatedChunk(hash: ChunkHash(bytes: s.blob(first)), location: .read(s, from: first + 1))
    }
}

/// What `mossaicfs gc` asks of the metadata: which objects it must keep, and dropping the rows
/// of stored chunks no file references any more.
extension SQLiteMetaStore {
    /// The chunk rows as the garbage collector sees them, with their locations (gc decides per
    /// object, and a pack holds several chunks). `live`: chunks whose object must stay
    /// (referenced, or not a plain stored chunk — a staged chunk's object may be half uploaded).
    /// `unreferenced`: stored chunks at refcount 0, whose object may go once no live chunk and
    /// no snapshot needs it.
    public func chunkRowsForCollection() throws(MetaError) -> (live: [LocatedChunk], unreferenced: [LocatedChunk]) {
        try read(snapshot: true) { (c) throws(MetaError) in
            Self.sortForCollection(try c.query("""
                SELECT hash, \(ChunkLocation.selected()), refcount, state FROM chunks WHERE state <> ?
                """, [.int(ChunkState.inline.rawValue)], row: { (LocatedChunk.read($0, from: 0), $0.int(5) != 0, $0.int(6)) }))
        }
    }

    /// Chunk rows (chunk, referenced, state) sorted into what gc must keep and what it may drop.
    static func sortForCollection(_ rows: [(LocatedChunk, Bool, Int64)]) -> (live: [LocatedChunk], unreferenced: [LocatedChunk]) {
        var live: [LocatedChunk] = [], unreferenced: [LocatedChunk] = []
        for (chunk, referenced, state) in rows {
            if !referenced && state == ChunkState.stored.rawValue { unreferenced.append(chunk) } else { live.append(chunk) }
        }
        return (live, unreferenced)
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
