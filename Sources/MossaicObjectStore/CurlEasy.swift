internal import CCurl

/// The owner of one libcurl easy handle (`CURL*`), and the only place that calls
/// `curl_easy_perform`.
///
/// A `CURL*` must not be used by two threads at once. `CurlEasyPool` hands each instance to exactly
/// one caller between checkout and checkin; that discipline, not a lock, is what makes moving it
/// between threads safe, hence `@unchecked Sendable`. The handle's connection cache survives
/// `curl_easy_reset`, so a pooled handle reuses its kept-alive connection on the next request.
final class CurlEasy: @unchecked Sendable {
    private let handle: UnsafeMutableRawPointer
    /// CURLOPT_ERRORBUFFER target: curl writes a one-line reason for a failed transfer here.
    /// curl keeps the raw pointer, so it is allocated with the handle and freed after it.
    private let errorBuffer: UnsafeMutablePointer<CChar>

    init?() {
        guard CurlGlobal.initialized, let handle = curl_easy_init() else { return nil }
        self.handle = handle
        errorBuffer = .allocate(capacity: Int(CURL_ERROR_SIZE) + 1)
        errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)
    }

    deinit {
        curl_easy_cleanup(handle)
        errorBuffer.deallocate()
    }

    /// Runs one request to completion on the calling thread.
    func perform(_ request: HTTPRequest, signing: CurlSigning?, caFile: String?,
                 limits: TransferLimits) -> Result<HTTPResponse, CurlFailure> {
        // reset drops every option (so nothing leaks from the previous request) but keeps the
        // connection cache, DNS cache and TLS session cache.
        curl_easy_reset(handle)
        errorBuffer[0] = 0

        let context = CurlTransferContext(upload: request.body, receiveParts: request.receiveParts)
        let retained = Unmanaged.passRetained(context)
        defer { retained.release() }
        let userdata = retained.toOpaque()

        // No "Expect: 100-continue" (curl adds it to uploads over 1 MiB) on uploads signed by
        // us (packs): it costs every pack a round trip before its body is sent, and a server
        // that rejects a PUT (credentials, missing bucket) answers after the body just the same.
        // A header without a value removes it. Not where curl signs: its SigV4 signer would
        // sign the empty header that is then not sent (SignatureDoesNotMatch).
        let removeExpect: [(name: String, value: String)] = request.method == .put && signing == nil ? [("Expect", "")] : []
        var headerList: UnsafeMutablePointer<curl_slist>? = nil
        defer { curl_slist_free_all(headerList) }
        for header in request.headers + removeExpect {
            // A line break would end the header and let the rest be read as another one.
            guard !header.value.contains(where: \.isNewline) else {
                return .failure(CurlFailure(code: CURLE_BAD_FUNCTION_ARGUMENT, message: "header \(header.name) contains a line break"))
            }
            let line = header.value.isEmpty ? "\(header.name):" : "\(header.name): \(header.value)"
            guard let appended = curl_slist_append(headerList, line) else {
                return .failure(CurlFailure(code: CURLE_OUT_OF_MEMORY, message: "out of memory building headers"))
            }
            headerList = appended
        }
        var setup = CurlOptionSetter(handle: handle)
        setup.str(CURLOPT_URL, request.url)
        // curl would otherwise use signals (SIGALRM) for DNS timeouts, which is unsafe in a
        // multi-threaded process.
        setup.long(CURLOPT_NOSIGNAL, 1)
        // Object keys are opaque: "a/../b" names an object, so curl must not squash dot segments
        // (that would also break the signature, which covers the path as sent).
        setup.long(CURLOPT_PATH_AS_IS, 1)
        setup.long(CURLOPT_CONNECTTIMEOUT_MS, limits.connectTimeoutMilliseconds)
        setup.long(CURLOPT_LOW_SPEED_LIMIT, limits.lowSpeedBytesPerSecond)
        setup.long(CURLOPT_LOW_SPEED_TIME, limits.lowSpeedSeconds)
        if limits.totalTimeoutMilliseconds > 0 { setup.long(CURLOPT_TIMEOUT_MS, limits.totalTimeoutMilliseconds) }
        setup.long(CURLOPT_TCP_KEEPALIVE, 1)
        setup.ptr(CURLOPT_ERRORBUFFER, UnsafeMutableRawPointer(errorBuffer))
        if let caFile { setup.str(CURLOPT_CAINFO, caFile) }

        switch request.method {
        case .get:
            setup.long(CURLOPT_HTTPGET, 1)
            // Bodies are read 512 KiB (curl's maximum) at a time instead of 16 KiB: a 4 MiB pack
            // then costs 8 receive callbacks, not 256 (measured: ~5 % of the daemon's CPU in a
            // read from an empty cache). Uploads keep curl's default; a larger upload buffer
            // measured no faster and grew the resident set. Best effort, not checked: curl 7.88
            // refuses to resize a receive buffer that a failed transfer left allocated
            // (CURLE_BAD_FUNCTION_ARGUMENT), and that request then reads 16 KiB at a time.
            _ = ccurl_easy_setopt_long(handle, CURLOPT_BUFFERSIZE, 512 << 10)
        case .head:
            setup.long(CURLOPT_NOBODY, 1)
        case .delete:
            setup.str(CURLOPT_CUSTOMREQUEST, "DELETE")
        case .put:
            setup.long(CURLOPT_UPLOAD, 1)
            setup.off(CURLOPT_INFILESIZE_LARGE, curl_off_t(context.uploadLength))
            setup.fn(CURLOPT_READFUNCTION, CurlCallbacks.read)
            setup.ptr(CURLOPT_READDATA, userdata)
            setup.seekfn(CURLOPT_SEEKFUNCTION, CurlCallbacks.seek)
            setup.ptr(CURLOPT_SEEKDATA, userdata)
        }
        setup.fn(CURLOPT_WRITEFUNCTION, CurlCallbacks.write)
        setup.ptr(CURLOPT_WRITEDATA, userdata)
        setup.fn(CURLOPT_HEADERFUNCTION, CurlCallbacks.header)
        setup.ptr(CURLOPT_HEADERDATA, userdata)
        setup.slist(CURLOPT_HTTPHEADER, headerList)

        if let signing {
            // curl computes AWS Signature V4 itself (since 7.75). What it does not do is done by
            // the caller: the x-amz-content-sha256 header, a sorted and strictly encoded query,
            // and pre-encoded paths (see S3Encoding and S3ObjectStore+Requests).
            setup.str(CURLOPT_AWS_SIGV4, signing.provider)
            // USERNAME/PASSWORD rather than USERPWD: no ambiguity if a secret ever holds a ':'.
            setup.str(CURLOPT_USERNAME, signing.accessKeyID)
            setup.str(CURLOPT_PASSWORD, signing.secretAccessKey)
        }
        if let failed = setup.failure {
            return .failure(CurlFailure(code: failed.code, message: "curl_easy_setopt(\(failed.option)) failed: \(Self.describe(failed.code))"))
        }

        let code = curl_easy_perform(handle)
        var status = 0
        let infoCode = ccurl_easy_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &status)
        // curl keeps its copy of the secret (a string option) until reset; drop it now rather
        // than leaving credentials in an idle pooled handle. reset keeps the connection.
        curl_easy_reset(handle)
        guard code == CURLE_OK else {
            let detail = String(cString: errorBuffer)
            return .failure(CurlFailure(code: code, message: detail.isEmpty ? Self.describe(code) : detail))
        }
        guard infoCode == CURLE_OK else {
            return .failure(CurlFailure(code: infoCode, message: "no HTTP status: \(Self.describe(infoCode))"))
        }
        return .success(HTTPResponse(status: status, headers: context.headers, body: context.received, parts: context.parts))
    }

    static func describe(_ code: CURLcode) -> String {
        guard let text = curl_easy_strerror(code) else { return "curl error \(code.rawValue)" }
        return String(cString: text)
    }
}

/// Credentials handed to curl's SigV4 signer.
struct CurlSigning {
    /// "aws:amz:REGION:s3": provider, vendor, region and service of the signature scope.
    var provider: String
    var accessKeyID: String
    var secretAccessKey: String
}

/// Collects curl_easy_setopt calls and remembers the first that failed, so the request code
/// reads as a flat list of options instead of one `guard` per line.
private struct CurlOptionSetter {
    let handle: UnsafeMutableRawPointer
    var failure: (option: UInt32, code: CURLcode)?

    private mutating func check(_ option: CURLoption, _ code: CURLcode) {
        if code != CURLE_OK, failure == nil { failure = (option.rawValue, code) }
    }
    mutating func long(_ o: CURLoption, _ v: Int) { check(o, ccurl_easy_setopt_long(handle, o, v)) }
    mutating func off(_ o: CURLoption, _ v: curl_off_t) { check(o, ccurl_easy_setopt_off(handle, o, v)) }
    mutating func ptr(_ o: CURLoption, _ v: UnsafeMutableRawPointer?) { check(o, ccurl_easy_setopt_ptr(handle, o, v)) }
    /// curl copies string options (since 7.17), so a temporary C string is enough.
    mutating func str(_ o: CURLoption, _ v: String) { check(o, ccurl_easy_setopt_str(handle, o, v)) }
    mutating func slist(_ o: CURLoption, _ v: UnsafeMutablePointer<curl_slist>?) { check(o, ccurl_easy_setopt_slist(handle, o, v)) }
    mutating func fn(_ o: CURLoption, _ v: ccurl_data_callback) { check(o, ccurl_easy_setopt_fn(handle, o, v)) }
    mutating func seekfn(_ o: CURLoption, _ v: curl_seek_callback) { check(o, ccurl_easy_setopt_seekfn(handle, o, v)) }
}
