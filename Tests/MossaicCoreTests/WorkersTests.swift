import Foundation
import MossaicCore
import Synchronization
import Testing

/// The thread primitives every subsystem is built on (Sources/MossaicCore/Workers). Waits
/// here are on real events (futures, condition boxes); the only timed wait is the one whose
/// timing is the behaviour under test, and it asserts an outcome, not a speed.
@Suite struct WorkersTests {
    @Test func aFutureWakesEveryWaiterWithTheFirstOutcome() throws {
        let future = Future<Int, FSError>()
        let pool = WorkerPool(threads: 4, name: "test")
        defer { pool.stopAndWait() }
        let waiters = (0..<4).map { _ in pool.submit { () throws(FSError) -> Int in try future.wait() } }
        future.finish(.success(7))
        future.finish(.success(8))  // ignored: the first outcome stays
        for waiter in waiters { #expect(try waiter.wait() == 7) }
        #expect(future.isDone)
    }

    @Test func anInterruptedWaitReturnsWhileTheWorkGoesOn() throws {
        let future = Future<Int, FSError>()
        let interruption = Interruption()
        let pool = WorkerPool(threads: 1, name: "test")
        defer { pool.stopAndWait() }
        let waiting = pool.submit { () throws(FSError) -> Int in try future.wait(interruption) }
        interruption.interrupt()
        #expect(throws: FSError.interrupted) { try waiting.wait() }
        #expect(!future.isDone)
        future.finish(.success(1))
        #expect(try future.wait() == 1)
    }

    @Test func aPoolRunsEveryJobAndStopsAfterTheQueue() {
        let count = Mutex(0)
        let pool = WorkerPool(threads: 3, name: "test")
        let futures = (0..<500).map { i in pool.submit { () -> Int in count.withLock { $0 += 1 }; return i } }
        for (i, future) in futures.enumerated() { #expect(future.result(nil).map { try? $0.get() } == i) }
        pool.stopAndWait()
        #expect(count.withLock { $0 } == 500)
    }

    /// A queued job wakes one idle thread, not all of them: no job may be left in the queue
    /// while threads sleep. Jobs arrive from several threads at once, first while every pool
    /// thread is busy (its wake finds no sleeper), then while they drain.
    @Test func jobsSubmittedFromManyThreadsWhileThePoolIsBusyAllRun() throws {
        let pool = WorkerPool(threads: 4, name: "test")
        let gate = Future<Void, Never>()
        let blockers = (0..<4).map { _ in pool.submit { () -> Void in gate.wait() } }
        let submitted = WorkerPool(threads: 8, name: "test-submitters")
        defer { submitted.stopAndWait() }
        let batches = (0..<8).map { _ in
            submitted.submit { () -> [Future<Int, Never>] in (0..<200).map { i in pool.submit { () -> Int in i } } }
        }
        gate.finish(.success(()))
        var sum = 0
        for batch in batches { for job in batch.wait() { sum += job.wait() } }
        for blocker in blockers { blocker.wait() }
        #expect(sum == 8 * (0..<200).reduce(0, +))
        pool.stopAndWait()
    }

    /// A job's closure (and what it captured: a chunk's megabyte, in the data path) is gone
    /// once the job has run; the queue kept them, and 16 writers grew the daemon to 1 GiB.
    @Test func aPoolDropsAJobOnceItHasRun() throws {
        final class Payload: Sendable {}
        let pool = WorkerPool(threads: 1, name: "test")
        defer { pool.stopAndWait() }
        weak var watched: Payload?
        do {
            let payload = Payload()
            watched = payload
            try pool.submit { () -> Bool in withExtendedLifetime(payload) { true } }.wait()
        }
        // The one thread has taken a job after it: the first one is no longer its local either.
        try pool.submit { () -> Void in }.wait()
        #expect(watched == nil)
    }

    @Test func forEachVisitsEveryIndexOnce() {
        let seen = Mutex([Int](repeating: 0, count: 1000))
        WorkerPool.forEach(count: 1000, width: 4) { i in seen.withLock { $0[i] += 1 } }
        #expect(seen.withLock { $0 }.allSatisfy { $0 == 1 })
    }

    @Test func forEachStopsStartingIndexesAfterTheFirstErrorAndThrowsIt() {
        let visited = Mutex(0)
        #expect(throws: FSError.notFound) {
            try WorkerPool.forEach(count: 10_000, width: 2) { (i) throws(FSError) in
                visited.withLock { $0 += 1 }
                if i == 10 { throw .notFound }
            }
        }
        #expect(visited.withLock { $0 } < 10_000)
    }

    @Test func aConditionBoxWaitEndsWhenThePredicateHoldsOrAtItsDeadline() {
        let box = ConditionBox(0)
        let pool = WorkerPool(threads: 1, name: "test")
        defer { pool.stopAndWait() }
        let waiter = pool.submit { () -> Int in box.wait { $0 >= 3 ? $0 : nil } }
        for _ in 0..<3 { box.withLock { $0 += 1 } }
        #expect(try! waiter.wait() == 3)
        #expect(box.wait(seconds: 0.05) { $0 > 100 ? () : nil } == nil)
    }

    @Test func anInterruptionWakesAConditionBoxWaiter() {
        let box = ConditionBox(false)
        let interruption = Interruption()
        let pool = WorkerPool(threads: 1, name: "test")
        defer { pool.stopAndWait() }
        let waiter = pool.submit { () -> Bool in box.wait(until: { $0 ? () : nil }, interruption: interruption) == nil }
        interruption.interrupt()
        #expect(try! waiter.wait())
    }

    @Test func aPeriodicWorkerRunsUntilStoppedAndNotAfter() {
        let runs = ConditionBox(0)
        let worker = PeriodicWorker(name: "test", interval: 0.01) { runs.withLock { $0 += 1 } }
        worker.start()
        runs.wait { $0 >= 3 ? () : nil }
        worker.stop()
        let after = runs.withLock { $0 }
        #expect(runs.wait(seconds: 0.05) { $0 > after ? () : nil } == nil)
    }
}
