import MossaicCore

/// fsck's checks and the mounted reclaim sweep: what this engine does not do yet (step 1 of
/// issue 25; PostgresMetaStore's notes list it). The engine is not reachable by users until
/// it does.
extension PostgresMetaStore {
    public func checkConsistency() throws(MetaError) -> [MetaProblem] {
        throw .incompatible("fsck of a PostgreSQL filesystem is not available in this build")
    }

    public func repairConsistency() throws(MetaError) -> Int {
        throw .incompatible("fsck of a PostgreSQL filesystem is not available in this build")
    }

    /// The mounted sweep reclaims releases settled by published SQLite snapshots; this engine
    /// publishes none, so none is ever settled and the sweep finds nothing (chunks no file
    /// references are reclaimed by `mossaicfs gc`, `dropUnreferencedStoredChunks`).
    public func settleReleasedChunks() throws(MetaError) -> Int { 0 }

    public func releasedChunks(before releasedBefore: Timestamp, limit: Int) throws(MetaError) -> [ReleasedChunk] { [] }

    public func sweepReleasedChunks(_ candidates: [ReleasedChunk], sparedHashes: Set<ChunkHash>,
                                    sparedKeys: Set<String>) throws(MetaError) -> ChunkSweep {
        ChunkSweep()
    }
}
