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
    /// `deferringTail`: a commit made only to bound the buffered bytes leaves a sequential
    /// writer's last few pages (at most this many) for the next one (`OpenFile.snapshot`).
    /// `interruption`: the caller may give up waiting for the store (`.interrupted`); the file
    /// then stays dirty, not failed, and the next commit (release, at the latest) tries again.
    @discardableResult
    func commit(_ file: OpenFile, durable: Bool = false, deferringTail: Int? = nil, interruption: Interruption? = nil) throws(FSError) -> Bool {
        try file.commitLock.withLock { (_) throws(FSError) -> Bool in
            guard let snapshot = try file.snapshot(deferringTail: deferringTail) else { return false }
            let started = Timestamp.monotonicNow()
            do throws(FSError) {
                try publish(file.ino, snapshot, durable: durable, interruption: interruption)
                file.committed(snapshot)
                metrics.observe("mossaicfs_commit_duration_seconds", "Time to store a file's new chunks and publish them.",
                                seconds: Timestamp.monotonicNow().secondsSince(started))
                return true
            } catch .interrupted {
                logger.notice("commit abandoned: its caller was interrupted (the file stays dirty)", metadata: ["ino": "\(file.ino.rawValue)"])
                throw .interrupted
            } catch {
                logger.error("commit failed", metadata: ["ino": "\(file.ino.rawValue)", "error": "\(error)"])
                metrics.increment("mossaicfs_commit_failures_total", "Commits that could not store or publish a file.")
                file.failed(error, committedSize: try? metadata.attributes(of: file.ino).size)
                throw error
            }
        }
    }

    private func publish(_ ino: InodeNumber, _ snapshot: OpenFile.Snapshot, durable: Bool, interruption: Interruption?) throws(FSError) {
        try checkWritable()
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
        var bases: [UInt64: ChunkRef] = [:]
        if let lo = partial.min(), let hi = partial.max() {
            for ref in try meta({ () throws(MetaError) in try metadata.chunkRefs(ino, indexes: lo...hi) }) {
                bases[ref.index.rawValue] = ref
            }
        }

        // Pages a background upload already made chunks are reused. The rest are built and
        // hashed in parallel on the pool (small and known chunks settled there), then the new
        // ones stored, `packChunks` to a pack, in parallel.
        var reused: [(UInt64, UploadTicket<[StoredChunk?]>, Int)] = []
        var preparing: [(UInt64, UploadTicket<PreparedChunk?>)] = []
        for (index, page) in snapshot.pages where index * chunkSize < size {
            let live = Int(min(chunkSize, size - index * chunkSize))
            if let upload = snapshot.uploads[index], upload.version == page.version, live == FormatConstants.chunkSize {
                reused.append((index, upload.ticket, upload.slot))
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
            preparing.append((index, uploads.submit { [self] () throws(FSError) in try prepareChunk(page, index: index) }))
        }
        // Every page's outcome; a nil value is a hole (updateValue keeps it, `= nil` would not).
        var settled: [UInt64: StoredChunk?] = [:]
        var firstError: FSError?  // every job is waited for before failing
        var toStore: [(UInt64, PreparedChunk)] = []
        for (index, ticket) in preparing {
            do throws(FSError) {
                let prepared = try ticket.wait(interruption)
                if let prepared, prepared.bytes != nil { toStore.append((index, prepared)) } else { settled.updateValue(prepared?.stored, forKey: index) }
            } catch {
                if firstError == nil { firstError = error }
            }
        }
        var storing: [([UInt64], UploadTicket<[StoredChunk]>)] = []
        if firstError == nil {
            for start in stride(from: 0, to: toStore.count, by: options.packChunks) {
                let group = Array(toStore[start..<min(start + options.packChunks, toStore.count)])
                storing.append((group.map(\.0), uploads.submit { [self] () throws(FSError) in try storeChunks(group.map(\.1)) }))
            }
        }
        for (indexes, ticket) in storing {
            do throws(FSError) {
                for (index, stored) in zip(indexes, try ticket.wait(interruption)) { settled[index] = stored }
            } catch {
                if firstError == nil { firstError = error }
            }
        }
        for (index, ticket, slot) in reused {
            do throws(FSError) { settled.updateValue(try ticket.wait(interruption)[slot], forKey: index) } catch { if firstError == nil { firstError = error } }
        }
        if let firstError { throw firstError }
        var changes: [(ChunkIndex, ChunkRef?)] = []
        var newChunks: [ChunkHash: NewChunk] = [:]
        for (index, stored) in settled.sorted(by: { $0.key < $1.key }) {
            changes.append((ChunkIndex(index), stored?.ref))
            if let new = stored?.new { newChunks[new.hash] = new }
        }
        let newChunkList = Array(newChunks.values)
        // Again: storing may have taken long enough for the writer lease to lapse.
        try checkWritable()
        let now = Timestamp.now()
        let mtime = snapshot.mtime ?? current.mtime
        _ = try meta { () throws(MetaError) in
            try metadata.commit(FileCommit(ino: ino, chunks: changes, newChunks: newChunkList, size: size,
                                           mtime: mtime, ctime: max(now, mtime)), durable: durable)
        }
    }

    /// Makes `content` (page `index`'s bytes) a chunk: trailing zeros dropped, hashed, and
    /// settled at once if the metadata already knows that hash (dedup) or it is small enough
    /// to be inline; otherwise its bytes are returned to be stored (`storeChunks`). Nil for an
    /// all-zero page (a hole).
    ///
    /// Trailing zeros are not stored because a reference reads as zeros past its length: a
    /// sparse tail costs nothing and a short written prefix may become an inline chunk.
    func prepareChunk(_ content: [UInt8], index: UInt64) throws(FSError) -> PreparedChunk? {
        guard let last = content.lastIndex(where: { $0 != 0 }) else { return nil }
        let bytes = last + 1 == content.count ? content : Array(content[...last])
        let hash = ChunkHash.of(bytes)
        let ref = ChunkRef(index: ChunkIndex(index), hash: hash, length: bytes.count)
        if try meta({ () throws(MetaError) in try metadata.chunkInfo(hash) }) != nil {
            return PreparedChunk(stored: StoredChunk(ref: ref, new: nil), bytes: nil)
        }
        if bytes.count <= superblock.inlineMax {
            return PreparedChunk(stored: StoredChunk(ref: ref, new: NewChunk(hash: hash, length: bytes.count, state: .inline, inlineData: bytes)),
                                 bytes: nil)
        }
        return PreparedChunk(stored: StoredChunk(ref: ref, new: NewChunk(hash: hash, length: bytes.count, state: .stored, inlineData: nil)),
                             bytes: bytes)
    }

    /// Stores the new chunks among `prepared`: uploaded as ONE pack (a single one as its own
    /// object), or staged one by one in write-back mode. Returns them with their locations.
    /// Two stores of one new chunk (a file repeating a page, two files at once) both put
    /// complete bytes; the commit inserts the row once, and the other copy is garbage for gc.
    func storeChunks(_ prepared: [PreparedChunk]) throws(FSError) -> [StoredChunk] {
        var locations: [ChunkHash: ChunkLocation] = [:]
        do {
            if options.writeback {
                for p in prepared { if let bytes = p.bytes { locations[p.stored.ref.hash] = try cache.stage(p.stored.ref.hash, bytes) } }
            } else {
                locations = try cache.uploadPack(prepared.compactMap { p in p.bytes.map { (hash: p.stored.ref.hash, bytes: $0) } })
            }
        } catch {
            throw error.fsError
        }
        return prepared.map { p in
            var stored = p.stored
            if let location = locations[stored.ref.hash] { stored.new?.location = location }
            return stored
        }
    }

    /// One page made a stored chunk (prepared, and stored if new).
    func storeChunk(_ content: [UInt8], index: UInt64) throws(FSError) -> StoredChunk? {
        guard let prepared = try prepareChunk(content, index: index) else { return nil }
        return try storeChunks([prepared])[0]
    }

    /// Completed pages of a streaming writer made chunks, the new ones stored as one pack.
    func storePages(_ pages: [(UInt64, [UInt8])]) throws(FSError) -> [StoredChunk?] {
        var prepared: [PreparedChunk?] = []
        for (index, bytes) in pages { prepared.append(try prepareChunk(bytes, index: index)) }
        let stored = try storeChunks(prepared.compactMap { $0 })
        var next = stored.makeIterator()
        return prepared.map { $0 == nil ? nil : next.next()! }
    }

    /// Starts uploads of pages a write completed (every byte written), `packChunks` pages per
    /// pack, so that a sequential writer's chunks are hashed and stored while it goes on
    /// writing and close(2) waits only for the tail. A file has at most `uploadWindow` pages
    /// in uploads in flight; the writer waits beyond that, which bounds the work queued ahead
    /// of the store.
    /// An interrupted writer stops waiting: its bytes are buffered, and the uploads go on.
    func streamCompletedPages(_ file: OpenFile, touching range: Range<UInt64>, interruption: Interruption? = nil) {
        let started = file.startUploads(touching: range, groupSize: options.packChunks) { pages in
            uploads.submit { [self] () throws(FSError) in try storePages(pages) }
        }
        guard started else { return }
        for ticket in file.uploadsBeyond(window: options.uploadWindow) {
            do throws(FSError) {
                _ = try ticket.wait(interruption)
            } catch .interrupted {
                return
            } catch {
                // Failures surface at the commit that uses the upload.
            }
        }
    }
}
