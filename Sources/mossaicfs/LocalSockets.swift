#if canImport(Glibc)
import Glibc
#endif
import Foundation
import MossaicCore

/// A listening socket served by one plain thread: each connection gets a request line and an
/// answer, then is closed. Used for the control socket (`status`) and the metrics endpoint,
/// which answer in well under a millisecond, so one thread serving them in turn is plenty and
/// never touches a FUSE worker. The control socket also serves requests that take long or
/// never end (`warmup`, `progress`): it serves each connection on a thread of its own
/// (`concurrent`), so that a `status` never waits behind them.
final class SocketServer: @unchecked Sendable {
    // @unchecked: `fd` is written once before the thread starts; `stopped` is read by the
    // thread after `stop()` closed the socket, which is what ends `accept`.
    private let fd: Int32
    /// Answers a request line; the second argument is who sent it on a Unix socket (nil on
    /// TCP, which tells nothing of the kind); the third sends a line before the answer and
    /// says whether the client is still there.
    typealias Handler = @Sendable (String, Caller?, _ send: @escaping @Sendable (String) -> Bool) -> String
    private let handler: Handler
    private let unixDomain: Bool
    private var thread: Thread?

    private init(fd: Int32, unixDomain: Bool, handler: @escaping Handler) {
        self.fd = fd
        self.unixDomain = unixDomain
        self.handler = handler
    }

    /// Listens on a Unix socket at `path` (replacing a stale one), mode 0600.
    static func unix(path: String, handler: @escaping Handler) throws(OptionError) -> SocketServer {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw OptionError("socket: \(String(cString: strerror(errno)))") }
        unlink(path)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { close(fd); throw OptionError("socket path too long: \(path)") }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in raw.copyBytes(from: bytes + [0]) }
        let rc = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        guard rc == 0, chmod(path, 0o600) == 0, listen(fd, 16) == 0 else {
            let why = String(cString: strerror(errno)); close(fd)
            throw OptionError("cannot listen on \(path): \(why)")
        }
        return SocketServer(fd: fd, unixDomain: true, handler: handler)
    }

    /// Listens on TCP `host:port`, which must be a loopback address.
    static func tcpLoopback(_ endpoint: String, handler: @escaping @Sendable (String, Caller?) -> String) throws(OptionError) -> SocketServer {
        guard let colon = endpoint.lastIndex(of: ":"), let port = UInt16(endpoint[endpoint.index(after: colon)...]) else {
            throw OptionError("option 'metrics': '\(endpoint)' is not HOST:PORT")
        }
        var host = String(endpoint[..<colon])
        if host == "localhost" { host = "127.0.0.1" }
        var addr = in_addr()
        guard inet_pton(AF_INET, host, &addr) == 1, UInt32(bigEndian: addr.s_addr) >> 24 == 127 else {
            throw OptionError("option 'metrics': \(host) is not a loopback IPv4 address (the endpoint has no authentication)")
        }
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw OptionError("socket: \(String(cString: strerror(errno)))") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr = addr
        let rc = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard rc == 0, listen(fd, 16) == 0 else {
            let why = String(cString: strerror(errno)); close(fd)
            throw OptionError("option 'metrics': cannot listen on \(endpoint): \(why)")
        }
        return SocketServer(fd: fd, unixDomain: false) { request, caller, _ in handler(request, caller) }
    }

    func start() {
        let t = Thread { [self] in self.serve() }
        t.name = "mossaicfs-socket"
        thread = t
        t.start()
    }

    /// Closes the listening socket, which ends the serving thread's accept().
    func stop() {
        shutdown(fd, Int32(SHUT_RDWR))
        close(fd)
    }

    private func serve() {
        while true {
            // accept4 is hidden behind _GNU_SOURCE; set CLOEXEC right after accept instead (the
            // daemon spawns nothing, so the window cannot leak the descriptor).
            let client = accept(fd, nil, nil)
            if client < 0 {
                if errno == EINTR || errno == ECONNABORTED { continue }
                return
            }
            _ = fcntl(client, F_SETFD, FD_CLOEXEC)
            if unixDomain {
                let t = Thread { [self] in self.answer(client) }
                t.name = "mossaicfs-control"
                t.start()
            } else {
                answer(client)
            }
        }
    }

    private func answer(_ client: Int32) {
        var timeout = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = read(client, &buffer, buffer.count)
        let request = n > 0 ? String(decoding: buffer[0..<n], as: UTF8.self) : ""
        let send: @Sendable (String) -> Bool = { Self.send(client, $0) }
        _ = Self.send(client, handler(request, unixDomain ? Self.peer(client) : nil, send))
        close(client)
    }

    /// Writes `text` whole; false if the client has gone. MSG_NOSIGNAL: a client that hung up
    /// is an EPIPE here, not a SIGPIPE that would kill the daemon.
    private static func send(_ client: Int32, _ text: String) -> Bool {
        let bytes = Array(text.utf8)
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(client, $0.baseAddress! + done, $0.count - done, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return false }
            done += n
        }
        return true
    }

    /// The process at the other end of a Unix socket, as the kernel saw it connect
    /// (SO_PEERCRED): it cannot be forged by what the client sends.
    private static func peer(_ client: Int32) -> Caller? {
        // struct ucred { pid_t pid; uid_t uid; gid_t gid; }, which Swift's Glibc hides behind
        // _GNU_SOURCE: read as three 32-bit integers.
        var credentials: (Int32, UInt32, UInt32) = (0, 0, 0)
        var size = socklen_t(MemoryLayout.size(ofValue: credentials))
        guard getsockopt(client, SOL_SOCKET, SO_PEERCRED, &credentials, &size) == 0,
              size == socklen_t(MemoryLayout.size(ofValue: credentials)) else { return nil }
        return Caller(uid: credentials.1, gid: credentials.2, pid: UInt32(bitPattern: credentials.0))
    }
}
