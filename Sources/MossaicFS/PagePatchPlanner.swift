import MossaicCore
import MossaicMeta

/// The small-write path (issue 20, schema 5): decides whether a commit publishes a page
/// written only in part as patches over its committed chunk, and makes them.
///
/// Without it, a commit that changes 4 KiB of a page (a database's page, a log's append,
/// each followed by fsync) stores a whole new chunk of up to 1 MiB: a SQLite database on the
/// mount grew the bucket ~750× its size. With it the written bytes go into the metadata
/// (which ships only what changed), and the page's chunk stays.
///
/// The bounds trade read and space amplification against uploads (as JuiceFS bounds the
/// slices of a chunk and LSM stores their levels): a page holds at most `maxPatches`
/// patches and `maxPageBytes` of patch bytes. The commit that would pass either folds the
/// page back into one content-addressed chunk (compaction: the page's bytes as they read,
/// stored like any new chunk, its patches gone in the same transaction). A page is read
/// as its chunk plus at most `maxPageBytes` from the metadata, in the same query that
/// reads its reference.
enum PagePatchPlanner {
    /// Patch bytes one commit may add to a page; more is a rewrite, not a small write.
    static let maxCommitBytes = 64 << 10
    /// Patches a page holds before a commit compacts it.
    static let maxPatches = 128
    /// Patch bytes a page holds before a commit compacts it.
    static let maxPageBytes = 256 << 10

    /// What a commit of page `index` (live bytes `0..<live`, committed reference `base`, nil for a
    /// hole) publishes on the small-write path, or nil when the page should be a whole chunk:
    /// it is written entirely, it would be an inline chunk anyway (`inlineMax`: no upload, no
    /// layers), it has too much new data, or its patches would pass the bounds (compaction).
    ///
    /// The patches are the written byte ranges, and zeros over what is not written between
    /// the reference's old length and the end of the writes: a reference cut short
    /// (truncation) may sit on a chunk with older bytes past its length, which must not show
    /// again when the page grows.
    static func patches(for page: DirtyPage, index: UInt64, live: Int, base: ChunkRef?, inlineMax: Int) -> PagePatches? {
        guard live > inlineMax, !page.written.covers(0..<live) else { return nil }
        var written = IntervalSet()
        for r in page.written.ranges where r.lowerBound < live { written.insert(r.lowerBound..<min(r.upperBound, live)) }
        guard let end = written.ranges.last?.upperBound else { return nil }
        let oldLength = base?.length ?? 0
        var patches: [ChunkPatch] = []
        // Zeros first, where the page grows and nothing was written (no bytes kept for them).
        var gapStart = oldLength
        for r in written.ranges where r.upperBound > gapStart {
            if r.lowerBound > gapStart { patches.append(ChunkPatch(offset: gapStart, length: r.lowerBound - gapStart, data: [])) }
            gapStart = max(gapStart, r.upperBound)
        }
        var bytes = 0
        for r in written.ranges {
            // Trailing zeros are not kept.
            var data = Array(page.bytes[r.lowerBound..<min(r.upperBound, page.bytes.count)])
            if let last = data.lastIndex(where: { $0 != 0 }) { data.removeSubrange((last + 1)...) } else { data = [] }
            bytes += data.count
            patches.append(ChunkPatch(offset: r.lowerBound, length: r.count, data: data))
        }
        guard bytes <= maxCommitBytes,
              (base?.patches.count ?? 0) + patches.count <= maxPatches,
              (base?.patchBytes ?? 0) + bytes <= maxPageBytes else { return nil }
        return PagePatches(index: ChunkIndex(index), base: base, length: max(oldLength, end), patches: patches)
    }
}
