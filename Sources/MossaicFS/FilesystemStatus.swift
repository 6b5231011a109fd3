import Foundation
import MossaicCache
import MossaicCore
import MossaicMeta
import MossaicReplication

/// What `mossaicfs status` shows: store, usage, dedup, cache, pending work.
public struct FilesystemStatus: Codable, Sendable {
    public struct Cache: Codable, Sendable {
        public var memoryBytes: Int
        public var diskBytes: Int
        public var memoryHits: Int
        public var diskHits: Int
        public var misses: Int
        /// Hits over all chunk reads through the cache, 0 to 1 (nil before the first read).
        public var hitRate: Double?
        public var corruptChunks: Int
    }

    public var store: String
    public var filesystemUUID: String
    public var mounted: Bool
    public var readOnly: Bool
    public var usage: UsageDetails
    /// Logical bytes per chunk byte (objects before compression, and inline): above 1 when
    /// chunks are shared. Compression's share is `usage.compressionSavedBytes`, not in here.
    public var dedupRatio: Double?
    public var cache: Cache?
    public var openFiles: Int
    public var dirtyBytes: Int
    public var pendingUploads: Int
    /// Write-back: chunks (and their bytes) staged in cache_dir/staging, not yet in the store.
    public var stagedChunks: Int = 0
    public var stagedBytes: Int = 0
    public var lastSnapshotAgeSeconds: Double?
    public var leaseHolder: String?
    /// Metadata in PostgreSQL: the mounts of every host (their sessions); nil otherwise.
    public var sessions: [SessionRecord]?
    /// This mount's session among them.
    public var session: String?

    public init(store: String, filesystemUUID: String, mounted: Bool, readOnly: Bool, usage: UsageDetails, cache: Cache?,
                openFiles: Int, dirtyBytes: Int, pendingUploads: Int) {
        self.store = store; self.filesystemUUID = filesystemUUID; self.mounted = mounted; self.readOnly = readOnly
        self.usage = usage; self.cache = cache; self.openFiles = openFiles; self.dirtyBytes = dirtyBytes
        self.pendingUploads = pendingUploads
        let stored = usage.uncompressedBytes + usage.inlineBytes
        dedupRatio = stored > 0 ? Double(usage.logicalBytes) / Double(stored) : nil
    }

    /// The same figures for an unmounted filesystem, from its metadata alone.
    public static func offline(store: String, uuid: String, metadata: any MetaStore) throws(FSError) -> FilesystemStatus {
        let usage = try meta { () throws(MetaError) in try metadata.usageDetails() }
        return FilesystemStatus(store: store, filesystemUUID: uuid, mounted: false, readOnly: false, usage: usage, cache: nil,
                                openFiles: 0, dirtyBytes: 0, pendingUploads: 0)
    }
}

extension FilesystemStatus {
    /// As `status --json` prints it and the control socket sends it.
    public var json: String { controlJSON }

    /// The newest metadata snapshot's age and the writer lease's holder.
    public mutating func fillReplication(newest: SnapshotManifest?, lease: LeaseRecord?) {
        lastSnapshotAgeSeconds = newest.map { max(0, Double(Timestamp.now().nanoseconds - $0.createdNanoseconds) / 1e9) }
        leaseHolder = lease?.holderDescription
    }
}

extension MossaicFilesystem {
    /// The blob cache's figures alone: counters in memory, no metadata query (what the
    /// metrics endpoint reads at every scrape).
    public func cacheStatus() -> FilesystemStatus.Cache {
        let stats = chunks.cache.statistics
        let reads = stats.memoryHits + stats.diskHits + stats.storeGets
        return FilesystemStatus.Cache(
            memoryBytes: stats.memoryBytes, diskBytes: stats.diskBytes, memoryHits: stats.memoryHits, diskHits: stats.diskHits,
            misses: stats.storeGets, hitRate: reads > 0 ? Double(stats.memoryHits + stats.diskHits) / Double(reads) : nil,
            corruptChunks: stats.corrupt)
    }

    /// Write-back chunks staged and not yet stored (nil for a read-only mount).
    public var stagedChunks: (chunks: Int, bytes: Int)? { chunks.staging?.pending }

    /// Live figures of the mounted filesystem. `pendingUploads` is what the store is being
    /// sent right now (commits upload before they publish).
    public func status(pendingUploads: Int) throws(FSError) -> FilesystemStatus {
        let usage = try meta { () throws(MetaError) in try metadata.usageDetails() }
        let cacheStatus = cacheStatus()
        let files = openFiles.withLock { Array($0.values) }
        let dirty = writeMemory.current.used
        var status = FilesystemStatus(store: storeName, filesystemUUID: superblock.uuid, mounted: true, readOnly: options.readOnly,
                                      usage: usage, cache: cacheStatus, openFiles: files.count, dirtyBytes: dirty,
                                      pendingUploads: pendingUploads)
        if let staged = chunks.staging?.pending { (status.stagedChunks, status.stagedBytes) = staged }
        status.sessions = sessionRecords()
        status.session = sessionTable?.sessionID
        if let replicator = replicator.withLock({ $0 }) {
            status.fillReplication(newest: replicator.writer.headManifest, lease: replicator.lease?.record)
        }
        return status
    }
}
