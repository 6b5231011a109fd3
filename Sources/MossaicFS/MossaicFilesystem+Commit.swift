import MossaicCore
import MossaicMeta

/// The write path's commit (ARCHITECTURE.md §3): dirty pages become whole chunks, named by
/// their SHA-256; chunks the metadata does not know are stored (inline in SQLite if small, else
/// uploaded) BEFORE one SQLite transaction publishes the new chunk list, size and times. A crash
/// in between leaves at worst unreferenced objects, never a reference to a missing chunk.
extension MossaicFilesystem {
    /// Commits the file's buffered writes, if any. Returns whether there were any.
    @discardableResult
    func commit(_ file: OpenFile) throws(FSError) -> Bool {
        try file.commitLock.withLock { (_) throws(FSError) -> Bool in
            guard let snapshot = try file.snapshot() else { return false }
            let started = Timestamp.monotonicNow()
            do throws(FSError) {
                try publish(file.ino, snapshot)
                file.committed(snapshot)
                metrics.observe("mossaicfs_commit_duration_seconds", "Time to store a file's new chunks and publish them.",
                                seconds: Timestamp.monotonicNow().secondsSince(started))
                return true
            } catch {
                logger.error("commit failed", metadata: ["ino": "\(file.ino.rawValue)", "error": "\(error)"])
                metrics.increment("mossaicfs_commit_failures_total", "Commits that could not store or publish a file.")
                file.failed(error)
                throw error
            }
        }
    }

    private func publish(_ ino: InodeNumber, _ snapshot: OpenFile.Snapshot) throws(FSError) {
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

        var changes: [(ChunkIndex, ChunkRef?)] = []
        var newChunks: [NewChunk] = []
        for (index, page) in snapshot.pages where index * chunkSize < size {
            let live = Int(min(chunkSize, size - index * chunkSize))
            var content: [UInt8]
            if page.written.covers(0..<live) {
                content = Array(page.bytes.prefix(live))  // unwritten tail bytes are zeros
            } else {
                content = try committedBytes(bases[index], 0..<live)
                page.overlay(onto: &content, range: 0..<live)
            }
            guard let (ref, new) = try storeChunk(content, index: index, pending: newChunks) else {
                changes.append((ChunkIndex(index), nil))
                continue
            }
            changes.append((ChunkIndex(index), ref))
            if let new { newChunks.append(new) }
        }
        let now = Timestamp.now()
        let current = try meta { () throws(MetaError) in try metadata.attributes(of: ino) }
        let mtime = snapshot.mtime ?? current.mtime
        _ = try meta { () throws(MetaError) in
            try metadata.commit(FileCommit(ino: ino, chunks: changes, newChunks: newChunks, size: size,
                                           mtime: mtime, ctime: max(now, mtime)))
        }
    }

    /// Makes `content` (page `index`'s bytes) a stored chunk: trailing zeros dropped, hashed,
    /// and — unless the metadata already knows that hash (dedup) — kept inline if small or
    /// uploaded. Returns the reference and the chunk row to insert, or nil for an all-zero
    /// page (a hole).
    ///
    /// Trailing zeros are not stored because a reference reads as zeros past its length: a
    /// sparse tail costs nothing and a short written prefix may become an inline chunk.
    /// `pending`: chunks this commit already stores (a file may repeat a page).
    func storeChunk(_ content: [UInt8], index: UInt64, pending: [NewChunk]) throws(FSError) -> (ChunkRef, NewChunk?)? {
        guard let last = content.lastIndex(where: { $0 != 0 }) else { return nil }
        let bytes = last + 1 == content.count ? content : Array(content[...last])
        let hash = ChunkHash.of(bytes)
        let ref = ChunkRef(index: ChunkIndex(index), hash: hash, length: bytes.count)
        if pending.contains(where: { $0.hash == hash }) { return (ref, nil) }
        if try meta({ () throws(MetaError) in try metadata.chunkInfo(hash) }) != nil { return (ref, nil) }
        if bytes.count <= superblock.inlineMax {
            return (ref, NewChunk(hash: hash, length: bytes.count, state: .inline, inlineData: bytes))
        }
        do { try cache.upload(hash, bytes) } catch { throw error.fsError }
        return (ref, NewChunk(hash: hash, length: bytes.count, state: .stored, inlineData: nil))
    }
}
