import MossaicCore

/// Which lock owners took locks through which open handle, and which inodes have a handle's
/// locks being released right now: what `MossaicFilesystem+Locks` needs to release locks at
/// the right close, with the kernel telling it only part of it.
///
/// The kernel sends a FUSE release (the last close of an open file description) after
/// close(2) has returned, and says which flock goes with it but not which open-file-description
/// (OFD) fcntl locks: those it never releases at all on a filesystem that keeps locks itself.
/// So every owner that locked through a handle is released at the handle's release, unless
/// a FUSE flush (any close(2) by a process: its fcntl locks go) released it since — which a
/// process-owned fcntl lock always was, its process having closed the handle. What is left
/// at the release is the flock and the OFD locks of that open file description.
///
/// And a try-lock that meets a conflict while a release of the same file is under way waits
/// for it and tries once more: the process that closed may already be gone, and its lock must
/// not outlive it to the next caller. (The kernel queued the release before that try-lock;
/// a release still unread by the daemon when the try-lock's transaction ends is not seen.)
struct HandleLocks: Sendable {
    struct Owner: Hashable, Sendable {
        var id: UInt64
        var flock: Bool
    }

    /// Who locked through each open handle.
    var owners: [HandleID: Set<Owner>] = [:]
    /// The fcntl lock owners of each file that may hold locks on it: a close (FUSE flush, sent
    /// at every close(2)) costs a round trip to the lock table only for one of these.
    var rangeOwners: [InodeNumber: Set<UInt64>] = [:]
    /// Releases of each file's locks under way.
    var releasing: [InodeNumber: Int] = [:]
}
