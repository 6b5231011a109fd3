extension S3ObjectStore {
    /// Turns an S3 error response into a one-line `ObjectStoreError`. Messages name the bucket,
    /// the endpoint and where the credentials came from, never the secret.
    func error(for response: HTTPResponse, operation: S3Operation, key: String?) -> ObjectStoreError {
        let body = S3ErrorBody(response.body)
        let code = body?.code ?? ""
        let message = Self.oneLine(body?.message ?? "")
        let what = "\(operation.rawValue) \(key.map { "\(displayName)/\($0)" } ?? displayName)"
        let credentials = configuration.credentials
        switch (response.status, code) {
        case (_, "NoSuchBucket"):
            return .noSuchBucket(bucket: configuration.bucket)
        case (_, "NoSuchKey"):
            return .notFound(key: key ?? "")
        case (412, _), (_, "PreconditionFailed"):
            return .preconditionFailed(key: key ?? "")
        case (_, "SignatureDoesNotMatch"):
            return .badCredentials("signature does not match for access key \(credentials.accessKeyID) from \(credentials.source): wrong secret key? (\(what) on \(configuration.endpoint))")
        case (_, "InvalidAccessKeyId"):
            return .badCredentials("access key \(credentials.accessKeyID) from \(credentials.source) is unknown to \(configuration.endpoint)")
        case (_, "ExpiredToken"), (_, "InvalidToken"), (_, "TokenRefreshRequired"):
            return .badCredentials("session token from \(credentials.source) was refused (\(code)): \(message)")
        case (_, "AuthorizationHeaderMalformed"), (_, "PermanentRedirect"), (301, _), (_, "IllegalLocationConstraintException"):
            // The bucket lives in another region than the one we sign for.
            let actual = response.headers["x-amz-bucket-region"] ?? body?.region
            let hint = actual.map { "bucket \"\(configuration.bucket)\" is in region \($0); use -o region=\($0)" }
                ?? "bucket \"\(configuration.bucket)\" is not in region \(configuration.region) at \(configuration.endpoint); check -o region= and -o endpoint="
            return .invalidConfiguration(hint)
        case (404, _) where body == nil && key == nil:
            // S3 answers a bucket-level 404 with an XML error (NoSuchBucket). A bare 404 comes
            // from something else at that address: a web server, a proxy, a wrong path prefix.
            return .invalidConfiguration("S3 \(what) failed: HTTP 404 without an S3 error from \(configuration.endpoint): is that an S3 endpoint? Check -o endpoint= and the bucket name \"\(configuration.bucket)\"")
        case (403, _), (_, "AccessDenied"):
            let detail = message.isEmpty ? "HTTP 403" : message
            return .accessDenied("\(what) with access key \(credentials.accessKeyID) from \(credentials.source): \(detail)")
        default:
            let detail = [code, message].filter { !$0.isEmpty }.joined(separator: ": ")
            return .failed("S3 \(what) failed: HTTP \(response.status)\(detail.isEmpty ? "" : " \(detail)")")
        }
    }
}
