import MossaicCore
import MossaicMeta

/// open/create/read/write/flush/fsync/release.
extension MossaicFilesystem {
    /// How a file is opened, from open(2)'s flags.
    public struct OpenMode: Sendable {
        public var readable: Bool
        public var writable: Bool
        /// O_TRUNC. libfuse asks the kernel for atomic O_TRUNC, so truncation arrives here, in
        /// open, not as a separate setattr. As on Linux it needs write permission, and it
        /// truncates even with O_RDONLY.
        public var truncate: Bool
        /// The open of execve(2) (__FMODE_EXEC): it needs execute permission, not read.
        public var execute: Bool
        public init(readable: Bool = true, writable: Bool, truncate: Bool = false, execute: Bool = false) {
            self.readable = readable; self.writable = writable; self.truncate = truncate; self.execute = execute
        }
    }

    /// Opens a regular file; all handles of one inode share its write state.
    public func open(_ ino: InodeNumber, mode: OpenMode, caller: Caller = .root) throws(FSError) -> HandleID {
        try openKeepingCache(ino, mode: mode, caller: caller).handle
    }

    /// open, and whether the kernel may keep the pages it cached at the previous open: yes if
    /// the file's data is what it was then (same size, mtime and ctime). Every change made
    /// through this mount also goes through the kernel's cache, so this is about changes it
    /// cannot see — a read-only mount following another machine's snapshots, another host's
    /// commit on a PostgreSQL mount (close-to-open: the attributes read here are the one query
    /// that revalidates; a file open here already drops its chunk map, `OpenFile.opened`).
    public func openKeepingCache(_ ino: InodeNumber, mode: OpenMode, caller: Caller = .root) throws(FSError) -> (handle: HandleID, keepCache: Bool) {
        if mode.writable { try checkWritable() }
        let attrs = try addressed(ino) { () throws(MetaError) in try metadata.attributes(of: ino) }
        switch attrs.kind {
        case .regular: break
        case .directory: throw .isDirectory
        default: throw .invalidArgument
        }
        var want: AccessMask = []
        if mode.execute { want.insert(.execute) } else if mode.readable { want.insert(.read) }
        if mode.writable || mode.truncate { want.insert(.write) }
        if mode.truncate { try checkWritable() }
        try permissions.check(attrs, caller, want)
        let opened = DataVersion(size: attrs.size, mtime: attrs.mtime, ctime: attrs.ctime)
        let (file, first) = openFiles.withLock { files in
            let existing = files[ino]
            let file = existing ?? OpenFile(ino: ino, version: opened, memory: writeMemory,
                                            token: openTokens.add(1, ordering: .relaxed).newValue)
            files[ino] = file
            file.opened(opened)
            return (file, existing == nil)
        }
        let handle = handles.insert(.file(file, writable: mode.writable))
        if first, !options.readOnly {
            // The first handle of this mount on the file: an engine for many hosts records the
            // open (one round trip), so an unlink elsewhere keeps the inode until it is closed here.
            do {
                try addressed(ino) { () throws(MetaError) in try metadata.opened(ino, token: file.token) }
            } catch {
                try? release(ino, handle: handle)
                throw error
            }
        }
        var current = attrs
        if mode.truncate {
            do {
                // setattr commits other descriptors' buffered writes first, then cuts; as the
                // caller's truncation it also clears setuid/setgid, which the kernel never sends
                // for a truncating open.
                current = try setattr(ino, SetAttributes(size: 0), handle: handle, caller: caller).attributes
            } catch {
                try? release(ino, handle: handle)
                throw error
            }
        }
        let version = DataVersion(size: current.size, mtime: current.mtime, ctime: current.ctime)
        let keep = openedVersions.open(ino, version) && !mode.truncate
        return (handle, keep)
    }

    /// Creates and opens a regular file. The empty file is committed at once, so a file created
    /// and closed without writing persists.
    public func create(parent: InodeNumber, name: [UInt8], permissions: UInt32, caller: Caller) throws(FSError) -> (FileAttributes, HandleID) {
        let attrs = try mknod(parent: parent, name: name, kind: .regular, permissions: permissions, rdev: 0, caller: caller)
        do {
            return (attrs, try open(attrs.ino, mode: OpenMode(writable: true)))
        } catch {
            _ = inodes.forget(attrs.ino, count: 1)
            throw error
        }
    }

    private func openFile(_ handle: HandleID) throws(FSError) -> (OpenFile, Bool) {
        guard case .file(let file, let writable) = try handles.get(handle) else { throw .badHandle }
        return (file, writable)
    }

    /// Buffers a write. Nothing touches the object store here, unless the file's buffered data
    /// outgrew its budget and is committed early. An interrupted writer stops waiting for the
    /// store: its bytes are buffered (so the write succeeded), and flush commits them.
    public func write(_ ino: InodeNumber, handle: HandleID, offset: UInt64, data: UnsafeRawBufferPointer,
                      interruption: Interruption? = nil) throws(FSError) -> Int {
        let (file, writable) = try openFile(handle)
        guard writable else { throw .badHandle }
        guard offset <= UInt64(Int64.max) - UInt64(data.count) else { throw .fileTooLarge }
        let dirty = try file.writer.write(data, at: offset, now: .now(), interruption: interruption) { relieveWriteMemory() }
        file.writer.streamCompletedPages(touching: offset..<(offset + UInt64(data.count)), chunks: chunks,
                                         window: options.uploadWindow, interruption: interruption)
        // A sequential writer's tail: at most a window of pages in uploads plus a pack's worth
        // gathering (FileWriter.snapshot(deferringTail:)).
        if dirty > options.maxDirtyBytesPerFile, interruption?.isInterrupted != true {
            do throws(FSError) {
                try commit(file, deferringTail: options.packChunks + options.uploadWindow, interruption: interruption)
            } catch .interrupted {
                // Buffered all the same.
            }
        }
        return data.count
    }

    /// Called at every close(2) of a descriptor: commits buffered writes. Its error is what
    /// close(2) returns. A read-only descriptor wrote nothing, so it neither commits nor
    /// reports the failure of another descriptor's writes.
    /// `interruption`: the closing process got a signal; see `commit`.
    public func flush(_ ino: InodeNumber, handle: HandleID, interruption: Interruption? = nil) throws(FSError) {
        let (file, writable) = try openFile(handle)
        guard writable else { return }
        try commit(file, durable: options.durableClose, interruption: interruption)
    }

    /// Commits buffered writes durably (a FULL commit). With nothing buffered, it still makes
    /// the metadata durable, e.g. the file's creation.
    public func fsync(_ ino: InodeNumber, handle: HandleID, interruption: Interruption? = nil) throws(FSError) {
        let (file, _) = try openFile(handle)
        if try !commit(file, durable: true, interruption: interruption) { try sync() }
    }

    /// fsyncdir and syncfs: every metadata change so far becomes durable.
    public func sync() throws(FSError) {
        guard !options.readOnly else { return }
        try meta { () throws(MetaError) in try metadata.sync() }
    }

    /// The last reference to a descriptor is gone. Commits anything left (normally flush did),
    /// and drops the file's write state with its last handle.
    public func release(_ ino: InodeNumber, handle: HandleID) throws(FSError) {
        guard let h = handles.remove(handle), case .file(let file, let writable) = h else { throw .badHandle }
        var failure: FSError?
        if writable { do { try commit(file, durable: options.durableClose) } catch { failure = error } }
        let last = openFiles.withLock { files -> Bool in
            guard file.closed() == 0 else { return false }
            files[file.ino] = nil
            return true
        }
        if last { file.writer.discard() }
        if last, !options.readOnly {
            // The last close anywhere of a file unlinked meanwhile reclaims it (engines for
            // many hosts; a no-op on SQLite, where the purge below does).
            do throws(MetaError) { try metadata.closed(file.ino, token: file.token) } catch {
                logger.warning("cannot record the close of a file", metadata: ["ino": "\(ino.rawValue)", "error": "\(error)"])
            }
        }
        if last, inodes.isOrphan(file.ino), !inodes.isReferenced(file.ino) {
            try purge(file.ino)
        }
        if let failure {
            logger.error("buffered writes lost at release", metadata: ["ino": "\(ino.rawValue)", "error": "\(failure)"])
            throw failure
        }
    }

    /// Reads from the buffered writes and the committed chunks.
    public func read(_ ino: InodeNumber, handle: HandleID, offset: UInt64, size: Int) throws(FSError) -> [UInt8] {
        Array(try readPieces(ino, handle: handle, offset: offset, size: size).joined())
    }

    /// `read`'s bytes as the pieces they are made of, in order, uncopied where they can be:
    /// slices of cached chunks and of dirty pages, zeros past a chunk's end. The FUSE bridge
    /// replies with them as one iovec list, so a read costs no copy in the daemon.
    public func readPieces(_ ino: InodeNumber, handle: HandleID, offset: UInt64, size: Int) throws(FSError) -> [ArraySlice<UInt8>] {
        let (file, _) = try openFile(handle)
        if file.firstRead() { accessed(ino) }
        let request = offset..<(offset + UInt64(size))
        if let ahead = file.reader.readAhead(request, maxWindow: options.readAheadChunks) { prefetch(file, ahead) }
        let (fileSize, pages) = file.writer.readOverlay(request)
        guard offset < fileSize, size > 0 else { return [] }
        let range = offset..<min(request.upperBound, fileSize)
        let chunkSize = UInt64(FormatConstants.chunkSize)
        let first = range.lowerBound / chunkSize, last = (range.upperBound - 1) / chunkSize

        // Committed references only for pages the buffer does not fully cover.
        var needBase = false
        for index in first...last {
            let pageRange = pageSlice(index, of: range)
            if pages[index]?.written.covers(pageRange) != true { needBase = true; break }
        }
        let refs = needBase ? try fileChunkRefs(file, first...last) : [:]

        var pieces: [ArraySlice<UInt8>] = []
        for index in first...last {
            let pageRange = pageSlice(index, of: range)
            if let page = pages[index] {
                if page.written.covers(pageRange) {
                    pieces.append(page.bytes[pageRange])
                } else {
                    var piece = try chunks.bytes(refs[index], pageRange)
                    page.overlay(onto: &piece, range: pageRange)
                    pieces.append(piece[...])
                }
            } else {
                pieces += try chunks.pieces(refs[index], pageRange)
            }
        }
        return pieces
    }

    /// Starts read-ahead of chunks `indexes` (and the rest of the pack the last one is in:
    /// `ChunkStore.fetchAhead`), from the file's chunk map.
    private func prefetch(_ file: OpenFile, _ indexes: ClosedRange<UInt64>) {
        let extended = indexes.lowerBound...(indexes.upperBound + UInt64(max(options.packChunks - 1, 0)))
        guard let refs = try? fileChunkRefs(file, extended) else { return }
        let candidates = refs.values.sorted { $0.index.rawValue < $1.index.rawValue }
        if let last = chunks.fetchAhead(indexes, candidates: candidates) { file.reader.prefetched(through: last) }
    }

    /// The part of `range` (file offsets) inside page `index`, as offsets within the page.
    private func pageSlice(_ index: UInt64, of range: Range<UInt64>) -> Range<Int> {
        let chunkSize = UInt64(FormatConstants.chunkSize)
        let start = index * chunkSize
        let lower = max(range.lowerBound, start) - start
        let upper = min(range.upperBound, start + chunkSize) - start
        return Int(lower)..<Int(upper)
    }
}
