import MossaicCore

/// What becomes of a chunk's bytes between the chunk store and the object store: nothing
/// (`none`), or, in an encrypted filesystem, convergent AES-256-GCM (`ConvergentCipher`),
/// which adds `overhead` bytes (the tag) to each chunk.
///
/// This is the one place the chunk byte path transforms bytes: `seal` on the way in (after
/// compression, where a filesystem compresses), `open` on the way out (before decompression
/// and before the chunk's SHA-256 is checked). A chunk keeps its name — the SHA-256 of its
/// plaintext — whatever form it is stored in; in a pack its row's offset is where the stored
/// form starts and `storedLength` of its length is how far it goes.
public struct ChunkSealing: Sendable {
    public let cipher: ConvergentCipher?

    public static let none = ChunkSealing(cipher: nil)

    public init(cipher: ConvergentCipher?) {
        self.cipher = cipher
    }

    /// Bytes a stored chunk has beyond its plaintext.
    public var overhead: Int { cipher == nil ? 0 : ConvergentCipher.chunkOverhead }

    /// The length in the store of a chunk of `length` bytes.
    public func storedLength(_ length: Int) -> Int { length + overhead }

    /// The bytes to store for chunk `hash`, with their own SHA-256 (which S3 signs): the
    /// plaintext itself, named by `hash`, when nothing seals them.
    public func seal(_ bytes: [UInt8], hash: ChunkHash) -> HashedBytes {
        guard let cipher else { return HashedBytes(bytes, sha256: hash) }
        let sealed = cipher.sealChunk(bytes, plaintextHash: hash)
        return HashedBytes(sealed, sha256: ChunkHash.of(sealed))
    }

    /// The plaintext of stored chunk `hash`; throws if the GCM tag does not check. The caller
    /// still checks the plaintext's SHA-256.
    public func open(_ stored: [UInt8], hash: ChunkHash) throws(CipherError) -> [UInt8] {
        guard let cipher else { return stored }
        return try cipher.openChunk(stored, plaintextHash: hash)
    }

    /// The bytes of the object chunk `hash` lies in (at `location`, `length` bytes of
    /// plaintext) that hold its stored form.
    public func storedRange(of location: ChunkLocation, length: Int) -> Range<UInt64> {
        location.objectRange(0..<storedLength(length))
    }
}
