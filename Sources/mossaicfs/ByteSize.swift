/// Sizes in options: a number with an optional binary suffix K, M, G or T (`cache_size=20G`);
/// and sizes in what the commands print: human-readable, or exact with `--bytes` (scripts).
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

    /// `n` for a reader: `512 B`, `1.5 KiB`, `3.0 GiB` (binary units, one decimal).
    static func human(_ n: UInt64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]
        var value = Double(n), unit = 0
        while value >= 1024 && unit < units.count - 1 { value /= 1024; unit += 1 }
        guard unit > 0 else { return "\(n) B" }
        var tenths = Int((value * 10).rounded())
        // 1023.96 KiB rounds to 1024.0: say 1.0 MiB.
        if tenths >= 10240 && unit < units.count - 1 { unit += 1; tenths = Int((value / 1024 * 10).rounded()) }
        return "\(tenths / 10).\(tenths % 10) \(units[unit])"
    }

    /// `n` as a command prints it: human-readable, or the exact integer with `--bytes`.
    static func printed(_ n: UInt64, exact: Bool) -> String {
        exact ? String(n) : human(n)
    }
}
