import Foundation
import MossaicCore

/// What a daemon's long task has done so far (the unmount flush, a restore), for whoever
/// waits: observers called at each report (the foreground daemon's terminal) and followers on
/// the control socket (`ControlRequest.progress`), which get each change as a line.
///
/// Reports are cheap (a lock and a broadcast): callers report as often as they like, and a
/// follower sends at most ten lines a second, always the latest state.
public final class ProgressBoard: @unchecked Sendable {
    // @unchecked: every var is only touched with `condition` locked.
    private let condition = NSCondition()
    private var latest: ProgressEvent?
    private var version = 0
    private var observers: [@Sendable (ProgressEvent) -> Void] = []
    private var finished = false
    private var following = 0

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
    /// fails (the follower went away) or `finish()`. Blocks the calling thread.
    public func follow(_ send: (String) -> Bool) {
        var seen = -1
        condition.lock()
        following += 1
        defer { following -= 1; condition.broadcast(); condition.unlock() }
        while true {
            while version == seen && !finished { condition.wait() }
            if version == seen { return }  // finished, and the last state was sent
            seen = version
            let event = latest
            condition.unlock()
            let sent = event.map { send($0.line) } ?? true
            // A rate limit for the follower (at most ten lines a second), not a synchronisation;
            // finish() does not wait for it.
            if sent && !isFinished { Thread.sleep(forTimeInterval: 0.1) }
            condition.lock()
            if !sent { return }
        }
    }

    private var isFinished: Bool { condition.lock(); defer { condition.unlock() }; return finished }

    /// The task is over (the daemon is about to exit): followers send the last state and
    /// return. Waits for them at most `timeout` seconds, so that the last line is not lost to
    /// the exit, and a follower that does not read cannot hold the exit up.
    public func finish(timeout: Double = 2) {
        condition.lock()
        finished = true
        condition.broadcast()
        let deadline = Date(timeIntervalSinceNow: timeout)
        while following > 0, condition.wait(until: deadline) {}
        condition.unlock()
    }
}
