import Foundation

/// A fixed set of plain threads for blocking work: hashing and storing chunks while FUSE
/// threads keep accepting writes, fetching what a sequential reader needs next, the parallel
/// requests of the offline tools and of metadata snapshots.
///
/// Plain threads, not Swift concurrency: an upload blocks on the network for milliseconds,
/// and FUSE callbacks must never wait on the cooperative pool (2 threads wide here;
/// research/swift-fuse-spike.md §2).
public final class WorkerPool: Sendable {
    private struct Queue {
        /// Taken jobs are set to nil at once: a job's closure holds what it works on (a
        /// chunk's megabyte), which must not live on in the queue.
        var jobs: [(@Sendable () -> Void)?] = []
        var head = 0
        var stopping = false
    }
    /// Only the pool's idle threads wait on it, so a queued job wakes one of them (`.one`).
    private let queue = ConditionBox(Queue())
    /// Threads not yet exited, in a box of its own so that `stopAndWait` never waits on
    /// `queue` and takes a wake meant for an idle thread.
    private let running: ConditionBox<Int>

    public init(threads: Int, name: String) {
        let count = max(1, threads)
        running = ConditionBox(count)
        for i in 0..<count {
            let thread = Thread { [queue, running] in
                Self.work(queue)
                running.withLock { $0 -= 1 }
            }
            thread.name = "\(name)-\(i)"
            thread.start()
        }
    }

    deinit { stop() }

    /// Runs `job` on a pool thread; the future tells its outcome.
    public func submit<T: Sendable, E: Error>(_ job: @escaping @Sendable () throws(E) -> T) -> Future<T, E> {
        let future = Future<T, E>()
        run {
            do throws(E) { future.finish(.success(try job())) } catch { future.finish(.failure(error)) }
        }
        return future
    }

    /// Runs `job` on a pool thread, outcome unobserved (read-ahead).
    public func run(_ job: @escaping @Sendable () -> Void) {
        queue.withLock(waking: .one) { $0.jobs.append(job) }
    }

    /// Lets the threads finish what is queued and exit; returns at once.
    public func stop() {
        queue.withLock { $0.stopping = true }
    }

    /// Stops, and waits until every thread has exited.
    public func stopAndWait() {
        stop()
        running.wait { $0 == 0 ? () : nil }
    }

    private static func work(_ queue: ConditionBox<Queue>) {
        while true {
            // Taking a job is news to no other thread: every queued job woke one of its own.
            let job: (@Sendable () -> Void)? = queue.wait(waking: .none) { q -> (@Sendable () -> Void)?? in
                if q.head < q.jobs.count {
                    let job = q.jobs[q.head]
                    q.jobs[q.head] = nil
                    q.head += 1
                    if q.head > 1024, q.head * 2 > q.jobs.count { q.jobs.removeFirst(q.head); q.head = 0 }
                    return .some(job)
                }
                return q.stopping ? .some(nil) : nil
            }
            guard let job else { break }
            job()
        }
    }

    /// Runs `body(i)` for every `i` in `0..<count` on up to `width` threads of a pool of its
    /// own and returns when all are done. After the first error no further index is started;
    /// that error is thrown. For work whose calls block (object store requests), so parallel
    /// requests need threads.
    public static func forEach<E: Error>(count: Int, width: Int, name: String = "mossaicfs-parallel",
                                         _ body: @escaping @Sendable (Int) throws(E) -> Void) throws(E) {
        guard count > 0 else { return }
        let progress = ConditionBox((next: 0, failed: false))
        let loop: @Sendable () throws(E) -> Void = { () throws(E) -> Void in
            while let i = progress.withLock({ p -> Int? in
                guard !p.failed, p.next < count else { return nil }
                defer { p.next += 1 }
                return p.next
            }) {
                let outcome = Result { () throws(E) in try body(i) }
                if case .failure = outcome { progress.withLock { $0.failed = true } }
                try outcome.get()
            }
        }
        let threads = max(1, min(width, count))
        if threads == 1 { return try loop() }
        let pool = WorkerPool(threads: threads, name: name)
        defer { pool.stop() }
        let futures = (0..<threads).map { _ in pool.submit(loop) }
        var firstError: E?
        for future in futures {
            do throws(E) { try future.wait() } catch { if firstError == nil { firstError = error } }
        }
        if let firstError { throw firstError }
    }
}
