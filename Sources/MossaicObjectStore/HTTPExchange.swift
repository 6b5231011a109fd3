internal import CCurl

/// One HTTP request as S3ObjectStore builds it: the URL is complete (path and query already
/// encoded, see `S3Encoding`), headers are sent as given and signed by curl.
struct HTTPRequest {
    enum Method: String, Sendable {
        case get = "GET", head = "HEAD", put = "PUT", delete = "DELETE"
    }
    var method: Method
    var url: String
    var headers: [(name: String, value: String)]
    /// The upload body (PUT only) as segments sent one after the other (a streaming upload's
    /// framing lines and pieces; usually one). Held by the transfer context for the whole
    /// transfer, so curl's read callback never sees freed memory.
    var body: [[UInt8]] = []
    /// For a GET: receive a 206 response's body as consecutive parts of these lengths, each in
    /// its own buffer (`HTTPResponse.parts`). Empty: one buffer.
    var receiveParts: [Int] = []
}

/// The final response of one transfer (after any `100 Continue`).
struct HTTPResponse {
    var status: Int
    /// Header names lowercased; a repeated header keeps its last value.
    var headers: [String: String]
    /// The body, unless it came as `parts` (a 206 answer to a request with `receiveParts`):
    /// then this holds only bytes beyond the planned parts.
    var body: [UInt8]
    var parts: [[UInt8]] = []

    var bodyCount: Int { parts.reduce(body.count) { $0 + $1.count } }

    var etag: String? { headers["etag"].map(S3Encoding.unquoteETag) }
    var contentLength: UInt64? { headers["content-length"].flatMap { UInt64($0) } }
}

/// A transfer that produced no HTTP response: curl's result code and its one-line explanation.
struct CurlFailure: Error {
    var code: CURLcode
    var message: String
}

/// Limits applied to one transfer.
struct TransferLimits {
    /// How long the TCP+TLS connect may take.
    var connectTimeoutMilliseconds: Int
    /// A transfer slower than `lowSpeedBytesPerSecond` for `lowSpeedSeconds` is aborted: a dead
    /// peer then fails the request (and it is retried) instead of hanging a FUSE thread forever.
    var lowSpeedBytesPerSecond: Int
    var lowSpeedSeconds: Int
    /// Bound on the whole transfer, or 0 for none (large bodies rely on the low-speed limit).
    var totalTimeoutMilliseconds: Int
}
