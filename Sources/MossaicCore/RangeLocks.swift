/// The rules of POSIX byte-range locks, apart from where the locks are kept (the lock table of
/// `PostgresMetaStore+Locks` reads a file's locks, applies these and writes back the owner's).
/// Locks of one owner never conflict with each other: a new lock replaces the owner's locks on
/// the bytes it covers, as fcntl(2) says.
public enum RangeLocks {
    /// The first lock of another owner that a `kind` lock of `range` by `owner` conflicts
    /// with: one overlapping it where either is exclusive. Nil: the lock may be taken.
    public static func conflict(_ kind: LockKind, _ range: ClosedRange<UInt64>, owner: LockOwner, in locks: [RangeLock]) -> RangeLock? {
        locks.first { $0.owner != owner && $0.range.overlaps(range) && (kind == .exclusive || $0.kind == .exclusive) }
    }

    /// An owner's locks (`held`: that owner's only, none overlapping another) after it locks
    /// `range` as `kind` (nil: unlocks it): the range is cut out of what it held — a lock that
    /// spans it is split in two — and the new lock is merged with the owner's locks of the same
    /// kind that it touches, so that one unlock of their union frees it all. Sorted by start.
    public static func applying(_ kind: LockKind?, _ range: ClosedRange<UInt64>, owner: LockOwner, pid: UInt32,
                                to held: [RangeLock]) -> [RangeLock] {
        var result: [RangeLock] = []
        for lock in held {
            guard lock.range.overlaps(range) else { result.append(lock); continue }
            if lock.range.lowerBound < range.lowerBound {
                result.append(RangeLock(owner: lock.owner, kind: lock.kind, range: lock.range.lowerBound...(range.lowerBound - 1), pid: lock.pid))
            }
            if lock.range.upperBound > range.upperBound {
                result.append(RangeLock(owner: lock.owner, kind: lock.kind, range: (range.upperBound + 1)...lock.range.upperBound, pid: lock.pid))
            }
        }
        if let kind {
            // Only a neighbour on each side can touch the new range (the cut removed every
            // overlap, and the owner's locks of one kind never touch each other): one pass.
            var merged = RangeLock(owner: owner, kind: kind, range: range, pid: pid)
            result.removeAll { lock in
                guard lock.kind == kind, touching(lock.range, merged.range) else { return false }
                merged.range = min(lock.range.lowerBound, merged.range.lowerBound)...max(lock.range.upperBound, merged.range.upperBound)
                return true
            }
            result.append(merged)
        }
        return result.sorted { $0.range.lowerBound < $1.range.lowerBound }
    }

    /// Overlapping or adjacent (no byte between them).
    static func touching(_ a: ClosedRange<UInt64>, _ b: ClosedRange<UInt64>) -> Bool {
        a.lowerBound <= (b.upperBound == .max ? .max : b.upperBound + 1) && b.lowerBound <= (a.upperBound == .max ? .max : a.upperBound + 1)
    }
}
