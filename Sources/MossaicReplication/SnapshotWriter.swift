#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Logging
import MossaicCore
import MossaicMeta
import MossaicObjectStore
import Synchronization

/// Takes metadata snapshots into the store and prunes old ones. Only a writer holding the
/// lease uses it.
///
/// A snapshot is full or incremental. Incremental (the usual case while mounted): the rows
/// changed since HEAD's captured state, one SQLite changeset (`SQLiteMetaStore.captureChanges`),
/// PUT to `meta/chunks/` under its SHA-256; its manifest lists HEAD's base and changesets and
/// this one. Full (the first snapshot unless the database is exactly HEAD's state, and again
/// once the chain outgrows `chainBound`): a consistent copy of the database cut into pieces.
/// Creating 200,000 small files took 26 full snapshots and 10.6 GB before (issue 20).
///
/// One snapshot, in the order that keeps the store consistent at every step:
/// 1. the changes, or a consistent copy of the database (`SQLiteMetaStore.snapshotCopy`,
///    SQLite backup API) labelled with the next generation and a new id;
/// 2. the changeset PUT, or the copy cut into 1 MiB pieces named by their SHA-256; pieces the
///    current HEAD snapshot already lists are not uploaded again, the others are PUT to
///    `meta/chunks/`;
/// 3. the manifest, PUT with If-None-Match (an id is never reused);
/// 4. `snapshot_pending` recorded locally, then `meta/HEAD` replaced with If-Match the ETag
///    of the HEAD this writer last saw (If-None-Match for the first): if anyone else moved
///    HEAD, the swap fails and this writer stops publishing (`.headMoved`);
/// 5. the local database records the snapshot as published (durably).
/// So HEAD never names a manifest that is not complete, and a manifest never lists a piece
/// that is not stored. File chunks are uploaded before the SQLite commit that references them
/// (ARCHITECTURE.md §3), so any copy of the database references only stored chunks too.
/// A crash between 4 and 5 is resolved at the next mount or snapshot: if HEAD names the
/// pending id, it was published.
///
/// Concurrency: the whole of a snapshot (and pruning) runs under `state`'s lock — the
/// snapshot lock. Lock order: snapshot lock, then the metadata connection lock (taken and
/// released inside `SQLiteMetaStore` calls); never the other way round.
public final class SnapshotWriter: Sendable {
    public struct Configuration: Sendable {
        public var fsUUID: String
        /// Where the database copy is made (a temp file in cache_dir, removed after each run).
        public var workPath: String
        /// Which snapshots pruning keeps (HEAD always).
        public var retention: SnapshotRetention
        public var host: String
        /// The time a snapshot records as its creation, against which retention measures
        /// ages (tests move it).
        public var clock: @Sendable () -> Timestamp
        /// Write-back mounts: waits (at most the given seconds) until every chunk staged at the
        /// time of the call is in the store, and says whether they are. Called right after the
        /// database copy is made, so that a snapshot never names a chunk only staged locally.
        public var waitForStagedChunks: (@Sendable (Double) -> Bool)?
        public init(fsUUID: String, workPath: String, retention: SnapshotRetention, host: String = HostIdentity.current().hostname,
                    clock: @escaping @Sendable () -> Timestamp = { .now() }, waitForStagedChunks: (@Sendable (Double) -> Bool)? = nil) {
            self.fsUUID = fsUUID; self.workPath = workPath; self.retention = retention; self.host = host; self.clock = clock
            self.waitForStagedChunks = waitForStagedChunks
        }
    }

    public struct Statistics: Sendable, Equatable {
        public var pieces = 0
        public var piecesUploaded = 0
        public var bytesUploaded = 0
        public var databaseBytes: Int64 = 0
        public var seconds = 0.0
        /// Shipped as a changeset on its parent, not as a copy of the database.
        public var incremental = false
    }

    public enum Outcome: Sendable, Equatable {
        /// Nothing changed since the snapshot named (nil: there is none and nothing to take).
        case unchanged(String?)
        case published(SnapshotManifest, Statistics)

        public var snapshotID: String? {
            switch self {
            case .unchanged(let id): id
            case .published(let m, _): m.id
            }
        }
    }

    public let store: any ObjectStore
    public let metadata: SQLiteMetaStore
    public let configuration: Configuration
    public let lease: WriterLease?
    let logger: Logger
    /// Parallel piece uploads.
    static let width = 8
    /// Seconds a snapshot waits for staged chunks to be stored before it is postponed.
    static let stagedChunksWait = 30.0

    private struct State {
        var head: PublishedHead?
        var headManifest: SnapshotManifest?
        /// Manifests read or written, by id (they are immutable).
        var manifests: [String: SnapshotManifest] = [:]
        /// Set when this writer must not publish any more (lease lost, HEAD moved).
        var stopped: ReplicationError?
        /// The snapshot whose captured state the metadata's change recording starts from
        /// (nil: none, the next snapshot is a full copy). Incremental snapshots need it to be HEAD.
        var trackedFrom: String?
        /// The id of the last snapshot this process captured, to recognise it in a pending
        /// HEAD swap resolved later.
        var inFlight: String?
    }
    private let state: Mutex<State>

    /// `head`/`headManifest`: the store's HEAD as read at mount (nil if none).
    public init(store: any ObjectStore, metadata: SQLiteMetaStore, head: PublishedHead?, headManifest: SnapshotManifest?,
                configuration: Configuration, lease: WriterLease?, logger: Logger) {
        self.store = store; self.metadata = metadata; self.configuration = configuration; self.lease = lease; self.logger = logger
        var s = State(head: head, headManifest: headManifest)
        if let headManifest { s.manifests[headManifest.id] = headManifest }
        // The database is HEAD's state (clean since it): record changes from here on, so the
        // first snapshot of this mount ships only them.
        if let head, let headManifest, head.pointer.snapshot == headManifest.id,
           (try? metadata.startRecordingChanges(ifCleanAt: headManifest.id, schemaVersion: headManifest.schemaVersion)) == true {
            s.trackedFrom = headManifest.id
        }
        state = Mutex(s)
        published = Mutex(headManifest)
    }

    /// HEAD as this writer knows it.
    public var head: PublishedHead? { state.withLock { $0.head } }
    /// The manifest HEAD names (the newest snapshot), if known. Never waits for a snapshot in
    /// progress (status requests read it).
    public var headManifest: SnapshotManifest? { published.withLock { $0 } }
    private let published: Mutex<SnapshotManifest?>

    /// Takes a snapshot if the database changed since the last one; returns what it did.
    public func snapshot() throws(ReplicationError) -> Outcome {
        try state.withLock { (s) throws(ReplicationError) -> Outcome in try takeSnapshot(&s) }
    }

    /// Deletes meta pieces that no manifest in the store lists (left by a crash between
    /// uploading pieces and the manifest, or during pruning). Run at mount by the writer.
    @discardableResult
    public func sweepUnreferencedPieces() throws(ReplicationError) -> Int {
        try state.withLock { (s) throws(ReplicationError) -> Int in
            let catalog = SnapshotCatalog(store: store)
            var referenced: Set<ChunkHash> = []
            for id in try catalog.snapshotIDs() {
                do throws(ReplicationError) {
                    let m = try cachedManifest(id, &s, catalog)
                    referenced.formUnion(m.pieceHashes)
                } catch .noSuchSnapshot {
                    continue
                } catch .damaged {
                    continue  // unusable anyway
                }
            }
            let objects = try ReplicationError.wrap { () throws(ObjectStoreError) in try store.list(prefix: MetadataLayout.chunksPrefix) }
            var removed = 0
            for object in objects {
                guard let hash = MetadataLayout.chunkHash(key: object.key), !referenced.contains(hash) else { continue }
                try ReplicationError.wrap { () throws(ObjectStoreError) in try store.delete(object.key) }
                removed += 1
            }
            return removed
        }
    }

    // MARK: Snapshot

    private func takeSnapshot(_ s: inout State) throws(ReplicationError) -> Outcome {
        if let stopped = s.stopped { throw stopped }
        if let lost = lease?.lostReason {
            s.stopped = .leaseLost(lost)
            throw .leaseLost(lost)
        }
        var local = try ReplicationError.wrapMeta { () throws(MetaError) in try metadata.replicationState() }
        if let pending = local.pending {
            try resolvePending(pending, &s)
            local = try ReplicationError.wrapMeta { () throws(MetaError) in try metadata.replicationState() }
        }
        let headID = s.head?.pointer.snapshot
        if !local.isDirty, let headID, local.snapshotID == headID { return .unchanged(headID) }

        let started = Timestamp.monotonicNow()
        let created = configuration.clock()
        let generation = max(s.head?.pointer.generation ?? 0, local.generation) + 1
        let id = SnapshotID.make(generation: generation)
        var draft: Draft?
        if let parent = s.headManifest, parent.id == headID, s.trackedFrom == headID, parent.changesets.count < Self.maxChanges,
           let changes = try ReplicationError.wrapMeta({ () throws(MetaError) in try metadata.captureChanges() }),
           parent.databaseBytes + parent.changesetBytes + Int64(changes.changeset.count) <= Self.chainBound(database: changes.databaseBytes) {
            draft = try incrementalDraft(id: id, generation: generation, parent: parent, changes: changes, created: created)
        }
        if draft == nil {
            // A full copy restarts the change recording at its own state: until it is
            // published, no recorded change is relative to HEAD.
            s.trackedFrom = nil
            draft = try fullDraft(id: id, generation: generation, parent: headID, known: s.headManifest?.pieceHashes ?? [],
                                  created: created)
        }
        let (manifest, changeSequence, uploaded) = draft!
        s.inFlight = id
        try publish(manifest, changeSequence: changeSequence, &s)
        metadata.changesShipped()
        s.trackedFrom = id
        var stats = uploaded
        stats.seconds = Timestamp.monotonicNow().secondsSince(started)
        logger.info("metadata snapshot published", metadata: [
            "snapshot": "\(id)", "incremental": "\(stats.incremental)", "pieces": "\(stats.pieces)", "uploaded": "\(stats.piecesUploaded)",
            "bytes": "\(stats.bytesUploaded)", "db_bytes": "\(stats.databaseBytes)",
            "seconds": "\(String(format: "%.3f", stats.seconds))"])
        do {
            try prune(&s)
        } catch {
            logger.warning("pruning old metadata snapshots failed (retried after the next snapshot)", metadata: ["error": "\(error)"])
        }
        return .published(manifest, stats)
    }

    /// A snapshot ready to publish: its manifest (everything it lists is in the store), the
    /// `change_seq` it holds, and what making it uploaded.
    private typealias Draft = (manifest: SnapshotManifest, changeSequence: Int64, statistics: Statistics)

    /// At most this many changesets follow a base: a restore fetches and applies each.
    static let maxChanges = 256

    /// A chain — the base copy and its changesets — may hold up to three times the live
    /// database (its pages in use; at least 8 MiB) before the next snapshot is a full copy
    /// again. Weighed against the database as it is now, not its base:
    /// - a growing database's changesets are mostly its new rows, so base plus changes stays
    ///   about the database's size and a new copy would only re-upload it;
    /// - a database whose rows are rewritten over and over (churn) piles up changesets much
    ///   larger than itself, and a copy then bounds what the store holds and a restore applies;
    /// - a database that shrank (`rm -rf` of many small files) leaves a base much larger than
    ///   itself, whose snapshots hold the deleted data (and the file chunks they reference):
    ///   a compact copy lets retention drop them.
    static func chainBound(database: Int64) -> Int64 { max(3 * database, 8 << 20) }

    /// An incremental snapshot: `parent`'s base and changesets plus the changeset `changes`.
    private func incrementalDraft(id: String, generation: Int64, parent: SnapshotManifest, changes: CapturedChanges,
                                  created: Timestamp) throws(ReplicationError) -> Draft {
        try waitForStagedChunks()
        var list = parent.changesets
        var stats = Statistics(pieces: 1, databaseBytes: parent.databaseBytes, incremental: true)
        if !changes.changeset.isEmpty {
            let hash = ChunkHash.of(changes.changeset)
            if !parent.pieceHashes.contains(hash) {
                let bytes = changes.changeset
                _ = try ReplicationError.wrap { () throws(ObjectStoreError) in try store.put(MetadataLayout.chunk(hash), bytes) }
                stats.piecesUploaded = 1
                stats.bytesUploaded = bytes.count
            }
            list.append(.init(sha256: hash.hex, size: changes.changeset.count))
        }
        let counts = try ReplicationError.wrapMeta { () throws(MetaError) in try metadata.snapshotStatistics() }
        let manifest = SnapshotManifest(
            id: id, generation: generation, parent: parent.id, fsUUID: configuration.fsUUID, created: created,
            host: configuration.host, schemaVersion: parent.schemaVersion, inodes: counts.inodes, files: counts.files,
            logicalBytes: counts.logicalBytes, databaseBytes: parent.databaseBytes, chunks: parent.chunks, changes: list,
            changeSequence: changes.changeSequence, inodeSequence: changes.inodeSequence)
        return (manifest, changes.changeSequence, stats)
    }

    /// A full snapshot: a copy of the database cut into 1 MiB pieces, of which those `known`
    /// (HEAD's, which stays retained) are not uploaded again.
    private func fullDraft(id: String, generation: Int64, parent: String?, known: Set<ChunkHash>,
                           created: Timestamp) throws(ReplicationError) -> Draft {
        let path = configuration.workPath
        let copy = try ReplicationError.wrapMeta { () throws(MetaError) in
            try metadata.snapshotCopy(to: path, generation: generation, id: id)
        }
        defer { SQLiteMetaStore.removeDatabaseFiles(path) }
        try waitForStagedChunks()

        // Cut and name the pieces.
        let chunkSize = FormatConstants.chunkSize
        var pieces: [SnapshotManifest.Piece] = []
        var offset: Int64 = 0
        while offset < copy.databaseBytes {
            let count = Int(min(Int64(chunkSize), copy.databaseBytes - offset))
            let bytes: [UInt8]
            do { bytes = try PosixFiles.read(path, offset: UInt64(offset), count: count) } catch { throw .local(error.description) }
            guard bytes.count == count else { throw .local("\(path): short read") }
            pieces.append(.init(sha256: ChunkHash.of(bytes).hex, size: count))
            offset += Int64(count)
        }
        var seen: Set<String> = []
        var uploads: [(index: Int, piece: SnapshotManifest.Piece)] = []
        for (i, piece) in pieces.enumerated() where !known.contains(piece.hash!) && seen.insert(piece.sha256).inserted {
            uploads.append((i, piece))
        }
        let work = uploads
        let store = self.store
        let uploadPiece: @Sendable (Int) -> ReplicationError? = { n in
            let (index, piece) = work[n]
            do {
                let bytes = try PosixFiles.read(path, offset: UInt64(index * chunkSize), count: piece.size)
                try store.put(MetadataLayout.chunk(piece.hash!), bytes)
                return nil
            } catch let e as ObjectStoreError {
                return .store(e)
            } catch {
                return .local("\(error)")
            }
        }
        try WorkerPool.forEach(count: work.count, width: Self.width, name: "mossaicfs-transfer") { (n) throws(ReplicationError) in
            if let failure = uploadPiece(n) { throw failure }
        }
        let manifest = SnapshotManifest(
            id: id, generation: generation, parent: parent, fsUUID: configuration.fsUUID, created: created,
            host: configuration.host, schemaVersion: copy.schemaVersion, inodes: copy.inodes, files: copy.files,
            logicalBytes: copy.logicalBytes, databaseBytes: copy.databaseBytes, chunks: pieces,
            changeSequence: copy.changeSequence, inodeSequence: copy.inodeSequence)
        let stats = Statistics(pieces: pieces.count, piecesUploaded: uploads.count, bytesUploaded: uploads.reduce(0) { $0 + $1.piece.size },
                               databaseBytes: copy.databaseBytes)
        return (manifest, copy.changeSequence, stats)
    }

    /// Write-back: chunks the captured metadata names may be only staged. They were staged
    /// before the capture, so once everything staged now is stored, every chunk it names is.
    private func waitForStagedChunks() throws(ReplicationError) {
        if let wait = configuration.waitForStagedChunks, !wait(Self.stagedChunksWait) {
            throw .local("write-back chunks are still being uploaded; snapshot postponed")
        }
    }

    /// Publishes `manifest`: PUT it, record it as pending, swap HEAD to it, record it as
    /// published (the numbered steps at the top of this file).
    private func publish(_ manifest: SnapshotManifest, changeSequence: Int64, _ s: inout State) throws(ReplicationError) {
        let id = manifest.id, generation = manifest.generation
        // Still the writer? Renewing the lease right before publishing means a snapshot is
        // published only by the lease holder (up to this one request's latency), not merely by
        // whoever still had HEAD's ETag.
        if let lease {
            do throws(ReplicationError) { try lease.renew() } catch {
                if case .leaseLost = error { s.stopped = error }
                throw error
            }
        }
        _ = try ReplicationError.wrap { () throws(ObjectStoreError) in
            try store.put(MetadataLayout.manifest(id), manifest.encoded(), condition: .ifNoneMatch)
        }
        s.manifests[id] = manifest

        try ReplicationError.wrapMeta { () throws(MetaError) in
            try metadata.recordPendingSnapshot(PendingSnapshot(generation: generation, id: id, changeSequence: changeSequence))
        }
        let pointer = HeadPointer(snapshot: id, generation: generation)
        let etag: String
        do {
            etag = try store.put(MetadataLayout.head, pointer.encoded(), condition: s.head.map { .ifMatch($0.etag) } ?? .ifNoneMatch)
        } catch .preconditionFailed {
            let current = try SnapshotCatalog(store: store).head()
            if let current, current.pointer.snapshot == id {
                etag = current.etag  // an earlier attempt of this very PUT went through
            } else {
                try? metadata.clearPendingSnapshot()
                let error = ReplicationError.headMoved(current: current?.pointer.snapshot ?? "(HEAD removed)")
                s.stopped = error
                throw error
            }
        } catch {
            // Outcome unknown: the pending record stays, and is resolved by the next attempt.
            throw .store(error)
        }
        s.head = PublishedHead(pointer: pointer, etag: etag)
        s.headManifest = manifest
        published.withLock { $0 = manifest }
        try ReplicationError.wrapMeta { () throws(MetaError) in
            try metadata.recordPublishedSnapshot(generation: generation, id: id, changeSequence: changeSequence)
        }
    }

    /// A snapshot whose HEAD swap had an unknown outcome: published if HEAD names it.
    private func resolvePending(_ pending: PendingSnapshot, _ s: inout State) throws(ReplicationError) {
        let current = try SnapshotCatalog(store: store).head()
        if let current, current.pointer.snapshot == pending.id {
            s.head = current
            if let known = s.manifests[pending.id] {
                s.headManifest = known
            } else {
                s.headManifest = try SnapshotCatalog(store: store).manifest(pending.id)
            }
            let newest = s.headManifest
            published.withLock { $0 = newest }
            if s.inFlight == pending.id {
                // This process captured it: recording restarted at its state.
                metadata.changesShipped()
                s.trackedFrom = pending.id
            }
            try ReplicationError.wrapMeta { () throws(MetaError) in
                try metadata.recordPublishedSnapshot(generation: pending.generation, id: pending.id, changeSequence: pending.changeSequence)
            }
        } else if current?.etag == s.head?.etag {
            try ReplicationError.wrapMeta { () throws(MetaError) in try metadata.clearPendingSnapshot() }
        } else {
            let error = ReplicationError.headMoved(current: current?.pointer.snapshot ?? "(HEAD removed)")
            s.stopped = error
            throw error
        }
    }

    /// A manifest from the cache, or read (and cached); manifests are immutable.
    private func cachedManifest(_ id: String, _ s: inout State, _ catalog: SnapshotCatalog) throws(ReplicationError) -> SnapshotManifest {
        if let known = s.manifests[id] { return known }
        let m = try catalog.manifest(id)
        s.manifests[id] = m
        return m
    }

    // MARK: Retention

    /// Deletes manifests that fell out of retention (`configuration.retention`, at the time of
    /// the snapshot just taken; manifests of a generation above HEAD's are never touched — they
    /// may be a racing writer's, about to lose its HEAD swap), then the pieces only they
    /// listed. Runs after each snapshot, so a snapshot that ages past `meta_keep_age` while
    /// nothing changes stays until the next one (HEAD never goes anyway). A piece any
    /// remaining manifest lists is never deleted. Manifests go first: a crash in between leaves
    /// unlisted pieces, which `sweepUnreferencedPieces` removes later, never a manifest with
    /// missing pieces.
    private func prune(_ s: inout State) throws(ReplicationError) {
        guard let head = s.head else { return }
        let catalog = SnapshotCatalog(store: store)
        let ids = try catalog.snapshotIDs()
        let retained = try configuration.retention.chain(from: head.pointer.snapshot, in: catalog, now: configuration.clock(),
                                                         cache: s.manifests)
        for m in retained { s.manifests[m.id] = m }
        let retainedIDs = Set(retained.map(\.id))
        var kept = retained.reduce(into: Set<ChunkHash>()) { $0.formUnion($1.pieceHashes) }
        var doomed: [String] = []
        var doomedPieces: Set<ChunkHash> = []
        for id in ids where !retainedIDs.contains(id) {
            var manifest: SnapshotManifest?
            do throws(ReplicationError) {
                manifest = try cachedManifest(id, &s, catalog)
            } catch .noSuchSnapshot {
                continue
            } catch .damaged {
                manifest = nil
            }
            if let g = SnapshotID.generation(of: id), g > head.pointer.generation {
                kept.formUnion(manifest?.pieceHashes ?? [])
                continue
            }
            doomed.append(id)
            doomedPieces.formUnion(manifest?.pieceHashes ?? [])
        }
        for id in doomed {
            try ReplicationError.wrap { () throws(ObjectStoreError) in try store.delete(MetadataLayout.manifest(id)) }
            s.manifests[id] = nil
        }
        for hash in doomedPieces.subtracting(kept) {
            try ReplicationError.wrap { () throws(ObjectStoreError) in try store.delete(MetadataLayout.chunk(hash)) }
        }
        if !doomed.isEmpty {
            logger.debug("pruned metadata snapshots", metadata: ["snapshots": "\(doomed.count)", "pieces": "\(doomedPieces.subtracting(kept).count)"])
        }
    }
}
