/// Sizes in options: a number with an optional binary suffix K, M, G or T (`cache_size=20G`).
enum ByteSize {
    static func parse(_ text: String) -> Int? {
        var digits = Substring(text)
        var multiplier = 1
        if let last = digits.last, last.isLetter {
            switch last.uppercased() {
            case "K": multiplier = 1 << 10
            case "M": multiplier = 1 << 20
            case "G": multiplier = 1 << 30
            case "T": multiplier = 1 << 40
            default: return nil
            }
            digits = digits.dropLast()
            if digits.last == "i" || digits.last == "I" { return nil }
        }
        guard let n = Int(digits), n >= 0 else { return nil }
        let (product, overflow) = n.multipliedReportingOverflow(by: multiplier)
        return overflow ? nil : product
    }

    /// `n` as `parse` reads it, with the largest suffix that divides it exactly (1048576: 1M),
    /// for the ranges in error messages.
    static func format(_ n: Int) -> String {
        for (suffix, shift) in [("T", 40), ("G", 30), ("M", 20), ("K", 10)] where n != 0 && n % (1 << shift) == 0 {
            return "\(n >> shift)\(suffix)"
        }
        return "\(n)"
    }
}
