#if canImport(Glibc)
import Glibc
#endif

extension Timestamp {
    /// The current wall-clock time (CLOCK_REALTIME), as file times use it.
    public static func now() -> Timestamp {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Timestamp(seconds: Int64(ts.tv_sec), nanoseconds: Int64(ts.tv_nsec))
    }
}

extension Timestamp {
    /// CLOCK_MONOTONIC, for measuring durations.
    public static func monotonicNow() -> Timestamp {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Timestamp(seconds: Int64(ts.tv_sec), nanoseconds: Int64(ts.tv_nsec))
    }

    public func secondsSince(_ earlier: Timestamp) -> Double {
        Double(nanoseconds - earlier.nanoseconds) / 1e9
    }
}
