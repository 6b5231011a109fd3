#if canImport(Glibc)
import Glibc
#endif

/// The attempts of one commit that a reclaim sweep of another host (PostgreSQL) got in the way
/// of (`MetaError.sweptChunks`): each one stores the chunks again and says so to the metadata
/// (`storedAfter`, for `FileCommit.storedAfterSweep`). Bounded: a sweep takes a chunk only
/// once it is unreferenced for the grace, so one in the way again and again is a fault, and
/// the commit then fails as any metadata error does.
struct SweptRetry {
    static let attempts = 12
    private(set) var storedAfter: Int64 = 0
    private var tried = 0

    /// Whether to make the commit again; waits first while the sweep is still deleting objects
    /// (an object stored before its deletion ends would be deleted with it).
    mutating func again(through: Int64, pending: Bool) -> Bool {
        guard tried < Self.attempts else { return false }
        tried += 1
        storedAfter = max(storedAfter, through)
        if pending { usleep(UInt32(min(2_000_000, 50_000 << min(tried, 6)))) }
        return true
    }
}
