import Foundation
import Synchronization

/// Runs `body(0..<count)` on up to `width` plain threads and waits for all of them; returns
/// the first error any call returned. Object store calls block, so parallel transfers need
/// threads of their own — never the Swift concurrency pool, which FUSE callbacks and a
/// 2-core machine would starve (research/swift-fuse-spike.md §2).
enum ParallelWork {
    private struct Shared { var next = 0; var error: ReplicationError?; var running = 0 }

    static func run(count: Int, width: Int, _ body: @escaping @Sendable (Int) -> ReplicationError?) -> ReplicationError? {
        guard count > 0 else { return nil }
        if count == 1 || width <= 1 {
            for i in 0..<count { if let e = body(i) { return e } }
            return nil
        }
        let shared = Mutex(Shared())
        let done = NSCondition()
        let threads = min(width, count)
        shared.withLock { $0.running = threads }
        for _ in 0..<threads {
            let thread = Thread {
                while true {
                    let index: Int? = shared.withLock { s in
                        guard s.error == nil, s.next < count else { return nil }
                        defer { s.next += 1 }
                        return s.next
                    }
                    guard let index else { break }
                    if let e = body(index) { shared.withLock { if $0.error == nil { $0.error = e } } }
                }
                done.lock()
                shared.withLock { $0.running -= 1 }
                done.broadcast()
                done.unlock()
            }
            thread.name = "mossaicfs-transfer"
            thread.start()
        }
        done.lock()
        while shared.withLock({ $0.running }) > 0 { done.wait() }
        done.unlock()
        return shared.withLock { $0.error }
    }
}

/// A plain thread that calls `body` every `interval` seconds until stopped. `stop()` wakes it
/// at once and returns when it has exited (a call of `body` in progress is finished first).
final class PeriodicWorker: @unchecked Sendable {
    // @unchecked: `stopping`, `finished` and `started` are only touched with `condition` locked.
    private let condition = NSCondition()
    private var stopping = false
    private var started = false
    private var finished = false
    let name: String
    let interval: Double
    private let body: @Sendable () -> Void

    init(name: String, interval: Double, body: @escaping @Sendable () -> Void) {
        self.name = name; self.interval = max(0.01, interval); self.body = body
    }

    func start() {
        condition.lock()
        defer { condition.unlock() }
        guard !started && !stopping else { return }
        started = true
        let thread = Thread { [self] in loop() }
        thread.name = name
        thread.start()
    }

    private func loop() {
        condition.lock()
        while !stopping {
            let deadline = Date(timeIntervalSinceNow: interval)
            while !stopping && condition.wait(until: deadline) {}
            if stopping { break }
            condition.unlock()
            body()
            condition.lock()
        }
        finished = true
        condition.broadcast()
        condition.unlock()
    }

    func stop() {
        condition.lock()
        stopping = true
        condition.broadcast()
        while started && !finished { condition.wait() }
        condition.unlock()
    }
}
