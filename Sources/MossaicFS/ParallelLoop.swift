import MossaicCore
import Synchronization

/// Runs `body(i)` for every `i` in `0..<count` on up to `threads` threads of an `UploadPool`
/// and returns when all are done: for offline tools (fsck --verify, gc) whose object store
/// calls block, so parallel requests need threads of their own.
enum ParallelLoop {
    static func run(count: Int, threads: Int, _ body: @escaping @Sendable (Int) -> Void) {
        guard count > 0 else { return }
        let width = max(1, min(threads, count))
        let next = Mutex(0)
        let pool = UploadPool(threads: width)
        defer { pool.stop() }
        let tickets = (0..<width).map { _ in
            pool.submit { () throws(FSError) -> StoredChunk? in
                while true {
                    let i = next.withLock { n -> Int in defer { n += 1 }; return n }
                    guard i < count else { return nil }
                    body(i)
                }
            }
        }
        for ticket in tickets { _ = try? ticket.wait() }
    }
}
