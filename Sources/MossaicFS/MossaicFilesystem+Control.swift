import MossaicCore
import Synchronization

/// Requests of the `mossaicfs` command to the mounted daemon (`ControlRequest`), from either
/// channel: the ioctl on the mountpoint and the control socket.
extension MossaicFilesystem {
    /// Serves `request` for `caller` and returns the answer: the snapshot id (empty when the
    /// filesystem has none yet), or the status as JSON.
    ///
    /// The one place that decides who may ask, for every request and both channels: the
    /// mount's owner (`owner`) or root, as for unmounting it. With allow_other every
    /// user reaches the mountpoint, and so the ioctl; nobody else may make the daemon commit
    /// open files and publish snapshots, or read its figures.
    ///
    /// `arguments`: the inode numbers of `info` and `warmup`. `send` writes a line to the
    /// caller before the answer (progress), and says false once the caller has gone.
    public func control(_ request: ControlRequest, arguments: [String] = [], caller: Caller,
                        send: @escaping @Sendable (String) -> Bool = { _ in true }) throws(FSError) -> String {
        guard caller.isRoot || caller.uid == owner else { throw .notPermitted }
        switch request {
        case .snapshot: return try snapshotMetadata() ?? ""
        case .status: return try status(pendingUploads: uploadsInFlight.withLock { $0 }()).json
        case .info: return try info(Self.inodes(arguments)).controlJSON
        case .warmup: return try warmup(Self.inodes(arguments)) { _ = send($0.line) }.controlJSON
        case .progress:
            activity.follow(send)
            return ""
        }
    }

    private static func inodes(_ arguments: [String]) throws(FSError) -> [InodeNumber] {
        guard !arguments.isEmpty else { throw .invalidArgument }
        var inodes: [InodeNumber] = []
        for argument in arguments {
            guard let n = UInt64(argument), n > 0 else { throw .invalidArgument }
            inodes.append(InodeNumber(n))
        }
        return inodes
    }

    /// Connects the daemon's count of uploads in flight (once, at mount).
    public func attach(uploadsInFlight count: @escaping @Sendable () -> Int) {
        uploadsInFlight.withLock { $0 = count }
    }
}
