import MossaicCore
import Testing

/// Text-like bytes: words drawn from a small vocabulary (compresses several times, as logs
/// and source do), deterministic for a seed.
func textBytes(_ count: Int, seed: UInt64) -> [UInt8] {
    let words = ["chunk", "store", "the", "filesystem", "metadata", "of", "read", "write", "zstd", "and", "bucket", "\n"]
    var state = seed | 1, out: [UInt8] = []
    out.reserveCapacity(count + 16)
    while out.count < count {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        out += Array(words[Int(state >> 33) % words.count].utf8) + [0x20]
    }
    return Array(out.prefix(count))
}

/// Bytes zstd cannot shrink (xorshift output).
func noiseBytes(_ count: Int, seed: UInt64) -> [UInt8] {
    var x = seed | 1
    return (0..<count).map { _ in x ^= x << 13; x ^= x >> 7; x ^= x << 17; return UInt8(truncatingIfNeeded: x) }
}

@Suite struct ChunkTransformTests {
    let zstd = ChunkTransform(compression: .zstd(level: 3))

    @Test func textIsStoredAsAZstdFrameThatDecodesToItself() throws {
        let text = textBytes(1 << 20, seed: 1), hash = ChunkHash.of(text)
        let encoded = zstd.encode(text, hash: hash)
        #expect(encoded.codec == .zstd)
        #expect(encoded.bytes.count < text.count / 2)
        #expect(encoded.sha256 == ChunkHash.of(encoded.bytes))  // what S3 signs
        #expect(try zstd.decode(encoded.bytes, codec: .zstd, hash: hash) == text)
        #expect(!zstd.storesPlaintext(.zstd) && zstd.storesPlaintext(.none))
    }

    @Test func incompressibleBytesAreStoredRawWithoutOverhead() throws {
        let noise = noiseBytes(1 << 20, seed: 2), hash = ChunkHash.of(noise)
        let encoded = zstd.encode(noise, hash: hash)
        #expect(encoded.codec == .none)
        #expect(encoded.bytes == noise && encoded.sha256 == hash)
        #expect(try zstd.decode(encoded.bytes, codec: .none, hash: hash) == noise)
    }

    /// A chunk that zstd shrinks by less than 1/32 is not worth decoding: stored raw.
    @Test func aChunkThatShrinksTooLittleIsStoredRaw() throws {
        // 1/64 of the chunk compressible (zeros), the rest noise: zstd saves about 1/64.
        let bytes = noiseBytes(63 << 14, seed: 3) + [UInt8](repeating: 0, count: 1 << 14)
        #expect(zstd.encode(bytes, hash: ChunkHash.of(bytes)).codec == .none)
        // Half zeros: compressed.
        let half = noiseBytes(1 << 19, seed: 3) + [UInt8](repeating: 0, count: 1 << 19)
        #expect(zstd.encode(half, hash: ChunkHash.of(half)).codec == .zstd)
    }

    /// The probe that spares incompressible chunks a whole compression: it says no for noise
    /// and yes for text, and a chunk it passes is still stored raw if the whole saves too little.
    @Test func incompressibleChunksAreRecognisedFromSamples() {
        #expect(!ChunkTransform.mayShrink(noiseBytes(1 << 20, seed: 7), level: 3))
        #expect(ChunkTransform.mayShrink(textBytes(1 << 20, seed: 7), level: 3))
        // Text only between the samples: judged by them, stored raw, still correct.
        let mixed = noiseBytes(200 << 10, seed: 8) + textBytes(300 << 10, seed: 8) + noiseBytes(48 << 10, seed: 9)
            + textBytes(300 << 10, seed: 9) + noiseBytes(200 << 10, seed: 10)
        #expect(!ChunkTransform.mayShrink(mixed, level: 3))
        #expect(zstd.encode(mixed, hash: ChunkHash.of(mixed)).codec == .none)
        // Small chunks are not sampled.
        #expect(ChunkTransform.mayShrink(noiseBytes(64 << 10, seed: 11), level: 3))
    }

    @Test func withoutCompressionEveryChunkIsStoredAsItIs() {
        let text = textBytes(1 << 20, seed: 4)
        let encoded = ChunkTransform.identity.encode(text, hash: ChunkHash.of(text))
        #expect(encoded.codec == .none && encoded.bytes == text)
    }

    /// Both stages: compressed, then sealed; read back in the reverse order. Sealing is
    /// convergent, so one chunk has one stored form (dedup), and a changed byte anywhere is
    /// caught by the GCM tag before zstd sees it.
    @Test func compressedThenSealedChunksOpenDecompressAndVerify() throws {
        let sealed = ChunkTransform(compression: .zstd(level: 3), cipher: ConvergentCipher(masterKey: [UInt8](repeating: 9, count: 32)))
        let text = textBytes(1 << 20, seed: 5), hash = ChunkHash.of(text)
        let encoded = sealed.encode(text, hash: hash)
        #expect(encoded.codec == .zstd)
        #expect(encoded.bytes.count == zstd.encode(text, hash: hash).bytes.count + ConvergentCipher.chunkOverhead)
        // Sealed bytes are not hashed on the way: a pack names them by their identity, which is
        // as stable as the bytes; whoever must sign them by their SHA-256 computes it.
        #expect(encoded.sha256 == nil && encoded.identity != hash)
        let again = sealed.encode(text, hash: hash)
        #expect(again.bytes == encoded.bytes && again.identity == encoded.identity)
        #expect(try sealed.decode(encoded.bytes, codec: .zstd, hash: hash) == text)
        #expect(!sealed.storesPlaintext(.none))

        var changed = encoded.bytes
        changed[changed.count / 2] ^= 1
        #expect(throws: ChunkDamage.unauthentic) { try sealed.decode(changed, codec: .zstd, hash: hash) }
        // Sealed under another key: the same refusal.
        let other = ChunkTransform(compression: .zstd(level: 3), cipher: ConvergentCipher(masterKey: [UInt8](repeating: 8, count: 32)))
        #expect(throws: ChunkDamage.unauthentic) { try other.decode(encoded.bytes, codec: .zstd, hash: hash) }

        // Incompressible bytes: sealed raw, the tag their only overhead.
        let noise = noiseBytes(1 << 20, seed: 6), noiseHash = ChunkHash.of(noise)
        let raw = sealed.encode(noise, hash: noiseHash)
        #expect(raw.codec == .none && raw.bytes.count == noise.count + ConvergentCipher.chunkOverhead)
        #expect(try sealed.decode(raw.bytes, codec: .none, hash: noiseHash) == noise)
    }

    @Test func damagedStoredBytesAreErrorsNotCrashes() throws {
        let text = textBytes(1 << 20, seed: 5), hash = ChunkHash.of(text)
        let frame = zstd.encode(text, hash: hash).bytes
        // Cut short, as a torn or truncated object.
        #expect(throws: ChunkDamage.self) { try zstd.decode(Array(frame.prefix(frame.count / 2)), codec: .zstd, hash: hash) }
        // A flipped byte in the middle: the frame fails to decode, or decodes to other bytes.
        var flipped = frame
        flipped[frame.count / 2] ^= 0xFF
        #expect(throws: ChunkDamage.self) { try zstd.decode(flipped, codec: .zstd, hash: hash) }
        // Not a zstd frame at all (raw bytes under a zstd row), and an empty object.
        #expect(throws: ChunkDamage.self) { try zstd.decode(text, codec: .zstd, hash: hash) }
        #expect(throws: ChunkDamage.self) { try zstd.decode([], codec: .zstd, hash: hash) }
        // A whole, valid frame of other bytes: decodes, and the plaintext's hash says no.
        let other = textBytes(1 << 20, seed: 6)
        let otherFrame = zstd.encode(other, hash: ChunkHash.of(other)).bytes
        #expect(throws: ChunkDamage.mismatch(actual: ChunkHash.of(other))) { try zstd.decode(otherFrame, codec: .zstd, hash: hash) }
        // A raw chunk with a changed byte.
        var raw = text
        raw[0] ^= 1
        #expect(throws: ChunkDamage.mismatch(actual: ChunkHash.of(raw))) { try zstd.decode(raw, codec: .none, hash: hash) }
    }

    /// A frame whose header claims more than a chunk is refused before anything is allocated.
    @Test func aFrameClaimingMoreThanAChunkIsRefused() throws {
        let big = textBytes((1 << 20) + 1, seed: 7)
        let frame = zstd.encode(big, hash: ChunkHash.of(big)).bytes
        #expect(throws: ChunkDamage.self) { try zstd.decode(frame, codec: .zstd, hash: ChunkHash.of(big)) }
    }

    @Test func compressionIsParsedAsFormatAndTheSuperblockSpellIt() throws {
        #expect(try Compression(parsing: "none") == .none)
        #expect(try Compression(parsing: "zstd") == .zstd(level: 3))
        #expect(try Compression(parsing: "zstd:19") == .zstd(level: 19))
        #expect(try Compression(parsing: "zstd:1").description == "zstd:1")
        for bad in ["zstd:0", "zstd:20", "zstd:", "zstd:x", "zstd:-1"] {
            #expect(throws: CompressionError.badLevel(bad)) { try Compression(parsing: bad) }
        }
        #expect(throws: CompressionError.unknown("lz4")) { try Compression(parsing: "lz4") }
        #expect("\(CompressionError.badLevel("zstd:20"))".contains("1 to 19"))
    }
}
