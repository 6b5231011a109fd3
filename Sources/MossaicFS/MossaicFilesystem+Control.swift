import MossaicCore
import Synchronization

/// Requests of the `mossaicfs` command to the mounted daemon (`ControlRequest`), from either
/// channel: the ioctl on the mountpoint and the control socket.
extension MossaicFilesystem {
    /// Serves `request` for `caller` and returns the answer: the snapshot id (empty when the
    /// filesystem has none yet), or the status as JSON.
    ///
    /// The one place that decides who may ask, for every request and both channels: the
    /// mount's owner (`Options.owner`) or root, as for unmounting it. With allow_other every
    /// user reaches the mountpoint, and so the ioctl; nobody else may make the daemon commit
    /// open files and publish snapshots, or read its figures.
    public func control(_ request: ControlRequest, caller: Caller) throws(FSError) -> String {
        guard caller.isRoot || caller.uid == options.owner else { throw .notPermitted }
        switch request {
        case .snapshot: return try snapshotMetadata() ?? ""
        case .status: return try status(pendingUploads: uploadsInFlight.withLock { $0 }()).json
        }
    }

    /// Connects the daemon's count of uploads in flight (once, at mount).
    public func attach(uploadsInFlight count: @escaping @Sendable () -> Int) {
        uploadsInFlight.withLock { $0 = count }
    }
}
