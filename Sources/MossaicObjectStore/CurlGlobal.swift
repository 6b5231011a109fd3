internal import CCurl

/// libcurl's process-wide initialisation.
///
/// `curl_global_init` must run once before any other curl call and is not thread-safe against
/// concurrent curl use; a `static let` is initialised exactly once, under the runtime's own
/// once-guard, the first time any `CurlEasy` is created. It is never torn down: the process may
/// still have handles in flight at exit, and the OS reclaims everything anyway.
enum CurlGlobal {
    static let initialized: Bool = curl_global_init(Int(CURL_GLOBAL_ALL)) == CURLE_OK
}
