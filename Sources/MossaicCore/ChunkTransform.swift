/// What happens to a chunk's bytes between the filesystem and the store (ARCHITECTURE.md §10),
/// fixed at format time by the superblock:
///
///     plaintext ─ compress (per chunk, optional) ─ seal (encrypted filesystems) ─ stored bytes
///
/// `ChunkStore` encodes every chunk it stores (object, pack, write-back staging); every reader
/// of stored bytes (the blob cache, staging, fsck) decodes — opens the seal, checking the GCM
/// tag, then decompresses by the chunk's codec — and verifies the SHA-256 of the PLAINTEXT,
/// the chunk's name, so damage anywhere in the stored form is a checksum error. Inline chunks
/// and patches live in the metadata and are never transformed (an encrypted filesystem seals
/// the metadata as a whole, `SealedObjectStore`).
///
/// Sealing is convergent (`ConvergentCipher`): the key comes from the plaintext's hash and
/// the nonce from the hash of the bytes sealed, and compression is deterministic for a given
/// zstd release and level, so a chunk has one stored form and dedup holds in an encrypted
/// filesystem (a chunk already stored is never stored again, whatever another release would
/// make of it). In a pack, a chunk's range covers its whole stored form, nonce and tag included.
///
/// A chunk stays compressed only if that saves at least 1/32 of it; otherwise it is stored
/// raw (`ChunkCodec.none`), so incompressible data costs no bytes and no decoding.
public struct ChunkTransform: Sendable {
    public var compression: Compression
    /// An encrypted filesystem's cipher; nil in the clear.
    public var cipher: ConvergentCipher?

    /// No transform: stored bytes are the plaintext (filesystems formatted without options).
    public static let identity = ChunkTransform(compression: .none)

    public init(compression: Compression, cipher: ConvergentCipher? = nil) {
        self.compression = compression; self.cipher = cipher
    }

    /// The stored form of chunk `plaintext`, named `hash`.
    public func encode(_ plaintext: [UInt8], hash: ChunkHash) -> EncodedChunk {
        var encoded = EncodedChunk(bytes: plaintext, codec: .none, sha256: hash)
        if case .zstd(let level) = compression, Self.mayShrink(plaintext, level: level),
           let frame = Zstd.compress(plaintext, level: level, capacity: plaintext.count - plaintext.count / 32) {
            encoded = EncodedChunk(bytes: frame, codec: .zstd, sha256: ChunkHash.of(frame))
        }
        if let cipher, let messageHash = encoded.sha256 {
            // The message's hash picks the nonce (`ConvergentCipher.sealChunk`). The sealed
            // bytes are not hashed again: a pack names them by `identity`, and a store that
            // signs a single PUT by their SHA-256 computes it then.
            let sealed = cipher.sealChunk(encoded.bytes, plaintextHash: hash, messageHash: messageHash)
            encoded = EncodedChunk(bytes: sealed, codec: encoded.codec, sha256: nil,
                                   identity: ConvergentCipher.sealedIdentity(sealed, plaintextHash: hash))
        }
        return encoded
    }

    /// Whether a chunk is worth compressing whole: its start, middle and end (16 KiB each)
    /// together shrink by the 1/32 a stored frame must save. zstd gives up on incompressible
    /// input only once its output outgrows the bound, after it has worked through nearly all
    /// of it, so media, archives and random data would cost a whole compression per chunk for
    /// nothing; the samples cost 1/20 of that. A function of the bytes alone, as the stored
    /// form must be (convergence). Chunks of up to 96 KiB are simply compressed.
    public static func mayShrink(_ plaintext: [UInt8], level: Int) -> Bool {
        let sample = 16 << 10
        guard plaintext.count > 6 * sample else { return true }
        let middle = plaintext.count / 2 - sample / 2
        let probe = Array(plaintext[..<sample]) + plaintext[middle..<(middle + sample)] + plaintext[(plaintext.count - sample)...]
        return Zstd.compress(probe, level: level, capacity: probe.count - probe.count / 32) != nil
    }

    /// The plaintext of chunk `hash` from its stored bytes in form `codec`, verified: bytes
    /// that do not open or decode, or decode to anything but the chunk, are `ChunkDamage`.
    public func decode(_ stored: [UInt8], codec: ChunkCodec, hash: ChunkHash) throws(ChunkDamage) -> [UInt8] {
        var opened = stored
        if let cipher {
            do { opened = try cipher.openChunk(stored, plaintextHash: hash) } catch { throw .unauthentic }
        }
        let plaintext: [UInt8] = switch codec {
        case .none: opened
        case .zstd: try Zstd.decompress(opened, limit: FormatConstants.chunkSize)
        }
        let actual = ChunkHash.of(plaintext)
        guard actual == hash else { throw .mismatch(actual: actual) }
        return plaintext
    }

    /// Whether a chunk stored in form `codec` holds its plaintext byte for byte, so a range of
    /// it can be read from the stored bytes directly (ranged reads of a local store's objects).
    public func storesPlaintext(_ codec: ChunkCodec) -> Bool {
        codec == .none && cipher == nil
    }
}

/// A chunk's stored form: the bytes to put, how to read them back, their SHA-256 when it was
/// computed on the way (S3 signs by it; for a chunk stored as it is, its name), and what
/// stands for them in a pack's name (`HashedBytes.identity`).
public struct EncodedChunk: Sendable {
    public var bytes: [UInt8]
    public var codec: ChunkCodec
    public var sha256: ChunkHash?
    public var identity: ChunkHash

    public init(bytes: [UInt8], codec: ChunkCodec, sha256: ChunkHash) {
        self.bytes = bytes; self.codec = codec; self.sha256 = sha256; identity = sha256
    }

    public init(bytes: [UInt8], codec: ChunkCodec, sha256: ChunkHash?, identity: ChunkHash) {
        self.bytes = bytes; self.codec = codec; self.sha256 = sha256; self.identity = identity
    }
}
