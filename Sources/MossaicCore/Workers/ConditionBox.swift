#if canImport(Glibc)
import Glibc
#endif

/// A value behind a lock that threads can also wait on, until the value says they may go on:
/// the one condition-variable primitive of the code base (`Future`, `WorkerPool` and
/// `PeriodicWorker` are built on it, as are the staging area and the writer lease).
///
/// Every `withLock` wakes the waiters when it ends, whatever it changed: a waiter re-checks
/// its predicate, so a spurious wake costs one check and a missed one cannot happen. A box
/// whose waiters are all alike — a pool's idle threads, any one of which can take a job — wakes
/// just one per job instead (`waking: .one`): waking them all costs two thread switches per idle
/// thread per job, which on 2 cores made a small-file untar 8 % slower (docs/BENCHMARKS.md).
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

    /// Whom the end of a `withLock` (or of a wait, whose `ready` may change the value) wakes.
    public enum Wake: Sendable {
        /// Every waiter: the default, right whatever the waiters wait for.
        case all
        /// One waiter: only for a box whose waiters all wait for the same kind of thing, any one
        /// of which can take what the change made (one queued job: one idle thread).
        case one
        /// None: for a wait whose `ready` only takes something for itself.
        case none
    }

    /// Runs `body` with the value locked, then wakes every waiter (or as `wake` says).
    public func withLock<R, E: Error>(waking wake: Wake = .all, _ body: (inout Value) throws(E) -> R) throws(E) -> R {
        pthread_mutex_lock(mutex)
        defer {
            signal(wake)
            pthread_mutex_unlock(mutex)
        }
        return try body(&value)
    }

    /// Waits until `ready` (called with the value locked, again after every wake) returns a
    /// result, and returns it; then wakes the other waiters (or as `wake` says), since `ready`
    /// may have changed the value.
    public func wait<R>(waking wake: Wake = .all, until ready: (inout Value) -> R?) -> R {
        waitLocked(deadline: nil, waking: wake, until: ready)!
    }

    /// `wait(until:)` for at most `seconds`: nil if `ready` still had no result then.
    public func wait<R>(seconds: Double, until ready: (inout Value) -> R?) -> R? {
        var deadline = timespec()
        clock_gettime(CLOCK_MONOTONIC, &deadline)
        let whole = seconds.rounded(.down)
        deadline.tv_sec += Int(min(whole, Double(Int32.max)))
        deadline.tv_nsec += Int((seconds - whole) * 1e9)
        if deadline.tv_nsec >= 1_000_000_000 { deadline.tv_sec += 1; deadline.tv_nsec -= 1_000_000_000 }
        return waitLocked(deadline: deadline, waking: .all, until: ready)
    }

    /// The wait loop: nil only when the monotonic `deadline` passed without a result.
    private func waitLocked<R>(deadline: timespec?, waking wake: Wake, until ready: (inout Value) -> R?) -> R? {
        var deadline = deadline
        pthread_mutex_lock(mutex)
        defer {
            signal(wake)
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

    private func signal(_ wake: Wake) {
        switch wake {
        case .all: pthread_cond_broadcast(condition)
        case .one: pthread_cond_signal(condition)
        case .none: break
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
