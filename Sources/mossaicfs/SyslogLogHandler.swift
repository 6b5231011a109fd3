#if canImport(Glibc)
import Glibc
#endif
import Logging

/// A swift-log handler for the background daemon, whose stderr is /dev/null: messages go to
/// syslog (and so to the journal) as "mossaicfs[pid]: message key=value …".
struct SyslogLogHandler: LogHandler {
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]
    let label: String

    init(label: String) {
        self.label = label
        openlog("mossaicfs", LOG_PID | LOG_NDELAY, LOG_DAEMON)
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let level = event.level, message = event.message
        let all = metadata.merging(event.metadata ?? [:]) { $1 }
        let text = all.isEmpty ? "\(message)" : "\(message) " + all.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        let priority: Int32 = switch level {
        case .trace, .debug: LOG_DEBUG
        case .info: LOG_INFO
        case .notice: LOG_NOTICE
        case .warning: LOG_WARNING
        case .error: LOG_ERR
        case .critical: LOG_CRIT
        }
        // syslog(3) is variadic; vsyslog with an explicit "%s" takes the text verbatim.
        withVaList([text]) { vsyslog(priority, "%s", $0) }
    }
}
