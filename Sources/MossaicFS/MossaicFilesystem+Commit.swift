import MossaicCore
import MossaicMeta

/// The write path's commit (ARCHITECTURE.md §3): dirty pages become whole chunks, named by
/// their SHA-256 (`FileWriter.prepareCommit` over `ChunkStore`); chunks the metadata does not
/// know are stored (inline in SQLite if small, else uploaded or staged) BEFORE one SQLite
/// transaction publishes the new chunk list, size and times. A crash in between leaves at
/// worst unreferenced objects, never a reference to a missing chunk. In write-back mode
/// "stored" means staged: fsynced in `cache_dir/staging`, stored in the object store by
/// background threads (StagingArea), and never named by a metadata snapshot before it is there.
extension MossaicFilesystem {
    /// Commits the file's buffered writes, if any. Returns whether there were any.
    /// `durable`: the commit is fsynced (fsync(2)); otherwise it is atomic and survives a
    /// daemon crash at once, and the background syncer makes it power-loss durable within
    /// `sync_interval`.
    /// `deferringTail`: a commit made only to bound the buffered bytes leaves a sequential
    /// writer's last few pages (at most this many) for the next one (`FileWriter.snapshot`).
    /// `interruption`: the caller may give up waiting for the store (`.interrupted`); the file
    /// then stays dirty, not failed, and the next commit (release, at the latest) tries again.
    @discardableResult
    func commit(_ file: OpenFile, durable: Bool = false, deferringTail: Int? = nil, interruption: Interruption? = nil) throws(FSError) -> Bool {
        try file.writer.commitLock.withLock { (_) throws(FSError) -> Bool in
            try commitHoldingLock(file, durable: durable, deferringTail: deferringTail, interruption: interruption)
        }
    }

    /// Commits the file unless a commit of it is running already: nil then.
    func commitIfIdle(_ file: OpenFile) throws(FSError) -> Bool? {
        try file.writer.commitLock.withLockIfAvailable { (_) throws(FSError) -> Bool in
            try commitHoldingLock(file, durable: false, deferringTail: nil, interruption: nil)
        }
    }

    private func commitHoldingLock(_ file: OpenFile, durable: Bool, deferringTail: Int?, interruption: Interruption?) throws(FSError) -> Bool {
        guard let snapshot = try file.writer.snapshot(deferringTail: deferringTail) else { return false }
        let started = Timestamp.monotonicNow()
        do throws(FSError) {
            try publish(file, snapshot, durable: durable, interruption: interruption)
            file.writer.committed(snapshot)
            metrics.observe("mossaicfs_commit_duration_seconds", "Time to store a file's new chunks and publish them.",
                            seconds: Timestamp.monotonicNow().secondsSince(started))
            return true
        } catch .interrupted {
            logger.notice("commit abandoned: its caller was interrupted (the file stays dirty)", metadata: ["ino": "\(file.ino.rawValue)"])
            throw .interrupted
        } catch {
            logger.error("commit failed", metadata: ["ino": "\(file.ino.rawValue)", "error": "\(error)"])
            metrics.increment("mossaicfs_commit_failures_total", "Commits that could not store or publish a file.")
            file.writer.failed(error, committedSize: try? metadata.attributes(of: file.ino).size)
            throw error
        }
    }

    private func publish(_ file: OpenFile, _ snapshot: FileWriter.Snapshot, durable: Bool, interruption: Interruption?) throws(FSError) {
        var snapshot = snapshot
        try checkWritable()
        let ino = file.ino
        let chunkSize = UInt64(FormatConstants.chunkSize)
        let current = try meta { () throws(MetaError) in try metadata.attributes(of: ino) }
        // A partial snapshot ends where its pages end; it never shortens the committed file
        // (a writer overwriting a longer file in place).
        let size = snapshot.isPartial ? max(snapshot.size, current.size) : snapshot.size
        // Base chunks for pages written only in part (read-modify-write).
        var partial: [UInt64] = []
        for (index, page) in snapshot.pages where index * chunkSize < size {
            let live = Int(min(chunkSize, size - index * chunkSize))
            if !page.written.covers(0..<live) { partial.append(index) }
        }
        // Patches are made against the page as read here; if it changed before the
        // transaction (it is checked there), the commit is made again from the page as it is
        // now, with whole chunks.
        var patching = true
        var swept = SweptRetry()
        while true {
            var bases: [UInt64: ChunkRef] = [:]
            if let lo = partial.min(), let hi = partial.max() {
                bases = try fileChunkRefs(file, lo...hi)
            }
            let prepared = try file.writer.prepareCommit(snapshot, size: size, chunks: chunks, base: bases, patching: patching,
                                                         interruption: interruption)
            // Again: storing may have taken long enough for the writer lease to lapse.
            try checkWritable()
            let now = Timestamp.now()
            let mtime = snapshot.mtime ?? current.mtime
            defer { file.reader.invalidate(); withExtendedLifetime(prepared.pins) {} }
            do throws(MetaError) {
                var commit = FileCommit(ino: ino, chunks: prepared.changes, newChunks: prepared.newChunks, size: size,
                                        mtime: mtime, ctime: max(now, mtime), patches: prepared.patches)
                commit.storedAfterSweep = swept.storedAfter
                _ = try metadata.commit(commit, durable: durable)
            } catch .staleBase where patching {
                logger.debug("commit: a page changed under its patches; made again with whole chunks", metadata: ["ino": "\(ino.rawValue)"])
                patching = false
                continue
            } catch .sweptChunks(let through, let pending) where swept.again(through: through, pending: pending) {
                // Made again from the pages' bytes: uploads of pages still open may name the
                // objects the sweep took too.
                forgetSwept(prepared.changes.compactMap { $0.1?.hash } + prepared.newChunks.map(\.hash), ino: ino)
                snapshot.uploads = [:]
                continue
            } catch {
                throw error.fsError
            }
            countPatches(prepared, bases: bases)
            return
        }
    }

    /// A commit found chunks a reclaim sweep of another host took (PostgreSQL,
    /// `MetaError.sweptChunks`): this process forgets having stored them, so that making the
    /// commit again stores them anew (or finds them stored again by someone else).
    func forgetSwept(_ hashes: [ChunkHash], ino: InodeNumber) {
        chunks.forget(hashes)
        logger.notice("commit: chunks were reclaimed by a sweep meanwhile; storing them again", metadata: ["ino": "\(ino.rawValue)"])
        metrics.increment("mossaicfs_commit_sweep_retries_total", "Commits made again because a reclaim sweep took chunks they named.")
    }

    /// The small-write path's counters: pages published as patches, and pages that had patches
    /// and became one chunk again (compactions).
    private func countPatches(_ prepared: FileWriter.PreparedCommit, bases: [UInt64: ChunkRef]) {
        if !prepared.patches.isEmpty {
            metrics.increment("mossaicfs_patched_pages_total", "Pages a commit published as patches over their chunk (small writes).",
                              by: Double(prepared.patches.count))
        }
        let compacted = prepared.changes.filter { bases[$0.0.rawValue].map { !$0.patches.isEmpty } ?? false }.count
        if compacted > 0 {
            metrics.increment("mossaicfs_compacted_pages_total", "Pages with patches a commit made one chunk again.", by: Double(compacted))
        }
    }

    /// References of chunks `indexes` of an open file, from its chunk map (`FileReader`).
    func fileChunkRefs(_ file: OpenFile, _ indexes: ClosedRange<UInt64>) throws(FSError) -> [UInt64: ChunkRef] {
        try file.reader.refs(indexes, epoch: metadata.epoch) { (range) throws(FSError) in
            try meta { () throws(MetaError) in try metadata.chunkRefs(file.ino, indexes: range) }
        }
    }

    /// The chunk list of `ino` changed outside a commit of its buffered writes (truncation,
    /// hole punching, copy_file_range): its open file's chunk map is read again.
    func chunkListChanged(_ ino: InodeNumber) {
        openFiles.withLock { $0[ino] }?.reader.invalidate()
    }

    /// Frees write memory for a writer waiting on the `MemoryLimiter`: commits the open file
    /// holding the most buffered bytes whose commit is not already running.
    func relieveWriteMemory() -> MemoryLimiter.Relief {
        let candidates = openFiles.withLock { Array($0.values) }
            .map { ($0, $0.writer.dirtyBytes) }.filter { $0.1 > 0 }.sorted { $0.1 > $1.1 }
        guard !candidates.isEmpty else { return .nothing }
        for (file, _) in candidates {
            do throws(FSError) {
                if try commitIfIdle(file) != nil { return .freed }
            } catch {
                return .freed  // failed: its pages were discarded, which frees them too
            }
        }
        return .pending
    }
}
