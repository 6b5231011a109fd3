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
            do throws(FSError) {
                try publish(file.ino, snapshot)
                file.committed(snapshot)
                return true
            } catch {
                logger.error("commit failed", metadata: ["ino": "\(file.ino.rawValue)", "error": "\(error)"])
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
        var seen: Set<ChunkHash> = []
        for (index, page) in snapshot.pages where index * chunkSize < size {
            let live = Int(min(chunkSize, size - index * chunkSize))
            var content: [UInt8]
            if page.written.covers(0..<live) {
                content = Array(page.bytes.prefix(live))  // unwritten tail bytes are zeros
            } else {
                content = try committedBytes(bases[index], 0..<live)
                page.overlay(onto: &content, range: 0..<live)
            }
            // Trailing zeros are not stored: a reference reads as zeros past its length. So a
            // sparse tail costs nothing, a short written prefix may become an inline chunk, and
            // an all-zero page is a hole with no chunk at all.
            if let last = content.lastIndex(where: { $0 != 0 }) {
                content.removeSubrange((last + 1)...)
            } else {
                changes.append((ChunkIndex(index), nil))
                continue
            }
            let hash = ChunkHash.of(content)
            changes.append((ChunkIndex(index), ChunkRef(index: ChunkIndex(index), hash: hash, length: content.count)))
            guard seen.insert(hash).inserted else { continue }
            if try meta({ () throws(MetaError) in try metadata.chunkInfo(hash) }) != nil { continue }  // dedup
            if content.count <= superblock.inlineMax {
                newChunks.append(NewChunk(hash: hash, length: content.count, state: .inline, inlineData: content))
            } else {
                do { try cache.upload(hash, content) } catch { throw error.fsError }
                newChunks.append(NewChunk(hash: hash, length: content.count, state: .stored, inlineData: nil))
            }
        }
        let now = Timestamp.now()
        let current = try meta { () throws(MetaError) in try metadata.attributes(of: ino) }
        let mtime = snapshot.mtime ?? current.mtime
        _ = try meta { () throws(MetaError) in
            try metadata.commit(FileCommit(ino: ino, chunks: changes, newChunks: newChunks, size: size,
                                           mtime: mtime, ctime: max(now, mtime)))
        }
    }
}
