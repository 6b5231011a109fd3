import Logging
import MossaicCore
import MossaicMeta
import MossaicObjectStore
import MossaicReplication
import Synchronization

/// The reclaim sweep of a read-write mount: deletes the store objects of chunks no file
/// references any more, so that the space of deleted and overwritten data comes back without
/// an operator's `mossaicfs gc`.
///
/// The rule (also in the man page, RECLAIMING SPACE). A stored chunk whose refcount dropped to
/// 0 is deleted — its row, then its object — once
/// 1. a published metadata snapshot contains its release, so no snapshot cut later references
///    it (`free_gen`, schema 4);
/// 2. no metadata snapshot in the store that could reference it remains: of this filesystem's
///    lineage (HEAD and its ancestors) only those between the last one published before its
///    row was inserted and the one that contains its release can, and those are compared by
///    generation, without reading them; a snapshot outside that lineage (a writer's HEAD swap
///    that failed) is read once, like `gc` reads every snapshot, and what it references stays;
/// 3. it was released at least `sweep_grace` ago: a margin for readers holding an older chunk
///    list (a file overwritten while another handle reads it) and for staged uploads;
/// 4. no writer of this mount is about to reference it: commits pin the chunks they rely on
///    before they look them up (`ChunkStore`'s fence), and ONE metadata transaction checks the
///    pins and each row, so a commit that revives a chunk and the sweep never both win.
/// A chunk in a pack goes only with all the other chunks of its pack, and then the pack object
/// is deleted. A pack that still holds one live chunk stays whole with the bytes of its dead
/// ones, and so do their rows (a rewrite of those bytes needs no upload): the sweep does not
/// repack — that would GET and PUT the live part — and neither does `gc`. Inline chunks have
/// no object: their rows go with their last reference, as before.
///
/// Order, each step safe against a crash before the next (as `gc`): the rows leave the
/// metadata in one durable transaction; a metadata snapshot publishes that, so that a restore
/// from HEAD has no row of a chunk whose object is gone (a commit would deduplicate against
/// it); then the objects are deleted, only while the writer lease is safely held. Objects a
/// crash leaves without rows are garbage for `gc`, which also deletes objects no row ever
/// named (uploads whose commit never came): the sweep only looks at rows.
final class ChunkSweeper: Sendable {
    struct Report: Sendable, Equatable {
        /// Rows of released chunks taken out of the metadata, and the objects deleted.
        var chunks = 0
        var objects = 0
        var bytes: UInt64 = 0
        /// Released chunks past the grace that a metadata snapshot still needs.
        var keptForSnapshots = 0
        /// Objects whose DELETE failed (left for the next `gc`).
        var failures = 0
    }

    private struct Lineage {
        /// Generation and parent of every manifest read (manifests never change).
        var manifests: [String: (generation: Int64, parent: String?)] = [:]
        /// What snapshots outside HEAD's lineage reference, by manifest id.
        var foreign: [String: Set<LocatedChunk>] = [:]
    }

    private let metadata: any MetaStore
    private let chunks: ChunkStore
    private let replicator: MetadataReplicator
    private let grace: Double
    private let workDirectory: String
    private let logger: Logger
    private let lineage = Mutex(Lineage())
    /// One sweep at a time (the background thread and a test, or `control`).
    private let running = Mutex(())
    /// Released chunks judged per round: one transaction's worth.
    static let batch = 4096

    init(metadata: any MetaStore, chunks: ChunkStore, replicator: MetadataReplicator, grace: Double, workDirectory: String,
         logger: Logger) {
        self.metadata = metadata; self.chunks = chunks; self.replicator = replicator; self.grace = grace
        self.workDirectory = workDirectory; self.logger = logger
    }

    /// Seconds between rounds: often enough that space returns soon after the grace, rarely
    /// enough that an idle mount costs nothing (a round without released chunks is one query;
    /// one with some LISTs the snapshots).
    static func interval(grace: Double) -> Double { min(60, max(1, grace / 4)) }

    /// One round; `now` is the wall clock the grace is measured against.
    func sweep(now: Timestamp = .now()) throws(FSError) -> Report {
        try running.withLock { (_) throws(FSError) -> Report in try sweepHoldingLock(now: now) }
    }

    private func sweepHoldingLock(now: Timestamp) throws(FSError) -> Report {
        var report = Report()
        _ = try meta { () throws(MetaError) in try metadata.settleReleasedChunks() }
        let before = Timestamp(nanoseconds: now.nanoseconds - Int64(grace * 1e9))
        let released = try meta { () throws(MetaError) in try metadata.releasedChunks(before: before, limit: Self.batch) }
        guard !released.isEmpty else { return report }

        let (generations, foreign) = try snapshots()
        // A foreign snapshot's row may place a chunk elsewhere than ours (fsck moved it): both
        // its chunks and the objects it names stay.
        let foreignHashes = Set(foreign.map(\.hash)), foreignKeys = Set(foreign.map(\.key))
        let free = released.filter { !$0.isNeeded(bySnapshots: generations) && !foreignHashes.contains($0.chunk.hash) }
        report.keptForSnapshots = released.count - free.count
        guard !free.isEmpty else { return report }

        let swept = try chunks.condemn { (hashes, keys) throws(FSError) -> ChunkSweep in
            try meta { () throws(MetaError) in
                try metadata.sweepReleasedChunks(free, sparedHashes: hashes, sparedKeys: keys.union(foreignKeys))
            }
        }
        defer { chunks.absolve(swept) }
        guard !swept.chunks.isEmpty else { return report }
        report.chunks = swept.chunks.count

        // A restore from HEAD must not find the rows: a snapshot first.
        do { _ = try replicator.snapshotNow() } catch {
            logger.warning("reclaim sweep: the metadata snapshot failed; the objects of the released chunks stay for gc",
                           metadata: ["chunks": "\(swept.chunks.count)", "error": "\(error)"])
            return report
        }
        // The snapshotter's database is this mount's metadata (SQLite: snapshots are its copies).
        let published = try meta { () throws(MetaError) in try replicator.writer.metadata.replicationState() }
        guard published.snapshotID != nil, published.snapshotChangeSequence >= swept.changeSequence else {
            logger.warning("reclaim sweep: no snapshot holds the removal; the objects stay for gc", metadata: ["chunks": "\(swept.chunks.count)"])
            return report
        }
        let lease = replicator.lease
        let outcome = Mutex((deleted: [Int](), failures: [String]()))
        let objects = swept.objects
        WorkerPool.forEach(count: objects.count, width: chunks.configuration.workerThreads, name: "mossaicfs-sweep") { i in
            var failure: String?
            if let lease, let why = lease.lostReason ?? lease.fenceReason() {
                failure = "\(objects[i].key): not deleted: \(why)"
            } else {
                do throws(ObjectStoreError) {
                    try self.chunks.store.delete(objects[i].key)
                } catch .notFound {
                    // Gone already (a gc, or an earlier round that crashed before its report).
                } catch {
                    failure = "\(objects[i].key): \(error)"
                }
            }
            outcome.withLock { o in if let failure { o.failures.append(failure) } else { o.deleted.append(i) } }
        }
        let (deleted, failures) = outcome.withLock { ($0.deleted, $0.failures) }
        report.objects = deleted.count
        report.bytes = deleted.reduce(0) { $0 + objects[$1].bytes }
        report.failures = failures.count
        if let first = failures.first {
            logger.warning("reclaim sweep: objects not deleted (left for gc)", metadata: ["count": "\(failures.count)", "first": "\(first)"])
        }
        logger.debug("reclaim sweep", metadata: ["chunks": "\(report.chunks)", "objects": "\(report.objects)", "bytes": "\(report.bytes)"])
        return report
    }

    /// The generations of HEAD's lineage in the store (sorted), and what the snapshots outside
    /// it reference. Our own snapshot in flight (HEAD's child, its HEAD swap still to come) is
    /// neither: it was cut from this database after every release the sweep may take
    /// (`free_gen` is at most the last published generation).
    private func snapshots() throws(FSError) -> (generations: [Int64], foreign: Set<LocatedChunk>) {
        let catalog = SnapshotCatalog(store: chunks.store)
        do throws(ReplicationError) {
            let ids = try catalog.snapshotIDs()
            let head = try catalog.head()?.pointer
            var known = lineage.withLock { $0.manifests }
            func manifest(_ id: String) throws(ReplicationError) -> (generation: Int64, parent: String?)? {
                if let m = known[id] { return m }
                let m: SnapshotManifest
                do { m = try catalog.manifest(id) } catch .noSuchSnapshot { return nil }
                known[id] = (m.generation, m.parent)
                return known[id]
            }
            var chain: Set<String> = []
            var next = head?.snapshot
            while let id = next, !chain.contains(id), let m = try manifest(id) {
                chain.insert(id)
                next = m.parent
            }
            let listed = Set(ids)
            var generations: [Int64] = []
            var foreign: Set<LocatedChunk> = []
            for id in ids {
                if chain.contains(id) {
                    if let m = known[id] { generations.append(m.generation) }
                    continue
                }
                guard let m = try manifest(id) else { continue }  // pruned meanwhile
                if let head, m.parent == head.snapshot, m.generation == head.generation + 1 { continue }
                foreign.formUnion(try referenced(id, catalog: catalog))
            }
            lineage.withLock { l in
                l.manifests = known.filter { listed.contains($0.key) }
                l.foreign = l.foreign.filter { listed.contains($0.key) }
            }
            return (generations.sorted(), foreign)
        } catch {
            throw .io("reclaim sweep: reading the metadata snapshots: \(error)")
        }
    }

    /// The stored chunks snapshot `id` references (downloaded once: a snapshot never changes).
    private func referenced(_ id: String, catalog: SnapshotCatalog) throws(ReplicationError) -> Set<LocatedChunk> {
        if let done = lineage.withLock({ $0.foreign[id] }) { return done }
        let m = try catalog.manifest(id)
        logger.notice("reclaim sweep: reading a metadata snapshot outside HEAD's lineage", metadata: ["snapshot": "\(id)"])
        let chunks = try catalog.referencedFileChunks(of: [m], workDirectory: workDirectory)
        lineage.withLock { $0.foreign[id] = chunks }
        return chunks
    }
}
