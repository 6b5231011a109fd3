import Logging
import MossaicCache
import MossaicCore
import MossaicMeta
import MossaicObjectStore

/// Opens a formatted filesystem for mounting: superblock, cache directory (locked), metadata,
/// blob cache. Every failure is a `FormatError` with a one-line message for the CLI.
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
        public init(cacheDirectory: String? = nil, readOnly: Bool = false, memoryCacheBytes: Int = 32 << 20,
                    diskCacheBytes: Int = 10 << 30, freeSpaceFloor: Int = 1 << 30, maxDirtyBytesPerFile: Int = 16 << 20,
                    checkPermissions: Bool = true, updateAccessTimes: Bool = true) {
            self.cacheDirectory = cacheDirectory; self.readOnly = readOnly; self.memoryCacheBytes = memoryCacheBytes
            self.diskCacheBytes = diskCacheBytes; self.freeSpaceFloor = freeSpaceFloor; self.maxDirtyBytesPerFile = maxDirtyBytesPerFile
            self.checkPermissions = checkPermissions; self.updateAccessTimes = updateAccessTimes
        }
    }

    /// The opened filesystem with the cache directory whose lock it holds (keep both alive
    /// for the life of the mount).
    public struct Opened: Sendable {
        public var filesystem: MossaicFilesystem
        public var cacheDirectory: CacheDirectory
    }

    public static func open(store: any ObjectStore, settings: Settings, logger: Logger, metrics: Metrics = Metrics()) throws(FormatError) -> Opened {
        let superblock = try Superblock.load(from: store)
        let cacheDirectory = try CacheDirectory(path: settings.cacheDirectory ?? CacheDirectory.defaultRoot + "/" + superblock.uuid)
        let metadata: SQLiteMetaStore
        do {
            metadata = try SQLiteMetaStore(path: cacheDirectory.metadataPath)
            if let owner = try metadata.setting("fs_uuid") {
                guard owner == superblock.uuid else {
                    throw FormatError.metadata("\(cacheDirectory.metadataPath) belongs to filesystem \(owner), not to \(store.displayName) (\(superblock.uuid)); use another cache_dir=")
                }
            } else {
                try metadata.setSetting("fs_uuid", superblock.uuid)
            }
        } catch let error as FormatError {
            throw error
        } catch {
            throw .metadata("cannot open metadata \(cacheDirectory.metadataPath): \(error)")
        }
        let cache: BlobCache
        do {
            cache = try BlobCache(store: store, configuration: .init(
                memoryLimit: settings.memoryCacheBytes,
                diskDirectory: store.isLocal ? nil : cacheDirectory.blobsPath,
                diskLimit: settings.diskCacheBytes, freeSpaceFloor: settings.freeSpaceFloor), logger: logger)
        } catch {
            throw .cacheDirectory("cannot open blob cache: \(error)")
        }
        var options = MossaicFilesystem.Options(readOnly: settings.readOnly, maxDirtyBytesPerFile: settings.maxDirtyBytesPerFile,
                                                checkPermissions: settings.checkPermissions,
                                                updateAccessTimes: settings.updateAccessTimes,
                                                syncInterval: settings.syncInterval, uploadThreads: settings.uploadThreads)
        options.readAheadChunks = settings.readAheadChunks
        let filesystem = MossaicFilesystem(metadata: metadata, cache: cache, superblock: superblock,
                                           options: options,
                                           logger: logger, metrics: metrics)
        do {
            try filesystem.start()
        } catch {
            throw .metadata("cannot start filesystem: \(error)")
        }
        return Opened(filesystem: filesystem, cacheDirectory: cacheDirectory)
    }
}
