internal import CZstd

/// zstd's one-shot API (libzstd), for whole chunks: each chunk is one frame that records its
/// content size, so a reader needs nothing but the frame.
package enum Zstd {
    /// `input` as one zstd frame at `level`, or nil if the frame would not fit in `capacity`
    /// bytes: the caller's bound on what is worth storing, so an incompressible chunk is given
    /// up as soon as its frame outgrows it, without a buffer for the worst case.
    package static func compress(_ input: [UInt8], level: Int, capacity: Int) -> [UInt8]? {
        guard capacity > 0 else { return nil }
        var failed = false
        let frame = [UInt8](unsafeUninitializedCapacity: capacity) { out, count in
            let written = input.withUnsafeBytes { src in
                ZSTD_compress(out.baseAddress, capacity, src.baseAddress, src.count, Int32(level))
            }
            failed = ZSTD_isError(written) != 0
            count = failed ? 0 : written
        }
        return failed ? nil : frame
    }

    /// The content of the zstd frame `frame`, which must be one whole frame of at most `limit`
    /// bytes of content (a chunk): a damaged or foreign frame is an error, never a crash or an
    /// allocation its header asks for.
    package static func decompress(_ frame: [UInt8], limit: Int) throws(ChunkDamage) -> [UInt8] {
        let size = frame.withUnsafeBytes { ZSTD_getFrameContentSize($0.baseAddress, $0.count) }
        // ZSTD_CONTENTSIZE_UNKNOWN and _ERROR are the two largest values: above any limit.
        guard size <= UInt64(limit) else {
            throw .undecodable(size >= UInt64.max - 1 ? "not a zstd frame with a content size" : "its zstd frame claims \(size) bytes")
        }
        let expected = Int(size)
        var reason: String?
        let content = [UInt8](unsafeUninitializedCapacity: max(expected, 1)) { out, count in
            let written = frame.withUnsafeBytes { src in ZSTD_decompress(out.baseAddress, expected, src.baseAddress, src.count) }
            if ZSTD_isError(written) != 0 {
                reason = String(cString: ZSTD_getErrorName(written))
            } else if written != expected {
                reason = "its zstd frame holds \(written) bytes, not the \(expected) it claims"
            }
            count = reason == nil ? written : 0
        }
        if let reason { throw .undecodable(reason) }
        return content
    }
}
