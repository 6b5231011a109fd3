#if canImport(Glibc)
import Glibc
#endif
import MossaicCore

/// AWS Signature V4 for the two pack uploads curl cannot sign as needed: a body sent as signed
/// pieces (`x-amz-content-sha256: STREAMING-AWS4-HMAC-SHA256-PAYLOAD`, `Content-Encoding:
/// aws-chunked`, AWS's "sigv4-streaming", `upload_checksum=sha256`), and a body checked by a
/// signed CRC-32C header (`signChecksummed`, the default).
///
/// Why streaming: a PUT signed the usual way names the SHA-256 of its whole body, so a pack would be
/// hashed twice — once per member for the chunk names, once whole for the PUT. Here every piece
/// is a member and its signature covers the member's SHA-256, which we have already: S3 still
/// checks every byte it stores, and we hash each byte once. Hand-written because curl's
/// `CURLOPT_AWS_SIGV4` signs one payload hash and has no streaming mode. Checked against AWS's
/// published example (S3StreamingSignatureTests) and, for the header signature, against moto's
/// authentication.
///
/// The encoded body is, for each piece, `hex(size);chunk-signature=SIG\r\n` + bytes + `\r\n`,
/// then `0;chunk-signature=SIG\r\n\r\n`. Each SIG is an HMAC over the previous signature (the
/// first over the header's "seed" signature) and the piece's SHA-256, so the pieces cannot be
/// altered, dropped or reordered.
public struct S3StreamingSignature: Sendable {
    public static let payloadHash = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
    /// S3 rejects a piece smaller than this unless it is the last one.
    public static let minimumPieceSize = 8192
    /// The final, empty piece. Its hash, SHA-256 of nothing, is also the (empty) piece-header
    /// hash every piece's string to sign carries.
    static let empty = HashedBytes([], sha256: ChunkHash.of([UInt8]()))

    public var accessKeyID: String
    var secretAccessKey: String
    public var region: String
    public var service: String

    public init(accessKeyID: String, secretAccessKey: String, region: String, service: String = "s3") {
        self.accessKeyID = accessKeyID
        self.secretAccessKey = secretAccessKey
        self.region = region
        self.service = service
    }

    /// A signed request: what to send.
    public struct Signed: Sendable {
        /// The signed headers (with Content-Length) plus Authorization.
        public var headers: [(name: String, value: String)]
        /// The encoded body as segments to send one after the other: framing lines and the
        /// pieces' own buffers (not copied).
        public var body: [[UInt8]]
        public var seedSignature: String
        /// One per piece, then the final empty piece's.
        public var pieceSignatures: [String]
    }

    /// Signs `method path` (the path exactly as sent, already percent-encoded; no query) with
    /// `headers` — at least `host`, names in any case — plus the headers of the scheme, which
    /// this adds: content-encoding, content-length, x-amz-content-sha256, x-amz-date and
    /// x-amz-decoded-content-length. `timestamp` is `YYYYMMDDTHHMMSSZ` (`Self.timestamp()`).
    /// Every piece but the last must be at least `minimumPieceSize` (see `streamable`).
    public func sign(method: String, path: String, headers: [(name: String, value: String)],
                     pieces: [HashedBytes], timestamp: String) -> Signed {
        let decodedLength = pieces.reduce(0) { $0 + $1.bytes.count }
        let encodedLength = pieces.reduce(Self.frameLength(0)) { $0 + Self.frameLength($1.bytes.count) }
        let scheme = [("content-encoding", "aws-chunked"), ("content-length", String(encodedLength)),
                      ("x-amz-decoded-content-length", String(decodedLength))]
        let header = signHeaders(method: method, path: path, headers: headers + scheme, payloadHash: Self.payloadHash, timestamp: timestamp)
        let (scope, key, seed) = (header.scope, header.key, header.signature)
        var previous = seed
        var signatures: [String] = []
        var body: [[UInt8]] = []
        body.reserveCapacity(2 * pieces.count + 1)
        for piece in pieces + [Self.empty] {
            let pieceString = "AWS4-HMAC-SHA256-PAYLOAD\n\(timestamp)\n\(scope)\n\(previous)\n\(Self.empty.sha256.hex)\n\(piece.sha256.hex)"
            previous = ChunkHash(bytes: HMACSHA256.mac(key: key, message: pieceString)).hex
            signatures.append(previous)
            // The CRLF that closes the previous piece's bytes travels with this piece's line.
            let opening = (body.isEmpty ? "" : "\r\n") + "\(String(piece.bytes.count, radix: 16));chunk-signature=\(previous)\r\n"
            if piece.bytes.isEmpty {
                body.append(Array((opening + "\r\n").utf8))
            } else {
                body.append(Array(opening.utf8))
                body.append(piece.bytes)
            }
        }
        return Signed(headers: header.headers, body: body, seedSignature: seed, pieceSignatures: signatures)
    }

    /// Signs a PUT whose body is checked, not signed: `x-amz-content-sha256: UNSIGNED-PAYLOAD`
    /// and a signed `x-amz-checksum-crc32c` header, which S3 verifies against the bytes it
    /// receives (400 BadDigest otherwise) — how AWS's SDKs upload. Returns the headers to send:
    /// `headers`, Content-Length, the checksum, x-amz-content-sha256, x-amz-date, Authorization.
    /// Signed here rather than by curl so that curl's `Expect: 100-continue` can be left out
    /// (curl's signer would sign the emptied header that then is not sent).
    public func signChecksummed(method: String, path: String, headers: [(name: String, value: String)],
                                bodyLength: Int, crc32c: CRC32C, timestamp: String) -> [(name: String, value: String)] {
        let added = [("content-length", String(bodyLength)), ("x-amz-checksum-crc32c", crc32c.base64)]
        return signHeaders(method: method, path: path, headers: headers + added, payloadHash: "UNSIGNED-PAYLOAD", timestamp: timestamp).headers
    }

    /// SigV4 of the request line and headers (plus x-amz-content-sha256 = `payloadHash` and
    /// x-amz-date), names lowercased and sorted: the headers with Authorization appended, the
    /// signature, and the scope and key that piece signatures chain from.
    private func signHeaders(method: String, path: String, headers: [(name: String, value: String)], payloadHash: String,
                             timestamp: String) -> (headers: [(name: String, value: String)], signature: String, scope: String, key: [UInt8]) {
        let date = String(timestamp.prefix(8))
        let scope = "\(date)/\(region)/\(service)/aws4_request"
        var all = headers.map { (name: $0.name.lowercased(), value: $0.value) }
        all += [("x-amz-content-sha256", payloadHash), ("x-amz-date", timestamp)]
        all.sort { $0.name < $1.name }
        let signedHeaders = all.map(\.name).joined(separator: ";")
        let canonicalHeaders = all.map { "\($0.name):\($0.value.trimmingSpaces)\n" }.joined()
        let canonicalRequest = "\(method)\n\(path)\n\n\(canonicalHeaders)\n\(signedHeaders)\n\(payloadHash)"
        let stringToSign = "AWS4-HMAC-SHA256\n\(timestamp)\n\(scope)\n\(ChunkHash.of(Array(canonicalRequest.utf8)).hex)"
        let key = signingKey(date: date)
        let signature = ChunkHash(bytes: HMACSHA256.mac(key: key, message: stringToSign)).hex
        let authorization = "AWS4-HMAC-SHA256 Credential=\(accessKeyID)/\(scope), SignedHeaders=\(signedHeaders), Signature=\(signature)"
        return (all + [("authorization", authorization)], signature, scope, key)
    }

    /// `pieces` regrouped so that every piece but the last has at least `minimumPieceSize`
    /// bytes: a small piece is joined to the ones after it, and a joined group is hashed (small
    /// pieces cost little; a pack's members are 1 MiB but for a file's last chunk).
    public static func streamable(_ pieces: [HashedBytes]) -> [HashedBytes] {
        var groups: [[HashedBytes]] = []
        for piece in pieces {
            if let last = groups.last, last.reduce(0, { $0 + $1.bytes.count }) < minimumPieceSize {
                groups[groups.count - 1].append(piece)
            } else {
                groups.append([piece])
            }
        }
        return groups.map { group in
            if group.count == 1 { return group[0] }
            let bytes = HashedBytes.concatenated(group)
            return HashedBytes(bytes, sha256: ChunkHash.of(bytes))
        }
    }

    /// The current time as SigV4 writes it, `YYYYMMDDTHHMMSSZ` (UTC).
    public static func timestamp(at seconds: Int = Int(time(nil))) -> String {
        var t = time_t(seconds)
        var parts = tm()
        gmtime_r(&t, &parts)
        func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
        return "\(parts.tm_year + 1900)\(two(parts.tm_mon + 1))\(two(parts.tm_mday))T\(two(parts.tm_hour))\(two(parts.tm_min))\(two(parts.tm_sec))Z"
    }

    private func signingKey(date: String) -> [UInt8] {
        var key = HMACSHA256.mac(key: Array("AWS4\(secretAccessKey)".utf8), message: date)
        for part in [region, service, "aws4_request"] { key = HMACSHA256.mac(key: key, message: part) }
        return key
    }

    /// Bytes one piece of `size` adds to the encoded body.
    private static func frameLength(_ size: Int) -> Int {
        String(size, radix: 16).utf8.count + ";chunk-signature=".utf8.count + 64 + 2 + size + 2
    }
}

private extension String {
    /// SigV4 canonical header values: leading and trailing spaces removed.
    var trimmingSpaces: Substring {
        var s = self[...]
        while s.first == " " { s.removeFirst() }
        while s.last == " " { s.removeLast() }
        return s
    }
}
