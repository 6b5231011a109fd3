import Foundation

/// Per-transfer state that curl's C callbacks reach through their `userdata` pointer.
///
/// Lifetime: `CurlEasy.perform` retains it with `Unmanaged.passRetained` before the options that
/// point at it are set and releases it after `curl_easy_perform` returns, so every callback sees
/// a live object. It is touched only by the thread running that perform, hence not `Sendable`.
final class CurlTransferContext {
    /// Upload source (segments sent one after the other) and how far curl has read into it.
    let upload: [[UInt8]]
    let uploadLength: Int
    private var segment = 0
    private var offsetInSegment = 0

    var received: [UInt8] = []
    /// With a plan (`HTTPRequest.receiveParts`) the body fills one buffer per planned part,
    /// in order; bytes beyond the plan go to `received`.
    let plan: [Int]
    var parts: [[UInt8]] = []
    var headers: [String: String] = [:]
    var status = 0

    init(upload: [[UInt8]], receiveParts plan: [Int] = []) {
        self.upload = upload
        self.plan = plan
        uploadLength = upload.reduce(0) { $0 + $1.count }
    }

    /// Body bytes as they arrive.
    func receive(_ bytes: UnsafeRawBufferPointer) {
        var offset = 0
        // Only a partial-content answer is cut into parts; anything else (an error body, a
        // server ignoring Range) is one buffer, as without a plan.
        if status == 206 {
            while offset < bytes.count {
                if parts.isEmpty || parts[parts.count - 1].count == plan[parts.count - 1] {
                    guard parts.count < plan.count else { break }
                    parts.append([])
                    parts[parts.count - 1].reserveCapacity(plan[parts.count - 1])
                }
                let i = parts.count - 1
                let n = min(plan[i] - parts[i].count, bytes.count - offset)
                parts[i].append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + n)]))
                offset += n
            }
        }
        if offset < bytes.count { received.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[offset...])) }
    }

    /// Copies the next upload bytes into `buffer`; returns how many (0 at the end).
    func readUpload(into buffer: UnsafeMutableRawBufferPointer) -> Int {
        var filled = 0
        while filled < buffer.count, segment < upload.count {
            let n = upload[segment].withUnsafeBytes { src -> Int in
                let n = min(buffer.count - filled, src.count - offsetInSegment)
                if n > 0, let base = src.baseAddress {
                    (buffer.baseAddress! + filled).copyMemory(from: base + offsetInSegment, byteCount: n)
                }
                return max(n, 0)
            }
            filled += n
            offsetInSegment += n
            if offsetInSegment >= upload[segment].count { segment += 1; offsetInSegment = 0 }
        }
        return filled
    }

    /// Moves the upload position to `offset` bytes from the start; false if out of range.
    func seekUpload(to offset: Int) -> Bool {
        guard offset >= 0, offset <= uploadLength else { return false }
        var rest = offset
        segment = 0
        while segment < upload.count, rest >= upload[segment].count {
            rest -= upload[segment].count
            segment += 1
        }
        offsetInSegment = rest
        return true
    }

    /// Called for every header line, including status lines of interim responses.
    func receiveHeaderLine(_ line: Substring) {
        if line.hasPrefix("HTTP/") {
            // A new response starts (after `100 Continue`, say): forget the previous one's headers.
            headers = [:]
            let fields = line.split(separator: " ", maxSplits: 2)
            status = fields.count > 1 ? Int(fields[1]) ?? 0 : 0
            return
        }
        guard let colon = line.firstIndex(of: ":") else { return }
        let name = line[..<colon].lowercased()
        let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespacesAndNewlines)
        headers[name] = value
        if name == "content-length", let length = Int(value), length > received.capacity, !(status == 206 && !plan.isEmpty) {
            // One allocation for the body instead of log2(n) regrowths; capped so a hostile or
            // broken server cannot make us reserve gigabytes up front.
            received.reserveCapacity(min(length, 64 << 20))
        }
    }
}
