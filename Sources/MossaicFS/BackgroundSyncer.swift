import Logging
import MossaicCore
import MossaicMeta
import Synchronization

/// Makes committed metadata durable against power loss within a bounded time.
///
/// Commits at close(2) are written with synchronous=NORMAL: atomic, and safe against a crash
/// of the daemon the moment they return, but only on disk once the WAL is fsynced. This
/// thread fsyncs it (a FULL commit) every `interval` seconds when there is something to sync —
/// the bargain ext4 makes with its 5-second journal commit, which is what lets small files be
/// created at thousands per second. fsync(2) never waits for it: it commits FULL itself.
final class BackgroundSyncer: Sendable {
    private let metadata: any MetaStore
    private let interval: Double
    private let logger: Logger
    private let worker = Mutex<PeriodicWorker?>(nil)

    init(metadata: any MetaStore, interval: Double, logger: Logger) {
        self.metadata = metadata
        self.interval = interval
        self.logger = logger
    }

    /// Starts the thread; `beforeSync` runs before each sync (writes batched access times).
    func start(beforeSync: @escaping @Sendable () -> Void) {
        guard interval > 0 else { return }
        let (metadata, logger) = (self.metadata, self.logger)
        let worker = PeriodicWorker(name: "mossaicfs-sync", interval: interval) {
            beforeSync()
            if metadata.hasUnsyncedChanges {
                do { try metadata.sync() } catch MetaError.sessionLost {
                    // Said once, when the session was found lost (MossaicFilesystem+Sessions).
                } catch { logger.error("cannot make metadata durable: \(error)") }
            }
        }
        self.worker.withLock { $0 = worker }
        worker.start()
    }

    /// Stops the thread and waits for it; the caller syncs one last time.
    func stop() { worker.withLock { $0 }?.stop() }
}
