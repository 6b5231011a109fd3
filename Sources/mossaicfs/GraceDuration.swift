/// Durations on the command line: a number with an optional unit s, m, h or d (`--grace 30m`);
/// a bare number is seconds.
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
}
