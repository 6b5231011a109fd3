#if canImport(Glibc)
import Glibc
#endif
import MossaicCore

/// The command's side of `ControlRequest`s sent over a daemon's control socket, and what a
/// refused caller is told for any request, whichever channel refused it.
enum ControlClient {
    /// The daemon serves only the mount's owner and root (`MossaicFilesystem.control`); its
    /// cache_dir (0700) already keeps others from the socket.
    static func refusal(_ target: String) -> String {
        "\(target): permission denied: only the user who mounted it, or root, may ask its daemon (snapshot, status, info, warmup)"
    }

    /// Sends `request` with `arguments` and returns the answer; `target` names the mount in
    /// errors. `ProgressEvent` lines the daemon sends before its answer go to `progress`.
    static func request(_ request: ControlRequest, arguments: [String] = [], socket path: String, target: String,
                        progress: (ProgressEvent) -> Void = { _ in }) throws(OptionError) -> String {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw OptionError("socket: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { throw OptionError("socket path too long: \(path)") }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in raw.copyBytes(from: bytes + [0]) }
        let rc = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        guard rc == 0 else {
            if errno == EACCES || errno == EPERM { throw OptionError(refusal(target)) }
            throw OptionError("no daemon answers at \(path): \(String(cString: strerror(errno)))")
        }
        Console.write(fd, request.line(arguments))
        var reply = [UInt8](), buffer = [UInt8](repeating: 0, count: 65536)
        var scanned = 0
        while true {
            let n = read(fd, &buffer, buffer.count)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { break }
            reply += buffer[0..<n]
            // Progress lines come first, one at a time; the answer is what follows them.
            while reply[scanned...].starts(with: ProgressEvent.prefix.utf8), let newline = reply[scanned...].firstIndex(of: UInt8(ascii: "\n")) {
                if let event = ProgressEvent(line: String(decoding: reply[scanned..<newline], as: UTF8.self)) { progress(event) }
                scanned = newline + 1
            }
        }
        let answer = String(decoding: reply[scanned...], as: UTF8.self)
        if answer.trimmingWhitespace() == "error: \(FSError.notPermitted)" { throw OptionError(refusal(target)) }
        return answer
    }
}
