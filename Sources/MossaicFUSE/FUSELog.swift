#if canImport(Glibc)
import Glibc
#endif
internal import CFuse
import Logging
import Synchronization

/// Routes libfuse's own messages (fuse_log) into our logger, and remembers the last one so a
/// failed mount can say why in one line instead of libfuse printing to stderr on its own.
enum FUSELog {
    private struct State {
        var logger: Logger?
        var last: String?
    }
    // A static Mutex: libfuse's log hook is a C function pointer with no userdata slot, so the
    // logger it forwards to must be reachable without context.
    private static let state = Mutex(State())

    static func install(_ logger: Logger) {
        state.withLock { $0.logger = logger }
        fuse_set_log_func { level, format, args in
            guard let format, let args else { return }
            var buffer = [CChar](repeating: 0, count: 1024)
            _ = vsnprintf(&buffer, buffer.count, format, args)
            var message = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            while message.hasSuffix("\n") { message.removeLast() }
            let logger = FUSELog.state.withLock { s -> Logger? in s.last = message; return s.logger }
            let lvl: Logger.Level = level.rawValue <= FUSE_LOG_ERR.rawValue ? .error : level.rawValue <= FUSE_LOG_NOTICE.rawValue ? .info : .debug
            logger?.log(level: lvl, "libfuse: \(message)")
        }
    }

    static func lastMessage() -> String? { state.withLock { $0.last } }
}
