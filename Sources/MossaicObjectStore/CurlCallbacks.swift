internal import CCurl
#if canImport(Glibc)
import Glibc
#endif

/// libcurl's C callbacks. Each is a `@convention(c)` function (no captures: curl calls it
/// through a plain function pointer) that finds its `CurlTransferContext` through `userdata`,
/// which `CurlEasy.perform` keeps retained for the whole transfer.
enum CurlCallbacks {
    /// CURLOPT_WRITEFUNCTION: body bytes arrive here.
    static let write: ccurl_data_callback = { ptr, size, count, userdata in
        guard let userdata else { return 0 }
        let n = size * count
        guard n > 0, let ptr else { return n }
        let context = Unmanaged<CurlTransferContext>.fromOpaque(userdata).takeUnretainedValue()
        context.receive(UnsafeRawBufferPointer(start: ptr, count: n))
        return n
    }

    /// CURLOPT_HEADERFUNCTION: one complete header line per call (curl guarantees this).
    static let header: ccurl_data_callback = { ptr, size, count, userdata in
        guard let userdata else { return 0 }
        let n = size * count
        guard n > 0, let ptr else { return n }
        let context = Unmanaged<CurlTransferContext>.fromOpaque(userdata).takeUnretainedValue()
        let line = String(decoding: UnsafeRawBufferPointer(start: ptr, count: n), as: UTF8.self)
        context.receiveHeaderLine(line[...])
        return n
    }

    /// CURLOPT_READFUNCTION: curl pulls the upload body from here. Used instead of
    /// CURLOPT_POSTFIELDS because POSTFIELDS would add `Content-Type: application/x-www-form-urlencoded`
    /// (moto then parses the body as a form and stores nothing) and is not copied by curl.
    static let read: ccurl_data_callback = { ptr, size, count, userdata in
        guard let userdata, let ptr else { return 0 }
        let context = Unmanaged<CurlTransferContext>.fromOpaque(userdata).takeUnretainedValue()
        return context.readUpload(into: UnsafeMutableRawBufferPointer(start: ptr, count: size * count))
    }

    /// CURLOPT_SEEKFUNCTION: curl rewinds the upload when it must resend the body, e.g. when a
    /// kept-alive connection turns out to be closed by the server and curl retries on a fresh one.
    /// Without it that case fails with CURLE_SEND_FAIL_REWIND.
    static let seek: curl_seek_callback = { userdata, offset, origin in
        guard let userdata else { return CURL_SEEKFUNC_CANTSEEK }
        let context = Unmanaged<CurlTransferContext>.fromOpaque(userdata).takeUnretainedValue()
        guard origin == SEEK_SET, context.seekUpload(to: Int(offset)) else { return CURL_SEEKFUNC_CANTSEEK }
        return CURL_SEEKFUNC_OK
    }
}
