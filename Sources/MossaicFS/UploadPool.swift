import Foundation
import MossaicCore
import MossaicMeta

/// A fixed set of threads for blocking background work: hashing and uploading chunks while FUSE
/// threads keep accepting writes, and fetching the chunks a sequential reader needs next.
///
/// Plain threads, not Swift concurrency: an upload blocks on the network for milliseconds,
/// and FUSE callbacks must never wait on the cooperative pool (it is 2 threads wide here).
final class UploadPool: @unchecked Sendable {
    // @unchecked: `queue` and `stopping` are guarded by `condition`.
    private let condition = NSCondition()
    private var queue: [() -> Void] = []
    private var stopping = false

    init(threads: Int) {
        for i in 0..<max(1, threads) {
            let thread = Thread { [self] in self.work() }
            thread.name = "mossaicfs-upload-\(i)"
            thread.start()
        }
    }

    /// Runs `job` on a pool thread; the ticket tells its outcome.
    func submit<T: Sendable>(_ job: @escaping @Sendable () throws(FSError) -> T) -> UploadTicket<T> {
        let ticket = UploadTicket<T>()
        condition.lock()
        queue.append {
            do throws(FSError) { ticket.finish(.success(try job())) } catch { ticket.finish(.failure(error)) }
        }
        condition.signal()
        condition.unlock()
        return ticket
    }

    /// Runs `job` on a pool thread, outcome unobserved (read-ahead).
    func run(_ job: @escaping @Sendable () -> Void) {
        condition.lock()
        queue.append(job)
        condition.signal()
        condition.unlock()
    }

    /// Lets the threads finish what is queued and exit.
    func stop() {
        condition.lock()
        stopping = true
        condition.broadcast()
        condition.unlock()
    }

    private func work() {
        while true {
            condition.lock()
            while queue.isEmpty && !stopping { condition.wait() }
            if queue.isEmpty { condition.unlock(); return }
            let job = queue.removeFirst()
            condition.unlock()
            job()
        }
    }
}

/// A page made a chunk: its reference, and the chunk row to insert if the chunk is new.
struct StoredChunk: Sendable {
    var ref: ChunkRef
    var new: NewChunk?
}

/// A page made a chunk that may still have to be stored: `bytes` are set when the chunk is
/// new and not inline, and `stored.new`'s location is filled in when they are stored.
struct PreparedChunk: Sendable {
    var stored: StoredChunk
    var bytes: [UInt8]?
}

/// The outcome of one queued job.
final class UploadTicket<T: Sendable>: @unchecked Sendable {
    // @unchecked: `result` is guarded by `condition`.
    private let condition = NSCondition()
    private var result: Result<T, FSError>?

    func finish(_ r: Result<T, FSError>) {
        condition.lock(); result = r; condition.broadcast(); condition.unlock()
    }

    /// Waits for the outcome; with `interruption`, throws `.interrupted` as soon as the request
    /// is interrupted (the job goes on, its outcome unobserved).
    func wait(_ interruption: Interruption? = nil) throws(FSError) -> T {
        guard let interruption else {
            condition.lock()
            while result == nil { condition.wait() }
            let r = result!
            condition.unlock()
            return try r.get()
        }
        let r = interruption.whileWatching(wake: { [condition] in condition.lock(); condition.broadcast(); condition.unlock() }) {
            condition.lock()
            defer { condition.unlock() }
            while result == nil && !interruption.isInterrupted { condition.wait() }
            return result
        }
        guard let r else { throw .interrupted }
        return try r.get()
    }

    var isDone: Bool {
        condition.lock(); defer { condition.unlock() }
        return result != nil
    }
}
