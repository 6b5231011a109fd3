import Logging
import Synchronization

/// A swift-log handler that keeps every message, for tests that assert what a layer reported
/// (and how often). `logger()` makes a Logger writing into one shared `Messages` box.
public struct CapturingLogHandler: LogHandler {
    public final class Messages: Sendable {
        private let lines = Mutex<[(level: Logger.Level, message: String)]>([])
        public init() {}
        public var all: [(level: Logger.Level, message: String)] { lines.withLock { $0 } }
        func append(_ level: Logger.Level, _ message: String) { lines.withLock { $0.append((level, message)) } }
    }

    public let messages: Messages
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .trace

    public static func logger(into messages: Messages) -> Logger {
        Logger(label: "test", factory: { _ in CapturingLogHandler(messages: messages) })
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        messages.append(event.level, event.message.description)
    }
}
