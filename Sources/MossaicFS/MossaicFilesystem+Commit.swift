import MossaicCore
import MossaicMeta

/// The write path's commit (ARCHITECTURE.md §3): dirty pages become whole chunks, named by
/// their SHA-256; chunks the metadata does not know are stored (inline in SQLite if small, else
/// uploaded) BEFORE one SQLite transaction publishes the new chunk list, size and times. A crash
/// in between leaves at worst unreferenced objects, never a reference to a missing chunk.
/// In write-back mode "stored" means staged: fsynced in `cache_dir/staging`, stored in the
/// object store by background threads (StagingArea), and never named by a metadata snapshot
/// before it is there.
extension MossaicFilesystem {
    /// Commits the file's buffered writes, if any. Returns whether there were any.
    /// `durable`: the commit is fsynced (fsync(2)); otherwise it is atomic and survives a
    /// daemon crash at once, and the background syncer makes it power-loss durable within
    /// `sync_interval`.
    @discardableResult
    func commit(_ file: OpenFile, durable: Bool = false) throws(FSError) -> Bool {
        try file.commitLock.withLock { (_) throws(FSError) -> Bool in
            guard let snapshot = try file.snapshot() else { return false }
            let started = Timestamp.monotonicNow()
            do throws(FSError) {
                try publish(file.ino, snapshot, durable: durable)
                file.committed(snapshot)
                metrics.observe("mossaicfs_commit_duration_seconds", "Time to store a file's new chunks and publish them.",
                                seconds: Timestamp.monotonicNow().secondsSince(started))
                return true
            } catch {
                logger.error("commit failed", metadata: ["ino": "\(file.ino.rawValue)", "error": "\(error)"])
                metrics.increment("mossaicfs_commit_failures_total", "Commits that could not store or publish a file.")
                file.failed(error, committedSize: try? metadata.attributes(of: file.ino).size)
                throw error
            }
        }
    }

    private func publish(_ ino: InodeNumber, _ snapshot: OpenFile.Snapshot, durable: Bool) throws(FSError) {
        try checkWritable()
        let chunkSize = UInt64(FormatConstants.chunkSize)
        let size = snapshot.size
        // Base chunks for pages written only in part (read-modify-write).
        var partial: [UInt64] = []
        for (index, page) in snapshot.pages where index * chunkSize < size {
            let live = Int(min(chunkSize, size - index * chunkSize))
            if !page.written.covers(0..<live) { partial.append(index) }
        }
        var bases: [UInt64: ChunkRef] = [:]
        if let lo = partial.min(), let hi = partial.max() {
            for ref in try meta({ () throws(MetaError) in try metadata.chunkRefs(ino, indexes: lo...hi) }) {
                bases[ref.index.rawValue] = ref
            }
        }

        // Pages a background upload already made chunks are reused; the rest are built here,
        // small or known ones settled at once, others uploaded in parallel on the pool.
        var results: [(UInt64, UploadTicket)] = []
        for (index, page) in snapshot.pages where index * chunkSize < size {
            let live = Int(min(chunkSize, size - index * chunkSize))
            if let upload = snapshot.uploads[index], upload.version == page.version, live == FormatConstants.chunkSize {
                results.append((index, upload.ticket))
                continue
            }
            var content: [UInt8]
            if page.written.covers(0..<live) {
                content = Array(page.bytes.prefix(live))  // unwritten tail bytes are zeros
            } else {
                content = try committedBytes(bases[index], 0..<live)
                page.overlay(onto: &content, range: 0..<live)
            }
            let page = content
            results.append((index, uploads.submit { [self] () throws(FSError) in try storeChunk(page, index: index) }))
        }
        var changes: [(ChunkIndex, ChunkRef?)] = []
        var newChunks: [ChunkHash: NewChunk] = [:]
        var firstError: FSError?
        for (index, ticket) in results {
            do throws(FSError) {
                guard let stored = try ticket.wait() else { changes.append((ChunkIndex(index), nil)); continue }
                changes.append((ChunkIndex(index), stored.ref))
                if let new = stored.new { newChunks[new.hash] = new }
            } catch {
                if firstError == nil { firstError = error }  // wait for every job before failing
            }
        }
        if let firstError { throw firstError }
        let newChunkList = Array(newChunks.values)
        let now = Timestamp.now()
        let current = try meta { () throws(MetaError) in try metadata.attributes(of: ino) }
        let mtime = snapshot.mtime ?? current.mtime
        _ = try meta { () throws(MetaError) in
            try metadata.commit(FileCommit(ino: ino, chunks: changes, newChunks: newChunkList, size: size,
                                           mtime: mtime, ctime: max(now, mtime)), durable: durable)
        }
    }

    /// Makes `content` (page `index`'s bytes) a stored chunk: trailing zeros dropped, hashed,
    /// and — unless the metadata already knows that hash (dedup) — kept inline if small or
    /// uploaded. Returns the reference and the chunk row to insert, or nil for an all-zero
    /// page (a hole).
    ///
    /// Trailing zeros are not stored because a reference reads as zeros past its length: a
    /// sparse tail costs nothing and a short written prefix may become an inline chunk.
    /// Two uploads of one new chunk (a file repeating a page) both PUT the same bytes under
    /// the same name, which is harmless; the commit inserts its row once.
    func storeChunk(_ content: [UInt8], index: UInt64) throws(FSError) -> StoredChunk? {
        guard let last = content.lastIndex(where: { $0 != 0 }) else { return nil }
        let bytes = last + 1 == content.count ? content : Array(content[...last])
        let hash = ChunkHash.of(bytes)
        let ref = ChunkRef(index: ChunkIndex(index), hash: hash, length: bytes.count)
        if try meta({ () throws(MetaError) in try metadata.chunkInfo(hash) }) != nil { return StoredChunk(ref: ref, new: nil) }
        if bytes.count <= superblock.inlineMax {
            return StoredChunk(ref: ref, new: NewChunk(hash: hash, length: bytes.count, state: .inline, inlineData: bytes))
        }
        do {
            if options.writeback { try cache.stage(hash, bytes) } else { try cache.upload(hash, bytes) }
        } catch {
            throw error.fsError
        }
        return StoredChunk(ref: ref, new: NewChunk(hash: hash, length: bytes.count, state: .stored, inlineData: nil))
    }

    /// Starts uploads of pages a write completed (every byte written), so that a sequential
    /// writer's chunks are hashed and stored while it goes on writing and close(2) waits only
    /// for the tail. A file has at most `uploadWindow` uploads in flight; the writer waits
    /// beyond that, which bounds the work queued ahead of the store.
    func streamCompletedPages(_ file: OpenFile, touching range: Range<UInt64>) {
        let started = file.startUploads(touching: range) { index, bytes in
            uploads.submit { [self] () throws(FSError) in try storeChunk(bytes, index: index) }
        }
        guard started else { return }
        for ticket in file.uploadsBeyond(window: options.uploadWindow) {
            _ = try? ticket.wait()  // failures surface at the commit that uses the upload
        }
    }
}
