import MossaicCore
import MossaicReplication

/// The reclaim sweep of a read-write mount (ChunkSweeper.swift says the rule).
extension MossaicFilesystem {
    /// What one round of the sweep did.
    public struct SweepSummary: Sendable, Equatable {
        /// Released chunks whose rows left the metadata, and store objects deleted.
        public var chunks: Int
        public var objects: Int
        public var bytes: UInt64
        /// Released chunks past the grace that a retained metadata snapshot still needs.
        public var keptForSnapshots: Int
    }

    /// Sets the sweep up (once, by `FilesystemLoader`, after `attach`): it needs the
    /// snapshotter, to publish a removal before deleting objects, and its lease. `workDirectory`
    /// holds the snapshots it must read (those outside HEAD's lineage, rare).
    public func attachSweeper(workDirectory: String) {
        guard !options.readOnly, let replicator = replicator.withLock({ $0 }) else { return }
        let sweeper = ChunkSweeper(metadata: metadata, chunks: chunks, replicator: replicator, grace: options.sweepGrace,
                                   workDirectory: workDirectory, logger: logger)
        let worker = PeriodicWorker(name: "mossaicfs-sweep", interval: ChunkSweeper.interval(grace: options.sweepGrace)) {
            [weak self] in self?.sweepInBackground()
        }
        reclaim.withLock { $0 = (sweeper, worker) }
    }

    /// Starts the sweep's thread (with the mount's other background work).
    public func startSweeping() {
        reclaim.withLock { $0 }?.worker.start()
    }

    /// Stops it, waiting for a round in progress (before the final snapshot and the lease's
    /// release).
    public func stopSweeping() {
        reclaim.withLock { $0 }?.worker.stop()
    }

    /// One round now (tests; the thread runs them every few seconds to a minute). Nil for a
    /// mount without a sweep (read-only). `now`: the time the grace is measured against.
    public func sweepReleasedChunks(now: Timestamp = .now()) throws(FSError) -> SweepSummary? {
        guard let sweeper = reclaim.withLock({ $0 })?.sweeper else { return nil }
        try checkWritable()
        let r = try sweeper.sweep(now: now)
        return SweepSummary(chunks: r.chunks, objects: r.objects, bytes: r.bytes, keptForSnapshots: r.keptForSnapshots)
    }

    private func sweepInBackground() {
        do {
            _ = try sweepReleasedChunks()
        } catch .readOnly {
            // Fenced: another mount is the writer; its own sweep reclaims.
        } catch {
            logger.warning("reclaim sweep failed; it tries again", metadata: ["error": "\(error)"])
        }
    }
}
