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
