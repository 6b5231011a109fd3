import MossaicCore
import MossaicMeta

/// The write path's commit (ARCHITECTURE.md §3): dirty pages become whole chunks, named by
/// their SHA-256; chunks the metadata does not know are stored (inline in SQLite if small, else
/// uploaded) BEFORE one SQLite transaction publishes the new chunk list, size and times. A crash
/// in between leaves at worst unreferenced objects, never a reference to a missing chunk.
extension MossaicFilesystem {
    func commit(_ file: OpenFile) throws(FSError) {
        try file.commitLock.withLock { (_) throws(FSError) in
            guard let snapshot = try file.snapshot() else { return }
            do throws(FSError) {
                try publish(file.ino, snapshot)
                file.committed(snapshot)
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
                content = Array(page.bytes.prefix(live))
                if content.count < live { content += repeatElement(0, count: live - content.count) }
            } else {
                content = try committedBytes(bases[index], 0..<live)
                page.overlay(onto: &content, range: 0..<live)
            }
            // An all-zero page is a hole: no chunk, no storage.
            if content.allSatisfy({ $0 == 0 }) {
                changes.append((ChunkIndex(index), nil))
                continue
            }
            let hash = ChunkHash.of(content)
            changes.append((ChunkIndex(index), ChunkRef(index: ChunkIndex(index), hash: hash, length: live)))
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
