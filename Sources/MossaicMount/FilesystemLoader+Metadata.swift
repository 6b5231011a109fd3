#if canImport(Glibc)
import Glibc
#endif
import Logging
import MossaicCore
import MossaicFS
import MossaicMeta
import MossaicObjectStore
import MossaicReplication

extension CacheDirectory {
    /// Where a read-write mount makes its snapshot copies (removed after each snapshot, and at
    /// the next mount if a crash left one).
    package var snapshotWorkPath: String { path + "/snapshot.db.tmp" }
    /// Read-only mounts: the snapshot database shown (`<id>.db`, or `empty.db` before the
    /// filesystem's first snapshot). Never `meta.db`: a read-only mount leaves a writer's
    /// local state in the same cache_dir alone.
    var snapshotsPath: String { path + "/snapshots" }
    /// Where `discard_local` moves the metadata it replaces (one generation kept).
    var discardedMetadataPath: String { path + "/meta.db.discarded" }
}

extension FilesystemLoader {
    // MARK: Read-write

    /// Takes the writer lease, reconciles `meta.db` with the store's HEAD
    /// (`MountReconciliation`), restoring or refusing as it says, and opens the filesystem.
    /// Local metadata newer than HEAD is published before this returns.
    static func openWritable(store: any ObjectStore, superblock: Superblock, cacheDirectory: CacheDirectory,
                             settings: Settings, logger: Logger, metrics: Metrics) throws(FormatError) -> Opened {
        let r = settings.options
        // Leftovers of a crash during a snapshot or a restore.
        SQLiteMetaStore.removeDatabaseFiles(cacheDirectory.snapshotWorkPath)
        SQLiteMetaStore.removeDatabaseFiles(cacheDirectory.metadataPath + ".download")
        let lease: WriterLease
        do {
            lease = try WriterLease.acquire(store: store, cacheDirectory: cacheDirectory.path, duration: r.leaseTime,
                                            force: r.forceLease, logger: logger)
        } catch {
            throw .replication(error)
        }
        do {
            return try openWritable(store: store, superblock: superblock, cacheDirectory: cacheDirectory, lease: lease,
                                    settings: settings, logger: logger, metrics: metrics)
        } catch {
            // The mount is not happening: let the next one (here or elsewhere) in at once.
            try? lease.release()
            throw error
        }
    }

    private static func openWritable(store: any ObjectStore, superblock: Superblock, cacheDirectory: CacheDirectory,
                                     lease: WriterLease, settings: Settings, logger: Logger, metrics: Metrics) throws(FormatError) -> Opened {
        let local = try reconcileWritable(store: store, superblock: superblock, cacheDirectory: cacheDirectory,
                                          discardLocal: settings.options.discardLocal, logger: logger, progress: settings.progress)
        let meta = local.metadata
        let filesystem = try makeFilesystem(store: store, metadata: meta, superblock: superblock, cacheDirectory: cacheDirectory,
                                            settings: settings, logger: logger, metrics: metrics)
        var snapshotConfiguration = SnapshotWriter.Configuration(fsUUID: superblock.uuid, workPath: cacheDirectory.snapshotWorkPath,
                                                                 retention: SnapshotRetention(settings.options))
        if let staging = filesystem.staging {
            snapshotConfiguration.waitForStagedChunks = { @Sendable (seconds: Double) -> Bool in staging.waitForStaged(timeout: seconds) }
        }
        let writer = SnapshotWriter(
            store: store, metadata: meta, head: local.head, headManifest: local.headManifest,
            configuration: snapshotConfiguration, lease: lease, logger: logger)
        if local.snapshotFirst {
            do { _ = try writer.snapshot() } catch { throw .replication(error) }
        }
        let replicator = MetadataReplicator(writer: writer, lease: lease, interval: settings.options.metaInterval, logger: logger) {
            [weak filesystem] error in filesystem?.fence(error.description)
        }
        filesystem.attach(replicator)
        filesystem.attachSweeper(workDirectory: cacheDirectory.path)
        return Opened(filesystem: filesystem, cacheDirectory: cacheDirectory, replicator: replicator, follower: nil)
    }

    /// The local metadata of a read-write mount (or of `gc`), reconciled with the store's HEAD.
    package struct WritableMetadata {
        package var metadata: SQLiteMetaStore
        package var head: PublishedHead?
        package var headManifest: SnapshotManifest?
        /// The store lacks what the local metadata holds: publish a snapshot before going live.
        package var snapshotFirst: Bool
    }

    /// Opens `meta.db` as `MountReconciliation` decides: as it is, restored from HEAD, created
    /// empty, or refused (another machine wrote since). Call it holding the writer lease.
    package static func reconcileWritable(store: any ObjectStore, superblock: Superblock, cacheDirectory: CacheDirectory,
                                          discardLocal: Bool, logger: Logger,
                                          progress: (@Sendable (ProgressEvent) -> Void)? = nil) throws(FormatError) -> WritableMetadata {
        let catalog = SnapshotCatalog(store: store)
        let (head, headManifest) = try readHead(catalog, superblock: superblock)
        let path = cacheDirectory.metadataPath

        var metadata: SQLiteMetaStore?
        var local: ReplicationState?
        if PosixFiles.exists(path) {
            let m = try openMetadata(path, superblock: superblock, store: store)
            local = try metaCall(path) { () throws(MetaError) in try m.replicationState() }
            metadata = m
        }
        let headless = head == nil ? try lookWithoutHead(catalog) : nil
        let decision = MountReconciliation.decide(local: local, head: head?.pointer, headManifest: headManifest, headless: headless,
                                                  discardLocal: discardLocal, cacheDirectory: cacheDirectory.path)
        var snapshotFirst = false
        switch decision {
        case .fresh:
            metadata = try openMetadata(path, superblock: superblock, store: store)
            snapshotFirst = true  // so that the store alone restores it, and read-only mounts see it, at once
        case .restore, .replaceLocal:
            guard let headManifest else { throw .metadata("internal error: nothing to restore") }
            metadata = nil  // closes the local database before it is moved away
            if case .replaceLocal = decision {
                SQLiteMetaStore.removeDatabaseFiles(cacheDirectory.discardedMetadataPath)
                for suffix in ["", "-wal"] { rename(path + suffix, cacheDirectory.discardedMetadataPath + suffix) }
                logger.warning("discard_local: local metadata moved aside, restoring the store's newest snapshot",
                               metadata: ["moved_to": "\(cacheDirectory.discardedMetadataPath)", "snapshot": "\(headManifest.id)"])
            }
            SQLiteMetaStore.removeDatabaseFiles(path)
            do {
                let stats = try SnapshotDownloader.download(headManifest, from: store, to: path, progress: progress)
                logger.info("restored metadata from the store", metadata: [
                    "snapshot": "\(headManifest.id)", "created": "\(headManifest.created)", "host": "\(headManifest.host)",
                    "pieces": "\(stats.pieces)", "bytes": "\(stats.bytesDownloaded)"])
            } catch {
                throw .replication(error)
            }
            metadata = try openMetadata(path, superblock: superblock, store: store)
        case .useLocal(let pending, let first, let warning):
            if let warning { logger.warning("\(warning)") }
            let m = metadata!
            try metaCall(path) { () throws(MetaError) in
                if let pending {
                    try m.recordPublishedSnapshot(generation: pending.generation, id: pending.id, changeSequence: pending.changeSequence)
                } else if local?.pending != nil {
                    try m.clearPendingSnapshot()  // its HEAD swap did not happen
                }
            }
            snapshotFirst = first
        case .refuse(let why):
            throw .replication(.localOlder(why))
        }
        return WritableMetadata(metadata: metadata!, head: head, headManifest: headManifest, snapshotFirst: snapshotFirst)
    }

    /// What a store without HEAD holds: its newest snapshot manifest, and whether it has file
    /// data (listed only when there is no manifest: a new filesystem's store is empty, so
    /// this costs nothing in the ordinary case).
    private static func lookWithoutHead(_ catalog: SnapshotCatalog) throws(FormatError) -> MountReconciliation.Headless {
        do throws(ReplicationError) {
            // Ids sort by generation: only the newest manifest is read.
            let newest = try catalog.snapshotIDs().last.map { (id) throws(ReplicationError) in try catalog.manifest(id) }
            var hasData = false
            if newest == nil {
                for prefix in ["chunks/", "packs/"] where !hasData {
                    do { hasData = !(try catalog.store.list(prefix: prefix)).isEmpty } catch { throw .store(error) }
                }
            }
            return MountReconciliation.Headless(store: catalog.store.displayName, newestSnapshot: newest, hasFileData: hasData)
        } catch {
            throw .replication(error)
        }
    }

    /// HEAD and its manifest, checked to belong to this filesystem.
    private static func readHead(_ catalog: SnapshotCatalog, superblock: Superblock) throws(FormatError) -> (PublishedHead?, SnapshotManifest?) {
        do throws(ReplicationError) {
            guard let head = try catalog.head() else { return (nil, nil) }
            let manifest: SnapshotManifest
            do throws(ReplicationError) {
                manifest = try catalog.manifest(head.pointer.snapshot)
            } catch .noSuchSnapshot {
                throw ReplicationError.damaged("\(catalog.store.displayName)/\(MetadataLayout.head) names snapshot \(head.pointer.snapshot), whose manifest is missing")
            }
            try checkFilesystem(manifest, superblock: superblock, store: catalog.store)
            return (head, manifest)
        } catch {
            throw .replication(error)
        }
    }

    private static func checkFilesystem(_ manifest: SnapshotManifest, superblock: Superblock, store: any ObjectStore) throws(ReplicationError) {
        guard manifest.fsUUID == superblock.uuid else {
            throw .wrongFilesystem("metadata snapshot \(manifest.id) in \(store.displayName) belongs to filesystem \(manifest.fsUUID), not \(superblock.uuid)")
        }
    }

    /// Opens (creating if needed) the local metadata and checks it belongs to this filesystem.
    private static func openMetadata(_ path: String, superblock: Superblock, store: any ObjectStore) throws(FormatError) -> SQLiteMetaStore {
        do {
            let metadata = try SQLiteMetaStore(path: path)
            if let owner = try metadata.setting("fs_uuid") {
                guard owner == superblock.uuid else {
                    throw FormatError.metadata("\(path) belongs to filesystem \(owner), not to \(store.displayName) (\(superblock.uuid)); use another cache_dir=")
                }
            } else {
                try metadata.setSetting("fs_uuid", superblock.uuid)
            }
            return metadata
        } catch let error as FormatError {
            throw error
        } catch {
            throw .metadata("cannot open metadata \(path): \(error)")
        }
    }

    @discardableResult
    private static func metaCall<T>(_ path: String, _ body: () throws(MetaError) -> T) throws(FormatError) -> T {
        do { return try body() } catch { throw .metadata("metadata \(path): \(error)") }
    }

    // MARK: Read-only

    /// Shows the store's newest snapshot (following HEAD) or `snapshot=ID` (fixed), assembled in
    /// `cache_dir/snapshots/`. Takes no lease and never writes the database it shows. Before the
    /// filesystem's first snapshot it shows an empty root directory, and follows HEAD.
    static func openReadOnly(store: any ObjectStore, superblock: Superblock, cacheDirectory: CacheDirectory,
                             settings: Settings, logger: Logger, metrics: Metrics) throws(FormatError) -> Opened {
        let r = settings.options
        let directory = cacheDirectory.snapshotsPath
        do { try PosixFiles.makeDirectories(directory, mode: 0o700) } catch { throw .cacheDirectory("cannot create \(directory): \(error)") }
        let catalog = SnapshotCatalog(store: store)
        var manifest: SnapshotManifest?
        var headETag: String?
        do {
            if let name = r.snapshot {
                manifest = try catalog.resolve(name)
            } else if let head = try catalog.head() {
                manifest = try catalog.manifest(head.pointer.snapshot)
                headETag = head.etag
            }
            if let manifest { try checkFilesystem(manifest, superblock: superblock, store: store) }
        } catch {
            throw .replication(error)
        }

        let path: String
        if let manifest {
            path = directory + "/" + manifest.id + ".db"
            let present = (try? SQLiteMetaStore.inspect(path))?.state.snapshotID == manifest.id
            if !present {
                do {
                    let stats = try SnapshotDownloader.download(manifest, from: store, to: path,
                                                                reusing: reusableSnapshot(in: directory, catalog: catalog),
                                                                progress: settings.progress)
                    logger.info("downloaded metadata snapshot", metadata: [
                        "snapshot": "\(manifest.id)", "pieces": "\(stats.pieces)", "downloaded": "\(stats.piecesDownloaded)"])
                } catch {
                    throw .replication(error)
                }
            }
            _ = try metaCall(path) { () throws(MetaError) in try SQLiteMetaStore.prepareSnapshotFile(path) }
        } else {
            path = directory + "/empty.db"
            SQLiteMetaStore.removeDatabaseFiles(path)
            try metaCall(path) { () throws(MetaError) in
                do {
                    let empty = try SQLiteMetaStore(path: path)
                    try empty.createRootIfMissing(permissions: 0o755, uid: 0, gid: 0, now: .now())
                }  // closed here, before it is turned into a one-file database
                try SQLiteMetaStore.prepareSnapshotFile(path)
            }
        }
        // Older snapshot files (and a crashed download's leftovers) are no longer needed.
        let shown = String(path.dropFirst(directory.count + 1))
        for name in (try? PosixFiles.listDirectory(directory)) ?? [] where name != shown {
            unlink(directory + "/" + name)
        }
        let metadata: SQLiteMetaStore
        do { metadata = try SQLiteMetaStore(path: path, readOnly: true) } catch { throw .metadata("cannot open metadata \(path): \(error)") }
        let filesystem = try makeFilesystem(store: store, metadata: metadata, superblock: superblock, cacheDirectory: cacheDirectory,
                                            settings: settings, logger: logger, metrics: metrics)
        var follower: HeadFollower?
        if r.snapshot == nil {
            follower = HeadFollower(store: store, metadata: metadata, directory: directory,
                                    current: .init(manifest: manifest, path: path, headETag: headETag),
                                    fsUUID: superblock.uuid, interval: r.pollInterval, logger: logger)
        }
        logger.info("read-only mount of a metadata snapshot", metadata: [
            "snapshot": "\(manifest?.id ?? "(none yet)")", "follows_head": "\(follower != nil)"])
        return Opened(filesystem: filesystem, cacheDirectory: cacheDirectory, replicator: nil, follower: follower)
    }

    /// A snapshot file left in `directory` by an earlier read-only mount whose manifest is still
    /// in the store: its pieces need not be downloaded again.
    private static func reusableSnapshot(in directory: String, catalog: SnapshotCatalog) -> (path: String, manifest: SnapshotManifest)? {
        guard let names = try? PosixFiles.listDirectory(directory) else { return nil }
        for name in names where name.hasSuffix(".db") {
            let id = String(name.dropLast(3))
            guard SnapshotID.generation(of: id) != nil, let manifest = try? catalog.manifest(id) else { continue }
            return (directory + "/" + name, manifest)
        }
        return nil
    }
}

extension FilesystemLoader {
    /// Assembles the store's newest snapshot (HEAD's) at `path`, as a mount on a fresh machine
    /// restores it, for tools that read the metadata without a cache_dir of their own (`fsck`).
    /// Takes no lease: nothing is written to the store. Throws if the store has no snapshot.
    public static func restoreNewestSnapshot(store: any ObjectStore, superblock: Superblock, to path: String,
                                             progress: (@Sendable (ProgressEvent) -> Void)? = nil) throws(FormatError) -> SnapshotManifest {
        try FilesystemKey.requireUnlocked(store, superblock: superblock)
        let (head, manifest) = try readHead(SnapshotCatalog(store: store), superblock: superblock)
        guard head != nil, let manifest else {
            throw .metadata("\(store.displayName) has no metadata snapshot (meta/HEAD): give -o cache_dir= of the machine that mounts it")
        }
        do { try SnapshotDownloader.download(manifest, from: store, to: path, progress: progress) } catch { throw .replication(error) }
        return manifest
    }
}
