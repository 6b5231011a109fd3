import Foundation
import Logging
import MossaicCore
import MossaicMeta
import MossaicObjectStore
import Synchronization

/// The reclaim sweep of a read-write mount of a PostgreSQL filesystem: deletes the store
/// objects of chunks no file references any more while any number of hosts stay mounted, so
/// that the space of deleted and overwritten data comes back without `mossaicfs gc` (which
/// refuses while a host is mounted). PostgresMetaStore+Sweep has the protocol and why no host
/// ends up naming a deleted object; this drives it.
///
/// Every round, on every read-write mount (one host at a time does the work: the others find
/// the sweep's advisory lock taken and skip the round):
/// 1. objects of tombstones a sweeper left pending (it stopped between deleting rows and
///    objects) are deleted, and the tombstones marked done;
/// 2. stored chunks nothing references are marked, those referenced again unmarked;
/// 3. batches of chunks marked at least `sweep_grace` ago lose their rows (and get tombstones),
///    then their objects are deleted — except objects a retained backup names: a restore from
///    it would need them (as `gc` keeps them). A backup never changes, so each complete one is
///    read once and what it names is cached by its id; a backup claimed but not yet complete
///    stops the batches until it is (its dump may hold the rows), or for a day at most
///    (`abandonedBackup`). A backup that outlasts `backup_interval` while another host claims
///    the next one is not waited for: its dump may name rows swept meanwhile, whose objects a
///    restore from it would then lack (backups are meant to take a fraction of the interval).
/// Objects no row names (uploads whose commit never came, a host crashed) stay for `gc`.
public final class SharedChunkSweeper: Sendable {
    public struct Report: Sendable, Equatable {
        /// Chunks marked unreferenced this round, and marks cleared (referenced again).
        public var marked = 0
        public var cleared = 0
        /// Rows deleted, objects deleted and the bytes they held.
        public var chunks = 0
        public var objects = 0
        public var bytes: UInt64 = 0
        /// Eligible chunks a retained backup still names.
        public var keptForBackups = 0
        /// Objects whose DELETE failed (their tombstones stay pending: the next round retries).
        public var failures = 0
        /// Another host was sweeping: this round did nothing.
        public var skipped = false
        /// A backup is being written: no batch this round.
        public var waitingForBackup = false
        public init() {}
    }

    /// A claimed backup not complete after this long (ns) was abandoned (its host died, or
    /// backups were turned off after a failed one): it no longer holds the sweep. A day also
    /// covers the claiming host's clock being off.
    static let abandonedBackup: Int64 = 86_400 * 1_000_000_000

    /// Rows per batch: one transaction, whose row locks a host committing a reference to one of
    /// them waits on; the objects are deleted after it, without locks.
    static let batch = 512

    private let metadata: PostgresMetaStore
    private let store: any ObjectStore
    private let grace: Double
    private let threads: Int
    private let logger: Logger
    /// What each complete backup names, by backup id.
    private let backups = Mutex<[String: Set<String>]>([:])
    /// One round at a time in this process (the thread, and a test).
    private let running = Mutex(())
    private let worker = Mutex<PeriodicWorker?>(nil)

    public init(metadata: PostgresMetaStore, store: any ObjectStore, grace: Double, threads: Int, logger: Logger) {
        self.metadata = metadata; self.store = store; self.grace = grace; self.threads = max(1, threads); self.logger = logger
    }

    /// Seconds between rounds, as the SQLite sweep's (`ChunkSweeper.interval`): soon after the
    /// grace, and an idle round is two statements and a LIST of `backups/`.
    public static func interval(grace: Double) -> Double { min(60, max(1, grace / 4)) }

    public func start() {
        let worker = PeriodicWorker(name: "mossaicfs-sweep", interval: Self.interval(grace: grace)) { [weak self] in
            self?.sweepInBackground()
        }
        self.worker.withLock { $0 = worker }
        worker.start()
    }

    /// Stops the thread, waiting for a round in progress.
    public func stop() {
        worker.withLock { $0 }?.stop()
    }

    private func sweepInBackground() {
        do {
            let r = try sweep()
            if r.chunks > 0 || r.failures > 0 {
                logger.info("reclaim sweep", metadata: ["chunks": "\(r.chunks)", "objects": "\(r.objects)", "bytes": "\(r.bytes)",
                                                        "kept_for_backups": "\(r.keptForBackups)", "failures": "\(r.failures)"])
            }
        } catch .sessionLost {
            // This mount writes nothing any more; its daemon says so elsewhere.
        } catch {
            logger.warning("reclaim sweep failed; it tries again", metadata: ["error": "\(error)"])
        }
    }

    /// One round now (the thread runs them every `interval`).
    public func sweep() throws(MetaError) -> Report {
        try running.withLock { (_) throws(MetaError) -> Report in try sweepHoldingLock() }
    }

    private func sweepHoldingLock() throws(MetaError) -> Report {
        var report = Report()
        let leftover = try metadata.pendingSweptObjects(limit: Self.batch)
        for seq in Set(leftover.map(\.seq)).sorted() {
            let keys = leftover.filter { $0.seq == seq }.map(\.key)
            _ = try deleteObjects(seq: seq, keys.map { ($0, 0) }, report: &report)
        }
        guard let marks = try metadata.markUnreferencedChunks() else {
            report.skipped = true
            return report
        }
        report.marked = marks.marked
        report.cleared = marks.cleared
        let named: Set<String>, complete: [String]
        do { (named, complete) = try backupReferences() } catch {
            logger.warning("reclaim sweep: cannot read the backups in the store; nothing is deleted this round", metadata: ["error": "\(error)"])
            report.waitingForBackup = true
            return report
        }
        var cursor: SweepCursor?
        while true {
            let settled = { (claim: Int64) in
                claim == 0 || complete.contains { $0 >= Self.backupID(claimedAt: claim) }
                    || Timestamp.now().nanoseconds - claim > Self.abandonedBackup
            }
            guard let batch = try metadata.sweepUnreferencedChunks(grace: grace, limit: Self.batch, after: cursor, backupSettled: settled,
                                                                   named: { named.contains($0) }) else {
                report.skipped = true
                return report
            }
            if batch.waitingForBackup {
                report.waitingForBackup = true
                return report
            }
            report.keptForBackups += batch.keptForBackups
            report.chunks += batch.chunks
            report.bytes += try deleteObjects(seq: batch.seq, batch.objects, report: &report)
            guard batch.examined >= Self.batch, let next = batch.cursor else { return report }
            cursor = next
        }
    }

    /// Deletes the objects of tombstones `seq` (a missing one is gone already) and marks those
    /// deleted done. Returns the bytes freed.
    private func deleteObjects(seq: Int64, _ objects: [(key: String, bytes: UInt64)], report: inout Report) throws(MetaError) -> UInt64 {
        let outcome = Mutex((deleted: [Int](), failures: [String]()))
        let store = self.store
        WorkerPool.forEach(count: objects.count, width: threads, name: "mossaicfs-sweep") { i in
            var failure: String?
            do throws(ObjectStoreError) {
                try store.delete(objects[i].key)
            } catch .notFound {
                // Gone already (an earlier round that stopped before marking it done).
            } catch {
                failure = "\(objects[i].key): \(error)"
            }
            outcome.withLock { o in if let failure { o.failures.append(failure) } else { o.deleted.append(i) } }
        }
        let (deleted, failures) = outcome.withLock { ($0.deleted, $0.failures) }
        try metadata.finishSweep(seq: seq, keys: deleted.map { objects[$0].key })
        report.objects += deleted.count
        report.failures += failures.count
        if let first = failures.first {
            logger.warning("reclaim sweep: objects not deleted (tried again next round)", metadata: ["count": "\(failures.count)", "first": "\(first)"])
        }
        return deleted.reduce(0) { $0 + objects[$1].bytes }
    }

    /// The object keys the complete backups in the store name, and their ids. A backup seen
    /// for the first time is read whole (once: backups never change); pruned ones are forgotten.
    private func backupReferences() throws -> (named: Set<String>, complete: [String]) {
        let ids = try BackupCatalog.complete(in: store)
        var known = backups.withLock { $0 }
        for id in ids where known[id] == nil {
            logger.info("reclaim sweep: reading a backup for the objects it names", metadata: ["backup": "\(BackupCatalog.prefix)\(id)"])
            let reader = DumpReader(source: BackupCatalog.source(id, manifest: try BackupCatalog.manifest(id, in: store), in: store))
            _ = try reader.header()
            var keys: Set<String> = []
            try reader.storedChunkKeys { keys.insert($0) }
            known[id] = keys
        }
        known = known.filter { ids.contains($0.key) }
        backups.withLock { $0 = known }
        return (known.values.reduce(into: Set<String>()) { $0.formUnion($1) }, ids)
    }

    /// The id of the backup claimed at `claim` (ns, the claiming host's clock) is its start time
    /// on that host, formatted as `BackupCatalog.write` does, at or after the claim: a complete
    /// backup with an id not below this one's is that backup or a later one.
    static func backupID(claimedAt claim: Int64) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyyMMdd'T'HHmmss.SSS'Z'"
        return formatter.string(from: Date(timeIntervalSince1970: Double(claim / 1_000_000) / 1000))
    }
}
