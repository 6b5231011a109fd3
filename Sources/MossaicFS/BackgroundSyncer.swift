import Foundation
import Logging
import MossaicCore
import MossaicMeta

/// Makes committed metadata durable against power loss within a bounded time.
///
/// Commits at close(2) are written with synchronous=NORMAL: atomic, and safe against a crash
/// of the daemon the moment they return, but only on disk once the WAL is fsynced. This
/// thread fsyncs it (a FULL commit) every `interval` seconds when there is something to sync —
/// the bargain ext4 makes with its 5-second journal commit, which is what lets small files be
/// created at thousands per second. fsync(2) never waits for it: it commits FULL itself.
final class BackgroundSyncer: @unchecked Sendable {
    // @unchecked: `stopping` and `thread` are guarded by `condition`.
    private let metadata: SQLiteMetaStore
    private let interval: Double
    private let logger: Logger
    private let condition = NSCondition()
    private var stopping = false
    private var running = false
    /// Runs before each sync (writes batched access times). Set once, before `start()`.
    var beforeSync: (@Sendable () -> Void)?

    init(metadata: SQLiteMetaStore, interval: Double, logger: Logger) {
        self.metadata = metadata
        self.interval = interval
        self.logger = logger
    }

    func start() {
        guard interval > 0 else { return }
        condition.lock()
        defer { condition.unlock() }
        guard !running else { return }
        running = true
        let thread = Thread { [self] in self.loop() }
        thread.name = "mossaicfs-sync"
        thread.start()
    }

    /// Stops the thread and waits for it; the caller syncs one last time.
    func stop() {
        condition.lock()
        stopping = true
        condition.broadcast()
        while running { condition.wait() }
        condition.unlock()
    }

    private func loop() {
        condition.lock()
        while !stopping {
            // A timed wait is the timer; stop() wakes it early.
            _ = condition.wait(until: Date(timeIntervalSinceNow: interval))
            if stopping { break }
            condition.unlock()
            beforeSync?()
            if metadata.hasUnsyncedChanges {
                do { try metadata.sync() } catch { logger.error("cannot make metadata durable: \(error)") }
            }
            condition.lock()
        }
        running = false
        condition.broadcast()
        condition.unlock()
    }
}
