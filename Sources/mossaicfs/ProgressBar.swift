#if canImport(Glibc)
import Glibc
#endif

/// A one-line progress bar on stderr when it is a terminal; silent otherwise (logs, pipes).
final class ProgressBar: Sendable {
    private let enabled = isatty(2) == 1

    func show(_ what: String, _ done: Int, _ total: Int) {
        guard enabled else { return }
        guard total > 0 else { Console.write(2, "\r\u{1b}[K\(what)..."); return }
        let width = 30, filled = done * width / total
        Console.write(2, "\r\u{1b}[K\(what) [" + String(repeating: "#", count: filled) + String(repeating: " ", count: width - filled) + "] \(done)/\(total)")
    }

    func finish() {
        if enabled { Console.write(2, "\r\u{1b}[K") }
    }
}
