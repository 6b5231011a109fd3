import MossaicCore
import MossaicObjectStore

/// Fetches a snapshot's changesets ahead of their application at restore: while one is
/// applied, the next ones are downloaded and checked against their SHA-256 on a few threads,
/// so a chain of hundreds of changesets costs about its apply time instead of apply plus one
/// GET round trip per changeset. Fetching starts at `init`, so the first changesets also
/// arrive while the base copy is being downloaded.
///
/// Bounded: at most `window` changesets, and at most `maxBytes` of them (one, if a single
/// changeset is larger), are fetched and not yet handed out. The window only advances as
/// `next()` takes changesets, in order.
///
/// Not `Sendable`: one restore's thread calls `next()`; the fetches themselves run on a pool
/// of their own and report through futures. Dropping the prefetcher (a failed restore) lets
/// the pool's threads exit once the fetches under way end; their bytes are dropped.
final class ChangesetPrefetcher {
    static let threads = 4
    static let window = 8
    static let maxBytes = 64 << 20

    private let pieces: [SnapshotManifest.Piece]
    private let snapshot: String
    private let store: any ObjectStore
    private let pool: WorkerPool
    private let window: Int
    private let maxBytes: Int
    /// Fetches started and not yet taken, oldest first (index into `pieces`, its outcome).
    private var pending: [(index: Int, bytes: Future<[UInt8], ReplicationError>)] = []
    private var pendingBytes = 0
    private var nextToFetch = 0
    private var nextToTake = 0

    /// Starts fetching `pieces`, the changesets of snapshot `snapshot` (named in errors).
    init(_ pieces: [SnapshotManifest.Piece], of snapshot: String, from store: any ObjectStore,
         threads: Int = threads, window: Int = window, maxBytes: Int = maxBytes) {
        self.pieces = pieces
        self.snapshot = snapshot
        self.store = store
        self.window = max(1, window)
        self.maxBytes = maxBytes
        pool = WorkerPool(threads: min(threads, max(1, pieces.count)), name: "mossaicfs-changesets")
        fill()
    }

    /// Changesets being fetched or fetched and not yet taken (for tests of the bounds).
    var fetchesAhead: Int { pending.count }

    /// The next changeset in chain order, checked against its name; nil after the last.
    func next() throws(ReplicationError) -> [UInt8]? {
        guard nextToTake < pieces.count else { return nil }
        let (index, future) = pending.removeFirst()
        pendingBytes -= pieces[index].size
        nextToTake += 1
        fill()
        return try future.wait()
    }

    /// Starts fetches until the window is full.
    private func fill() {
        while nextToFetch < pieces.count, pending.count < window,
              pending.isEmpty || pendingBytes + pieces[nextToFetch].size <= maxBytes {
            let piece = pieces[nextToFetch], snapshot = snapshot, store = store
            pending.append((nextToFetch, pool.submit { () throws(ReplicationError) in
                try Self.fetch(piece, of: snapshot, from: store)
            }))
            pendingBytes += piece.size
            nextToFetch += 1
        }
    }

    private static func fetch(_ piece: SnapshotManifest.Piece, of snapshot: String,
                              from store: any ObjectStore) throws(ReplicationError) -> [UInt8] {
        guard let hash = piece.hash else { throw .damaged("snapshot \(snapshot): invalid changeset name") }
        return try SnapshotDownloader.fetch(hash, size: piece.size, of: snapshot, from: store)
    }
}
