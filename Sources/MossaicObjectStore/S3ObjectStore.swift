import Logging
import MossaicCore
import Synchronization

/// The object store on an S3-compatible service (AWS, MinIO, Ceph, R2, moto…), over libcurl.
///
/// Thread-safe and blocking, like every `ObjectStore`: FUSE worker threads and background
/// workers call it directly. Up to `maxConnections` transfers run in parallel, each on a pooled
/// curl handle that keeps its connection alive. Transient failures (5xx, throttling, timeouts,
/// dropped connections) are retried with backoff per `configuration.retryPolicy`; the store's
/// keys are relative and get `configuration.prefix` prepended.
public final class S3ObjectStore: ObjectStore {
    public let configuration: S3Configuration
    let pool: CurlEasyPool
    let logger: Logger
    private let retries = Atomic<Int>(0)
    /// Whether packs are sent in the form `configuration.uploadChecksum` names; cleared for
    /// good when the server refuses one and takes the same PUT signed whole.
    private let packForm = Atomic<Bool>(true)

    /// - Parameter logger: where retries and failures are reported; nothing is logged if omitted.
    public init(configuration: S3Configuration,
                logger: Logger = Logger(label: "mossaicfs.s3", factory: { _ in SwiftLogNoOpLogHandler() })) {
        self.configuration = configuration
        self.logger = logger
        pool = CurlEasyPool(maxConnections: configuration.maxConnections)
    }

    /// How many times a request was retried since the store was created (all operations).
    public var retryCount: Int { retries.load(ordering: .relaxed) }

    func noteRetry() { retries.add(1, ordering: .relaxed) }

    public var displayName: String { configuration.displayName }
    public var isLocal: Bool { false }

    // MARK: - ObjectStore

    @discardableResult
    public func put(_ key: String, _ data: [UInt8], condition: PutCondition) throws(ObjectStoreError) -> String {
        try put(key, data, condition: condition, payload: .whole(data, sha256: nil))
    }

    /// A chunk is an unconditional PUT whose payload hash is known: its name. A pack goes out
    /// as its members one after the other, never copied into one buffer or hashed again:
    /// `upload_checksum=crc32c` (default) sends them `UNSIGNED-PAYLOAD` with a signed CRC-32C
    /// that S3 verifies; `sha256` signs each member by its own hash (`S3StreamingSignature`).
    /// A server that refuses the form (some S3-compatible ones do) gets the pack whole, hashed
    /// here, from then on; a pack S3 received altered (BadDigest) is sent again that way.
    public func putAddressed(_ key: String, _ pieces: [HashedBytes]) throws(ObjectStoreError) {
        // Release builds trust the callers, which all computed or verified the hashes from these
        // bytes; S3 itself answers a wrong one with XAmzContentSHA256Mismatch (or a bad chunk
        // signature).
        assert(pieces.allSatisfy { $0.knownSHA256 == nil || ChunkHash.of($0.bytes) == $0.knownSHA256 }, "putAddressed: a piece does not hash to its name")
        if pieces.count == 1 {
            _ = try put(key, pieces[0].bytes, condition: .none, payload: .whole(pieces[0].bytes, sha256: pieces[0].knownSHA256))
            return
        }
        guard packForm.load(ordering: .relaxed) else { return try putWhole(key, pieces) }
        let (payload, form): (S3Payload, String) = switch configuration.uploadChecksum {
        case .crc32c: (.checksummed(pieces.map(\.bytes)), "CRC-32C-checked")
        case .sha256: (.streamed(S3StreamingSignature.streamable(pieces)), "streaming-signed")
        }
        let response = try send(.put, key: key, query: [], headers: [], payload: payload).response
        if (200..<300).contains(response.status) { return }
        // A 4xx other than a missing bucket may be the server not speaking the form (400, 501
        // NotImplemented, 403 for a signature it computes differently): try the whole body. If
        // that fails too, its error is the one reported (bad credentials…).
        let code = S3ErrorBody(response.body)?.code
        guard (400..<500).contains(response.status) || response.status == 501, code != "NoSuchBucket" else {
            throw error(for: response, operation: .put, key: key)
        }
        try putWhole(key, pieces)
        if code == "BadDigest" {
            // The bytes changed on the way (the form works; it caught that): only this PUT.
            logger.warning("S3 received a pack whose checksum did not match its bytes; sent again, signed whole", metadata: ["key": "\(key)"])
        } else if packForm.exchange(false, ordering: .relaxed) {
            logger.warning("S3 server refused a \(form) PUT; packs are sent with whole-body signatures from now on",
                           metadata: ["status": "\(response.status)", "code": "\(code ?? "")"])
        }
    }

    /// The pieces as one body, hashed here for its signature.
    private func putWhole(_ key: String, _ pieces: [HashedBytes]) throws(ObjectStoreError) {
        let whole = HashedBytes.concatenated(pieces)
        _ = try put(key, whole, condition: .none, payload: .whole(whole, sha256: nil))
    }

    /// `data` is what `payload` sends, for the check after a failed condition.
    private func put(_ key: String, _ data: [UInt8], condition: PutCondition, payload: S3Payload) throws(ObjectStoreError) -> String {
        var headers: [(name: String, value: String)] = []
        switch condition {
        case .none: break
        case .ifNoneMatch: headers.append(("If-None-Match", "*"))
        case .ifMatch(let etag): headers.append(("If-Match", S3Encoding.quoteETag(etag)))
        }
        let outcome = try send(.put, key: key, query: [], headers: headers, payload: payload)
        let response = outcome.response
        if (200..<300).contains(response.status) { return response.etag ?? "" }
        // 412, or 404 for If-Match on a missing object: the condition does not hold.
        let conditionFailed = response.status == 412
            || (response.status == 404 && condition != .none && S3ErrorBody(response.body)?.code != "NoSuchBucket")
        guard conditionFailed else { throw error(for: response, operation: .put, key: key) }
        // But if an earlier attempt's outcome is unknown (response lost, 5xx), that attempt may
        // have done the write and this answer may be about our own object: if the object now
        // holds exactly these bytes, the state we asked for is in place, so report success.
        if outcome.hadUncertainAttempt, let current = try? fetch(key), current.bytes == data {
            logger.info("S3 conditional PUT found its own earlier attempt's write", metadata: ["key": "\(key)"])
            return current.etag
        }
        throw .preconditionFailed(key: key)
    }

    public func get(_ key: String) throws(ObjectStoreError) -> [UInt8] {
        try fetch(key).bytes
    }

    public func get(_ key: String, range: Range<UInt64>) throws(ObjectStoreError) -> [UInt8] {
        guard !range.isEmpty else {
            // Nothing to read, but a missing object must still be reported as missing.
            guard try head(key) != nil else { throw .notFound(key: key) }
            return []
        }
        return try get(key, range: range, parts: [Int(range.upperBound - range.lowerBound)]).first ?? []
    }

    public func get(_ key: String, range: Range<UInt64>, parts lengths: [Int]) throws(ObjectStoreError) -> [[UInt8]] {
        guard !range.isEmpty, lengths.reduce(0, +) == Int(range.upperBound - range.lowerBound) else {
            return try get(key, range: range).cut(into: lengths)
        }
        let outcome = try send(.get, key: key, query: [], headers: [("Range", "bytes=\(range.lowerBound)-\(range.upperBound - 1)")],
                               receiveParts: lengths)
        let response = outcome.response
        switch response.status {
        case 206:
            // The body must be the bytes asked for: a Content-Range starting elsewhere, or a body
            // shorter than the range it claims, would shift or truncate file data.
            guard let (first, last) = Self.contentRange(response.headers["content-range"]),
                  first == range.lowerBound, last >= first, last < range.upperBound,
                  UInt64(response.bodyCount) == last - first + 1 else {
                throw .failed("S3 GET \(key) bytes \(range.lowerBound)-\(range.upperBound - 1): response does not match the range (Content-Range: \(response.headers["content-range"] ?? "none"), \(response.bodyCount) bytes)")
            }
            return response.parts
        case 200:
            // A server that ignores Range sends the whole object; cut the range out of it.
            let count = UInt64(response.body.count)
            let lower = Int(min(range.lowerBound, count)), upper = Int(min(range.upperBound, count))
            return Array(response.body[lower..<upper]).cut(into: lengths)
        case 416:
            // The range starts at or past the end (or the object is empty): clamped, it is empty.
            return []
        case 404 where S3ErrorBody(response.body)?.code != "NoSuchBucket":
            throw .notFound(key: key)
        default:
            throw error(for: response, operation: .get, key: key)
        }
    }

    public func head(_ key: String) throws(ObjectStoreError) -> ObjectInfo? {
        let response = try send(.head, key: key, query: [], headers: []).response
        switch response.status {
        case 200..<300:
            guard let size = response.contentLength else {
                throw .failed("S3 HEAD \(key): response without Content-Length")
            }
            return ObjectInfo(key: key, size: size, etag: response.etag ?? "")
        case 404:
            return nil
        default:
            throw error(for: response, operation: .head, key: key)
        }
    }

    public func delete(_ key: String) throws(ObjectStoreError) {
        let response = try send(.delete, key: key, query: [], headers: []).response
        switch response.status {
        case 200..<300:
            return
        case 404 where S3ErrorBody(response.body)?.code != "NoSuchBucket":
            return  // already gone: deleting a missing object is not an error
        default:
            throw error(for: response, operation: .delete, key: key)
        }
    }

    public func list(prefix: String) throws(ObjectStoreError) -> [ObjectInfo] {
        let storePrefix = configuration.prefix.isEmpty ? "" : configuration.prefix + "/"
        var result: [ObjectInfo] = []
        var token: String?
        repeat {
            let page = try listPage(fullPrefix: storePrefix + prefix, maxKeys: configuration.listPageSize,
                                    continuationToken: token, policy: configuration.retryPolicy)
            for object in page.objects where object.key.hasPrefix(storePrefix) {
                result.append(ObjectInfo(key: String(object.key.dropFirst(storePrefix.count)), size: object.size, etag: object.etag,
                                         lastModified: object.lastModified))
            }
            guard page.isTruncated else { break }
            guard let next = page.nextContinuationToken, next != token else {
                throw .failed("S3 LIST \(displayName)/\(prefix): truncated listing without a continuation token")
            }
            token = next
        } while true
        return result
    }

    // MARK: - Up-front check

    /// Verifies, within a few seconds, that the endpoint answers, the credentials are accepted
    /// and the bucket exists and can be listed: `format` and `mount` call it first so a typo fails
    /// with a one-line reason instead of as EIO on the first file operation.
    public func checkAccess() throws(ObjectStoreError) {
        let storePrefix = configuration.prefix.isEmpty ? "" : configuration.prefix + "/"
        _ = try listPage(fullPrefix: storePrefix, maxKeys: 1, continuationToken: nil, policy: .accessCheck)
    }

    // MARK: - Helpers

    /// GETs the whole object; its bytes and ETag come from one response, so they belong together.
    func fetch(_ key: String) throws(ObjectStoreError) -> (bytes: [UInt8], etag: String) {
        let response = try send(.get, key: key, query: [], headers: []).response
        switch response.status {
        case 200..<300:
            return (response.body, response.etag ?? "")
        case 404 where S3ErrorBody(response.body)?.code != "NoSuchBucket":
            throw .notFound(key: key)
        default:
            throw error(for: response, operation: .get, key: key)
        }
    }

    /// `bytes FIRST-LAST/TOTAL` → (FIRST, LAST).
    static func contentRange(_ header: String?) -> (UInt64, UInt64)? {
        guard let header, header.hasPrefix("bytes ") else { return nil }
        let span = header.dropFirst("bytes ".count).prefix { $0 != "/" }
        let bounds = span.split(separator: "-", maxSplits: 1)
        guard bounds.count == 2, let first = UInt64(bounds[0]), let last = UInt64(bounds[1]) else { return nil }
        return (first, last)
    }

    private func listPage(fullPrefix: String, maxKeys: Int, continuationToken: String?,
                          policy: RetryPolicy) throws(ObjectStoreError) -> ListObjectsPage {
        var query: [(name: String, value: String)] = [
            ("list-type", "2"), ("prefix", fullPrefix), ("max-keys", String(maxKeys)),
            // Keys come back percent-encoded, so a key with characters XML 1.0 cannot carry
            // (control characters) still round-trips.
            ("encoding-type", "url"),
        ]
        if let continuationToken { query.append(("continuation-token", continuationToken)) }
        let response = try send(.list, key: nil, query: query, headers: [], policy: policy).response
        guard response.status == 200 else { throw error(for: response, operation: .list, key: nil) }
        guard let page = ListObjectsPage(response.body) else {
            throw .failed("S3 LIST \(displayName): unreadable ListObjectsV2 response")
        }
        return page
    }
}
