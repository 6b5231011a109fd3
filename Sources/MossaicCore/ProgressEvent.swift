/// How far a long task has come, as the daemon tells a waiting command: the metadata restore
/// at mount (through the readiness pipe), the unmount flush and `warmup` (through the control
/// socket). One line of text on either channel, so a command can pick it out of an answer:
///
///     PROGRESS<TAB>what<TAB>done<TAB>total<TAB>bytes|count
///
/// `total` 0 means unknown. The command decides whether and how to show it (a terminal only).
public struct ProgressEvent: Sendable, Equatable {
    public enum Unit: String, Sendable { case bytes, count }

    public var what: String
    public var done: Int
    public var total: Int
    public var unit: Unit

    public init(_ what: String, done: Int, total: Int, unit: Unit = .count) {
        self.what = what; self.done = done; self.total = total; self.unit = unit
    }

    public static let prefix = "PROGRESS\t"

    /// The event as one line, newline included.
    public var line: String {
        let name = what.map { $0 == "\t" || $0 == "\n" ? " " : $0 }
        return Self.prefix + String(name) + "\t\(done)\t\(total)\t\(unit.rawValue)\n"
    }

    /// The event a line (without its newline) carries; nil for any other line.
    public init?(line: some StringProtocol) {
        guard line.hasPrefix(Self.prefix) else { return nil }
        let fields = line.dropFirst(Self.prefix.count).split(separator: "\t", omittingEmptySubsequences: false)
        guard fields.count == 4, let done = Int(fields[1]), let total = Int(fields[2]),
              let unit = Unit(rawValue: String(fields[3])) else { return nil }
        self.init(String(fields[0]), done: done, total: total, unit: unit)
    }
}
