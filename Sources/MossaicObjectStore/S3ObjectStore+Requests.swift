internal import CCurl
import Foundation
import Logging
import MossaicCore

/// The operations of the store, as named in messages and logs.
enum S3Operation: String {
    case put = "PUT", get = "GET", head = "HEAD", delete = "DELETE", list = "LIST"

    var method: HTTPRequest.Method {
        switch self {
        case .put: .put
        case .get, .list: .get
        case .head: .head
        case .delete: .delete
        }
    }
}

/// The last response of a request, and whether an earlier attempt may have taken effect on the
/// server although we saw it fail (response lost, 5xx after the body was sent). Conditional PUTs
/// need to know: their retry can then see a 412 caused by their own first attempt.
struct SendOutcome {
    var response: HTTPResponse
    var hadUncertainAttempt: Bool
}

/// A request's body and how its hash reaches the signature.
enum S3Payload {
    /// One buffer, signed by curl with its SHA-256: `sha256` when the caller knows it (a chunk's
    /// name), else computed here.
    case whole([UInt8], sha256: ChunkHash?)
    /// Pieces whose SHA-256 each the caller knows, sent `aws-chunked` with a signature per
    /// piece (`S3StreamingSignature`): no pass over the bytes here. Each piece but the last
    /// must be at least `S3StreamingSignature.minimumPieceSize`.
    case streamed([HashedBytes])
    /// Pieces sent one after the other as they are, `UNSIGNED-PAYLOAD` with a signed CRC-32C of
    /// them that S3 verifies (`S3StreamingSignature.signChecksummed`).
    case checksummed([[UInt8]])
}

extension S3ObjectStore {
    /// What to do after one attempt.
    private enum Verdict {
        /// A response to hand to the operation (success or an error that retrying cannot cure).
        case done(HTTPResponse)
        /// A transient failure: retry if the budget allows, else throw `finalError`.
        case retry(reason: String, uncertainOutcome: Bool, finalError: ObjectStoreError)
        case fail(ObjectStoreError)
    }

    /// Sends one request, retrying transient failures per `policy` (the configuration's by
    /// default). Returns the response of the final attempt for the operation to interpret.
    func send(_ operation: S3Operation, key: String?, query: [(name: String, value: String)],
              headers: [(name: String, value: String)], payload: S3Payload = .whole([], sha256: nil),
              receiveParts: [Int] = [], policy: RetryPolicy? = nil) throws(ObjectStoreError) -> SendOutcome {
        let policy = policy ?? configuration.retryPolicy
        var allHeaders = headers
        // curl has no option for STS session tokens; the header is signed like any other.
        if let token = configuration.credentials.sessionToken { allHeaders.append(("x-amz-security-token", token)) }
        let url = url(for: key, query: query)
        let curlSigning = CurlSigning(provider: "aws:amz:\(configuration.region):s3",
                                      accessKeyID: configuration.credentials.accessKeyID,
                                      secretAccessKey: configuration.credentials.secretAccessKey)
        // What each attempt sends, and whether curl signs it: a streamed or checksummed body is
        // signed here, per attempt, because its signature holds the time.
        let prepare: () -> (request: HTTPRequest, signing: CurlSigning?)
        // For the bodies signed here: the signer, the path as sent, the headers to sign.
        func signedHere() -> (S3StreamingSignature, String, [(name: String, value: String)]) {
            let (host, path) = Self.hostAndPath(of: url)
            let signer = S3StreamingSignature(accessKeyID: configuration.credentials.accessKeyID,
                                              secretAccessKey: configuration.credentials.secretAccessKey,
                                              region: configuration.region)
            return (signer, path, allHeaders + [("host", host)])
        }
        switch payload {
        case .whole(let body, let sha256):
            // curl 7.88 does not send x-amz-content-sha256 (curl/curl#8810), which S3 requires,
            // and for read-callback uploads it would sign the hash of an empty body. Sent
            // explicitly, curl signs the header and uses its value as the payload hash.
            allHeaders.append(("x-amz-content-sha256", (sha256 ?? ChunkHash.of(body)).hex))
            let request = HTTPRequest(method: operation.method, url: url, headers: allHeaders, body: body.isEmpty ? [] : [body],
                                      receiveParts: receiveParts)
            prepare = { (request, curlSigning) }
        case .checksummed(let pieces):
            let (signer, path, signed) = signedHere()
            let length = pieces.reduce(0) { $0 + $1.count }
            let crc32c = CRC32C.of(pieces)
            prepare = {
                let headers = signer.signChecksummed(method: operation.method.rawValue, path: path, headers: signed, bodyLength: length,
                                                     crc32c: crc32c, timestamp: S3StreamingSignature.timestamp())
                return (HTTPRequest(method: operation.method, url: url, headers: headers, body: pieces), nil)
            }
        case .streamed(let pieces):
            let (signer, path, signed) = signedHere()
            prepare = {
                let s = signer.sign(method: operation.method.rawValue, path: path, headers: signed, pieces: pieces,
                                    timestamp: S3StreamingSignature.timestamp())
                return (HTTPRequest(method: operation.method, url: url, headers: s.headers, body: s.body), nil)
            }
        }
        let target = key ?? displayName
        let started = Timestamp.monotonicNow()
        var uncertain = false
        var attempt = 1
        while true {
            let (request, signing) = prepare()
            // Each attempt gets what is left of the request's deadline (RetryPolicy).
            let timeout = policy.attemptTimeout(elapsed: Timestamp.monotonicNow().secondsSince(started))
            let limits = TransferLimits(connectTimeoutMilliseconds: Int(policy.connectTimeout * 1000),
                                        lowSpeedBytesPerSecond: 1024, lowSpeedSeconds: min(30, Int((timeout ?? 30).rounded(.up))),
                                        totalTimeoutMilliseconds: timeout.map { max(1, Int($0 * 1000)) } ?? 0)
            guard let result = pool.withHandle({ $0.perform(request, signing: signing, caFile: configuration.caFile, limits: limits) }) else {
                throw .failed("S3 \(operation.rawValue) \(target): cannot create a curl handle")
            }
            let verdict: Verdict = switch result {
            case .success(let response): classify(response, operation: operation, key: key)
            case .failure(let failure): classify(failure, operation: operation, target: target)
            }
            switch verdict {
            case .done(let response):
                return SendOutcome(response: response, hadUncertainAttempt: uncertain)
            case .fail(let error):
                throw error
            case .retry(let reason, let uncertainOutcome, let finalError):
                uncertain = uncertain || uncertainOutcome
                let delay = policy.delay(beforeRetry: attempt)
                let elapsed = Timestamp.monotonicNow().secondsSince(started)
                let overBudget = policy.totalBudget.map { elapsed + delay > $0 } ?? false
                guard attempt < policy.maxAttempts, !overBudget else {
                    logger.warning("S3 request failed, giving up", metadata: [
                        "op": "\(operation.rawValue)", "key": "\(target)", "attempts": "\(attempt)", "reason": "\(reason)",
                    ])
                    throw Self.withAttempts(finalError, attempt)
                }
                logger.info("S3 request failed, retrying", metadata: [
                    "op": "\(operation.rawValue)", "key": "\(target)", "attempt": "\(attempt)", "reason": "\(reason)",
                    "delay_ms": "\(Int(delay * 1000))",
                ])
                noteRetry()
                if delay > 0 { Thread.sleep(forTimeInterval: delay) }
                attempt += 1
            }
        }
    }

    /// The request URL: endpoint, bucket (in the path or the host), the percent-encoded full key
    /// (segments encoded, `/` kept: curl signs the path as written) and the canonical query.
    func url(for key: String?, query: [(name: String, value: String)]) -> String {
        var base = configuration.endpoint
        var path = configuration.endpointPath
        switch configuration.addressing {
        case .path:
            path += "/" + S3Encoding.percentEncode(configuration.bucket, keepSlash: false)
        case .virtual:
            if let scheme = base.range(of: "://") { base.insert(contentsOf: configuration.bucket + ".", at: scheme.upperBound) }
        }
        if let key { path += "/" + S3Encoding.percentEncode(fullKey(key), keepSlash: true) }
        if path.isEmpty { path = "/" }
        return query.isEmpty ? base + path : base + path + "?" + S3Encoding.query(query)
    }

    /// The host (with any port) and the path (without the query) of a request URL, as curl
    /// sends them: what a signature computed here must cover.
    static func hostAndPath(of url: String) -> (host: String, path: String) {
        var rest = url[...]
        if let scheme = rest.range(of: "://") { rest = rest[scheme.upperBound...] }
        let pathStart = rest.firstIndex(where: { $0 == "/" || $0 == "?" }) ?? rest.endIndex
        var path = rest[pathStart...]
        if let query = path.firstIndex(of: "?") { path = path[..<query] }
        return (String(rest[..<pathStart]), path.isEmpty ? "/" : String(path))
    }

    /// `prefix/key`, or `key` when the store is at the bucket root.
    func fullKey(_ key: String) -> String {
        configuration.prefix.isEmpty ? key : configuration.prefix + "/" + key
    }

    private func classify(_ response: HTTPResponse, operation: S3Operation, key: String?) -> Verdict {
        let status = response.status
        if (200..<300).contains(status) {
            // A connection cut mid-body can look like a short success to a lenient server or
            // proxy; never hand a truncated object to the filesystem.
            if operation.method == .get, let expected = response.contentLength, expected != UInt64(response.bodyCount) {
                let why = "body is \(response.bodyCount) bytes, Content-Length said \(expected)"
                return .retry(reason: why, uncertainOutcome: false,
                              finalError: .failed("S3 \(operation.rawValue) \(key ?? displayName): \(why)"))
            }
            return .done(response)
        }
        guard status >= 400 else { return .done(response) }
        let code = S3ErrorBody(response.body)?.code ?? ""
        let transient = status == 429 || (status >= 500 && status != 501)
            || ["SlowDown", "RequestTimeout", "InternalError", "ServiceUnavailable", "ConditionalRequestConflict"].contains(code)
        guard transient else { return .done(response) }
        // S3's SlowDown/ServiceUnavailable mean the request was refused before any work; any
        // other failure (a 500, a bare 503 from a load balancer) may have been applied.
        let refused = code == "SlowDown" || code == "ServiceUnavailable"
        return .retry(reason: "HTTP \(status)\(code.isEmpty ? "" : " \(code)")", uncertainOutcome: !refused,
                      finalError: error(for: response, operation: operation, key: key))
    }

    private func classify(_ failure: CurlFailure, operation: S3Operation, target: String) -> Verdict {
        let reason = Self.oneLine(failure.message)
        let unreachable = ObjectStoreError.unreachable(endpoint: configuration.endpoint, reason: reason)
        switch failure.code {
        case CURLE_COULDNT_CONNECT, CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_RESOLVE_PROXY:
            // Nothing reached the server.
            return .retry(reason: reason, uncertainOutcome: false, finalError: unreachable)
        case CURLE_SSL_CONNECT_ERROR:
            return .retry(reason: reason, uncertainOutcome: false, finalError: unreachable)
        case CURLE_OPERATION_TIMEDOUT:
            return .retry(reason: reason, uncertainOutcome: true, finalError: unreachable)
        case CURLE_SEND_ERROR, CURLE_RECV_ERROR, CURLE_GOT_NOTHING, CURLE_PARTIAL_FILE, CURLE_HTTP2,
             CURLE_HTTP2_STREAM, CURLE_SEND_FAIL_REWIND, CURLE_WEIRD_SERVER_REPLY, CURLE_UPLOAD_FAILED:
            return .retry(reason: reason, uncertainOutcome: true,
                          finalError: .failed("S3 \(operation.rawValue) \(target): connection to \(configuration.endpoint) failed: \(reason)"))
        case CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CACERT_BADFILE, CURLE_SSL_CERTPROBLEM:
            return .fail(.unreachable(endpoint: configuration.endpoint,
                                      reason: "TLS certificate not trusted (\(reason)); for a private CA use -o ca_file=FILE"))
        case CURLE_URL_MALFORMAT, CURLE_UNSUPPORTED_PROTOCOL:
            return .fail(.invalidConfiguration("endpoint \(configuration.endpoint): \(reason)"))
        default:
            return .fail(.failed("S3 \(operation.rawValue) \(target): \(reason)"))
        }
    }

    private static func withAttempts(_ error: ObjectStoreError, _ attempts: Int) -> ObjectStoreError {
        guard attempts > 1 else { return error }
        switch error {
        case .failed(let why): return .failed("\(why) (after \(attempts) attempts)")
        case .unreachable(let endpoint, let reason): return .unreachable(endpoint: endpoint, reason: "\(reason) (after \(attempts) attempts)")
        default: return error
        }
    }

    /// Error texts go into one-line messages.
    static func oneLine(_ text: String, limit: Int = 300) -> String {
        let flat = text.split(whereSeparator: \.isNewline).joined(separator: " ")
        return flat.count > limit ? String(flat.prefix(limit)) + "…" : flat
    }
}
