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
        if bytes.count < end { bytes.append(contentsOf: repeatElement(0, count: end - bytes.count)) }
        bytes.withUnsafeMutableBytes { dst in
            dst.baseAddress!.advanced(by: offset).copyMemory(from: data.baseAddress!, byteCount: data.count)
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
