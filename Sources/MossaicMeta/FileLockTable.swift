import MossaicCore

/// BSD flock and POSIX fcntl locks that exclude across every host mounting the filesystem: an
/// engine for many hosts keeps them in its database (`PostgresMetaStore+Locks`). SQLite's
/// engine has none — one host writes, and its kernel keeps the locks itself.
///
/// Every call is one short transaction and never waits for a lock: a blocking request
/// (F_SETLKW, flock without LOCK_NB) is the caller polling `setRangeLock`/`setFlock`. Owners
/// are this mount's (`session`); the locks of a mount that ends go with its session.
public protocol FileLockTable: Sendable {
    /// This mount's identity in the lock tables.
    var session: String { get }
    /// The lock of another owner that a `kind` lock of `range` by `owner` would conflict with
    /// (F_GETLK); its `pid` is 0 unless this mount holds it (another host's pid means nothing here).
    func conflictingRangeLock(_ ino: InodeNumber, _ kind: LockKind, _ range: ClosedRange<UInt64>, owner: UInt64) throws(MetaError) -> RangeLock?
    /// Locks `range` as `kind` for `owner`, or unlocks it (nil; never refused). Returns false,
    /// changing nothing, if another owner's lock conflicts.
    func setRangeLock(_ ino: InodeNumber, _ kind: LockKind?, _ range: ClosedRange<UInt64>, owner: UInt64, pid: UInt32) throws(MetaError) -> Bool
    /// flock(2) for the open file description `owner`: takes or converts its lock to `kind`,
    /// or drops it (nil; never refused). Returns false, changing nothing, on a conflict.
    func setFlock(_ ino: InodeNumber, _ kind: LockKind?, owner: UInt64) throws(MetaError) -> Bool
    /// Drops every fcntl lock `owner` holds on `ino` (a close by that owner: POSIX drops them all).
    func releaseRangeLocks(_ ino: InodeNumber, owner: UInt64) throws(MetaError)
    /// Drops every lock of this mount (an unmount).
    func releaseSessionLocks() throws(MetaError)
}
