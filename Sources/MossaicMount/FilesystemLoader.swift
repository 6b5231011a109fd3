import Logging
import MossaicCache
import MossaicCore
import MossaicFS
import MossaicMeta
import MossaicObjectStore
import MossaicReplication

/// Opens a formatted filesystem for mounting: superblock, cache directory (locked), metadata,
/// blob cache. Every failure is a `FormatError` with a one-line message for the CLI.
///
/// The metadata comes from the local `meta.db` or from the store's snapshots
/// (FilesystemLoader+Metadata.swift): a read-write mount takes the writer lease and reconciles
/// `meta.db` with `meta/HEAD`; a read-only mount assembles a snapshot in
/// `cache_dir/snapshots/` and never touches `meta.db`. A filesystem whose metadata is in
/// PostgreSQL has neither (FilesystemLoader+Postgres.swift).
public enum FilesystemLoader {
    public struct Settings: Sendable {
        /// The mount options (cache_dir, ro, caches, write-back, snapshots and the lease, …).
        public var options: MountConfiguration
        /// Told the pid of a daemon still finishing after its unmount on the same cache_dir,
        /// which the mount waits for (CacheDirectory).
        public var waitingForPreviousDaemon: @Sendable (_ pid: String) -> Void = { _ in }
        /// Told how a long task goes: the restore of the metadata from the store (the mount
        /// waits for it), and, through the filesystem's `activity`, the unmount flush.
        public var progress: (@Sendable (ProgressEvent) -> Void)?
        public init(options: MountConfiguration = MountConfiguration()) {
            self.options = options
        }
    }

    /// The opened filesystem with the cache directory whose lock it holds (keep both alive
    /// for the life of the mount), and its background metadata work.
    public struct Opened: Sendable {
        public var filesystem: MossaicFilesystem
        public var cacheDirectory: CacheDirectory
        /// Read-write mounts: periodic snapshots and the writer lease.
        public var replicator: MetadataReplicator?
        /// Read-only mounts without `snapshot=`: follows the store's newest snapshot.
        public var follower: HeadFollower?
        /// Read-write mounts of a PostgreSQL filesystem: the periodic backup into the store.
        public var backup: MetadataBackup? = nil
        /// Read-write mounts of a PostgreSQL filesystem: the reclaim sweep beside the other hosts.
        public var sharedSweeper: SharedChunkSweeper? = nil

        /// Starts the background threads (once the mount is live).
        public func startBackground() {
            replicator?.start()
            follower?.start()
            backup?.start()
            sharedSweeper?.start()
            filesystem.startSweeping()
        }

        /// Stops them. A read-write mount publishes a final snapshot (`finalSnapshot`) and
        /// releases its lease; the snapshot's error is returned.
        @discardableResult
        public func stopBackground(finalSnapshot: Bool) -> ReplicationError? {
            follower?.stop()
            backup?.stop()
            sharedSweeper?.stop()
            // The sweep publishes snapshots and deletes under the lease: it stops first.
            filesystem.stopSweeping()
            return replicator?.stop(finalSnapshot: finalSnapshot)
        }
    }

    public static func open(store: any ObjectStore, settings: Settings, logger: Logger, metrics: Metrics = Metrics()) throws(FormatError) -> Opened {
        let superblock = try Superblock.load(from: store)
        try FilesystemKey.requireUnlocked(store, superblock: superblock)
        let cacheDirectory = try CacheDirectory(path: settings.options.cacheDirectory ?? CacheDirectory.defaultRoot + "/" + superblock.uuid,
                                                waiting: settings.waitingForPreviousDaemon)
        if let url = superblock.postgres {
            return try openShared(url, store: store, superblock: superblock, cacheDirectory: cacheDirectory, settings: settings,
                                  logger: logger, metrics: metrics)
        }
        if settings.options.readOnly {
            return try openReadOnly(store: store, superblock: superblock, cacheDirectory: cacheDirectory, settings: settings,
                                    logger: logger, metrics: metrics)
        }
        return try openWritable(store: store, superblock: superblock, cacheDirectory: cacheDirectory, settings: settings,
                                logger: logger, metrics: metrics)
    }

    /// Chunks staged by an earlier write-back mount (a crash, or an unmount whose drain was
    /// interrupted) are uploaded before the filesystem is served. A store that fails meanwhile
    /// does not hold the mount up for more than a minute: the rest uploads in the background.
    private static func replayStagedChunks(_ staging: StagingArea, logger: Logger) {
        let found = staging.pending
        guard found.chunks > 0 else { return }
        logger.notice("write-back: uploading chunks staged by an earlier mount", metadata: [
            "chunks": "\(found.chunks)", "bytes": "\(found.bytes)"])
        let left = staging.drain(timeout: 60) { _, _ in }
        if left.chunks > 0 {
            logger.warning("write-back: staged chunks still uploading in the background", metadata: ["chunks": "\(left.chunks)"])
        }
    }

    static func makeFilesystem(store: any ObjectStore, metadata: any MetaStore, superblock: Superblock,
                               cacheDirectory: CacheDirectory, settings: Settings, logger: Logger,
                               metrics: Metrics) throws(FormatError) -> MossaicFilesystem {
        let cache: BlobCache
        let options = settings.options
        do {
            // Every read-write mount opens the staging area, with or without `writeback`:
            // chunks an earlier write-back mount staged must reach the store either way.
            let staging = options.readOnly ? nil : try StagingArea(
                directory: cacheDirectory.stagingPath, limit: options.stagingBytes, transform: superblock.transform(for: store), logger: logger)
            cache = try BlobCache(store: store, configuration: .init(options, diskDirectory: store.isLocal ? nil : cacheDirectory.blobsPath),
                                  staging: staging, transform: superblock.transform(for: store), logger: logger)
        } catch {
            throw .cacheDirectory("cannot open blob cache: \(error)")
        }
        // Upload threads only where there is or will be something to upload.
        if let staging = cache.staging, options.writeback || staging.pending.chunks > 0 {
            staging.start(store: store, threads: options.uploadThreads) { [cache] hash, bytes in cache.keepUploaded(hash, bytes) }
            replayStagedChunks(staging, logger: logger)
        }
        let filesystem = MossaicFilesystem(metadata: metadata, cache: cache, superblock: superblock,
                                           options: options,
                                           logger: logger, metrics: metrics)
        do {
            try filesystem.start()
        } catch {
            throw .metadata("cannot start filesystem: \(error)")
        }
        return filesystem
    }
}
