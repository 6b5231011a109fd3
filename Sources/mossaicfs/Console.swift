#if canImport(Glibc)
import Glibc
#endif
import Logging

/// Writing to the terminal without Foundation's non-Sendable globals (Swift 6 rejects `stderr`).
enum Console {
    static func error(_ message: String) { write(2, "mossaicfs: \(message)\n") }
    static func out(_ message: String) { write(1, message + "\n") }

    /// A logger for the commands that run and exit (format, fsck, gc, …): to stderr, at
    /// `level`. Their store gets `.error`, so a store that fails does not print a line per
    /// retry before the one-line error the command prints anyway; the daemon logs retries.
    static func logger(_ level: Logger.Level) -> Logger {
        var logger = Logger(label: "mossaicfs") { StreamLogHandler.standardError(label: $0) }
        logger.logLevel = level
        return logger
    }

    /// The line fsck, gc and mount print while they wait for a daemon that is finishing after
    /// its unmount on the same cache_dir (CacheDirectory).
    static func waitingForPreviousDaemonMessage(_ pid: String) -> String {
        "waiting for the previous daemon (pid \(pid)) to finish storing what it holds …"
    }

    static func waitingForPreviousDaemon(_ pid: String) { error(waitingForPreviousDaemonMessage(pid)) }

    /// A line typed on the terminal without echo (getpass(3) reads /dev/tty), for a
    /// passphrase; empty if there is no terminal.
    static func readSecret(_ prompt: String) -> [UInt8] {
        guard let line = getpass(prompt) else { return [] }
        return Array(String(cString: line).utf8)
    }

    static func write(_ fd: Int32, _ text: String) {
        var bytes = Array(text.utf8)
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeMutableBytes { Glibc.write(fd, $0.baseAddress! + done, $0.count - done) }
            if n <= 0 { if errno == EINTR { continue }; return }
            done += n
        }
    }
}
