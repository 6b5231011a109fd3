/// `-o meta_keep_size=`: how many bytes the older metadata snapshots may hold beyond what the
/// newest one (HEAD) needs — a fixed size, or a percentage of HEAD's own bytes, so that one
/// default fits a 1 MiB database and a 10 GiB one alike. In MossaicCore because
/// `MountConfiguration` holds it; `SnapshotRetention` applies it.
public enum RetentionSize: Sendable, Equatable {
    case bytes(Int)
    /// Percent of HEAD's bytes (100: as much again as HEAD).
    case percent(Int)

    /// The bound in bytes, for a HEAD that needs `headBytes`.
    public func limit(headBytes: Int64) -> Int64 {
        switch self {
        case .bytes(let n): Int64(n)
        case .percent(let p):
            // Saturates rather than traps: a bound past Int64 is no bound.
            headBytes.multipliedReportingOverflow(by: Int64(p)).overflow ? .max : headBytes * Int64(p) / 100
        }
    }
}
