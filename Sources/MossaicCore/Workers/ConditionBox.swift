#if canImport(Glibc)
import Glibc
#endif

/// A value behind a lock that threads can also wait on, until the value says they may go on:
/// the one condition-variable primitive of the code base (`Future`, `WorkerPool` and
/// `PeriodicWorker` are built on it, as are the staging area and the writer lease).
///
/// Every `withLock` wakes the waiters when it ends, whatever it changed: a waiter re-checks
/// its predicate, so a spurious wake costs one check and a missed one cannot happen.
/// Timed waits use the monotonic clock, so a wall-clock step neither cuts nor stretches them.
///
/// `@unchecked Sendable`: it wraps a pthread mutex and condition variable (C handles), which
/// guard `value`.
public final class ConditionBox<Value>: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var value: Value

    public init(_ value: Value) {
        self.value = value
        pthread_mutex_init(mutex, nil)
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        pthread_cond_init(condition, &attributes)
        pthread_condattr_destroy(&attributes)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
        condition.deallocate()
    }

    /// Runs `body` with the value locked, then wakes every waiter.
    public func withLock<R, E: Error>(_ body: (inout Value) throws(E) -> R) throws(E) -> R {
        pthread_mutex_lock(mutex)
        defer {
            pthread_cond_broadcast(condition)
            pthread_mutex_unlock(mutex)
        }
        return try body(&value)
    }

    /// Waits until `ready` (called with the value locked, again after every wake) returns a
    /// result, and returns it.
    public func wait<R>(until ready: (inout Value) -> R?) -> R {
        waitLocked(deadline: nil, until: ready)!
    }

    /// `wait(until:)` for at most `seconds`: nil if `ready` still had no result then.
    public func wait<R>(seconds: Double, until ready: (inout Value) -> R?) -> R? {
        var deadline = timespec()
        clock_gettime(CLOCK_MONOTONIC, &deadline)
        let whole = seconds.rounded(.down)
        deadline.tv_sec += Int(min(whole, Double(Int32.max)))
        deadline.tv_nsec += Int((seconds - whole) * 1e9)
        if deadline.tv_nsec >= 1_000_000_000 { deadline.tv_sec += 1; deadline.tv_nsec -= 1_000_000_000 }
        return waitLocked(deadline: deadline, until: ready)
    }

    /// The wait loop: nil only when the monotonic `deadline` passed without a result.
    private func waitLocked<R>(deadline: timespec?, until ready: (inout Value) -> R?) -> R? {
        var deadline = deadline
        pthread_mutex_lock(mutex)
        defer {
            pthread_cond_broadcast(condition)
            pthread_mutex_unlock(mutex)
        }
        while true {
            if let result = ready(&value) { return result }
            if deadline == nil {
                pthread_cond_wait(condition, mutex)
            } else if pthread_cond_timedwait(condition, mutex, &deadline!) == ETIMEDOUT {
                return ready(&value)
            }
        }
    }

    /// `wait(until:)` that gives up when `interruption` fires (nil then): the waiter is woken
    /// by it, not by a timer.
    public func wait<R>(until ready: (inout Value) -> R?, interruption: Interruption) -> R? {
        interruption.whileWatching(wake: { [self] in withLock { _ in } }) {
            wait { value -> R?? in
                if let result = ready(&value) { return .some(result) }
                return interruption.isInterrupted ? .some(nil) : nil
            }
        }
    }
}
