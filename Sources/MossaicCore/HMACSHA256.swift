internal import COpenSSL

/// HMAC-SHA256 through OpenSSL's one-shot `HMAC()`: the building block of AWS Signature V4
/// where curl does not sign for us (the per-piece signatures of a streaming upload).
public enum HMACSHA256 {
    /// The 32-byte MAC of `message` under `key`.
    public static func mac(key: [UInt8], message: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        var length: UInt32 = 0
        let produced = key.withUnsafeBytes { k in
            message.withUnsafeBytes { m in
                out.withUnsafeMutableBufferPointer { o in
                    HMAC(EVP_sha256(), k.baseAddress, Int32(k.count), m.baseAddress?.assumingMemoryBound(to: UInt8.self),
                         m.count, o.baseAddress, &length)
                }
            }
        }
        precondition(produced != nil && length == 32, "HMAC(SHA-256) failed")
        return out
    }

    public static func mac(key: [UInt8], message: String) -> [UInt8] {
        mac(key: key, message: Array(message.utf8))
    }
}
