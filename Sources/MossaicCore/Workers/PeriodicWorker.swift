import Foundation

/// A plain thread that calls `body` every `interval` seconds until stopped. `stop()` wakes it
/// at once and returns when it has exited (a call of `body` in progress is finished first).
public final class PeriodicWorker: Sendable {
    private struct State { var started = false; var stopping = false; var finished = false }
    private let state = ConditionBox(State())
    public let name: String
    public let interval: Double
    private let body: @Sendable () -> Void

    public init(name: String, interval: Double, body: @escaping @Sendable () -> Void) {
        self.name = name; self.interval = max(0.01, interval); self.body = body
    }

    public func start() {
        let start = state.withLock { s -> Bool in
            guard !s.started, !s.stopping else { return false }
            s.started = true
            return true
        }
        guard start else { return }
        let thread = Thread { [self] in loop() }
        thread.name = name
        thread.start()
    }

    private func loop() {
        // A timed wait is the timer; stop() wakes it early.
        while state.wait(seconds: interval, until: { $0.stopping ? () : nil }) == nil {
            body()
        }
        state.withLock { $0.finished = true }
    }

    public func stop() {
        state.withLock { $0.stopping = true }
        state.wait { $0.started && !$0.finished ? nil : () }
    }
}
