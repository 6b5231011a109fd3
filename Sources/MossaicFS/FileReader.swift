import MossaicCore
import MossaicMeta
import Synchronization

/// The read side of a regular file with open handles (ARCHITECTURE.md §8): the file's chunk
/// map, the sequential-run detector, and the read-ahead window. Answers "what to read ahead".
///
/// The chunk map is fetched from the metadata once per open (in segments of
/// `segmentChunks` chunks, so a huge file costs one query per GiB read rather than one
/// enormous one) and dropped whenever the file's chunk list changes — a commit, a truncation,
/// a hole punched, a copy_file_range — through `invalidate()`, or the metadata was replaced
/// (a read-only mount following newer snapshots: `epoch`). A sequential reader thus queries
/// the metadata once, not once or twice per read request.
///
/// Staleness cannot slip in: a map loaded while an invalidation happened is not kept
/// (`version`), and every change that invalidates happens before the operation that made it
/// returns.
final class FileReader: Sendable {
    /// Chunks per map segment: 1 GiB of file.
    static let segmentChunks: UInt64 = 1024
    /// Segments kept at once; a reader jumping around a huge file reloads.
    static let maxSegments = 16

    private struct State {
        /// Where the last read ended, how many reads in a row continued the previous one, and
        /// the chunk index read-ahead has been started up to.
        var readCursor: UInt64 = 0
        var sequentialReads = 0
        var prefetchedThrough: UInt64 = 0
        /// Chunk references by index, per segment (segment number → refs in it).
        var segments: [UInt64: [UInt64: ChunkRef]] = [:]
        /// Bumped by every invalidation.
        var version: UInt64 = 0
        /// The metadata epoch the segments were read at.
        var epoch = 0
    }

    private let state = Mutex(State())
    let ino: InodeNumber

    init(ino: InodeNumber) { self.ino = ino }

    /// The file's chunk list changed: the map is read again at the next read.
    func invalidate() {
        state.withLock { s in
            s.version &+= 1
            s.segments.removeAll()
        }
    }

    /// The references of chunks `indexes` (holes absent), from the map, loading the segments
    /// it lacks with `load` (the metadata query for a range of indexes).
    func refs(_ indexes: ClosedRange<UInt64>, epoch: Int,
              load: (ClosedRange<UInt64>) throws(FSError) -> [ChunkRef]) throws(FSError) -> [UInt64: ChunkRef] {
        let first = indexes.lowerBound / Self.segmentChunks, last = indexes.upperBound / Self.segmentChunks
        // A range wider than the map keeps (a commit of pages far apart) is one query, uncached.
        guard last - first < UInt64(Self.maxSegments) else {
            var refs: [UInt64: ChunkRef] = [:]
            for ref in try load(indexes) { refs[ref.index.rawValue] = ref }
            return refs
        }
        let (cached, version) = state.withLock { s -> ([UInt64: [UInt64: ChunkRef]], UInt64) in
            if s.epoch != epoch { s.epoch = epoch; s.segments.removeAll() }
            var cached: [UInt64: [UInt64: ChunkRef]] = [:]
            for segment in first...last { if let refs = s.segments[segment] { cached[segment] = refs } }
            return (cached, s.version)
        }
        var segments = cached
        for segment in first...last where segments[segment] == nil {
            let lower = segment * Self.segmentChunks
            var refs: [UInt64: ChunkRef] = [:]
            for ref in try load(lower...(lower + Self.segmentChunks - 1)) { refs[ref.index.rawValue] = ref }
            segments[segment] = refs
        }
        if segments.count > cached.count {
            state.withLock { s in
                // Loaded across an invalidation (or a metadata swap): used for this read, which
                // raced the change, but not kept.
                guard s.version == version, s.epoch == epoch else { return }
                if s.segments.count + segments.count > Self.maxSegments { s.segments.removeAll() }
                for (segment, refs) in segments { s.segments[segment] = refs }
            }
        }
        // A read asks for one or two chunks of a 1024-chunk segment: looked up one by one, not
        // by walking the segment.
        var result: [UInt64: ChunkRef] = [:]
        for index in indexes { if let ref = segments[index / Self.segmentChunks]?[index] { result[index] = ref } }
        return result
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
}
