import MossaicCore

/// A stored chunk no file references any more, as the reclaim sweep sees it (schema 4's
/// columns, Schema.swift).
public struct ReleasedChunk: Sendable, Hashable {
    public var chunk: LocatedChunk
    public var length: Int
    /// No metadata snapshot of this generation or older can reference the chunk: the last one
    /// published before its row was inserted (0 for rows older than schema 4).
    public var createdGeneration: Int64
    /// No snapshot of this generation or newer references it: the first published snapshot
    /// known to contain its release.
    public var freeGeneration: Int64
    /// When its refcount dropped to 0.
    public var released: Timestamp

    public init(chunk: LocatedChunk, length: Int, createdGeneration: Int64, freeGeneration: Int64, released: Timestamp) {
        self.chunk = chunk; self.length = length; self.createdGeneration = createdGeneration
        self.freeGeneration = freeGeneration; self.released = released
    }

    /// Whether any snapshot of `generations` (the metadata snapshots of this filesystem's
    /// lineage in the store, sorted) may reference the chunk: only those strictly between
    /// `createdGeneration` and `freeGeneration` can.
    public func isNeeded(bySnapshots generations: [Int64]) -> Bool {
        // The first generation above createdGeneration, by binary search.
        var low = 0, high = generations.count
        while low < high {
            let mid = (low + high) / 2
            if generations[mid] <= createdGeneration { low = mid + 1 } else { high = mid }
        }
        return low < generations.count && generations[low] < freeGeneration
    }
}

/// What one sweep transaction took out of the metadata: the rows, and the objects that held
/// only their bytes (a chunk's own object, or a pack whose every chunk went).
public struct ChunkSweep: Sendable {
    public var chunks: [ReleasedChunk] = []
    /// Object keys with the bytes they held.
    public var objects: [(key: String, bytes: UInt64)] = []
    /// `change_seq` after the transaction: a snapshot holding at least this one no longer
    /// has the rows.
    public var changeSequence: Int64 = 0
    public init() {}
}

/// What one batch of PostgreSQL's reclaim sweep took out of the metadata
/// (`PostgresMetaStore.sweepUnreferencedChunks`): rows deleted and tombstones written, pending
/// until the objects are deleted (`finishSweep`).
public struct SharedChunkSweep: Sendable {
    /// The batch's tombstone number.
    public var seq: Int64 = 0
    /// Chunk rows deleted.
    public var chunks = 0
    /// Objects to delete now (a chunk's own object, or a pack whose every chunk went), with the
    /// bytes they hold.
    public var objects: [(key: String, bytes: UInt64)] = []
    /// Eligible chunks kept because a retained backup names their object.
    public var keptForBackups = 0
    /// The batch did nothing because the backup claimed last is not complete yet.
    public var waitingForBackup = false
    /// Rows looked at (locked): fewer than the limit means no more are eligible now.
    public var examined = 0
    /// Where the next batch of the round starts.
    public var cursor: SweepCursor?
    public init() {}
}

/// The last row a batch of PostgreSQL's sweep looked at, in its order (mark time, hash).
public struct SweepCursor: Sendable, Equatable {
    /// The mark time as the server writes it (read back exactly).
    public var since: String
    public var hash: ChunkHash
}
