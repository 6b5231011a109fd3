import Logging
import MossaicCore
import MossaicMeta
import MossaicObjectStore
import Synchronization

/// The background side of a read-write mount: a snapshot every `interval` seconds while the
/// metadata changed, the writer lease renewed every third of its duration, and the final
/// snapshot and lease release at unmount.
///
/// Both run on plain threads of their own (`PeriodicWorker`), never on the Swift concurrency
/// pool: FUSE callbacks block, and `snapshotNow()` — called from a FUSE worker thread for
/// `mossaicfs snapshot` — waits only on the snapshot lock, which only these threads hold.
/// Renewal has its own thread so that a long snapshot (the first upload of a large database)
/// cannot let the lease expire.
public final class MetadataReplicator: Sendable {
    public let writer: SnapshotWriter
    public let lease: WriterLease?
    private let logger: Logger
    private let snapshotWorker: PeriodicWorker
    private let leaseWorker: PeriodicWorker?
    /// What the threads last saw, to log a streak of failures once and its end.
    private final class Health: Sendable {
        struct State { var snapshotFailing = false; var leaseFailing = false; var swept = false }
        let state = Mutex(State())
    }

    /// `interval`: seconds between checks for changes (meta_interval).
    public init(writer: SnapshotWriter, lease: WriterLease?, interval: Double, logger: Logger) {
        self.writer = writer
        self.lease = lease
        self.logger = logger
        let health = Health()
        snapshotWorker = PeriodicWorker(name: "mossaicfs-snapshot", interval: interval) {
            Self.periodicSnapshot(writer: writer, health: health, logger: logger)
        }
        if let lease {
            leaseWorker = PeriodicWorker(name: "mossaicfs-lease", interval: lease.duration / 3) {
                Self.renew(lease: lease, health: health, logger: logger)
            }
        } else {
            leaseWorker = nil
        }
    }

    public func start() {
        leaseWorker?.start()
        snapshotWorker.start()
    }

    /// A snapshot now, if anything changed (`mossaicfs snapshot MOUNTPOINT`). Waits for a
    /// periodic snapshot in progress, then takes its own, so everything committed before the
    /// call is in the store when it returns.
    public func snapshotNow() throws(ReplicationError) -> SnapshotWriter.Outcome {
        try writer.snapshot()
    }

    /// Stops the threads; with `finalSnapshot`, publishes what changed since the last snapshot
    /// and, if that worked, deletes the lease. If the final snapshot fails, the lease is left
    /// in place: the local metadata is then newer than the store's, and no other machine may
    /// mount read-write until the lease expires (this machine may, at once, with the same
    /// cache_dir). Returns the error of the final snapshot, if any.
    @discardableResult
    public func stop(finalSnapshot: Bool) -> ReplicationError? {
        snapshotWorker.stop()
        leaseWorker?.stop()
        var failure: ReplicationError?
        if finalSnapshot {
            do throws(ReplicationError) {
                // The lease may have lapsed while the store was unreachable; renewing first
                // finds out whether someone took over (then the snapshot must not be taken).
                // Any other renewal error is the store's, and the snapshot says more.
                do throws(ReplicationError) { try lease?.renew() } catch {
                    if case .leaseLost = error { throw error }
                }
                _ = try writer.snapshot()
            } catch {
                failure = error
                logger.error("final metadata snapshot failed; the writer lease is kept so that no other machine mounts older metadata",
                             metadata: ["error": "\(error)"])
            }
        }
        if failure == nil, let lease {
            do { try lease.release() } catch {
                logger.warning("cannot delete the writer lease (it expires by itself)", metadata: ["error": "\(error)"])
            }
        }
        return failure
    }

    private static func periodicSnapshot(writer: SnapshotWriter, health: Health, logger: Logger) {
        if !health.state.withLock({ $0.swept }) {
            health.state.withLock { $0.swept = true }
            do {
                let removed = try writer.sweepUnreferencedPieces()
                if removed > 0 { logger.info("removed unreferenced metadata snapshot pieces", metadata: ["pieces": "\(removed)"]) }
            } catch {
                logger.warning("sweeping unreferenced metadata snapshot pieces failed", metadata: ["error": "\(error)"])
            }
        }
        do {
            _ = try writer.snapshot()
            if health.state.withLock({ (h) -> Bool in defer { h.snapshotFailing = false }; return h.snapshotFailing }) {
                logger.notice("metadata snapshots work again")
            }
        } catch {
            // Every failure is logged: while they last, the store lags behind this machine.
            let first = health.state.withLock { (h) -> Bool in defer { h.snapshotFailing = true }; return !h.snapshotFailing }
            switch error {
            case .leaseLost, .headMoved:
                if first { logger.critical("metadata snapshots stopped: \(error)") }
            default:
                logger.error("metadata snapshot failed (retried in the next interval)", metadata: ["error": "\(error)"])
            }
        }
    }

    private static func renew(lease: WriterLease, health: Health, logger: Logger) {
        do {
            try lease.renew()
            if health.state.withLock({ (h) -> Bool in defer { h.leaseFailing = false }; return h.leaseFailing }) {
                logger.notice("writer lease renewed again")
            }
        } catch {
            let first = health.state.withLock { (h) -> Bool in defer { h.leaseFailing = true }; return !h.leaseFailing }
            if case .leaseLost = error {
                if first { logger.critical("\(error); this mount no longer publishes metadata snapshots") }
            } else {
                logger.error("cannot renew the writer lease (retrying)", metadata: ["error": "\(error)"])
            }
        }
    }
}
