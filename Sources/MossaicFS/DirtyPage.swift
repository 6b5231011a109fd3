/// The written bytes of one chunk-sized page of an open file, not yet committed.
///
/// `bytes` holds the page from its start up to the furthest byte written (bytes never written
/// are zero there, and must be taken from the committed chunk unless `written` covers them).
struct DirtyPage: Sendable {
    var bytes: [UInt8] = []
    var written = IntervalSet()
    /// The file's write counter at the last write into this page: a commit removes the page only
    /// if no write came after the snapshot it committed.
    var version: UInt64 = 0

    mutating func write(_ data: UnsafeRawBufferPointer, at offset: Int) {
        let end = offset + data.count
        // Bytes over ones the page already holds are copied in place; the rest is appended
        // (after zeros for a gap) — not zero-filled first and then overwritten, which cost a
        // sequential writer a second pass over every byte.
        let inPlace = max(0, min(end, bytes.count) - offset)
        if inPlace > 0 {
            bytes.withUnsafeMutableBytes { dst in
                dst.baseAddress!.advanced(by: offset).copyMemory(from: data.baseAddress!, byteCount: inPlace)
            }
        }
        if end > bytes.count {
            if offset > bytes.count { bytes.append(contentsOf: repeatElement(0, count: offset - bytes.count)) }
            bytes.append(contentsOf: UnsafeRawBufferPointer(rebasing: data[inPlace...]))
        }
        written.insert(offset..<end)
    }

    /// Forgets everything at or past `bound` (a truncation inside the page).
    mutating func cut(at bound: Int) {
        if bytes.count > bound { bytes.removeLast(bytes.count - bound) }
        written.cut(at: bound)
    }

    /// Lays the written bytes of `range` over `base` (which holds the page's committed bytes
    /// for `range`, i.e. `base[0]` is page byte `range.lowerBound`).
    func overlay(onto base: inout [UInt8], range: Range<Int>) {
        for r in written.ranges {
            let lower = max(r.lowerBound, range.lowerBound), upper = min(r.upperBound, range.upperBound)
            guard lower < upper else { continue }
            base.replaceSubrange((lower - range.lowerBound)..<(upper - range.lowerBound), with: bytes[lower..<upper])
        }
    }
}
