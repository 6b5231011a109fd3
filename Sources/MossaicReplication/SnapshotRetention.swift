import MossaicCore

/// Which metadata snapshots the store keeps: HEAD and the newest of its ancestors (through
/// `parent`) that three rules all keep — `meta_keep` (how many), `meta_keep_age` (how old) and
/// `meta_keep_size` (how many bytes the older ones hold that HEAD does not). The one place that
/// decides it: the writer prunes what falls outside (`SnapshotWriter.prune`), and `gc` must keep
/// the file chunks of what stays inside.
///
/// Retention is a prefix of the chain: walking from HEAD to older snapshots, the first one a
/// rule drops ends it, and every older one goes too — a kept snapshot never has a pruned one
/// between it and HEAD, so "the retained snapshots" is one walk that stops early, never a scan
/// of the whole chain. HEAD is always kept, whatever its age or size.
///
/// The size rule weighs storage, not snapshots: consecutive snapshots share their base pieces
/// and the changesets of their common past (a snapshot's manifest lists its parent's pieces plus
/// its own changeset), so an older snapshot on HEAD's base costs only what HEAD does not list —
/// usually nothing — while one before the last full copy (a rebase) costs its own base. A piece
/// is counted once, however many kept snapshots list it.
public struct SnapshotRetention: Sendable, Equatable {
    /// Snapshots kept, HEAD included: at least 1.
    public var keep: Int
    /// Seconds: an older snapshot created longer ago than this is pruned (nil: no age rule).
    public var maxAge: Double?
    /// Bytes the kept older snapshots may hold that HEAD does not (nil: no size rule).
    public var maxSize: RetentionSize?

    public init(keep: Int, maxAge: Double? = nil, maxSize: RetentionSize? = nil) {
        self.keep = max(1, keep); self.maxAge = maxAge; self.maxSize = maxSize
    }

    /// The retention a read-write mount applies: `meta_keep`, `meta_keep_age`, `meta_keep_size`.
    public init(_ options: MountConfiguration) {
        self.init(keep: options.metaKeep, maxAge: options.metaKeepAge, maxSize: options.metaKeepSize)
    }

    /// Keeps every snapshot of HEAD's chain: for writers that must not prune (`gc`, which cannot
    /// know the retention of the mounts, see `GarbageCollector.run`), and for walking the chain.
    public static let everything = SnapshotRetention(keep: .max)

    /// The retained snapshots, newest first: HEAD (`headID`) and the ancestors the rules keep
    /// at time `now`. The walk also stops at a parent that no longer exists (pruned before).
    /// `cache` holds manifests already read (they are immutable).
    public func chain(from headID: String, in catalog: SnapshotCatalog, now: Timestamp,
                      cache: [String: SnapshotManifest] = [:]) throws(ReplicationError) -> [SnapshotManifest] {
        var walk = Walk(self, now: now)
        var chain: [SnapshotManifest] = []
        var next: String? = headID
        while let id = next, chain.count < keep {
            let m: SnapshotManifest
            if let cached = cache[id] {
                m = cached
            } else {
                do { m = try catalog.manifest(id) } catch .noSuchSnapshot { break }
            }
            guard walk.keeps(m) else { break }
            chain.append(m)
            next = m.parent
        }
        return chain
    }

    /// The retained snapshots of the store at time `now` (empty if there is no HEAD).
    public func retained(in catalog: SnapshotCatalog, now: Timestamp = .now()) throws(ReplicationError) -> [SnapshotManifest] {
        guard let head = try catalog.head() else { return [] }
        return try chain(from: head.pointer.snapshot, in: catalog, now: now)
    }

    /// The age and size rules along one walk from HEAD; the count is the walk's own.
    private struct Walk {
        let retention: SnapshotRetention
        let now: Timestamp
        /// HEAD's pieces, and those of the kept older snapshots that HEAD does not list.
        var counted: Set<ChunkHash> = []
        /// Bytes of the kept older snapshots' pieces that HEAD does not list.
        var extraBytes: Int64 = 0
        /// Set at HEAD, the first snapshot of the walk.
        var limit: Int64?

        init(_ retention: SnapshotRetention, now: Timestamp) { self.retention = retention; self.now = now }

        mutating func keeps(_ m: SnapshotManifest) -> Bool {
            guard let limit else {
                // HEAD: always kept; what it needs is the base the size rule measures against.
                let headBytes = add(m)
                self.limit = retention.maxSize.map { $0.limit(headBytes: headBytes) } ?? .max
                return true
            }
            // A clock behind a snapshot's creation (another host's) makes it young, not old:
            // kept, which is the safe direction.
            if let maxAge = retention.maxAge, now.secondsSince(Timestamp(nanoseconds: m.createdNanoseconds)) > maxAge {
                return false
            }
            var walk = self
            walk.extraBytes += walk.add(m)
            guard walk.extraBytes <= limit else { return false }
            self = walk
            return true
        }

        /// Counts the pieces of `m` not counted yet; returns their bytes.
        private mutating func add(_ m: SnapshotManifest) -> Int64 {
            var bytes: Int64 = 0
            for piece in m.chunks + m.changesets {
                if let hash = piece.hash, counted.insert(hash).inserted { bytes += Int64(piece.size) }
            }
            return bytes
        }
    }
}
