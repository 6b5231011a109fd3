import MossaicCore
import Synchronization

/// A wall clock a test moves by hand, for code that takes its time from a closure (a snapshot
/// writer's creation times, against which retention measures ages).
public final class TestClock: Sendable {
    private let time: Mutex<Timestamp>

    public init(_ start: Timestamp = .now()) { time = Mutex(start) }

    public var now: Timestamp { time.withLock { $0 } }

    public func advance(days: Double) {
        time.withLock { $0 = Timestamp(nanoseconds: $0.nanoseconds + Int64(days * 86_400e9)) }
    }

    /// The clock as the closure such code takes.
    public var reading: @Sendable () -> Timestamp { { self.now } }
}
