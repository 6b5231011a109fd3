/// Where the mount daemon's log goes: `-o log=FILE|stderr|syslog`, or the default. In
/// MossaicCore because `MountConfiguration` holds it.
public enum LogDestination: Equatable, Sendable {
    case stderr
    case syslog
    /// A file the daemon appends to (an absolute path).
    case file(String)
    /// `cache_dir/mossaicfs.log`, opened once the cache_dir is known (LogSink holds the lines
    /// logged before).
    case cacheDirectoryFile

    public static let cacheDirectoryFileName = "mossaicfs.log"
    /// syslog(3) sends to this socket; journald or a syslog daemon listens on it.
    public static let syslogSocket = "/dev/log"

    /// The value of `log=`.
    public init?(option: String) {
        switch option {
        case "stderr": self = .stderr
        case "syslog": self = .syslog
        case _ where option.hasPrefix("/"): self = .file(option)
        default: return nil
        }
    }

    /// The destination: what `log=` says; else stderr in the foreground (the terminal, or the
    /// journal of a service that runs `mount -f`); else, in the background, where stderr is
    /// /dev/null, syslog if something listens on /dev/log — and if nothing does, a file in
    /// cache_dir, since syslog(3) would drop every line without a word.
    public static func resolve(option: LogDestination?, foreground: Bool, syslogAvailable: Bool) -> LogDestination {
        if let option { return option }
        if foreground { return .stderr }
        return syslogAvailable ? .syslog : .cacheDirectoryFile
    }
}
