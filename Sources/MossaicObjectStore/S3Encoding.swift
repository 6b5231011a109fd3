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

    /// `2026-01-31T12:34:56.789Z` (ListObjectsV2's LastModified, always UTC) → a timestamp;
    /// nil if it is not in that form. Fractional seconds are optional.
    ///
    /// Not Foundation's ISO8601DateFormatter: it keeps at most milliseconds, through a Double,
    /// where this keeps every digit given, and gc parses one of these per object listed.
    static func timestamp(iso8601 text: String) -> Timestamp? {
        let bytes = Array(text.utf8)
        func number(_ range: Range<Int>) -> Int? {
            guard range.upperBound <= bytes.count else { return nil }
            var n = 0
            for b in bytes[range] {
                guard b >= 0x30 && b <= 0x39 else { return nil }
                n = n * 10 + Int(b - 0x30)
            }
            return n
        }
        guard bytes.count >= 20, bytes[4] == UInt8(ascii: "-"), bytes[7] == UInt8(ascii: "-"), bytes[10] == UInt8(ascii: "T"),
              bytes[13] == UInt8(ascii: ":"), bytes[16] == UInt8(ascii: ":"), bytes.last == UInt8(ascii: "Z"),
              let year = number(0..<4), let month = number(5..<7), let day = number(8..<10),
              let hour = number(11..<13), let minute = number(14..<16), let second = number(17..<19),
              (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second < 61 else { return nil }
        var nanoseconds: Int64 = 0
        if bytes.count > 20 {
            // ".fff…Z": up to nine digits are nanoseconds.
            guard bytes[19] == UInt8(ascii: "."), let digits = number(20..<(bytes.count - 1)), bytes.count - 21 <= 9 else { return nil }
            var scale: Int64 = 1
            for _ in 0..<(9 - (bytes.count - 21)) { scale *= 10 }
            nanoseconds = Int64(digits) * scale
        }
        // Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil).
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        let days = Int64(era * 146_097 + dayOfEra - 719_468)
        return Timestamp(seconds: days * 86_400 + Int64(hour * 3600 + minute * 60 + second), nanoseconds: nanoseconds)
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
