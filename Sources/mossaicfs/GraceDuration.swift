/// Durations on the command line: a number with an optional unit s, m, h or d (`--grace 30m`,
/// `-o meta_keep_age=7d`); a bare number is seconds.
enum GraceDuration {
    static func parse(_ text: String) -> Double? {
        var digits = Substring(text)
        var unit = 1.0
        if let last = digits.last, last.isLetter {
            switch last {
            case "s": unit = 1
            case "m": unit = 60
            case "h": unit = 3600
            case "d": unit = 86_400
            default: return nil
            }
            digits = digits.dropLast()
        }
        guard let n = Double(digits), n >= 0, n.isFinite else { return nil }
        return n * unit
    }

    /// `seconds` as `parse` reads it, in the largest unit that divides it exactly (604800: 7d),
    /// for defaults in help and ranges in error messages.
    static func format(_ seconds: Double) -> String {
        for (suffix, unit) in [("d", 86_400.0), ("h", 3600), ("m", 60)] where seconds != 0 && seconds.truncatingRemainder(dividingBy: unit) == 0 {
            return "\(Int(seconds / unit))\(suffix)"
        }
        return seconds == seconds.rounded() ? "\(Int(seconds))s" : "\(seconds)s"
    }
}
