/// Who asks for a filesystem's exclusive resources — the cache_dir's lock, the writer lease —
/// so that a refusal can give advice that fits: a mount can be given its own cache_dir= or be
/// made read-only, a command such as fsck or gc can only wait for the mount to go away.
public enum Claimant: Sendable, Equatable {
    case mount
    /// A command run against an unmounted filesystem, named as the user typed it (`gc`).
    case command(String)

    /// What to do when the cache_dir's lock is held by another process (pid `holder`).
    public func adviceForLockedCacheDirectory(holder: String) -> String {
        switch self {
        case .mount:
            "unmount it first, or give this mount its own cache_dir="
        case .command(let name):
            "\(name) works on an unmounted filesystem: unmount it first (or wait for pid \(holder) to finish, if it is an fsck or gc)"
        }
    }

    /// What to do when the writer lease is held elsewhere.
    public var adviceForHeldLease: String {
        switch self {
        case .mount:
            "unmount it there, or mount with -o ro (if that host is dead: wait for the lease to expire, or use -o force_lease)"
        case .command(let name):
            "\(name) needs the writer lease: unmount it there first (if that host is dead: wait for the lease to expire, or use -o force_lease)"
        }
    }
}
