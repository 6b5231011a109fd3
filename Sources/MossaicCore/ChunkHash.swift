internal import COpenSSL

/// The SHA-256 of a chunk's plaintext bytes: its name in the object store and its identity in
/// the metadata. Kept as four words so that it hashes and compares without allocating.
public struct ChunkHash: Hashable, Sendable, CustomStringConvertible {
    public let w0: UInt64, w1: UInt64, w2: UInt64, w3: UInt64

    /// From 32 bytes, most significant first. Concrete, not generic over collections: every
    /// chunk row read from SQLite comes through here, and a generic initializer is not
    /// specialized across modules (walking 32 bytes through one cost ~6 % of the daemon's CPU
    /// in a sequential read).
    public init(bytes: [UInt8]) {
        precondition(bytes.count == 32, "a SHA-256 is 32 bytes")
        (w0, w1, w2, w3) = bytes.withUnsafeBytes { raw in
            func word(_ i: Int) -> UInt64 { UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self)) }
            return (word(0), word(1), word(2), word(3))
        }
    }

    /// Parses 64 lowercase or uppercase hex digits; nil for anything else.
    public init?(hex: some StringProtocol) {
        let utf8 = Array(hex.utf8)
        guard utf8.count == 64 else { return nil }
        var bytes = [UInt8](repeating: 0, count: 32)
        for i in 0..<32 {
            guard let hi = Hex.nibble(utf8[2 * i]), let lo = Hex.nibble(utf8[2 * i + 1]) else { return nil }
            bytes[i] = hi << 4 | lo
        }
        self.init(bytes: bytes)
    }

    public var bytes: [UInt8] {
        [UInt8](unsafeUninitializedCapacity: 32) { out, count in
            let raw = UnsafeMutableRawBufferPointer(out)
            raw.storeBytes(of: w0.bigEndian, toByteOffset: 0, as: UInt64.self)
            raw.storeBytes(of: w1.bigEndian, toByteOffset: 8, as: UInt64.self)
            raw.storeBytes(of: w2.bigEndian, toByteOffset: 16, as: UInt64.self)
            raw.storeBytes(of: w3.bigEndian, toByteOffset: 24, as: UInt64.self)
            count = 32
        }
    }

    /// Lowercase hex, the form used in object keys.
    public var hex: String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8](); out.reserveCapacity(64)
        for b in bytes { out.append(digits[Int(b >> 4)]); out.append(digits[Int(b & 15)]) }
        return String(decoding: out, as: UTF8.self)
    }

    public var description: String { hex }

    /// SHA-256 of `data`, through OpenSSL's EVP one-shot digest.
    public static func of(_ data: UnsafeRawBufferPointer) -> ChunkHash {
        var md = [UInt8](repeating: 0, count: 32)
        var len: UInt32 = 0
        let ok = md.withUnsafeMutableBufferPointer { out in
            EVP_Digest(data.baseAddress, data.count, out.baseAddress, &len, EVP_sha256(), nil)
        }
        precondition(ok == 1 && len == 32, "EVP_Digest(SHA-256) failed")
        return ChunkHash(bytes: md)
    }

    public static func of(_ data: [UInt8]) -> ChunkHash {
        data.withUnsafeBytes { of($0) }
    }

}

/// Hex digits, for hashes in object keys and percent-decoding in the S3 layer.
public enum Hex {
    /// The value of one hex digit (either case), or nil.
    public static func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}

extension ChunkHash {
    /// The chunk's key in the object store: `chunks/<first two hex digits>/<hex>`. The 2-digit
    /// fan-out keeps directory stores' directories small and spreads S3 key prefixes.
    public var objectKey: String {
        let h = hex
        return "chunks/\(h.prefix(2))/\(h)"
    }
}
