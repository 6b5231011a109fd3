import Foundation

/// Per-transfer state that curl's C callbacks reach through their `userdata` pointer.
///
/// Lifetime: `CurlEasy.perform` retains it with `Unmanaged.passRetained` before the options that
/// point at it are set and releases it after `curl_easy_perform` returns, so every callback sees
/// a live object. It is touched only by the thread running that perform, hence not `Sendable`.
final class CurlTransferContext {
    /// Upload source and how far curl has read into it.
    let upload: [UInt8]
    var uploadOffset = 0

    var received: [UInt8] = []
    var headers: [String: String] = [:]

    init(upload: [UInt8]) { self.upload = upload }

    /// Called for every header line, including status lines of interim responses.
    func receiveHeaderLine(_ line: Substring) {
        if line.hasPrefix("HTTP/") {
            // A new response starts (after `100 Continue`, say): forget the previous one's headers.
            headers = [:]
            return
        }
        guard let colon = line.firstIndex(of: ":") else { return }
        let name = line[..<colon].lowercased()
        let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespacesAndNewlines)
        headers[name] = value
        if name == "content-length", let length = Int(value), length > received.capacity {
            // One allocation for the body instead of log2(n) regrowths; capped so a hostile or
            // broken server cannot make us reserve gigabytes up front.
            received.reserveCapacity(min(length, 64 << 20))
        }
    }
}
