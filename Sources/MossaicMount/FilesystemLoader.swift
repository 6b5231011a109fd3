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
/// `cache_dir/snapshots/` and never touches `meta.db`.
public enum FilesystemLoader {
    public struct Settings: Sendable {
        public var cacheDirectory: String?
        public var readOnly: Bool
        public var memoryCacheBytes: Int
        public var diskCacheBytes: Int
        public var freeSpaceFloor: Int
        public var maxDirtyBytesPerFile: Int
        public var checkPermissions: Bool
        public var updateAccessTimes: Bool
        public var syncInterval: Double = 1
        public var uploadThreads = 8
        public var readAheadChunks = 8
        /// New chunks per pack object, at most (`pack_chunks`).
        public var packChunks = 4
        /// Buffered write memory of all open files (`mem_buffer_size`).
        public var writeMemoryBytes = 256 << 20
        /// Chunks of packs kept in the disk cache too (`cache_large_writes`).
        public var cacheLargeWrites = false
        /// Write-back mode (`writeback`) and the most bytes it stages (`staging_size`).
        public var writeback = false
        public var stagingBytes = 1 << 30
        public var posixACL = false
        public var replication: ReplicationSettings
        /// Told the pid of a daemon still finishing after its unmount on the same cache_dir,
        /// which the mount waits for (CacheDirectory).
        public var waitingForPreviousDaemon: @Sendable (_ pid: String) -> Void = { _ in }
        /// Told how a long task goes: the restore of the metadata from the store (the mount
        /// waits for it), and, through the filesystem's `activity`, the unmount flush.
        public var progress: (@Sendable (ProgressEvent) -> Void)?
        public init(cacheDirectory: String? = nil, readOnly: Bool = false, memoryCacheBytes: Int = 16 << 20,
                    diskCacheBytes: Int = 10 << 30, freeSpaceFloor: Int = 1 << 30, maxDirtyBytesPerFile: Int = 12 << 20,
                    checkPermissions: Bool = true, updateAccessTimes: Bool = true,
                    replication: ReplicationSettings = ReplicationSettings()) {
            self.cacheDirectory = cacheDirectory; self.readOnly = readOnly; self.memoryCacheBytes = memoryCacheBytes
            self.diskCacheBytes = diskCacheBytes; self.freeSpaceFloor = freeSpaceFloor; self.maxDirtyBytesPerFile = maxDirtyBytesPerFile
            self.checkPermissions = checkPermissions; self.updateAccessTimes = updateAccessTimes
            self.replication = replication
        }
    }

    /// Metadata snapshots and the writer lease (mount options in parentheses).
    public struct ReplicationSettings: Sendable {
        /// Seconds between snapshots while the metadata changes (`meta_interval`).
        public var interval: Double
        /// Snapshots kept in the store (`meta_keep`).
        public var keep: Int
        /// Seconds a writer lease lasts without renewal (`lease_time`); renewed every third.
        public var leaseDuration: Double
        /// Read-only mounts: seconds between checks for a newer snapshot (`poll_interval`).
        public var pollInterval: Double
        /// Read-only mounts: this snapshot, not the newest, and no following (`snapshot=`).
        public var snapshot: String?
        /// Replace local metadata that differs from the store's newest snapshot (`discard_local`).
        public var discardLocal: Bool
        /// Take the writer lease even if another live mount holds it (`force_lease`).
        public var forceLease: Bool
        public init(interval: Double = 10, keep: Int = 30, leaseDuration: Double = 60, pollInterval: Double = 10,
                    snapshot: String? = nil, discardLocal: Bool = false, forceLease: Bool = false) {
            self.interval = interval; self.keep = keep; self.leaseDuration = leaseDuration; self.pollInterval = pollInterval
            self.snapshot = snapshot; self.discardLocal = discardLocal; self.forceLease = forceLease
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

        /// Starts the background threads (once the mount is live).
        public func startBackground() {
            replicator?.start()
            follower?.start()
        }

        /// Stops them. A read-write mount publishes a final snapshot (`finalSnapshot`) and
        /// releases its lease; the snapshot's error is returned.
        @discardableResult
        public func stopBackground(finalSnapshot: Bool) -> ReplicationError? {
            follower?.stop()
            return replicator?.stop(finalSnapshot: finalSnapshot)
        }
    }

    public static func open(store: any ObjectStore, settings: Settings, logger: Logger, metrics: Metrics = Metrics()) throws(FormatError) -> Opened {
        let superblock = try Superblock.load(from: store)
        let cacheDirectory = try CacheDirectory(path: settings.cacheDirectory ?? CacheDirectory.defaultRoot + "/" + superblock.uuid,
                                                waiting: settings.waitingForPreviousDaemon)
        if settings.readOnly {
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

    static func makeFilesystem(store: any ObjectStore, metadata: SQLiteMetaStore, superblock: Superblock,
                               cacheDirectory: CacheDirectory, settings: Settings, logger: Logger,
                               metrics: Metrics) throws(FormatError) -> MossaicFilesystem {
        let cache: BlobCache
        do {
            // Every read-write mount opens the staging area, with or without `writeback`:
            // chunks an earlier write-back mount staged must reach the store either way.
            let staging = settings.readOnly ? nil : try StagingArea(
                directory: cacheDirectory.stagingPath, limit: settings.stagingBytes, logger: logger)
            cache = try BlobCache(store: store, configuration: .init(
                memoryLimit: settings.memoryCacheBytes,
                diskDirectory: store.isLocal ? nil : cacheDirectory.blobsPath,
                diskLimit: settings.diskCacheBytes, freeSpaceFloor: settings.freeSpaceFloor,
                cacheLargeWrites: settings.cacheLargeWrites), staging: staging, logger: logger)
        } catch {
            throw .cacheDirectory("cannot open blob cache: \(error)")
        }
        // Upload threads only where there is or will be something to upload.
        if let staging = cache.staging, settings.writeback || staging.pending.chunks > 0 {
            staging.start(store: store, threads: settings.uploadThreads) { [cache] hash, bytes in cache.keepUploaded(hash, bytes) }
            replayStagedChunks(staging, logger: logger)
        }
        var options = MossaicFilesystem.Options(readOnly: settings.readOnly, maxDirtyBytesPerFile: settings.maxDirtyBytesPerFile,
                                                checkPermissions: settings.checkPermissions,
                                                updateAccessTimes: settings.updateAccessTimes,
                                                syncInterval: settings.syncInterval, uploadThreads: settings.uploadThreads)
        options.readAheadChunks = settings.readAheadChunks
        options.packChunks = settings.packChunks
        options.writeMemoryBytes = settings.writeMemoryBytes
        options.writeback = settings.writeback
        options.posixACL = settings.posixACL
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
