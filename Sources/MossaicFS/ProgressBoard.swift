import Foundation
import MossaicCore

/// What a daemon's long task has done so far (the unmount flush, a restore), for whoever
/// waits: observers called at each report (the foreground daemon's terminal) and followers on
/// the control socket (`ControlRequest.progress`), which get each change as a line.
///
/// Reports are cheap (a lock and a broadcast): callers report as often as they like, and a
/// follower sends at most ten lines a second, always the latest state.
public final class ProgressBoard: @unchecked Sendable {
    // @unchecked: `latest`, `version` and `observers` are only touched with `condition` locked.
    private let condition = NSCondition()
    private var latest: ProgressEvent?
    private var version = 0
    private var observers: [@Sendable (ProgressEvent) -> Void] = []

    public init() {}

    public func report(_ event: ProgressEvent) {
        condition.lock()
        latest = event
        version += 1
        let observers = self.observers
        condition.broadcast()
        condition.unlock()
        for observe in observers { observe(event) }
    }

    /// Calls `observer` with every later report, on the reporting thread.
    public func observe(_ observer: @escaping @Sendable (ProgressEvent) -> Void) {
        condition.lock()
        observers.append(observer)
        condition.unlock()
    }

    /// Sends the current state and then every change, as `ProgressEvent` lines, until `send`
    /// fails (the follower went away). Blocks the calling thread; the daemon's exit ends it
    /// (and tells the follower, by closing its connection, that everything is done).
    public func follow(_ send: (String) -> Bool) {
        var seen = -1
        while true {
            condition.lock()
            while version == seen { condition.wait() }
            seen = version
            let event = latest
            condition.unlock()
            if let event, !send(event.line) { return }
            Thread.sleep(forTimeInterval: 0.1)  // a rate limit for the follower, not a synchronisation
        }
    }
}
