#if canImport(Glibc)
import Glibc
#endif
import Logging
import MossaicCore
import Synchronization

/// The one place the daemon's log lines go (LogDestination), shared by every logger.
///
/// Lines for stderr and files carry an ISO-8601 local time with milliseconds and offset, the
/// level and the pid: `2025-06-01T12:00:00.123+02:00 info mossaicfs[812]: mounted …`. Files
/// are opened for appending (several daemons may share one; logrotate's copytruncate works)
/// and written a whole line per write(2). Syslog adds its own time and takes the level as
/// the priority.
final class LogSink: Sendable {
    private enum Output {
        case descriptor(Int32)
        case syslog
        /// The cache_dir file is not open yet: lines wait here, with their time.
        case pending([(Timestamp, Logger.Level, String)])
    }

    private let output: Mutex<Output>
    private let pid = getpid()
    /// Lines kept while the cache_dir file is not open yet (a store that keeps failing at
    /// start must not fill the memory).
    private static let pendingLimit = 10_000

    /// Opens the destination (`.file`: may fail, with one line for the user).
    init(_ destination: LogDestination) throws(OptionError) {
        tzset()
        switch destination {
        case .stderr:
            output = Mutex(.descriptor(2))
        case .syslog:
            openlog("mossaicfs", LOG_PID | LOG_NDELAY, LOG_DAEMON)
            output = Mutex(.syslog)
        case .file(let path):
            output = Mutex(.descriptor(try Self.openFile(path)))
        case .cacheDirectoryFile:
            output = Mutex(.pending([]))
        }
    }

    /// Whether lines wait for `openCacheDirectoryFile`.
    var waitsForCacheDirectory: Bool {
        output.withLock { if case .pending = $0 { true } else { false } }
    }

    /// Opens `cacheDirectory/mossaicfs.log` (creating the directory, mode 0700, as the cache
    /// directory is) and writes the lines that waited for it.
    func openCacheDirectoryFile(_ cacheDirectory: String) throws(OptionError) {
        do { try PosixFiles.makeDirectories(cacheDirectory, mode: 0o700) } catch { throw OptionError("cannot create cache_dir for the log: \(error)") }
        let fd = try Self.openFile(cacheDirectory + "/" + LogDestination.cacheDirectoryFileName)
        output.withLock { output in
            guard case .pending(let lines) = output else { close(fd); return }
            for (time, level, text) in lines { Console.write(fd, line(time, level, text)) }
            output = .descriptor(fd)
        }
    }

    func write(_ level: Logger.Level, _ text: String) {
        let time = Timestamp.now()
        output.withLock { output in
            switch output {
            case .descriptor(let fd):
                Console.write(fd, line(time, level, text))
            case .syslog:
                // syslog(3) is variadic; vsyslog with an explicit "%s" takes the text verbatim.
                withVaList([text]) { vsyslog(Self.priority(level), "%s", $0) }
            case .pending(var lines):
                output = .pending([])  // `lines` is then the array's only owner: appended in place
                if lines.count < Self.pendingLimit { lines.append((time, level, text)) }
                output = .pending(lines)
            }
        }
    }

    private func line(_ time: Timestamp, _ level: Logger.Level, _ text: String) -> String {
        "\(Self.iso8601(time)) \(level) mossaicfs[\(pid)]: \(text)\n"
    }

    private static func openFile(_ path: String) throws(OptionError) -> Int32 {
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw OptionError("option 'log': cannot open \(path): \(String(cString: strerror(errno)))") }
        return fd
    }

    static func priority(_ level: Logger.Level) -> Int32 {
        switch level {
        case .trace, .debug: LOG_DEBUG
        case .info: LOG_INFO
        case .notice: LOG_NOTICE
        case .warning: LOG_WARNING
        case .error: LOG_ERR
        case .critical: LOG_CRIT
        }
    }

    /// `2025-06-01T12:00:00.123+02:00`: local time, milliseconds, the offset from UTC.
    static func iso8601(_ time: Timestamp) -> String {
        var seconds = time_t(time.nanoseconds / 1_000_000_000)
        var parts = tm()
        localtime_r(&seconds, &parts)
        var buffer = [CChar](repeating: 0, count: 32)
        let n = strftime(&buffer, buffer.count, "%Y-%m-%dT%H:%M:%S", &parts)
        let base = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let millis = Int(time.nanoseconds % 1_000_000_000 / 1_000_000)
        let offset = Int(parts.tm_gmtoff) / 60
        func two(_ v: Int) -> String { v < 10 ? "0\(v)" : "\(v)" }
        let ms = millis < 10 ? "00\(millis)" : millis < 100 ? "0\(millis)" : "\(millis)"
        return base + "." + ms + (offset < 0 ? "-" : "+") + two(abs(offset) / 60) + ":" + two(abs(offset) % 60)
    }
}
