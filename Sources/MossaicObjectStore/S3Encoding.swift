import MossaicCore

/// The encodings S3 requests need and libcurl does not provide.
///
/// curl's SigV4 signer (7.88) uses the path and query exactly as written in the URL: it neither
/// sorts the query nor re-encodes anything (curl/curl#9717). SigV4's canonical request requires
/// RFC 3986 encoding with uppercase hex and query parameters sorted by name, so the URL we hand
/// curl must already be in canonical form.
enum S3Encoding {
    private static let hexDigits = Array("0123456789ABCDEF".utf8)

    /// Percent-encodes every byte of the UTF-8 form except RFC 3986 unreserved characters
    /// (`A-Z a-z 0-9 - . _ ~`) and, for object paths, `/`.
    static func percentEncode(_ text: String, keepSlash: Bool) -> String {
        var out = [UInt8]()
        out.reserveCapacity(text.utf8.count)
        for byte in text.utf8 {
            if isUnreserved(byte) || (keepSlash && byte == UInt8(ascii: "/")) {
                out.append(byte)
            } else {
                out.append(UInt8(ascii: "%"))
                out.append(hexDigits[Int(byte >> 4)])
                out.append(hexDigits[Int(byte & 0x0F)])
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// A canonical query string: sorted by name (then value), both strictly encoded, and always
    /// `name=` even for an empty value, since curl signs the string exactly as given.
    static func query(_ items: [(name: String, value: String)]) -> String {
        items.map { (percentEncode($0.name, keepSlash: false), percentEncode($0.value, keepSlash: false)) }
            .sorted { $0.0 == $1.0 ? $0.1 < $1.1 : $0.0 < $1.0 }
            .map { "\($0.0)=\($0.1)" }
            .joined(separator: "&")
    }

    /// Decodes a key from a ListObjectsV2 response requested with `encoding-type=url`. S3 encodes
    /// a space as `+` there (a literal `+` arrives as `%2B`), so `+` decodes to a space. Returns
    /// nil for malformed escapes or bytes that are not UTF-8.
    static func urlDecode(_ text: String) -> String? {
        var out = [UInt8]()
        out.reserveCapacity(text.utf8.count)
        var bytes = text.utf8.makeIterator()
        while let byte = bytes.next() {
            switch byte {
            case UInt8(ascii: "+"):
                out.append(UInt8(ascii: " "))
            case UInt8(ascii: "%"):
                guard let hi = bytes.next().flatMap({ Hex.nibble($0) }), let lo = bytes.next().flatMap({ Hex.nibble($0) }) else { return nil }
                out.append(hi << 4 | lo)
            default:
                out.append(byte)
            }
        }
        return String(validating: out, as: UTF8.self)
    }

    /// S3 returns ETags in double quotes; the store hands them out bare so that they compare
    /// equal whatever response they came from (PUT, HEAD, GET or a listing).
    static func unquoteETag(_ etag: String) -> String {
        var s = Substring(etag)
        if s.hasPrefix("W/") { s = s.dropFirst(2) }
        if s.count >= 2, s.hasPrefix("\""), s.hasSuffix("\"") { s = s.dropFirst().dropLast() }
        return String(s)
    }

    /// The form of an ETag that `If-Match` expects: quoted.
    static func quoteETag(_ etag: String) -> String {
        etag.hasPrefix("\"") ? etag : "\"\(etag)\""
    }

    private static func isUnreserved(_ b: UInt8) -> Bool {
        switch b {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
             UInt8(ascii: "0")...UInt8(ascii: "9"),
             UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
            true
        default:
            false
        }
    }

}
