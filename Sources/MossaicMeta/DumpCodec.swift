import MossaicCore

/// The JSON of dump lines: flat objects whose values are integers, strings and null (and, in
/// nothing this build writes, booleans). Written and parsed here, without Foundation, because
/// a dump is millions of small lines and every value's form is fixed by its column
/// (`MetadataDump.Kind`): bytes as base64, hashes as hex.
enum DumpCodec {
    enum Scalar: Equatable {
        case int(Int64)
        case string(String)
        case bool(Bool)
        case null
    }

    // MARK: Writing

    static func appendString(_ s: String, to out: inout [UInt8]) {
        out.append(0x22)
        for byte in s.utf8 {
            switch byte {
            case 0x22: out += [0x5c, 0x22]
            case 0x5c: out += [0x5c, 0x5c]
            case 0x0a: out += [0x5c, 0x6e]
            case 0x0d: out += [0x5c, 0x72]
            case 0x09: out += [0x5c, 0x74]
            case 0..<0x20:
                out += Array("\\u00".utf8)
                out.append(hexDigit(byte >> 4)); out.append(hexDigit(byte & 15))
            default: out.append(byte)
            }
        }
        out.append(0x22)
    }

    static func appendInt(_ v: Int64, to out: inout [UInt8]) { out += Array(String(v).utf8) }

    static func hexDigit(_ v: UInt8) -> UInt8 { v < 10 ? 0x30 + v : 0x61 + v - 10 }

    static func appendHex(_ bytes: [UInt8], to out: inout [UInt8]) {
        out.append(0x22)
        for b in bytes { out.append(hexDigit(b >> 4)); out.append(hexDigit(b & 15)) }
        out.append(0x22)
    }

    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    static func appendBase64(_ bytes: [UInt8], to out: inout [UInt8]) {
        out.append(0x22)
        var i = 0
        while i + 3 <= bytes.count {
            let v = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2])
            out += [alphabet[Int(v >> 18)], alphabet[Int(v >> 12 & 63)], alphabet[Int(v >> 6 & 63)], alphabet[Int(v & 63)]]
            i += 3
        }
        let rest = bytes.count - i
        if rest == 1 {
            let v = UInt32(bytes[i]) << 16
            out += [alphabet[Int(v >> 18)], alphabet[Int(v >> 12 & 63)], 0x3d, 0x3d]
        } else if rest == 2 {
            let v = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8
            out += [alphabet[Int(v >> 18)], alphabet[Int(v >> 12 & 63)], alphabet[Int(v >> 6 & 63)], 0x3d]
        }
        out.append(0x22)
    }

    static func base64(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        appendBase64(bytes, to: &out)
        return String(decoding: out.dropFirst().dropLast(), as: UTF8.self)
    }

    // MARK: Reading

    private static let decodeTable: [UInt8] = {
        var t = [UInt8](repeating: 0xff, count: 256)
        for (i, c) in alphabet.enumerated() { t[Int(c)] = UInt8(i) }
        return t
    }()

    /// Standard base64 with padding (what `appendBase64` writes); nil if it is not.
    static func decodeBase64(_ s: String) -> [UInt8]? {
        let chars = Array(s.utf8)
        guard chars.count % 4 == 0 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(chars.count / 4 * 3)
        var i = 0
        while i < chars.count {
            let pad = i + 4 == chars.count ? (chars[i + 3] == 0x3d ? (chars[i + 2] == 0x3d ? 2 : 1) : 0) : 0
            var v: UInt32 = 0
            for j in 0..<4 {
                let c = chars[i + j]
                if j >= 4 - pad { v <<= 6; continue }
                let d = decodeTable[Int(c)]
                guard d != 0xff else { return nil }
                v = v << 6 | UInt32(d)
            }
            out.append(UInt8(v >> 16))
            if pad < 2 { out.append(UInt8(v >> 8 & 0xff)) }
            if pad < 1 { out.append(UInt8(v & 0xff)) }
            i += 4
        }
        return out
    }

    static func decodeHex(_ s: String) -> [UInt8]? {
        let chars = Array(s.utf8)
        guard chars.count % 2 == 0 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(chars.count / 2)
        var i = 0
        while i < chars.count {
            guard let hi = Hex.nibble(chars[i]), let lo = Hex.nibble(chars[i + 1]) else { return nil }
            out.append(hi << 4 | lo)
            i += 2
        }
        return out
    }

    struct ParseError: Error { let why: String }

    /// Parses one line holding one flat JSON object.
    static func parseObject(_ line: ArraySlice<UInt8>) throws(ParseError) -> [String: Scalar] {
        var p = Parser(bytes: line, at: line.startIndex)
        p.skipSpace()
        guard p.take(0x7b) else { throw ParseError(why: "a line is not a JSON object") }
        var result: [String: Scalar] = [:]
        p.skipSpace()
        if p.take(0x7d) { return result }
        while true {
            p.skipSpace()
            let key = try p.string()
            p.skipSpace()
            guard p.take(0x3a) else { throw ParseError(why: "expected ':' after \"\(key)\"") }
            p.skipSpace()
            let value = try p.scalar()
            guard result.updateValue(value, forKey: key) == nil else { throw ParseError(why: "key \"\(key)\" appears twice") }
            p.skipSpace()
            if p.take(0x2c) { continue }
            if p.take(0x7d) { break }
            throw ParseError(why: "expected ',' or '}' after \"\(key)\"")
        }
        p.skipSpace()
        guard p.at == line.endIndex else { throw ParseError(why: "text after the object") }
        return result
    }

    private struct Parser {
        let bytes: ArraySlice<UInt8>
        var at: Int

        mutating func skipSpace() {
            while at < bytes.endIndex, [0x20, 0x09, 0x0d].contains(bytes[at]) { at += 1 }
        }

        mutating func take(_ c: UInt8) -> Bool {
            guard at < bytes.endIndex, bytes[at] == c else { return false }
            at += 1
            return true
        }

        mutating func literal(_ word: String) -> Bool {
            let w = Array(word.utf8)
            guard bytes.endIndex - at >= w.count, Array(bytes[at..<at + w.count]) == w else { return false }
            at += w.count
            return true
        }

        mutating func scalar() throws(ParseError) -> Scalar {
            guard at < bytes.endIndex else { throw ParseError(why: "a value is missing") }
            switch bytes[at] {
            case 0x22: return .string(try string())
            case 0x6e where literal("null"): return .null
            case 0x74 where literal("true"): return .bool(true)
            case 0x66 where literal("false"): return .bool(false)
            case 0x2d, 0x30...0x39:
                let start = at
                at += 1
                while at < bytes.endIndex, (0x30...0x39).contains(bytes[at]) { at += 1 }
                guard let v = Int64(String(decoding: bytes[start..<at], as: UTF8.self)) else {
                    throw ParseError(why: "a number is not a 64-bit integer")
                }
                return .int(v)
            default:
                throw ParseError(why: "a value is not an integer, a string or null")
            }
        }

        mutating func string() throws(ParseError) -> String {
            guard take(0x22) else { throw ParseError(why: "expected a string") }
            var out: [UInt8] = []
            while true {
                guard at < bytes.endIndex else { throw ParseError(why: "a string does not end") }
                let c = bytes[at]
                at += 1
                switch c {
                case 0x22: return String(decoding: out, as: UTF8.self)
                case 0x5c:
                    guard at < bytes.endIndex else { throw ParseError(why: "a string does not end") }
                    let e = bytes[at]
                    at += 1
                    switch e {
                    case 0x22, 0x5c, 0x2f: out.append(e)
                    case 0x6e: out.append(0x0a)
                    case 0x72: out.append(0x0d)
                    case 0x74: out.append(0x09)
                    case 0x62: out.append(0x08)
                    case 0x66: out.append(0x0c)
                    case 0x75:
                        var scalar = try hex4()
                        if (0xd800..<0xdc00).contains(scalar), literal("\\u") {
                            let low = try hex4()
                            scalar = 0x10000 + (scalar - 0xd800) << 10 + (low &- 0xdc00)
                        }
                        guard let u = Unicode.Scalar(scalar) else { throw ParseError(why: "a \\u escape is not a character") }
                        out += Array(String(Character(u)).utf8)
                    default: throw ParseError(why: "unknown escape in a string")
                    }
                default: out.append(c)
                }
            }
        }

        mutating func hex4() throws(ParseError) -> UInt32 {
            guard bytes.endIndex - at >= 4 else { throw ParseError(why: "a \\u escape is short") }
            var v: UInt32 = 0
            for _ in 0..<4 {
                guard let n = Hex.nibble(bytes[at]) else { throw ParseError(why: "a \\u escape is not hex") }
                v = v << 4 | UInt32(n)
                at += 1
            }
            return v
        }
    }
}
