import Foundation

/// Everything S3ObjectStore needs to reach a bucket, resolved from a source URL, mount options
/// and the process environment.
///
/// Options read (all others are ignored, since the mount passes its whole option set):
/// `endpoint`, `region`, `credentials` (a shared-credentials file), `profile`, `addressing`
/// (`path`|`virtual`), `ca_file`, `max_connections`, `retries`, `list_page_size`.
///
/// Resolution order, first match wins:
/// - credentials: `credentials=FILE` (profile from `profile=`, else `default`); `profile=` alone
///   (that profile of the shared file); `AWS_ACCESS_KEY_ID` + `AWS_SECRET_ACCESS_KEY`
///   (+ `AWS_SESSION_TOKEN`); profile `AWS_PROFILE` (else `default`) of `AWS_SHARED_CREDENTIALS_FILE`
///   (else `$HOME/.aws/credentials`). No credentials at all is an error: a filesystem that cannot
///   write is rarely what was meant, and anonymous requests would fail later with a vaguer message.
/// - endpoint: `endpoint=`, `AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL`, else AWS's regional endpoint.
/// - region: `region=`, `AWS_REGION`, `AWS_DEFAULT_REGION`, else `us-east-1`.
/// - CA bundle: `ca_file=`, `AWS_CA_BUNDLE`, else the system's trust store. TLS is always verified.
public struct S3Configuration: Sendable, Equatable {
    /// How the bytes of a pack PUT are protected on their way (`upload_checksum=`). Either way
    /// S3 checks them before it stores them; every chunk is verified again when it is read.
    public enum UploadChecksum: String, Sendable, Equatable {
        /// `UNSIGNED-PAYLOAD` with a signed CRC-32C header (how AWS's SDKs upload): catches any
        /// corruption on the way, costs little CPU on either side.
        case crc32c
        /// Each member signed with its SHA-256 (aws-chunked streaming signatures): also proof
        /// against someone altering the bytes on a plain-HTTP path; costs the server a SHA-256
        /// of every byte (moto, a Python server, noticeably).
        case sha256
    }

    public enum Addressing: String, Sendable, Equatable {
        /// `https://host/bucket/key`: MinIO, Ceph, moto, IP endpoints, buckets with dots.
        case path
        /// `https://bucket.host/key`: AWS's preferred form.
        case virtual
    }

    public var bucket: String
    /// Key prefix inside the bucket, without leading or trailing `/`; empty for the bucket root.
    public var prefix: String
    /// `scheme://host[:port]` of the service, e.g. `https://s3.eu-west-1.amazonaws.com`.
    public var endpoint: String
    /// Path of the endpoint URL (a gateway mounted under a path), `""` or `/path`.
    public var endpointPath: String
    public var region: String
    public var addressing: Addressing
    public var credentials: S3Credentials
    public var caFile: String?
    /// Bound on parallel transfers (and so on open connections).
    public var maxConnections: Int
    public var retryPolicy: RetryPolicy
    /// `max-keys` of each ListObjectsV2 page (S3 caps it at 1000).
    public var listPageSize: Int
    public var uploadChecksum: UploadChecksum

    /// The option names this type reads.
    public static let optionNames: Set<String> = [
        "endpoint", "region", "credentials", "profile", "addressing", "ca_file", "max_connections", "retries",
        "list_page_size", "upload_checksum", "timeout",
    ]

    /// Resolves a configuration; throws `.invalidConfiguration` naming the offending option.
    /// - Parameters:
    ///   - source: `s3://bucket` or `s3://bucket/prefix/inside`.
    ///   - options: mount options (`-o key=value`), all of them; unknown keys are ignored.
    ///   - environment: normally `ProcessInfo.processInfo.environment`.
    public init(source: String, options: [String: String], environment: [String: String]) throws(ObjectStoreError) {
        let env = environment.filter { !$0.value.isEmpty }
        (bucket, prefix) = try Self.parseSource(source)

        region = options["region"] ?? env["AWS_REGION"] ?? env["AWS_DEFAULT_REGION"] ?? "us-east-1"
        guard !region.isEmpty, region.utf8.allSatisfy({ Self.isRegionByte($0) }) else {
            throw .invalidConfiguration("invalid region \"\(region)\": expected something like us-east-1")
        }

        let endpointText: String
        let endpointOrigin: String
        if let e = options["endpoint"] { (endpointText, endpointOrigin) = (e, "endpoint=") }
        else if let e = env["AWS_ENDPOINT_URL_S3"] { (endpointText, endpointOrigin) = (e, "AWS_ENDPOINT_URL_S3") }
        else if let e = env["AWS_ENDPOINT_URL"] { (endpointText, endpointOrigin) = (e, "AWS_ENDPOINT_URL") }
        else {
            let domain = region.hasPrefix("cn-") ? "amazonaws.com.cn" : "amazonaws.com"
            (endpointText, endpointOrigin) = ("https://s3.\(region).\(domain)", "default endpoint")
        }
        let host: String
        (endpoint, host, endpointPath) = try Self.parseEndpoint(endpointText, origin: endpointOrigin)

        let awsHost = host.hasSuffix(".amazonaws.com") || host.hasSuffix(".amazonaws.com.cn")
        switch options["addressing"] {
        case nil:
            // Virtual-hosted only where it is known to work: AWS, and only for buckets that are a
            // single DNS label (a dotted bucket breaks the *.s3 wildcard TLS certificate).
            addressing = awsHost && Self.isDNSLabel(bucket) ? .virtual : .path
        case "path":
            addressing = .path
        case "virtual":
            guard Self.isDNSLabel(bucket) else {
                throw .invalidConfiguration("addressing=virtual needs a bucket name that is a lowercase DNS label without dots; \"\(bucket)\" is not (use addressing=path)")
            }
            addressing = .virtual
        case let other?:
            throw .invalidConfiguration("invalid addressing=\(other): expected path or virtual")
        }

        if let file = options["ca_file"] {
            guard FileManager.default.isReadableFile(atPath: file) else {
                throw .invalidConfiguration("ca_file=\(file): no such readable file")
            }
            caFile = file
        } else if let file = env["AWS_CA_BUNDLE"] {
            guard FileManager.default.isReadableFile(atPath: file) else {
                throw .invalidConfiguration("AWS_CA_BUNDLE=\(file): no such readable file")
            }
            caFile = file
        } else {
            caFile = nil
        }

        maxConnections = try Self.integer(options, "max_connections", default: 16, in: 1...1024)
        let retries = try Self.integer(options, "retries", default: 8, in: 0...100)
        let timeout = try Self.integer(options, "timeout", default: 60, in: 1...3600)
        retryPolicy = RetryPolicy(maxAttempts: retries + 1, deadline: Double(timeout))
        listPageSize = try Self.integer(options, "list_page_size", default: 1000, in: 1...1000)
        switch options["upload_checksum"] {
        case nil: uploadChecksum = .crc32c
        case let text?:
            guard let value = UploadChecksum(rawValue: text) else {
                throw .invalidConfiguration("invalid upload_checksum=\(text): expected crc32c or sha256")
            }
            uploadChecksum = value
        }

        credentials = try Self.resolveCredentials(options: options, env: env)
    }

    /// A configuration from parts, for callers that resolved them elsewhere (and for tests).
    public init(bucket: String, prefix: String = "", endpoint: String, region: String = "us-east-1",
                addressing: Addressing = .path, credentials: S3Credentials, caFile: String? = nil,
                maxConnections: Int = 16, retryPolicy: RetryPolicy = .standard, listPageSize: Int = 1000,
                uploadChecksum: UploadChecksum = .crc32c) throws(ObjectStoreError) {
        (self.bucket, self.prefix) = try Self.parseSource("s3://\(bucket)/\(prefix)")
        (self.endpoint, _, endpointPath) = try Self.parseEndpoint(endpoint, origin: "endpoint")
        self.region = region
        self.addressing = addressing
        self.credentials = credentials
        self.caFile = caFile
        self.maxConnections = max(1, maxConnections)
        self.retryPolicy = retryPolicy
        self.listPageSize = min(max(1, listPageSize), 1000)
        self.uploadChecksum = uploadChecksum
    }

    /// `s3://bucket/prefix`, for messages.
    public var displayName: String { prefix.isEmpty ? "s3://\(bucket)" : "s3://\(bucket)/\(prefix)" }

    // MARK: - Parsing

    static func parseSource(_ source: String) throws(ObjectStoreError) -> (bucket: String, prefix: String) {
        guard source.hasPrefix("s3://") else {
            throw .invalidConfiguration("invalid source \"\(source)\": expected s3://BUCKET[/PREFIX]")
        }
        let rest = source.dropFirst("s3://".count)
        let bucket = String(rest.prefix { $0 != "/" })
        guard (3...255).contains(bucket.utf8.count), bucket.utf8.allSatisfy({ isBucketByte($0) }) else {
            throw .invalidConfiguration("invalid bucket name \"\(bucket)\" in \(source): expected 3 to 63 letters, digits, dots or hyphens")
        }
        var prefix = rest.dropFirst(bucket.count)[...]
        while prefix.hasPrefix("/") { prefix = prefix.dropFirst() }
        while prefix.hasSuffix("/") { prefix = prefix.dropLast() }
        guard !prefix.contains("//") else {
            throw .invalidConfiguration("invalid prefix in \(source): empty path segment")
        }
        return (bucket, String(prefix))
    }

    /// Returns the normalised `scheme://host[:port]`, the bare host and the path.
    static func parseEndpoint(_ text: String, origin: String) throws(ObjectStoreError) -> (String, String, String) {
        let what = origin.hasSuffix("=") ? "\(origin)\(text)" : "\(origin) \(text)"
        guard let url = URLComponents(string: text), let scheme = url.scheme?.lowercased(),
              scheme == "http" || scheme == "https", let host = url.host, !host.isEmpty else {
            throw .invalidConfiguration("invalid \(what): expected http://HOST[:PORT] or https://HOST[:PORT]")
        }
        guard url.user == nil, url.password == nil else {
            throw .invalidConfiguration("invalid \(origin): credentials do not belong in the endpoint URL; use credentials=FILE")
        }
        guard url.query == nil, url.fragment == nil else {
            throw .invalidConfiguration("invalid \(what): no query or fragment allowed")
        }
        let bracketed = host.contains(":") && !host.hasPrefix("[") ? "[\(host)]" : host
        let port = url.port.map { ":\($0)" } ?? ""
        var path = url.percentEncodedPath[...]
        while path.hasSuffix("/") { path = path.dropLast() }
        return ("\(scheme)://\(bracketed)\(port)", host.lowercased(), String(path))
    }

    private static func integer(_ options: [String: String], _ name: String, default value: Int,
                                in range: ClosedRange<Int>) throws(ObjectStoreError) -> Int {
        guard let text = options[name] else { return value }
        guard let n = Int(text), range.contains(n) else {
            throw .invalidConfiguration("invalid \(name)=\(text): expected an integer from \(range.lowerBound) to \(range.upperBound)")
        }
        return n
    }

    private static func resolveCredentials(options: [String: String], env: [String: String]) throws(ObjectStoreError) -> S3Credentials {
        if let file = options["credentials"] {
            return try AWSSharedCredentialsFile.load(path: file, profile: options["profile"] ?? "default", origin: "credentials file")
        }
        let sharedFile = env["AWS_SHARED_CREDENTIALS_FILE"] ?? env["HOME"].map { "\($0)/.aws/credentials" }
        if let profile = options["profile"] {
            guard let sharedFile else {
                throw .invalidConfiguration("profile=\(profile): no shared credentials file (HOME and AWS_SHARED_CREDENTIALS_FILE are unset)")
            }
            return try AWSSharedCredentialsFile.load(path: sharedFile, profile: profile, origin: "shared credentials file")
        }
        switch (env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]) {
        case let (keyID?, secret?):
            return S3Credentials(accessKeyID: keyID, secretAccessKey: secret, sessionToken: env["AWS_SESSION_TOKEN"],
                                 source: "environment AWS_ACCESS_KEY_ID")
        case (_?, nil):
            throw .invalidConfiguration("AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not")
        case (nil, _?):
            throw .invalidConfiguration("AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not")
        case (nil, nil):
            break
        }
        let explicit = env["AWS_PROFILE"] != nil || env["AWS_SHARED_CREDENTIALS_FILE"] != nil
        if let sharedFile, explicit || FileManager.default.fileExists(atPath: sharedFile) {
            return try AWSSharedCredentialsFile.load(path: sharedFile, profile: env["AWS_PROFILE"] ?? "default",
                                                    origin: "shared credentials file")
        }
        throw .invalidConfiguration("no S3 credentials: use -o credentials=FILE, set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or create ~/.aws/credentials")
    }

    private static func isBucketByte(_ b: UInt8) -> Bool {
        switch b {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "."),
             UInt8(ascii: "-"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "_"):
            true  // upper case and '_' only exist in legacy us-east-1 buckets, but they do exist
        default:
            false
        }
    }

    private static func isRegionByte(_ b: UInt8) -> Bool {
        switch b {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"): true
        default: false
        }
    }

    private static func isDNSLabel(_ bucket: String) -> Bool {
        bucket.utf8.allSatisfy { b in
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(b) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(b)
                || b == UInt8(ascii: "-")
        } && bucket.utf8.count <= 63
    }
}
