#if canImport(Glibc)
import Glibc
#endif
internal import CIoctl
import MossaicCore
import Synchronization

/// The one progress display of every command: a line on stderr, redrawn in place, with the
/// rate in human units per second and the time left — on a terminal only. In a pipe, a log or
/// a cron mail it prints nothing (a stream of carriage returns helps nobody there).
///
/// The rate is measured over the current phase (`what`): a new phase starts its clock anew, so
/// listing objects does not skew the rate of deleting them. It and the ETA appear once the
/// phase has run for a second with some progress: an early guess swings too much to help.
final class ProgressBar: Sendable {
    private struct Phase {
        var what = ""
        var started = Timestamp.monotonicNow()
        var lastDraw: Timestamp?
    }

    private let enabled: Bool
    private let unit: ProgressEvent.Unit
    private let phase = Mutex(Phase())

    /// `unit`: what `done` and `total` count, unless an event says otherwise.
    init(unit: ProgressEvent.Unit = .count, terminal: Bool = isatty(2) == 1) {
        self.unit = unit
        self.enabled = terminal
    }

    func show(_ what: String, _ done: Int, _ total: Int) {
        show(ProgressEvent(what, done: done, total: total, unit: unit))
    }

    func show(_ event: ProgressEvent) {
        guard enabled else { return }
        let now = Timestamp.monotonicNow()
        let elapsed: Double? = phase.withLock { p in
            if p.what != event.what { p = Phase(what: event.what, started: now) }
            // At most ten redraws a second, but the last step of a phase always.
            if let last = p.lastDraw, now.secondsSince(last) < 0.1, event.done < event.total { return nil }
            p.lastDraw = now
            return now.secondsSince(p.started)
        }
        guard let elapsed else { return }
        Console.write(2, "\r\u{1b}[K" + Self.line(event, elapsed: elapsed, columns: Self.columns()))
    }

    func finish() {
        if enabled { Console.write(2, "\r\u{1b}[K") }
    }

    /// The text of the line: `what [####    ] done/total  rate  ETA m:ss`, shortened to fit
    /// `columns` (the bar goes first, then the ETA and the rate; a line that wraps would leave
    /// a trail of copies behind each redraw).
    static func line(_ e: ProgressEvent, elapsed: Double, columns: Int = 80) -> String {
        let amount = e.total > 0 ? "\(quantity(e.done, e.unit))/\(quantity(e.total, e.unit))" : quantity(e.done, e.unit)
        var rate: String?, eta: String?
        if elapsed >= 1, e.done > 0 {
            let perSecond = Double(e.done) / elapsed
            rate = e.unit == .bytes ? "\(ByteSize.human(UInt64(perSecond)))/s" : "\(formatRate(perSecond))/s"
            if e.total > e.done { eta = "ETA " + duration(Double(e.total - e.done) / perSecond) }
        }
        var bar: String?
        if e.total > 0 {
            let width = 20, filled = min(width, max(0, e.done) * width / e.total)
            bar = "[" + String(repeating: "#", count: filled) + String(repeating: " ", count: width - filled) + "]"
        }
        let head = e.total > 0 || e.done > 0 ? e.what : e.what + "..."
        func join(_ parts: [String?]) -> String { parts.compactMap { $0 }.joined(separator: "  ") }
        for candidate in [[head, bar, amount, rate, eta], [head, amount, rate, eta], [head, amount, rate], [head, amount]] {
            let text = join(candidate)
            if text.count < columns { return text }
        }
        return String(join([head, amount]).prefix(max(0, columns - 1)))
    }

    static func quantity(_ n: Int, _ unit: ProgressEvent.Unit) -> String {
        unit == .bytes ? ByteSize.human(UInt64(max(0, n))) : "\(n)"
    }

    /// A count per second: whole numbers from 10 up, one decimal below.
    static func formatRate(_ r: Double) -> String {
        r >= 10 ? "\(Int(r.rounded()))" : "\(Double(Int((r * 10).rounded())) / 10)"
    }

    /// Seconds as `m:ss`, or `h:mm:ss` from an hour up; beyond 99 hours, `>99h`.
    static func duration(_ seconds: Double) -> String {
        guard seconds.isFinite, seconds < 99 * 3600 else { return ">99h" }
        let s = Int(seconds.rounded(.up))
        func two(_ n: Int) -> String { n < 10 ? "0\(n)" : "\(n)" }
        return s >= 3600 ? "\(s / 3600):\(two(s / 60 % 60)):\(two(s % 60))" : "\(s / 60):\(two(s % 60))"
    }

    /// The terminal's width (TIOCGWINSZ on stderr), 80 if it does not say.
    private static func columns() -> Int {
        var size = winsize()
        guard cioctl_ptr(2, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 0 else { return 80 }
        return Int(size.ws_col)
    }
}
