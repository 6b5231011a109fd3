internal import COpenSSL

/// The encryption of an encrypted filesystem (`--encrypt`, ARCHITECTURE.md §10), scheme
/// `aes-256-gcm-convergent-v1`: four subkeys derived from the 32-byte master key, and the
/// operations on bytes and names built from them. libcrypto's AES-GCM runs at several GB/s
/// with AES-NI, so sealing is not what bounds a mount.
///
/// - Chunks are sealed convergently: the key comes from the chunk's plaintext SHA-256 and the
///   nonce from the SHA-256 of the bytes sealed (the chunk, or its zstd frame), each under a
///   secret subkey, so the same chunk seals to the same bytes (dedup inside the filesystem
///   keeps working) while the store, without the master key, can derive neither. A (key,
///   nonce) pair only ever seals one message: the nonce is a function of the message itself
///   (a synthetic nonce, as in SIV), so even two different zstd frames of one chunk (another
///   zstd release, another host) get different nonces. The nonce is stored in front of the
///   ciphertext: a reader knows the plaintext hash but not the frame's.
/// - Metadata objects (snapshots, manifests, HEAD, the lease) are sealed with the metadata
///   subkey, a random nonce, and their object key as associated data: a blob moved to
///   another key (an old HEAD replayed over the new one's name) fails to open.
/// - Names: a 32-byte name (a chunk hash, a pack name) is enciphered with AES-256 under the
///   naming subkey (`encipherName`). A permutation rather than an HMAC, so that a listed
///   object key maps back to the name the metadata knows: gc and fsck find unreferenced
///   objects without knowing every hash, and nothing above the store changes.
///
/// Subkeys are HKDF-Expand (RFC 5869) of the master key, used as the PRK, with one label
/// each: a one-block HMAC-SHA256.
public struct ConvergentCipher: Sendable {
    public static let scheme = "aes-256-gcm-convergent-v1"
    public static let keyLength = 32
    /// GCM tag appended to every sealed chunk and blob.
    public static let tagLength = 16
    static let nonceLength = 12
    /// Bytes a chunk grows by when sealed: its nonce in front, its tag at the end.
    public static let chunkOverhead = nonceLength + tagLength
    /// Bytes a blob grows by: its nonce in front, its tag at the end.
    public static let blobOverhead = nonceLength + tagLength

    private let chunkKeyKey: [UInt8]
    private let nonceKey: [UInt8]
    private let namingKey: [UInt8]
    private let metadataKey: [UInt8]
    /// Stored in the superblock; proves a key right or wrong before anything else is read.
    public let keyCheck: [UInt8]

    public init(masterKey: [UInt8]) {
        precondition(masterKey.count == Self.keyLength, "a master key is 32 bytes")
        func expand(_ label: String) -> [UInt8] { HMACSHA256.mac(key: masterKey, message: Array(label.utf8) + [1]) }
        chunkKeyKey = expand("mossaicfs chunk key")
        nonceKey = expand("mossaicfs chunk nonce")
        namingKey = expand("mossaicfs object naming")
        metadataKey = expand("mossaicfs metadata key")
        keyCheck = expand("mossaicfs key check")
    }

    // MARK: Chunks

    /// `message` (the chunk, or its zstd frame; `messageHash` is its SHA-256) sealed under the
    /// key chunk `plaintextHash` gives and a nonce `messageHash` gives: nonce, ciphertext, GCM
    /// tag. Deterministic. For a chunk stored raw the two hashes are the same, and nothing is
    /// hashed here.
    public func sealChunk(_ message: [UInt8], plaintextHash: ChunkHash, messageHash: ChunkHash) -> [UInt8] {
        let nonce = Array(HMACSHA256.mac(key: nonceKey, message: messageHash.bytes).prefix(Self.nonceLength))
        return AESGCM.seal(message, key: chunkKey(plaintextHash), nonce: nonce, associatedData: [], prefix: nonce)
    }

    /// The message of a sealed chunk; throws if the tag does not check (tampered, damaged, or
    /// sealed under another key or for another chunk).
    public func openChunk(_ sealed: [UInt8], plaintextHash: ChunkHash) throws(CipherError) -> [UInt8] {
        guard sealed.count >= Self.chunkOverhead else { throw .truncated }
        return try AESGCM.open(sealed, from: Self.nonceLength, key: chunkKey(plaintextHash), nonce: Array(sealed[..<Self.nonceLength]),
                               associatedData: [])
    }

    /// What stands for sealed chunk bytes in a pack's name, without a pass over them: the
    /// chunk's name, the nonce (which the sealed message's hash chose) and the GCM tag (which
    /// authenticates the ciphertext) — the same for the same sealed bytes, and for different
    /// ones different but with negligible probability.
    public static func sealedIdentity(_ sealed: [UInt8], plaintextHash: ChunkHash) -> ChunkHash {
        ChunkHash.of(plaintextHash.bytes + sealed.prefix(nonceLength) + sealed.suffix(tagLength))
    }

    private func chunkKey(_ hash: ChunkHash) -> [UInt8] {
        HMACSHA256.mac(key: chunkKeyKey, message: hash.bytes)
    }

    // MARK: Blobs

    /// `plaintext` sealed with a fresh random nonce: nonce, ciphertext, tag. `context` (the
    /// object key) must be given again to open it.
    public func sealBlob(_ plaintext: [UInt8], context: String) -> [UInt8] {
        let nonce = Self.randomBytes(Self.nonceLength)
        return AESGCM.seal(plaintext, key: metadataKey, nonce: nonce, associatedData: Array(context.utf8), prefix: nonce)
    }

    public func openBlob(_ sealed: [UInt8], context: String) throws(CipherError) -> [UInt8] {
        guard sealed.count >= Self.blobOverhead else { throw .truncated }
        return try AESGCM.open(sealed, from: Self.nonceLength, key: metadataKey, nonce: Array(sealed[..<Self.nonceLength]),
                               associatedData: Array(context.utf8))
    }

    // MARK: Names

    /// `name` (32 bytes) enciphered: AES-256 of each 16-byte half under the naming subkey. The
    /// halves of a SHA-256 are independent and uniformly spread, so each half's block stands
    /// alone; the result reveals nothing of the name without the key.
    public func encipherName(_ name: ChunkHash) -> ChunkHash {
        ChunkHash(bytes: AESBlocks.transform(name.bytes, key: namingKey, encrypt: true))
    }

    /// The inverse of `encipherName`.
    public func decipherName(_ enciphered: ChunkHash) -> ChunkHash {
        ChunkHash(bytes: AESBlocks.transform(enciphered.bytes, key: namingKey, encrypt: false))
    }

    // MARK: Key material

    /// `count` bytes from OpenSSL's CSPRNG (keys, salts, nonces).
    public static func randomBytes(_ count: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        let ok = out.withUnsafeMutableBufferPointer { RAND_bytes($0.baseAddress, Int32(count)) }
        precondition(ok == 1, "RAND_bytes failed")
        return out
    }
}

/// Why sealed bytes did not open. The chunk store reports it as a damaged chunk (EIO), like a
/// hash mismatch; the metadata layer as a damaged or foreign snapshot.
public enum CipherError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Shorter than a tag (and nonce): not sealed bytes.
    case truncated
    /// The GCM tag did not check: the bytes were changed, or sealed under another key.
    case authenticationFailed

    public var description: String {
        switch self {
        case .truncated: "sealed object too short (damaged)"
        case .authenticationFailed: "sealed object does not authenticate (damaged, or sealed under another key)"
        }
    }
}

/// AES-256-GCM through EVP, one call per object; a context per call costs nanoseconds next to
/// a megabyte of AES. Sealed bytes are `prefix` (the nonce, where it is stored), ciphertext,
/// tag, written into one buffer that is never zeroed first, and opened in place from an offset:
/// a chunk is not copied on the way in or out.
enum AESGCM {
    static func seal(_ plaintext: [UInt8], key: [UInt8], nonce: [UInt8], associatedData: [UInt8], prefix: [UInt8] = []) -> [UInt8] {
        let ctx = EVP_CIPHER_CTX_new()!
        defer { EVP_CIPHER_CTX_free(ctx) }
        var length: Int32 = 0, finalLength: Int32 = 0
        var ok = EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), nil, key, nonce) == 1
        if ok, !associatedData.isEmpty {
            ok = EVP_EncryptUpdate(ctx, nil, &length, associatedData, Int32(associatedData.count)) == 1
        }
        let total = prefix.count + plaintext.count + ConvergentCipher.tagLength
        let out = [UInt8](unsafeUninitializedCapacity: total) { o, count in
            let text = o.baseAddress! + prefix.count
            _ = UnsafeMutableBufferPointer(start: o.baseAddress, count: prefix.count).initialize(from: prefix)
            if ok { ok = EVP_EncryptUpdate(ctx, text, &length, plaintext, Int32(plaintext.count)) == 1 }
            if ok { ok = EVP_EncryptFinal_ex(ctx, text + Int(length), &finalLength) == 1 }
            if ok {
                ok = EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, Int32(ConvergentCipher.tagLength), text + plaintext.count) == 1
            }
            count = total
        }
        precondition(ok && Int(length + finalLength) == plaintext.count, "AES-256-GCM encryption failed")
        return out
    }

    /// The plaintext of `sealed[offset...]` (ciphertext, then tag).
    static func open(_ sealed: [UInt8], from offset: Int = 0, key: [UInt8], nonce: [UInt8], associatedData: [UInt8]) throws(CipherError) -> [UInt8] {
        guard sealed.count - offset >= ConvergentCipher.tagLength else { throw .truncated }
        let textLength = sealed.count - offset - ConvergentCipher.tagLength
        let ctx = EVP_CIPHER_CTX_new()!
        defer { EVP_CIPHER_CTX_free(ctx) }
        var length: Int32 = 0, finalLength: Int32 = 0
        var ok = EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), nil, key, nonce) == 1
        precondition(ok, "AES-256-GCM initialisation failed")
        if !associatedData.isEmpty {
            ok = EVP_DecryptUpdate(ctx, nil, &length, associatedData, Int32(associatedData.count)) == 1
        }
        var tag = Array(sealed[(offset + textLength)...])
        var authentic = false
        // +1: never a zero-length buffer. What is not written (a failed open) is never read.
        let out = [UInt8](unsafeUninitializedCapacity: textLength + 1) { o, count in
            sealed.withUnsafeBufferPointer { s in
                if ok { ok = EVP_DecryptUpdate(ctx, o.baseAddress, &length, s.baseAddress! + offset, Int32(textLength)) == 1 }
                if ok { ok = EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, Int32(ConvergentCipher.tagLength), &tag) == 1 }
                // Final is where GCM compares the tag: 0 means it did not match.
                authentic = ok && EVP_DecryptFinal_ex(ctx, o.baseAddress! + Int(length), &finalLength) == 1
            }
            count = authentic ? Int(length + finalLength) : 0
        }
        guard authentic else { throw .authenticationFailed }
        return out
    }
}

/// AES-256 applied block by block (ECB, no padding) to a whole number of 16-byte blocks: the
/// name permutation of `ConvergentCipher.encipherName`, never used on data.
enum AESBlocks {
    static func transform(_ input: [UInt8], key: [UInt8], encrypt: Bool) -> [UInt8] {
        precondition(input.count % 16 == 0)
        let ctx = EVP_CIPHER_CTX_new()!
        defer { EVP_CIPHER_CTX_free(ctx) }
        var out = [UInt8](repeating: 0, count: input.count + 16)
        var length: Int32 = 0, finalLength: Int32 = 0
        let ok = out.withUnsafeMutableBufferPointer { o in
            EVP_CipherInit_ex(ctx, EVP_aes_256_ecb(), nil, key, nil, encrypt ? 1 : 0) == 1
                && EVP_CIPHER_CTX_set_padding(ctx, 0) == 1
                && EVP_CipherUpdate(ctx, o.baseAddress, &length, input, Int32(input.count)) == 1
                && EVP_CipherFinal_ex(ctx, o.baseAddress! + Int(length), &finalLength) == 1
        }
        precondition(ok && Int(length + finalLength) == input.count, "AES-256 block transform failed")
        return Array(out.prefix(input.count))
    }
}
