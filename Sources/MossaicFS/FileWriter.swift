import MossaicCore
import MossaicMeta
import Synchronization

/// The write side of a regular file with open handles (ARCHITECTURE.md §8): the dirty pages
/// all its handles share (so a read through one descriptor sees a write through another), its
/// size as written, the streaming of completed pages to the store while the writer goes on,
/// the deferral of a sequential writer's tail, the preparation of a commit's chunks, and the
/// failure of its last commit. Its pages' bytes are drawn from the mount's ONE
/// `MemoryLimiter`.
///
/// A file whose commit failed stays failed: every later write, flush and fsync through any of
/// its handles reports that error, and nothing is reported durable that was not stored. The
/// state is dropped when the last handle is released.
///
/// Lock order: `commitLock` → `state`. `state` is held only for memory operations; commits do
/// their I/O holding `commitLock` alone, so reads and writes continue during an upload. No
/// lock is held while a writer waits for memory.
final class FileWriter: Sendable {
    struct State {
        var pages: [UInt64: DirtyPage] = [:]
        var size: UInt64
        /// The size differs from the committed one.
        var sizeDirty = false
        /// Time of the last write not yet committed.
        var mtime: Timestamp?
        var failure: FSError?
        var writeCounter: UInt64 = 0
        var dirtyBytes = 0
        /// Background uploads of completed pages, by page index, with the page version each
        /// started from (a page written again needs a new one).
        var uploads: [UInt64: PageUpload] = [:]
        /// Completed pages (index → version) waiting for enough others to fill a pack.
        var readyPages: [UInt64: UInt64] = [:]

        var isDirty: Bool { !pages.isEmpty || sizeDirty || mtime != nil }
    }

    /// One page's part in a background upload: a job stores several completed pages as one
    /// pack, and the page's chunk is entry `slot` of the job's result.
    struct PageUpload: Sendable {
        var version: UInt64
        var future: Future<[StoredChunk?], FSError>
        var slot: Int
    }

    /// What a commit publishes: a copy of the dirty state at one moment.
    struct Snapshot {
        var pages: [(UInt64, DirtyPage)]
        var size: UInt64
        var mtime: Timestamp?
        var writeCounter: UInt64
        var uploads: [UInt64: PageUpload]
        /// Pages past `size` were left buffered (`snapshot(deferringTail:)`): publishing this
        /// does not make the file clean.
        var isPartial = false
    }

    /// The chunk list changes, new chunk rows and page patches of one commit.
    struct PreparedCommit {
        var changes: [(ChunkIndex, ChunkRef?)]
        var newChunks: [NewChunk]
        var patches: [PagePatches] = []
        /// Hold these until the commit's transaction is done: the reclaim sweep leaves its chunks alone.
        var pins: [ChunkPin]
    }

    let state: Mutex<State>
    let commitLock = Mutex(())
    private let memory: MemoryLimiter

    init(size: UInt64, memory: MemoryLimiter) {
        self.state = Mutex(State(size: size))
        self.memory = memory
    }

    var dirtyBytes: Int { state.withLock { $0.dirtyBytes } }

    /// Buffers a write, first taking the memory it needs from the limiter (which may commit
    /// files, this one included, to free some: `relieve`). Returns the number of dirty bytes
    /// now buffered for this file.
    func write(_ data: UnsafeRawBufferPointer, at offset: UInt64, now: Timestamp, interruption: Interruption?,
               relieve: () -> MemoryLimiter.Relief) throws(FSError) -> Int {
        let chunkSize = UInt64(FormatConstants.chunkSize)
        // What the pages would grow by now; corrected below if another write came between.
        let estimate = try state.withLock { (s) throws(FSError) -> Int in
            if let failure = s.failure { throw failure }
            return Self.growth(s.pages, data.count, at: offset)
        }
        try memory.reserve(estimate, interruption: interruption, relieve: relieve)
        do {
            return try state.withLock { (s) throws(FSError) -> Int in
                if let failure = s.failure { throw failure }
                s.writeCounter += 1
                var done = 0, grown = 0
                while done < data.count {
                    let position = offset + UInt64(done)
                    let index = position / chunkSize
                    let inPage = Int(position % chunkSize)
                    let n = min(data.count - done, FormatConstants.chunkSize - inPage)
                    var page = s.pages.removeValue(forKey: index) ?? DirtyPage()
                    let before = page.bytes.count
                    page.write(UnsafeRawBufferPointer(rebasing: data[done..<(done + n)]), at: inPage)
                    page.version = s.writeCounter
                    grown += page.bytes.count - before
                    s.pages[index] = page
                    done += n
                }
                s.dirtyBytes += grown
                memory.adjust(by: grown - estimate)
                let end = offset + UInt64(data.count)
                if end > s.size { s.size = end; s.sizeDirty = true }
                s.mtime = now
                return s.dirtyBytes
            }
        } catch {
            memory.release(estimate)
            throw error
        }
    }

    /// How many bytes `pages` grow by when `count` bytes are written at `offset`.
    private static func growth(_ pages: [UInt64: DirtyPage], _ count: Int, at offset: UInt64) -> Int {
        let chunkSize = UInt64(FormatConstants.chunkSize)
        guard count > 0 else { return 0 }
        var grown = 0
        let end = offset + UInt64(count)
        for index in (offset / chunkSize)...((end - 1) / chunkSize) {
            let upper = Int(min(end - index * chunkSize, chunkSize))
            grown += max(0, upper - (pages[index]?.bytes.count ?? 0))
        }
        return grown
    }

    /// Applies a truncation (already committed to the metadata) to the buffered pages.
    func truncated(to size: UInt64) {
        let chunkSize = UInt64(FormatConstants.chunkSize)
        let freed = state.withLock { s -> Int in
            let before = s.dirtyBytes
            for (index, page) in s.pages where index * chunkSize >= size {
                s.dirtyBytes -= page.bytes.count
                s.pages[index] = nil
                s.uploads[index] = nil
                s.readyPages[index] = nil
            }
            let last = size / chunkSize
            if size % chunkSize != 0, var page = s.pages[last] {
                let before = page.bytes.count
                page.cut(at: Int(size % chunkSize))
                s.dirtyBytes -= before - page.bytes.count
                s.pages[last] = page
            }
            s.size = size
            s.sizeDirty = false
            return before - s.dirtyBytes
        }
        memory.release(freed)
    }

    /// A copy of the dirty state to publish, or nil if nothing is dirty.
    ///
    /// `deferringTail`: a commit that only bounds memory (not close, not fsync) leaves a
    /// sequential writer's last pages — those past its finished uploads, when there are at most
    /// this many — buffered for the next commit. They are pages in uploads still running,
    /// completed pages still gathering into a pack and the page being written: waiting for the
    /// first would stall the writer until the store drained, storing the others now would store
    /// them again (in a fuller pack, or complete) moments later. The snapshot then ends where
    /// the published pages end, so the published file never ends in bytes that were not
    /// published. Anything else (a random writer's scattered pages) is committed.
    func snapshot(deferringTail: Int? = nil) throws(FSError) -> Snapshot? {
        let chunkSize = UInt64(FormatConstants.chunkSize)
        return try state.withLock { (s) throws(FSError) -> Snapshot? in
            if let failure = s.failure { throw failure }
            guard s.isDirty else { return nil }
            var pages = s.pages.sorted { $0.key < $1.key }
            var snapshot = Snapshot(pages: pages, size: s.size, mtime: s.mtime, writeCounter: s.writeCounter, uploads: s.uploads)
            // Only looked for when deferring: close and fsync commit everything. The frontier
            // is the highest page of a finished upload below every running one, so the commit
            // waits for no upload and the pipeline keeps flowing; if there is none (or its tail
            // is too long), the highest page in any upload, whose commit waits for it.
            if let deferringTail {
                let current = s.uploads.filter { s.pages[$0.key]?.version == $0.value.version }
                let oldestRunning = current.filter { !$0.value.future.isDone }.keys.min() ?? .max
                let finished = current.keys.filter { $0 < oldestRunning }.max()  // all done: below every running one
                for frontier in [finished, current.keys.max()].compactMap({ $0 }) {
                    let tail = pages.drop { $0.0 <= frontier }.count
                    guard tail > 0, tail <= deferringTail else { continue }
                    pages.removeLast(tail)
                    snapshot.pages = pages
                    snapshot.size = min(s.size, (frontier + 1) * chunkSize)
                    snapshot.isPartial = true
                    break
                }
            }
            return snapshot
        }
    }

    /// Makes the snapshot's pages chunks for one commit of a file now `size` bytes long.
    /// Pages a background upload already made chunks are reused; the rest are built (a page
    /// written only in part is laid over its committed chunk, `base`) and hashed in parallel on
    /// the chunk store's workers, the new ones stored `packChunks` to a pack, in parallel. Every
    /// job is waited for before an error is thrown.
    ///
    /// `patching`: a page written in small part becomes patches over its committed chunk
    /// (`PagePatchPlanner`) instead of a new chunk; off for the retry of a commit whose page
    /// changed under its patches.
    func prepareCommit(_ snapshot: Snapshot, size: UInt64, chunks: ChunkStore, base: [UInt64: ChunkRef], patching: Bool = true,
                       interruption: Interruption?) throws(FSError) -> PreparedCommit {
        let chunkSize = UInt64(FormatConstants.chunkSize)
        var reused: [(UInt64, Future<[StoredChunk?], FSError>, Int)] = []
        var preparing: [(UInt64, Future<PreparedChunk?, FSError>)] = []
        var patches: [PagePatches] = []
        for (index, page) in snapshot.pages where index * chunkSize < size {
            let live = Int(min(chunkSize, size - index * chunkSize))
            if let upload = snapshot.uploads[index], upload.version == page.version, live == FormatConstants.chunkSize {
                reused.append((index, upload.future, upload.slot))
                continue
            }
            if patching, let planned = PagePatchPlanner.patches(for: page, index: index, live: live, base: base[index],
                                                                inlineMax: chunks.configuration.inlineMax) {
                patches.append(planned)
                continue
            }
            var content: [UInt8]
            if page.written.covers(0..<live) {
                content = Array(page.bytes.prefix(live))  // unwritten tail bytes are zeros
            } else {
                content = try chunks.bytes(base[index], 0..<live)
                page.overlay(onto: &content, range: 0..<live)
            }
            let page = content
            preparing.append((index, chunks.workers.submit { () throws(FSError) in try chunks.prepare(page, index: index) }))
        }
        // Every page's outcome; a nil value is a hole (updateValue keeps it, `= nil` would not).
        var settled: [UInt64: StoredChunk?] = [:]
        var firstError: FSError?
        var toStore: [(UInt64, PreparedChunk)] = []
        for (index, future) in preparing {
            do throws(FSError) {
                let prepared = try future.wait(interruption)
                if let prepared, prepared.bytes != nil { toStore.append((index, prepared)) } else { settled.updateValue(prepared?.stored, forKey: index) }
            } catch {
                if firstError == nil { firstError = error }
            }
        }
        var storing: [([UInt64], Future<[StoredChunk], FSError>)] = []
        if firstError == nil {
            let packChunks = chunks.configuration.packChunks
            for start in stride(from: 0, to: toStore.count, by: packChunks) {
                let group = Array(toStore[start..<min(start + packChunks, toStore.count)])
                storing.append((group.map(\.0), chunks.workers.submit { () throws(FSError) in try chunks.store(group.map(\.1)) }))
            }
        }
        for (indexes, future) in storing {
            do throws(FSError) {
                for (index, stored) in zip(indexes, try future.wait(interruption)) { settled[index] = stored }
            } catch {
                if firstError == nil { firstError = error }
            }
        }
        for (index, future, slot) in reused {
            do throws(FSError) { settled.updateValue(try future.wait(interruption)[slot], forKey: index) } catch { if firstError == nil { firstError = error } }
        }
        if let firstError { throw firstError }
        var changes: [(ChunkIndex, ChunkRef?)] = []
        var newChunks: [ChunkHash: NewChunk] = [:]
        for (index, stored) in settled.sorted(by: { $0.key < $1.key }) {
            changes.append((ChunkIndex(index), stored?.ref))
            if let new = stored?.new { newChunks[new.hash] = new }
        }
        return PreparedCommit(changes: changes, newChunks: Array(newChunks.values), patches: patches,
                              pins: settled.values.compactMap { $0?.pin })
    }

    /// After a successful commit of `snapshot`: drops what it published, keeps later writes.
    func committed(_ snapshot: Snapshot) {
        let freed = state.withLock { s -> Int in
            let before = s.dirtyBytes
            for (index, page) in snapshot.pages where s.pages[index]?.version == page.version {
                s.dirtyBytes -= page.bytes.count
                s.pages[index] = nil
                if s.uploads[index]?.version == page.version { s.uploads[index] = nil }
                if s.readyPages[index] == page.version { s.readyPages[index] = nil }
            }
            if s.writeCounter == snapshot.writeCounter && !snapshot.isPartial { s.mtime = nil; s.sizeDirty = false }
            else if s.size == snapshot.size { s.sizeDirty = false }
            return before - s.dirtyBytes
        }
        memory.release(freed)
    }

    /// Starts uploads of pages a write completed (every byte written), `packChunks` pages per
    /// pack, so that a sequential writer's chunks are hashed and stored while it goes on
    /// writing and close(2) waits only for the tail. A file has at most `window` pages in
    /// uploads in flight; the writer waits beyond that, which bounds the work queued ahead of
    /// the store. An interrupted writer stops waiting: its bytes are buffered, and the uploads
    /// go on.
    func streamCompletedPages(touching range: Range<UInt64>, chunks: ChunkStore, window: Int, interruption: Interruption?) {
        let started = startUploads(touching: range, groupSize: chunks.configuration.packChunks) { pages in
            chunks.workers.submit { () throws(FSError) in try chunks.storePages(pages) }
        }
        guard started else { return }
        for future in uploadsBeyond(window: window) {
            do throws(FSError) {
                _ = try future.wait(interruption)
            } catch .interrupted {
                return
            } catch {
                // Failures surface at the commit that uses the upload.
            }
        }
    }

    /// Notes every page in `range` that is now completely written and has no upload for its
    /// current version, and starts (through `submit`) one upload per `groupSize` such pages,
    /// lowest indexes first — a sequential writer's pages go out as packs of consecutive
    /// chunks. Pages that never fill a group are left to the commit. Returns whether any
    /// upload started.
    private func startUploads(touching range: Range<UInt64>, groupSize: Int,
                              submit: ([(UInt64, [UInt8])]) -> Future<[StoredChunk?], FSError>) -> Bool {
        let chunkSize = UInt64(FormatConstants.chunkSize)
        guard !range.isEmpty else { return false }
        return state.withLock { s in
            for index in (range.lowerBound / chunkSize)...((range.upperBound - 1) / chunkSize) {
                guard let page = s.pages[index], page.bytes.count == FormatConstants.chunkSize,
                      page.written.covers(0..<FormatConstants.chunkSize), s.uploads[index]?.version != page.version else { continue }
                s.readyPages[index] = page.version
            }
            // Entries whose page was written again (a newer version) or is gone are stale.
            let ready = s.readyPages.filter { s.pages[$0.key]?.version == $0.value }.keys.sorted()
            guard ready.count >= groupSize else { return false }
            for start in stride(from: 0, to: ready.count - groupSize + 1, by: groupSize) {
                let group = ready[start..<(start + groupSize)].map { ($0, s.pages[$0]!) }
                let future = submit(group.map { ($0.0, $0.1.bytes) })
                for (slot, (index, page)) in group.enumerated() {
                    s.uploads[index] = PageUpload(version: page.version, future: future, slot: slot)
                    s.readyPages[index] = nil
                }
            }
            return true
        }
    }

    /// The unfinished uploads holding pages past the newest `window` pages in flight, oldest
    /// first: what a writer waits for before writing on.
    private func uploadsBeyond(window: Int) -> [Future<[StoredChunk?], FSError>] {
        state.withLock { s in
            let pending = s.uploads.sorted { $0.key < $1.key }.map(\.value.future).filter { !$0.isDone }
            guard pending.count > window else { return [] }
            var seen: Set<ObjectIdentifier> = []
            return pending.prefix(pending.count - window).filter { seen.insert(ObjectIdentifier($0)).inserted }
        }
    }

    /// Marks the file failed and discards its buffered writes: they will never be published,
    /// so from now on stat and read show the committed file (`committedSize`, when it could be
    /// read) rather than bytes that are not stored anywhere. The loss itself is reported by
    /// the failing call, by every later write, flush and fsync, and by close.
    func failed(_ error: FSError, committedSize: UInt64?) {
        let freed = state.withLock { s -> Int in
            if s.failure == nil { s.failure = error }
            let freed = s.dirtyBytes
            s.pages.removeAll()
            s.uploads.removeAll()
            s.readyPages.removeAll()
            s.dirtyBytes = 0
            if let committedSize { s.size = committedSize }
            s.sizeDirty = false
            s.mtime = nil
            return freed
        }
        memory.release(freed)
    }

    /// The committed file changed under this open file by a commit it did not make (another
    /// host's, seen at an open): takes the committed size, unless writes of its own are not
    /// committed yet — their commit decides the size then, as the last writer's.
    func adoptCommitted(size: UInt64) {
        state.withLock { s in
            guard !s.isDirty, s.uploads.isEmpty else { return }
            s.size = size
        }
    }

    /// The last handle is gone: whatever is still buffered (nothing, after the release's
    /// commit, unless it failed) goes back to the limiter.
    func discard() {
        let freed = state.withLock { s -> Int in
            defer { s.pages.removeAll(); s.uploads.removeAll(); s.readyPages.removeAll(); s.dirtyBytes = 0 }
            return s.dirtyBytes
        }
        memory.release(freed)
    }

    /// Size and time as written, to lay over the committed attributes.
    func overlay(_ attrs: inout FileAttributes) {
        state.withLock { s in
            attrs.size = s.size
            if let m = s.mtime { attrs.mtime = m; attrs.ctime = max(attrs.ctime, m) }
        }
    }

    /// What a read of `range` (file offsets) needs from the buffer: the file size, and for each
    /// dirty page touching the range its bytes and written extents within the range.
    func readOverlay(_ range: Range<UInt64>) -> (size: UInt64, pages: [UInt64: DirtyPage]) {
        let chunkSize = UInt64(FormatConstants.chunkSize)
        return state.withLock { s in
            guard !s.pages.isEmpty, !range.isEmpty else { return (s.size, [:]) }
            var pages: [UInt64: DirtyPage] = [:]
            let first = range.lowerBound / chunkSize, last = (range.upperBound - 1) / chunkSize
            if UInt64(s.pages.count) < last - first + 1 {
                for (index, page) in s.pages where index >= first && index <= last { pages[index] = page }
            } else {
                for index in first...last { if let page = s.pages[index] { pages[index] = page } }
            }
            return (s.size, pages)
        }
    }
}
