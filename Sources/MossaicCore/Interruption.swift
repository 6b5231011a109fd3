import Synchronization

/// The caller of a request gave up on it (a FUSE INTERRUPT: the process waiting in close(2),
/// fsync(2) or write(2) got a signal). Long waits — on uploads to a stalled store — watch one,
/// so that the waiting process can be killed instead of hanging until the store answers
/// (for a flush, the kernel waits for our reply even after SIGKILL).
///
/// Only waits that can be abandoned safely watch it: what they waited for goes on in the
/// background, and nothing is reported done that was not.
public final class Interruption: Sendable {
    private struct State {
        var interrupted = false
        var wakers: [UInt64: @Sendable () -> Void] = [:]
        var nextToken: UInt64 = 0
    }
    private let state = Mutex(State())

    public init() {}

    public var isInterrupted: Bool { state.withLock { $0.interrupted } }

    /// Marks the request interrupted and wakes everything waiting on it (once).
    public func interrupt() {
        let wakers = state.withLock { s -> [@Sendable () -> Void] in
            guard !s.interrupted else { return [] }
            s.interrupted = true
            return Array(s.wakers.values)
        }
        for wake in wakers { wake() }
    }

    /// Runs `body` with `wake` called if the request is interrupted meanwhile (at once if it
    /// already was). `wake` must only signal the waiter: it may run on another thread.
    public func whileWatching<T, E: Error>(wake: @escaping @Sendable () -> Void, _ body: () throws(E) -> T) throws(E) -> T {
        let token = state.withLock { s -> UInt64? in
            guard !s.interrupted else { return nil }
            s.nextToken += 1
            s.wakers[s.nextToken] = wake
            return s.nextToken
        }
        if token == nil { wake() }
        defer { if let token { _ = state.withLock { $0.wakers.removeValue(forKey: token) } } }
        return try body()
    }
}
