/// Disjoint, sorted, merged half-open integer ranges: which bytes of a page were written.
struct IntervalSet: Equatable, Sendable {
    private(set) var ranges: [Range<Int>] = []

    mutating func insert(_ r: Range<Int>) {
        guard !r.isEmpty else { return }
        var lower = r.lowerBound, upper = r.upperBound
        var out: [Range<Int>] = []
        out.reserveCapacity(ranges.count + 1)
        var placed = false
        for existing in ranges {
            if existing.upperBound < lower {
                out.append(existing)
            } else if existing.lowerBound > upper {
                if !placed { out.append(lower..<upper); placed = true }
                out.append(existing)
            } else {
                lower = min(lower, existing.lowerBound)
                upper = max(upper, existing.upperBound)
            }
        }
        if !placed { out.append(lower..<upper) }
        ranges = out
    }

    /// True if every byte of `r` is inside the set.
    func covers(_ r: Range<Int>) -> Bool {
        if r.isEmpty { return true }
        return ranges.contains { $0.lowerBound <= r.lowerBound && $0.upperBound >= r.upperBound }
    }

    /// Removes everything at or past `bound`.
    mutating func cut(at bound: Int) {
        ranges = ranges.compactMap { $0.lowerBound >= bound ? nil : $0.lowerBound..<min($0.upperBound, bound) }
    }

    var isEmpty: Bool { ranges.isEmpty }
}
