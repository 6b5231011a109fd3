import Foundation
import MossaicCore
import Testing

/// The encryption primitives (ConvergentCipher, MasterKey): what the store must never learn,
/// and what must fail when bytes or keys are not the filesystem's.
@Suite struct ConvergentCipherTests {
    static let masterA = [UInt8](repeating: 0xA5, count: 32)
    static let masterB = [UInt8](repeating: 0x5A, count: 32)
    static let chunk = Array((0..<200_000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) })

    @Test func convergentSealingIsDeterministicAndOpensBack() throws {
        let cipher = ConvergentCipher(masterKey: Self.masterA)
        let hash = ChunkHash.of(Self.chunk)
        let sealed = cipher.sealChunk(Self.chunk, plaintextHash: hash, messageHash: hash)
        #expect(sealed.count == Self.chunk.count + ConvergentCipher.chunkOverhead)
        #expect(sealed == ConvergentCipher(masterKey: Self.masterA).sealChunk(Self.chunk, plaintextHash: hash, messageHash: hash))
        #expect(!sealed.dropFirst(12).prefix(Self.chunk.count).elementsEqual(Self.chunk))
        #expect(try cipher.openChunk(sealed, plaintextHash: hash) == Self.chunk)
    }

    @Test func differentMastersSealDifferently() throws {
        let hash = ChunkHash.of(Self.chunk)
        let a = ConvergentCipher(masterKey: Self.masterA), b = ConvergentCipher(masterKey: Self.masterB)
        let sealedA = a.sealChunk(Self.chunk, plaintextHash: hash, messageHash: hash)
        #expect(sealedA != b.sealChunk(Self.chunk, plaintextHash: hash, messageHash: hash))
        #expect(a.keyCheck != b.keyCheck)
        #expect(a.encipherName(hash) != b.encipherName(hash))
        #expect(throws: CipherError.authenticationFailed) { try b.openChunk(sealedA, plaintextHash: hash) }
    }

    @Test func tamperedOrMisnamedChunksDoNotOpen() throws {
        let cipher = ConvergentCipher(masterKey: Self.masterA)
        let hash = ChunkHash.of(Self.chunk)
        let sealed = cipher.sealChunk(Self.chunk, plaintextHash: hash, messageHash: hash)
        for position in [0, 12, sealed.count / 2, sealed.count - 1] {  // nonce, text and tag
            var tampered = sealed
            tampered[position] ^= 1
            #expect(throws: CipherError.authenticationFailed) { try cipher.openChunk(tampered, plaintextHash: hash) }
        }
        #expect(throws: CipherError.authenticationFailed) { try cipher.openChunk(Array(sealed.dropLast()), plaintextHash: hash) }
        #expect(throws: CipherError.truncated) { try cipher.openChunk([1, 2, 3], plaintextHash: hash) }
        // Another chunk's name: another key and nonce.
        #expect(throws: CipherError.authenticationFailed) { try cipher.openChunk(sealed, plaintextHash: ChunkHash.of([1])) }
    }

    /// Two different messages for one chunk (zstd frames of another release, or of another
    /// level) must never share a nonce under the chunk's key: GCM with a repeated nonce gives
    /// away the XOR of the two messages and the authentication key.
    @Test func differentMessagesOfOneChunkGetDifferentNonces() throws {
        let cipher = ConvergentCipher(masterKey: Self.masterA)
        let hash = ChunkHash.of(Self.chunk)
        let frameA = Array(Self.chunk.prefix(1000)), frameB = Array(Self.chunk.suffix(1000))
        let a = cipher.sealChunk(frameA, plaintextHash: hash, messageHash: ChunkHash.of(frameA))
        let b = cipher.sealChunk(frameB, plaintextHash: hash, messageHash: ChunkHash.of(frameB))
        #expect(a.prefix(12) != b.prefix(12))
        #expect(try cipher.openChunk(a, plaintextHash: hash) == frameA)
        #expect(try cipher.openChunk(b, plaintextHash: hash) == frameB)
    }

    @Test func blobsUseFreshNoncesAndAreBoundToTheirKey() throws {
        let cipher = ConvergentCipher(masterKey: Self.masterA)
        let text = Array("names and inline data".utf8)
        let one = cipher.sealBlob(text, context: "meta/HEAD"), two = cipher.sealBlob(text, context: "meta/HEAD")
        #expect(one != two)
        #expect(one.count == text.count + ConvergentCipher.blobOverhead)
        #expect(try cipher.openBlob(one, context: "meta/HEAD") == text)
        #expect(try cipher.openBlob(cipher.sealBlob([], context: "meta/x"), context: "meta/x") == [])
        #expect(throws: CipherError.authenticationFailed) { try cipher.openBlob(one, context: "meta/lease") }
        var tampered = two
        tampered[3] ^= 0x80  // in the nonce
        #expect(throws: CipherError.authenticationFailed) { try cipher.openBlob(tampered, context: "meta/HEAD") }
    }

    @Test func encipheredNamesMapBack() {
        let cipher = ConvergentCipher(masterKey: Self.masterA)
        let name = ChunkHash.of(Self.chunk)
        let enciphered = cipher.encipherName(name)
        #expect(enciphered != name)
        #expect(cipher.decipherName(enciphered) == name)
    }

    @Test func objectNamingHidesHashesAndIsTheIdentityWhenPlain() {
        let naming = ObjectNaming(cipher: ConvergentCipher(masterKey: Self.masterA))
        let hash = ChunkHash.of(Self.chunk)
        for key in [hash.objectKey, hash.packKey, "meta/chunks/\(hash.hex.prefix(2))/\(hash.hex)"] {
            let stored = naming.storedKey(key)
            #expect(!stored.contains(hash.hex))
            #expect(naming.logicalKey(stored) == key)
            #expect(ObjectNaming.plain.storedKey(key) == key)
        }
        for other in ["mossaicfs.json", "meta/HEAD", "meta/snapshots/0000000001-abcdef01.json", "chunks/zz/\(hash.hex)"] {
            #expect(naming.storedKey(other) == other)
        }
        #expect(naming.enclosingSpace(ofPrefix: "chunks/ab") == "chunks/")
        #expect(naming.enclosingSpace(ofPrefix: "chunks/") == nil)
    }

    @Test func keyFilesHexOrRawOwnerOnly() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mossaicfs-key-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let made = dir + "/made"
        try MasterKey.generate(keyFile: made)
        let attributes = try FileManager.default.attributesOfItem(atPath: made)
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
        let key = try MasterKey.read(keyFile: made)
        #expect(key.count == 32)
        #expect(throws: KeyError.self) { try MasterKey.generate(keyFile: made) }  // never overwritten
        #expect(try MasterKey.read(keyFile: made) == key)

        let raw = dir + "/raw"
        FileManager.default.createFile(atPath: raw, contents: Data(Self.masterB), attributes: [.posixPermissions: 0o600])
        #expect(try MasterKey.read(keyFile: raw) == Self.masterB)

        let open = dir + "/open"
        FileManager.default.createFile(atPath: open, contents: Data(Self.masterB), attributes: [.posixPermissions: 0o644])
        #expect(throws: KeyError.self) { try MasterKey.read(keyFile: open) }
        let short = dir + "/short"
        FileManager.default.createFile(atPath: short, contents: Data("abcd\n".utf8), attributes: [.posixPermissions: 0o600])
        #expect(throws: KeyError.self) { try MasterKey.read(keyFile: short) }
    }

    @Test func passphrasesStretchDeterministicallyPerSalt() throws {
        var parameters = KDFParameters.fresh()
        parameters.n = 1 << 10  // small: the costs are the superblock's, the function the same
        let a = try MasterKey.derive(passphrase: Array("correct horse".utf8), parameters: parameters)
        #expect(a.count == 32)
        #expect(try MasterKey.derive(passphrase: Array("correct horse".utf8), parameters: parameters) == a)
        #expect(try MasterKey.derive(passphrase: Array("correct horsf".utf8), parameters: parameters) != a)
        var otherSalt = KDFParameters.fresh()
        otherSalt.n = parameters.n
        #expect(try MasterKey.derive(passphrase: Array("correct horse".utf8), parameters: otherSalt) != a)
        parameters.n = 1000  // not a power of two
        #expect(throws: KeyError.self) { try MasterKey.derive(passphrase: [1], parameters: parameters) }
    }
}
