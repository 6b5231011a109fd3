#if canImport(Glibc)
import Glibc
#endif
import Logging
import MossaicCache
import MossaicCore
import MossaicFS
import MossaicMeta
import MossaicMount
import MossaicObjectStore
import MossaicReplication
import Synchronization

/// `mossaicfs gc`: deletes the objects nothing refers to any more.
///
/// - a file-data object — a chunk's own object (`chunks/`) or a pack of several chunks
///   (`packs/`) — is live while a live chunk row has its bytes in it (a referenced chunk, or one
///   that is not a plain stored chunk at refcount 0: a deleted or overwritten file's). Otherwise
///   it is garbage, unless a metadata snapshot in the store places a chunk it references there —
///   a snapshot must stay restorable until retention prunes it;
/// - a pack with one live chunk stays whole, with the bytes of its unreferenced chunks: gc does
///   not repack (that would mean a GET and a PUT of the live part, and moving rows). Their rows
///   stay too, so rewriting those bytes needs no upload;
/// - a snapshot piece (`meta/chunks/`) is garbage when no manifest in the store lists it (HEAD's
///   manifest is one of them, so HEAD's pieces always stay);
/// - and either only once it is older than the grace period (by its LastModified or mtime), a
///   margin for uploads whose commit is still to come.
///
/// It works like a read-write mount without FUSE: it holds the cache_dir's lock and the
/// writer lease (renewed while it runs), so no mount anywhere writes meanwhile, and it
/// reconciles `meta.db` with HEAD as a mount would (restoring it on a fresh machine, refusing
/// local metadata older than the store's). Order of the deletions, each step safe against a
/// crash before the next:
/// 1. the rows of chunks at refcount 0 whose object is garbage (or gone) leave the metadata
///    (a commit deduplicates against any row, so a row must never outlive its object);
/// 2. a snapshot publishes that, so a restore from HEAD has no such rows either;
/// 3. the objects go, and the copies of their chunks in this cache_dir's disk cache (nothing
///    references them, so they would only take space until evicted).
///
/// A filesystem whose metadata is in PostgreSQL (`runShared`) has no snapshot and no lease:
/// the same decision is made against the database, and step 2 is not needed (the database is
/// what every mount reads). It is not safe beside a host that writes: the grace period covers
/// uploads whose commit is to come, not a commit that deduplicates against a row at refcount
/// 0 after gc read it (the row then stays, referenced, and its object goes), nor a host that
/// uploads an object again under the same content-addressed key after gc listed the old one.
/// So gc refuses while a host has a live read-write session (`requireUnmounted`), and asks
/// again before its deletions, the irreversible step (rows dropped by then are harmless: their
/// objects stay, garbage for the next gc). Dead hosts' sessions are cleaned up first.
/// Mounted hosts do reclaim the space of deleted data beside each other (MossaicMount's
/// SharedChunkSweeper): row by row, under row locks and tombstones a committing host checks
/// (PostgresMetaStore+Sweep), which a whole-store mark-and-sweep like this one cannot take.
/// What only gc deletes there is what no row ever named: uploads a crashed host left without a
/// commit.
public enum GarbageCollector {
    public struct Options: Sendable {
        /// Report what would be deleted, delete nothing (no rows, no snapshot, no objects).
        public var dryRun: Bool
        /// Seconds an unreferenced object must have existed before it is deleted.
        public var grace: Double
        /// The mount options gc heeds: the lease (`lease_time`, `force_lease`) and
        /// reconciliation (`discard_local`).
        public var mount: MountConfiguration
        /// Parallel DELETE requests.
        public var threads: Int
        public init(dryRun: Bool, grace: Double, mount: MountConfiguration = MountConfiguration(), threads: Int = 8) {
            self.dryRun = dryRun; self.grace = grace; self.mount = mount; self.threads = threads
        }
    }

    public struct Report: Sendable {
        public var dryRun = false
        /// Objects listed: chunk objects, packs and snapshot pieces.
        public var scannedChunks = 0
        public var scannedPacks = 0
        public var scannedPieces = 0
        public var scannedBackupData = 0
        /// Deleted (or, dry, to be deleted) objects and their bytes.
        public var deletedChunks = 0
        public var deletedPacks = 0
        public var deletedPieces = 0
        /// Inline data of metadata backups (`BackupCatalog.dataPrefix`) no complete backup names.
        public var deletedBackupData = 0
        public var bytesFreed: UInt64 = 0
        /// Unreferenced by the live metadata but kept because a snapshot references them.
        public var keptForSnapshots = 0
        /// Unreferenced but younger than the grace period.
        public var keptYoung = 0
        /// Chunks at refcount 0 whose bytes stay because their pack holds a live chunk too.
        public var unreferencedInLivePacks = 0
        /// Rows of chunks at refcount 0 removed from the metadata.
        public var rowsDropped = 0
        /// Snapshots whose references were read.
        public var snapshots = 0
        /// Objects that could not be deleted, and other failures that did not stop the run.
        public var errors: [String] = []

        public var scanned: Int { scannedChunks + scannedPacks + scannedPieces + scannedBackupData }
        public var deleted: Int { deletedChunks + deletedPacks + deletedPieces + deletedBackupData }
    }

    private struct Doomed: Sendable {
        enum Kind: Sendable { case chunk, pack, piece, backupData }
        var key: String
        var size: UInt64
        var kind: Kind
        /// Chunks whose disk-cache copies go with the object.
        var cached: [ChunkHash] = []
    }

    /// Collects the garbage of the filesystem in `store`, whose local state is `cacheDirectory`
    /// (default: the default cache_dir of its uuid). Throws when it cannot start or must stop
    /// (lease held elsewhere, metadata older than the store's, a snapshot unreadable); failures
    /// of single deletions are in the report. `waiting` is told the pid of a daemon that is
    /// still finishing after its unmount, which gc waits for (CacheDirectory).
    public static func run(store: any ObjectStore, cacheDirectory path: String?, options: Options, logger: Logger,
                           waiting: (_ pid: String) -> Void = { _ in },
                           progress: @escaping @Sendable (ProgressEvent) -> Void) throws(FormatError) -> Report {
        let superblock = try Superblock.load(from: store)
        try FilesystemKey.requireUnlocked(store, superblock: superblock)
        // The lock: no daemon uses this cache_dir (its meta.db) while gc runs.
        let cacheDirectory = try CacheDirectory(path: path ?? CacheDirectory.defaultRoot + "/" + superblock.uuid, claimant: .command("gc"), waiting: waiting)
        defer { withExtendedLifetime(cacheDirectory) {} }
        let catalog = SnapshotCatalog(store: store)
        if let url = superblock.postgres {
            return try runShared(url, store: store, superblock: superblock, catalog: catalog, cacheDirectory: cacheDirectory,
                                 options: options, logger: logger, progress: progress)
        }
        // A store with snapshots but no HEAD goes on to the reconciliation, which refuses it
        // naming the missing HEAD (MountReconciliation.Headless).
        let hasSnapshots = try replication { () throws(ReplicationError) in
            if try catalog.head() != nil { return true }
            return try !catalog.snapshotIDs().isEmpty
        }
        guard PosixFiles.exists(cacheDirectory.metadataPath) || hasSnapshots else {
            throw .metadata("no metadata at \(cacheDirectory.metadataPath) and no metadata snapshot in \(store.displayName): nothing says which objects are in use (give -o cache_dir= of the machine that mounts it)")
        }
        removeLeftovers(cacheDirectory)
        try uploadStagedChunks(store: store, transform: superblock.transform(for: store), cacheDirectory: cacheDirectory, threads: options.threads, logger: logger,
                               progress: progress)

        let r = options.mount
        let lease = try replication { () throws(ReplicationError) in
            try WriterLease.acquire(store: store, cacheDirectory: cacheDirectory.path, duration: r.leaseTime,
                                    force: r.forceLease, claimant: .command("gc"), logger: logger)
        }
        let local: FilesystemLoader.WritableMetadata
        do {
            local = try FilesystemLoader.reconcileWritable(store: store, superblock: superblock, cacheDirectory: cacheDirectory,
                                                           discardLocal: r.discardLocal, logger: logger, progress: progress)
        } catch {
            try? lease.release()
            throw error
        }
        // Retention is the mounts' business (meta_keep, meta_keep_age, meta_keep_size), and gc
        // cannot know theirs: a mount's -o is recorded nowhere in the store, and gc's own -o
        // need not match it (nor the next mount's). So gc is at least as conservative as any
        // writer, whatever its options: its own snapshot prunes nothing of HEAD's chain
        // (`SnapshotRetention.everything`), and `collect` keeps the file chunks of every
        // manifest in the store — a superset of what any writer's `SnapshotRetention` retains,
        // since a writer deletes a manifest only once it fell out of its retention.
        let writer = SnapshotWriter(store: store, metadata: local.metadata, head: local.head, headManifest: local.headManifest,
                                    configuration: .init(fsUUID: superblock.uuid, workPath: cacheDirectory.snapshotWorkPath,
                                                         retention: .everything),
                                    lease: lease, logger: logger)
        // Only the lease thread runs; snapshots are taken below, when gc needs one.
        let replicator = MetadataReplicator(writer: writer, lease: lease, interval: 1e9, logger: logger)
        replicator.start()
        defer {
            // Publishes what changed (unless dry), and releases the lease. A failed snapshot
            // keeps the lease: the local metadata is then newer than the store's, and no other
            // machine may mount read-write from the older HEAD.
            if let error = replicator.stop(finalSnapshot: !options.dryRun) {
                logger.error("gc: the metadata snapshot failed; the writer lease is kept", metadata: ["error": "\(error)"])
            }
        }
        var report = Report()
        report.dryRun = options.dryRun
        try collect(store: store, metadata: local.metadata, catalog: catalog, cacheDirectory: cacheDirectory,
                    replicator: replicator, options: options, report: &report, progress: progress, beforeDeleting: {})
        return report
    }

    /// gc of a filesystem whose metadata is in PostgreSQL: staged chunks first, then the
    /// collection against the database. The store holds no snapshots; what its backups name is
    /// kept (`collect`).
    private static func runShared(_ url: PostgresURL, store: any ObjectStore, superblock: Superblock, catalog: SnapshotCatalog,
                                  cacheDirectory: CacheDirectory, options: Options, logger: Logger,
                                  progress: @escaping @Sendable (ProgressEvent) -> Void) throws(FormatError) -> Report {
        let metadata = try FilesystemLoader.openPostgres(url, superblock: superblock, store: store, readOnly: options.dryRun)
        let why = "gc would delete objects that their writes may be about to reference again"
        if !options.dryRun {
            // (A dry run, which may run beside live hosts, marks the chunks of a file unlinked
            // while a live host has it open as live: its inode stays until its last close.)
            let cleanup = try FilesystemLoader.requireUnmountedCleaningUp(metadata, store: store, why: why)
            if !cleanup.isEmpty {
                logger.notice("cleaned up dead sessions", metadata: ["sessions": "\(cleanup.sessions)", "reclaimed_inodes": "\(cleanup.reclaimed)"])
            }
            try uploadStagedChunks(store: store, transform: superblock.transform(for: store), cacheDirectory: cacheDirectory,
                                   threads: options.threads, logger: logger, progress: progress)
        }
        var report = Report()
        report.dryRun = options.dryRun
        try collect(store: store, metadata: metadata, catalog: catalog, cacheDirectory: cacheDirectory,
                    replicator: nil, options: options, report: &report, progress: progress) { () throws(FormatError) in
            // A mount that started while gc listed and marked: stop before deleting.
            try FilesystemLoader.requireUnmounted(metadata, store: store, why: why)
        }
        return report
    }

    /// `replicator`: the snapshots and the lease of a SQLite filesystem; nil for PostgreSQL.
    /// `beforeDeleting`: the last word before objects go (the lease is checked in `delete`).
    private static func collect(store: any ObjectStore, metadata: any MetaStore, catalog: SnapshotCatalog,
                                cacheDirectory: CacheDirectory, replicator: MetadataReplicator?, options: Options,
                                report: inout Report,
                                progress: @escaping @Sendable (ProgressEvent) -> Void,
                                beforeDeleting: () throws(FormatError) -> Void) throws(FormatError) {
        // Listed first: whatever appears later is not looked at (and nobody else writes now).
        progress(ProgressEvent("listing objects", done: 0, total: 0))
        let chunkObjects = try listing(store, prefix: "chunks/")
        let packObjects = try listing(store, prefix: "packs/")
        let pieceObjects = try listing(store, prefix: MetadataLayout.chunksPrefix)
        report.scannedChunks = chunkObjects.count
        report.scannedPacks = packObjects.count
        report.scannedPieces = pieceObjects.count
        let now = Timestamp.now()
        let old = { (info: ObjectInfo) -> Bool in
            guard let written = info.lastModified else { return false }  // unknown age: spared
            return now.secondsSince(written) >= options.grace
        }

        // Everything is decided per object key: a pack holds the bytes of several chunks.
        let rows = try meta { () throws(MetaError) in try metadata.chunkRowsForCollection() }
        let liveKeys = Set(rows.live.map(\.key))
        let liveHashes = Set(rows.live.map(\.hash))
        // Every manifest, not a retained chain (see the writer in `run`): what a writer has not
        // pruned yet may still be restored.
        let manifests = try replication { () throws(ReplicationError) in try catalog.manifests() }
        report.snapshots = manifests.count
        var snapshotKeys = Set(try replication { () throws(ReplicationError) in
            try catalog.referencedFileChunks(of: manifests, workDirectory: cacheDirectory.path) { progress(ProgressEvent("reading snapshots", done: $0, total: $1)) }
        }.map(\.key))
        // A PostgreSQL filesystem's backups (`BackupCatalog`) are its snapshots: what they name
        // stays, so the bucket alone still restores each of them (also after the filesystem
        // moved to SQLite, until they are deleted).
        progress(ProgressEvent("reading backups", done: 0, total: 0))
        var backupData: [Doomed] = []
        do {
            let (keys, backups) = try BackupCatalog.referencedObjects(in: store)
            snapshotKeys.formUnion(keys)
            report.snapshots += backups
            // The backups' own inline data: what a complete backup names stays (all of them, as
            // above: pruning is the writer's), the rest goes once older than the grace.
            let data = try listing(store, prefix: BackupCatalog.dataPrefix)
            report.scannedBackupData = data.count
            let named = try BackupCatalog.referencedData(of: try BackupCatalog.complete(in: store), in: store)
            let unreferenced = BackupCatalog.unreferencedData(data, referenced: named, grace: options.grace, now: now)
            let kept = data.filter { named.contains($0.key) }.count
            report.keptForSnapshots += kept
            report.keptYoung += data.count - unreferenced.count - kept
            backupData = unreferenced.map { Doomed(key: $0.key, size: $0.size, kind: .backupData) }
        } catch {
            throw .metadata("cannot read the metadata backups in \(store.displayName)/\(BackupCatalog.prefix) (gc deletes nothing a backup may need): \(error)")
        }

        var doomed = backupData
        var listed: Set<String> = []
        for (info, kind) in chunkObjects.map({ ($0, Doomed.Kind.chunk) }) + packObjects.map({ ($0, Doomed.Kind.pack) }) {
            // Only keys a chunk or a pack can have: anything else is not ours to judge.
            guard let (hash, isPack) = ChunkHash.dataObject(key: info.key), isPack == (kind == .pack) else { continue }
            listed.insert(info.key)
            if liveKeys.contains(info.key) { continue }
            if snapshotKeys.contains(info.key) { report.keptForSnapshots += 1; continue }
            if !old(info) { report.keptYoung += 1; continue }
            // A chunk object's cached copy goes unless the chunk lives on elsewhere (a pack).
            doomed.append(Doomed(key: info.key, size: info.size, kind: kind,
                                 cached: kind == .chunk && !liveHashes.contains(hash) ? [hash] : []))
        }
        // Rows at refcount 0 whose object is doomed, or gone already (a commit would
        // deduplicate new data against them and reference a missing object). Those in an object
        // that stays keep their row: the bytes are still there.
        var doomedIndex: [String: Int] = [:]
        for (i, d) in doomed.enumerated() { doomedIndex[d.key] = i }
        var rowsToDrop: [ChunkHash] = []
        for chunk in rows.unreferenced {
            if let i = doomedIndex[chunk.key] {
                rowsToDrop.append(chunk.hash)
                // A pack's chunks are cached under their own hashes: they go with their rows.
                if doomed[i].kind == .pack { doomed[i].cached.append(chunk.hash) }
            } else if !listed.contains(chunk.key) {
                rowsToDrop.append(chunk.hash)
            } else if chunk.location.pack != nil && liveKeys.contains(chunk.key) {
                report.unreferencedInLivePacks += 1
            }
        }
        if options.dryRun {
            report.rowsDropped = rowsToDrop.count
        } else {
            report.rowsDropped = try meta { () throws(MetaError) in
                try metadata.dropUnreferencedStoredChunks(rowsToDrop)
            }
            if let replicator {
                progress(ProgressEvent("publishing metadata", done: 0, total: 0))
                do { _ = try replicator.snapshotNow() } catch { throw .replication(error) }
            }
        }

        // Manifests are read again: the snapshot just taken may list pieces that were garbage
        // a moment ago (same bytes), and must keep them.
        var pieces: Set<ChunkHash> = []
        for m in try replication({ () throws(ReplicationError) in try catalog.manifests() }) + manifests { pieces.formUnion(m.pieceHashes) }
        if let head = try replication({ () throws(ReplicationError) in try catalog.head() }) {
            pieces.formUnion(try replication { () throws(ReplicationError) in try catalog.manifest(head.pointer.snapshot) }.pieceHashes)
        }
        for info in pieceObjects {
            guard let hash = MetadataLayout.chunkHash(key: info.key), info.key == MetadataLayout.chunk(hash), !pieces.contains(hash) else { continue }
            if !old(info) { report.keptYoung += 1; continue }
            doomed.append(Doomed(key: info.key, size: info.size, kind: .piece))
        }

        if options.dryRun {
            for d in doomed { count(d, into: &report) }
            return
        }
        try beforeDeleting()
        try delete(doomed, store: store, lease: replicator?.lease, blobs: cacheDirectory.blobsPath, threads: options.threads,
                   report: &report, progress: progress)
    }

    /// DELETEs in parallel. Before each one the lease must still be ours with a third of its
    /// time left: if renewals keep failing, another mount could take it over soon, and then
    /// objects its writes need must not vanish.
    private static func delete(_ doomed: [Doomed], store: any ObjectStore, lease: WriterLease?, blobs: String, threads: Int,
                               report: inout Report, progress: @escaping @Sendable (ProgressEvent) -> Void) throws(FormatError) {
        if let lease { try replication { () throws(ReplicationError) in try lease.renew() } }
        let state = Mutex((done: 0, deleted: [Int](), errors: [String]()))
        WorkerPool.forEach(count: doomed.count, width: threads) { i in
            let d = doomed[i]
            var failure: String?
            if let lease, let why = leaseTrouble(lease) {
                failure = "\(d.key): not deleted: \(why)"
            } else {
                do {
                    try store.delete(d.key)
                    for hash in d.cached { unlink(BlobCache.diskCachePath(of: hash, in: blobs)) }
                } catch {
                    failure = "\(d.key): \(error)"
                }
            }
            let done = state.withLock { s -> Int in
                s.done += 1
                if let failure { s.errors.append(failure) } else { s.deleted.append(i) }
                return s.done
            }
            progress(ProgressEvent("deleting objects", done: done, total: doomed.count))
        }
        let (deleted, errors) = state.withLock { ($0.deleted, $0.errors) }
        for i in deleted { count(doomed[i], into: &report) }
        report.errors += errors.sorted()
    }

    private static func leaseTrouble(_ lease: WriterLease) -> String? {
        if let lost = lease.lostReason { return "writer lease lost: \(lost)" }
        let left = Double(lease.record.expiresNanoseconds - Timestamp.now().nanoseconds) / 1e9
        return left < lease.duration / 3 ? "the writer lease could not be renewed (expires in \(Int(left)) s)" : nil
    }

    private static func count(_ d: Doomed, into report: inout Report) {
        switch d.kind {
        case .chunk: report.deletedChunks += 1
        case .pack: report.deletedPacks += 1
        case .piece: report.deletedPieces += 1
        case .backupData: report.deletedBackupData += 1
        }
        report.bytesFreed += d.size
    }

    /// Write-back chunks a mount staged but did not store are uploaded first, as the next
    /// mount would: gc publishes a metadata snapshot, which must name only stored chunks.
    private static func uploadStagedChunks(store: any ObjectStore, transform: ChunkTransform, cacheDirectory: CacheDirectory, threads: Int,
                                           logger: Logger, progress: @escaping @Sendable (ProgressEvent) -> Void) throws(FormatError) {
        let staging: StagingArea
        do {
            staging = try StagingArea(directory: cacheDirectory.stagingPath, limit: Int.max, transform: transform, logger: logger)
        } catch {
            throw .cacheDirectory("write-back staging: \(error)")
        }
        let found = staging.pending.chunks
        guard found > 0 else { return }
        staging.start(store: store, threads: threads) { _, _ in }
        let left = staging.drain(timeout: 120, every: 0.5) { chunks, _ in progress(ProgressEvent("uploading staged chunks", done: found - chunks, total: found)) }
        staging.stop()
        guard left.chunks == 0 else {
            throw .cacheDirectory("\(left.chunks) write-back chunks staged in \(cacheDirectory.stagingPath) could not be stored; gc needs them in the store first")
        }
    }

    /// Snapshot databases of an interrupted run (`gc-<id>.db`), and what a crashed mount left.
    private static func removeLeftovers(_ cacheDirectory: CacheDirectory) {
        for name in (try? PosixFiles.listDirectory(cacheDirectory.path)) ?? [] where name.hasPrefix("gc-") {
            unlink(cacheDirectory.path + "/" + name)
        }
        SQLiteMetaStore.removeDatabaseFiles(cacheDirectory.snapshotWorkPath)
        SQLiteMetaStore.removeDatabaseFiles(cacheDirectory.metadataPath + ".download")
    }

    private static func listing(_ store: any ObjectStore, prefix: String) throws(FormatError) -> [ObjectInfo] {
        do { return try store.list(prefix: prefix) } catch { throw .store(error) }
    }

    private static func replication<T>(_ body: () throws(ReplicationError) -> T) throws(FormatError) -> T {
        do { return try body() } catch { throw .replication(error) }
    }

    private static func meta<T>(_ body: () throws(MetaError) -> T) throws(FormatError) -> T {
        do { return try body() } catch { throw .metadata("metadata: \(error)") }
    }
}
