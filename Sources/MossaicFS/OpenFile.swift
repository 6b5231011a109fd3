import MossaicCore
import Synchronization

/// The write state of a regular file that has at least one open handle: the dirty pages all its
/// handles share (so a read through one descriptor sees a write through another), its size as
/// written, and the failure of its last commit.
///
/// A file whose commit failed stays failed: every later write, flush and fsync through any of
/// its handles reports that error, and nothing is reported durable that was not stored. The
/// state is dropped when the last handle is released.
///
/// Lock order: `commitLock` → `state`. `state` is held only for memory operations; commits do
/// their I/O holding `commitLock` alone, so reads and writes continue during an upload.
final class OpenFile: Sendable {
    struct State {
        var handles = 0
        var pages: [UInt64: DirtyPage] = [:]
        var size: UInt64
        /// The size differs from the committed one.
        var sizeDirty = false
        /// Time of the last write not yet committed.
        var mtime: Timestamp?
        var failure: FSError?
        var writeCounter: UInt64 = 0
        var dirtyBytes = 0
        /// The access time was considered at the first read through this open file.
        var accessTimeConsidered = false
        /// Background uploads of completed pages, by page index, with the page version each
        /// started from (a page written again needs a new one).
        var uploads: [UInt64: PageUpload] = [:]
        /// Completed pages (index → version) waiting for enough others to fill a pack.
        var readyPages: [UInt64: UInt64] = [:]
        /// Where the last read ended, how many reads in a row continued the previous one, and
        /// the chunk index read-ahead has been started up to.
        var readCursor: UInt64 = 0
        var sequentialReads = 0
        var prefetchedThrough: UInt64 = 0

        var isDirty: Bool { !pages.isEmpty || sizeDirty || mtime != nil }
    }

    /// One page's part in a background upload: a job stores several completed pages as one
    /// pack, and the page's chunk is entry `slot` of the job's result.
    struct PageUpload: Sendable {
        var version: UInt64
        var ticket: UploadTicket<[StoredChunk?]>
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

    let ino: InodeNumber
    let state: Mutex<State>
    let commitLock = Mutex(())

    init(ino: InodeNumber, size: UInt64) {
        self.ino = ino
        self.state = Mutex(State(size: size))
    }

    /// Buffers a write. Returns the number of dirty bytes now buffered for this file.
    func write(_ data: UnsafeRawBufferPointer, at offset: UInt64, now: Timestamp) throws(FSError) -> Int {
        let chunkSize = UInt64(FormatConstants.chunkSize)
        return try state.withLock { (s) throws(FSError) -> Int in
            if let failure = s.failure { throw failure }
            s.writeCounter += 1
            var done = 0
            while done < data.count {
                let position = offset + UInt64(done)
                let index = position / chunkSize
                let inPage = Int(position % chunkSize)
                let n = min(data.count - done, FormatConstants.chunkSize - inPage)
                var page = s.pages.removeValue(forKey: index) ?? DirtyPage()
                let before = page.bytes.count
                page.write(UnsafeRawBufferPointer(rebasing: data[done..<(done + n)]), at: inPage)
                page.version = s.writeCounter
                s.dirtyBytes += page.bytes.count - before
                s.pages[index] = page
                done += n
            }
            let end = offset + UInt64(data.count)
            if end > s.size { s.size = end; s.sizeDirty = true }
            s.mtime = now
            return s.dirtyBytes
        }
    }

    /// Applies a truncation (already committed to the metadata) to the buffered pages.
    func truncated(to size: UInt64) {
        let chunkSize = UInt64(FormatConstants.chunkSize)
        state.withLock { s in
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
        }
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
                let oldestRunning = current.filter { !$0.value.ticket.isDone }.keys.min() ?? .max
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

    /// After a successful commit of `snapshot`: drops what it published, keeps later writes.
    func committed(_ snapshot: Snapshot) {
        state.withLock { s in
            for (index, page) in snapshot.pages where s.pages[index]?.version == page.version {
                s.dirtyBytes -= page.bytes.count
                s.pages[index] = nil
                if s.uploads[index]?.version == page.version { s.uploads[index] = nil }
                if s.readyPages[index] == page.version { s.readyPages[index] = nil }
            }
            if s.writeCounter == snapshot.writeCounter && !snapshot.isPartial { s.mtime = nil; s.sizeDirty = false }
            else if s.size == snapshot.size { s.sizeDirty = false }
        }
    }

    /// Notes every page in `range` that is now completely written and has no upload for its
    /// current version, and starts (through `submit`) one upload per `groupSize` such pages,
    /// lowest indexes first — a sequential writer's pages go out as packs of consecutive
    /// chunks. Pages that never fill a group are left to the commit. Returns whether any
    /// upload started.
    func startUploads(touching range: Range<UInt64>, groupSize: Int,
                      submit: ([(UInt64, [UInt8])]) -> UploadTicket<[StoredChunk?]>) -> Bool {
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
                let ticket = submit(group.map { ($0.0, $0.1.bytes) })
                for (slot, (index, page)) in group.enumerated() {
                    s.uploads[index] = PageUpload(version: page.version, ticket: ticket, slot: slot)
                    s.readyPages[index] = nil
                }
            }
            return true
        }
    }

    /// The unfinished uploads holding pages past the newest `window` pages in flight, oldest
    /// first: what a writer waits for before writing on.
    func uploadsBeyond(window: Int) -> [UploadTicket<[StoredChunk?]>] {
        state.withLock { s in
            let pending = s.uploads.sorted { $0.key < $1.key }.map(\.value.ticket).filter { !$0.isDone }
            guard pending.count > window else { return [] }
            var seen: Set<ObjectIdentifier> = []
            return pending.prefix(pending.count - window).filter { seen.insert(ObjectIdentifier($0)).inserted }
        }
    }

    /// Records a read of `range` and returns the chunk indexes to fetch ahead: none for a
    /// random reader; for a sequential one a window that grows with the run of sequential
    /// reads, up to `maxWindow` chunks past the one being read.
    func readAhead(_ range: Range<UInt64>, maxWindow: Int) -> ClosedRange<UInt64>? {
        let chunkSize = UInt64(FormatConstants.chunkSize)
        return state.withLock { s in
            s.sequentialReads = range.lowerBound == s.readCursor ? s.sequentialReads + 1 : 0
            s.readCursor = range.upperBound
            guard s.sequentialReads >= 2, maxWindow > 0, !range.isEmpty else { return nil }
            let current = (range.upperBound - 1) / chunkSize
            let window = UInt64(min(maxWindow, 1 + s.sequentialReads / 4))
            let first = max(current + 1, s.prefetchedThrough + 1)
            let last = current + window
            guard first <= last else { return nil }
            s.prefetchedThrough = last
            return first...last
        }
    }

    /// Read-ahead went on to chunk `last` (the rest of a pack it fetched anyway).
    func prefetched(through last: UInt64) {
        state.withLock { s in s.prefetchedThrough = max(s.prefetchedThrough, last) }
    }

    /// True exactly once per open file: the first read decides about the access time.
    func firstRead() -> Bool {
        state.withLock { s in
            defer { s.accessTimeConsidered = true }
            return !s.accessTimeConsidered
        }
    }

    /// Marks the file failed and discards its buffered writes: they will never be published,
    /// so from now on stat and read show the committed file (`committedSize`, when it could be
    /// read) rather than bytes that are not stored anywhere. The loss itself is reported by
    /// the failing call, by every later write, flush and fsync, and by close.
    func failed(_ error: FSError, committedSize: UInt64?) {
        state.withLock { s in
            if s.failure == nil { s.failure = error }
            s.pages.removeAll()
            s.uploads.removeAll()
            s.readyPages.removeAll()
            s.dirtyBytes = 0
            if let committedSize { s.size = committedSize }
            s.sizeDirty = false
            s.mtime = nil
        }
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
