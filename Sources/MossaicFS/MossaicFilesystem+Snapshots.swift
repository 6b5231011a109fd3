import MossaicCache
import MossaicCore
import MossaicReplication
import Synchronization

/// Metadata snapshots on request (`mossaicfs snapshot MOUNTPOINT`, an ioctl on the mountpoint;
/// the kernel does not forward syncfs(2) to FUSE daemons, see `ControlRequest`).
extension MossaicFilesystem {
    /// Connects the read-write mount's snapshotter (once, by `FilesystemLoader`).
    public func attach(_ replicator: MetadataReplicator) {
        self.replicator.withLock { $0 = replicator }
    }

    /// Write-back staging (read-write mounts), for the snapshotter `FilesystemLoader` makes:
    /// a snapshot waits until the chunks it names are stored.
    package var staging: StagingArea? { chunks.staging }

    /// Refuses every later change (EROFS): another mount is the writer now (see `fenced`).
    public func fence(_ why: String) {
        guard !fenced.exchange(true, ordering: .relaxed) else { return }
        logger.critical("this mount is no longer the filesystem's writer; further changes are refused (read-only)",
                        metadata: ["reason": "\(why)"])
    }

    /// What syncfs would do if it reached us: commits every open file's buffered writes, then
    /// publishes a metadata snapshot if anything changed since the last one. Returns the id of
    /// the snapshot that now holds everything (nil if the filesystem has none yet).
    public func snapshotMetadata() throws(FSError) -> String? {
        try checkWritable()
        guard let replicator = replicator.withLock({ $0 }) else { throw .notSupported }
        for file in openFiles.withLock({ Array($0.values) }) { try commit(file) }
        do {
            return try replicator.snapshotNow().snapshotID
        } catch {
            throw .io("metadata snapshot: \(error)")
        }
    }
}
