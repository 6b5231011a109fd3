/// Shared (read, LOCK_SH) or exclusive (write, LOCK_EX): the two kinds of both lock families.
public enum LockKind: Int64, Sendable {
    case shared = 0
    case exclusive = 1
}

/// Who holds a lock: the mount (`PostgresMetaStore.sessionID`) and, within it, the kernel's
/// lock owner (FUSE's `lock_owner`: a process's file table for fcntl locks, an open file
/// description for flock).
public struct LockOwner: Hashable, Sendable {
    public let session: String
    public let id: UInt64

    public init(session: String, id: UInt64) {
        self.session = session
        self.id = id
    }
}

/// One owner's POSIX (fcntl) lock on the bytes `range` (inclusive: the kernel's `end` of a lock
/// to the end of any file is OFFSET_MAX). `pid`: the locking process on its own host.
public struct RangeLock: Equatable, Sendable {
    public var owner: LockOwner
    public var kind: LockKind
    public var range: ClosedRange<UInt64>
    public var pid: UInt32

    public init(owner: LockOwner, kind: LockKind, range: ClosedRange<UInt64>, pid: UInt32) {
        self.owner = owner
        self.kind = kind
        self.range = range
        self.pid = pid
    }
}
