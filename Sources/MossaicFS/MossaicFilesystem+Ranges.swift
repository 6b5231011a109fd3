import MossaicCore
import MossaicMeta

/// Operations on byte ranges that work on chunk references instead of bytes: fallocate,
/// lseek SEEK_DATA/SEEK_HOLE, copy_file_range. Each commits the files' buffered writes first,
/// so it sees and changes the file as written.
extension MossaicFilesystem {
    /// The fallocate(2) modes, with ext4's semantics. Nothing is written for an allocation —
    /// a hole can always be written here — but the range is recorded as reserved, so
    /// `st_blocks` counts it as ext4 does (SQLiteMetaStore+Allocations.swift). Ranges are
    /// reserved and released in whole 4 KiB blocks: outward for allocations, inward for a
    /// punched hole (ext4 only zeroes the partial blocks at its edges).
    public enum FallocateMode: Sendable, Equatable {
        /// mode 0 (`keepSize: false`) or FALLOC_FL_KEEP_SIZE: the range is reserved; without
        /// KEEP_SIZE the size grows to cover it.
        case allocate(keepSize: Bool)
        /// FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE: the range reads as zeros and takes no
        /// storage; nothing past the end changes.
        case punchHole
        /// FALLOC_FL_ZERO_RANGE, with or without KEEP_SIZE: the range reads as zeros and stays
        /// reserved (ext4's unwritten extents); without KEEP_SIZE the size grows to cover it.
        case zeroRange(keepSize: Bool)
    }

    private func committedOpenFile(_ handle: HandleID) throws(FSError) -> OpenFile {
        guard case .file(let file, _) = try handles.get(handle) else { throw .badHandle }
        try commit(file)
        return file
    }

    public func fallocate(_ ino: InodeNumber, handle: HandleID, mode: FallocateMode, offset: UInt64, length: UInt64) throws(FSError) {
        try checkWritable()
        guard length > 0 else { throw .invalidArgument }
        guard case .file(_, let writable) = try handles.get(handle), writable else { throw .badHandle }
        let file = try committedOpenFile(handle)
        let (end, overflow) = offset.addingReportingOverflow(length)
        guard !overflow, end <= UInt64(Int64.max) else { throw .fileTooLarge }
        let attrs = try getattr(ino)
        let block = UInt64(4096)
        let outward = offset / block * block..<(end + block - 1) / block * block
        switch mode {
        case .allocate(let keepSize):
            _ = try meta { () throws(MetaError) in
                try metadata.changeAllocation(ino, reserve: outward, release: nil, growTo: keepSize ? nil : end, touch: .both, now: .now())
            }
            if !keepSize && end > attrs.size { chunkListChanged(ino); file.writer.truncated(to: end) }
        case .zeroRange(let keepSize):
            let zeroed = offset..<max(offset, min(end, attrs.size))
            if !zeroed.isEmpty { try zero(ino, size: attrs.size, zeroed) }
            _ = try meta { () throws(MetaError) in
                try metadata.changeAllocation(ino, reserve: outward, release: nil, growTo: keepSize ? nil : end, touch: .both, now: .now())
            }
            if !keepSize && end > attrs.size { chunkListChanged(ino); file.writer.truncated(to: end) }
        case .punchHole:
            // A hole punched at or past the end changes only the times, as on ext4 (and must
            // not form a reversed range); one reaching past it stops at the end's block, so
            // what KEEP_SIZE reserved further out stays.
            guard offset < attrs.size else {
                _ = try meta { () throws(MetaError) in try metadata.changeAllocation(ino, reserve: nil, release: nil, growTo: nil, touch: .both, now: .now()) }
                return
            }
            try zero(ino, size: attrs.size, offset..<min(end, attrs.size))
            let limit = min(end, (attrs.size + block - 1) / block * block)
            let first = (offset + block - 1) / block * block
            let inward = first..<max(first, limit / block * block)
            if !inward.isEmpty {
                _ = try meta { () throws(MetaError) in try metadata.changeAllocation(ino, reserve: nil, release: inward, growTo: nil, touch: .none, now: .now()) }
            }
        }
    }

    /// Makes `range` (inside the file) read as zeros: rewrites the chunks it touches, and
    /// makes holes of those it covers.
    private func zero(_ ino: InodeNumber, size: UInt64, _ range: Range<UInt64>) throws(FSError) {
        try rewriteChunks(ino, size: size, touching: range) { content, pageRange in
            content.replaceSubrange(pageRange, with: repeatElement(0, count: pageRange.count))
        }
    }

    /// Rebuilds the chunks overlapping `range` with `edit` (given the page's live bytes and the
    /// part of `range` inside the page) and commits them; pages `range` covers entirely become
    /// holes without reading them.
    private func rewriteChunks(_ ino: InodeNumber, size: UInt64, touching range: Range<UInt64>,
                               edit: (inout [UInt8], Range<Int>) -> Void) throws(FSError) {
        let chunkSize = UInt64(FormatConstants.chunkSize)
        let first = range.lowerBound / chunkSize, last = (range.upperBound - 1) / chunkSize
        var refs: [UInt64: ChunkRef] = [:]
        for ref in try meta({ () throws(MetaError) in try metadata.chunkRefs(ino, indexes: first...last) }) { refs[ref.index.rawValue] = ref }
        var pages: [(UInt64, [UInt8])] = []
        for index in first...last {
            let start = index * chunkSize
            let live = Int(min(chunkSize, size - start))
            let lower = Int(max(range.lowerBound, start) - start), upper = Int(min(range.upperBound, start + chunkSize) - start)
            if lower == 0 && upper >= live || refs[index] == nil {
                pages.append((index, []))
                continue
            }
            var content = try chunks.bytes(refs[index], 0..<live)
            edit(&content, lower..<min(upper, live))
            pages.append((index, content))
        }
        try publishPages(ino, pages, size: size)
    }

    /// Stores whole pages (empty or all zeros: a hole) and commits them with one transaction.
    /// A reclaim sweep of another host (PostgreSQL) may take chunks between storing and
    /// committing: stored again then (`SweptRetry`).
    func publishPages(_ ino: InodeNumber, _ pages: [(UInt64, [UInt8])], size: UInt64, extraRefs: [(ChunkIndex, ChunkRef?)] = []) throws(FSError) {
        defer { chunkListChanged(ino) }
        var swept = SweptRetry()
        while true {
            var changes = extraRefs
            var newChunks: [ChunkHash: NewChunk] = [:]
            var pins: [ChunkPin] = []  // held until the transaction is done (the reclaim sweep)
            for (index, page) in pages {
                guard let stored = try chunks.storeChunk(page, index: index) else {
                    changes.append((ChunkIndex(index), nil)); continue
                }
                changes.append((ChunkIndex(index), stored.ref))
                if let new = stored.new { newChunks[new.hash] = new }
                if let pin = stored.pin { pins.append(pin) }
            }
            let now = Timestamp.now()
            var commit = FileCommit(ino: ino, chunks: changes, newChunks: Array(newChunks.values), size: size, mtime: now, ctime: now)
            commit.storedAfterSweep = swept.storedAfter
            do throws(MetaError) {
                _ = try withExtendedLifetime(pins) { () throws(MetaError) in try metadata.commit(commit) }
                return
            } catch .sweptChunks(let through, let pending) where swept.again(through: through, pending: pending) {
                forgetSwept(changes.compactMap { $0.1?.hash }, ino: ino)
            } catch {
                throw error.fsError
            }
        }
    }

    /// lseek(2) with SEEK_DATA (`data: true`) or SEEK_HOLE. Data is what chunk references
    /// cover (trailing zeros of a chunk are not stored, so they count as hole); the end of the
    /// file is a hole.
    public func lseek(_ ino: InodeNumber, handle: HandleID, offset: UInt64, data: Bool) throws(FSError) -> UInt64 {
        _ = try committedOpenFile(handle)
        let size = try getattr(ino).size
        guard offset < size else { throw .noSuchAddress }
        let chunkSize = UInt64(FormatConstants.chunkSize)
        let refs = try meta { () throws(MetaError) in try metadata.chunkRefs(ino, indexes: 0...(size / chunkSize)) }
        var extents: [Range<UInt64>] = []
        for ref in refs {
            let start = ref.index.rawValue * chunkSize
            let end = min(start + UInt64(ref.length), size)
            guard start < end else { continue }
            if let last = extents.last, last.upperBound == start { extents[extents.count - 1] = last.lowerBound..<end }
            else { extents.append(start..<end) }
        }
        if data {
            guard let extent = extents.first(where: { $0.upperBound > offset }) else { throw .noSuchAddress }
            return max(extent.lowerBound, offset)
        }
        if let extent = extents.first(where: { $0.contains(offset) }) { return min(extent.upperBound, size) }
        return offset
    }

    /// copy_file_range(2). Chunk-aligned ranges share chunks: the destination references the
    /// source's chunks (refcount +1), no byte is read, hashed or uploaded. Other ranges are
    /// copied through the buffers. Returns the number of bytes copied (fewer at the source's end).
    public func copyFileRange(from source: InodeNumber, handle sourceHandle: HandleID, offset sourceOffset: UInt64,
                              to destination: InodeNumber, handle destinationHandle: HandleID, offset destinationOffset: UInt64,
                              length: UInt64) throws(FSError) -> UInt64 {
        try checkWritable()
        guard case .file(_, let writable) = try handles.get(destinationHandle), writable else { throw .badHandle }
        _ = try committedOpenFile(sourceHandle)
        let destinationFile = try committedOpenFile(destinationHandle)
        let sourceSize = try getattr(source).size
        guard sourceOffset < sourceSize, length > 0 else { return 0 }
        let count = min(length, sourceSize - sourceOffset)
        guard destinationOffset <= UInt64(Int64.max) - count else { throw .fileTooLarge }
        let chunkSize = UInt64(FormatConstants.chunkSize)
        guard sourceOffset % chunkSize == 0, destinationOffset % chunkSize == 0 else {
            return try copyBytes(source, sourceHandle, sourceOffset, destination, destinationHandle, destinationOffset, count)
        }

        let destinationSize = try getattr(destination).size
        let newSize = max(destinationSize, destinationOffset + count)
        let pieces = (count + chunkSize - 1) / chunkSize
        let firstSource = sourceOffset / chunkSize, firstDestination = destinationOffset / chunkSize
        var sourceRefs: [UInt64: ChunkRef] = [:]
        for ref in try meta({ () throws(MetaError) in try metadata.chunkRefs(source, indexes: firstSource...(firstSource + pieces - 1)) }) {
            sourceRefs[ref.index.rawValue] = ref
        }
        var shared: [(ChunkIndex, ChunkRef?)] = []
        var rebuilt: [(UInt64, [UInt8])] = []
        for k in 0..<pieces {
            let length = Int(min(chunkSize, count - k * chunkSize))
            let target = firstDestination + k
            let ref = sourceRefs[firstSource + k]
            // A whole chunk, or a last piece past which the destination has nothing: share a
            // prefix of the source chunk. Otherwise the destination's own bytes after the
            // piece must survive, so that page is rebuilt.
            if length == FormatConstants.chunkSize || target * chunkSize + UInt64(length) >= destinationSize {
                shared.append((ChunkIndex(target), ref.map { source in
                    // The same chunk and patches, as long as the piece.
                    var copy = source
                    copy.index = ChunkIndex(target)
                    copy.length = min(source.length, length)
                    return copy
                }))
            } else {
                let live = Int(min(chunkSize, newSize - target * chunkSize))
                var page = try chunks.bytes(try destinationRef(destination, target), 0..<live)
                page.replaceSubrange(0..<length, with: try chunks.bytes(ref, 0..<length))
                rebuilt.append((target, page))
            }
        }
        try publishPages(destination, rebuilt, size: newSize, extraRefs: shared)
        destinationFile.writer.truncated(to: newSize)  // no buffered pages left: only the size changes
        return count
    }

    private func destinationRef(_ ino: InodeNumber, _ index: UInt64) throws(FSError) -> ChunkRef? {
        try meta { () throws(MetaError) in try metadata.chunkRefs(ino, indexes: index...index) }.first
    }

    /// The byte path of copy_file_range, through the source's reads and the destination's
    /// write buffer, one chunk-sized piece at a time.
    private func copyBytes(_ source: InodeNumber, _ sourceHandle: HandleID, _ sourceOffset: UInt64,
                           _ destination: InodeNumber, _ destinationHandle: HandleID, _ destinationOffset: UInt64,
                           _ count: UInt64) throws(FSError) -> UInt64 {
        var done: UInt64 = 0
        while done < count {
            let n = Int(min(UInt64(FormatConstants.chunkSize), count - done))
            let bytes = try read(source, handle: sourceHandle, offset: sourceOffset + done, size: n)
            if bytes.isEmpty { break }
            _ = try PosixFiles.withBytes(bytes) { (raw) throws(FSError) in
                try write(destination, handle: destinationHandle, offset: destinationOffset + done, data: raw)
            }
            done += UInt64(bytes.count)
        }
        return done
    }
}
