import Foundation
import MossaicCore
import MossaicObjectStore
import Testing

/// The store of an encrypted filesystem: it behaves as a store to the layers above, and the
/// store beneath it holds neither their bytes nor their names.
@Suite struct SealedObjectStoreTests {
    static let cipher = ConvergentCipher(masterKey: [UInt8](repeating: 7, count: 32))

    @Test func behavesAsAStoreForMetadataObjects() throws {
        let root = try TestEnvironment.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let store = SealedObjectStore(try DirectoryObjectStore(root: root, create: true), cipher: Self.cipher)
        ObjectStoreConformance(store: store, under: "meta/").run(only: [
            "round trip", "overwrite", "ranged get", "ranged get in parts", "head", "delete", "list with pagination",
            "special keys", "if-none-match", "if-match", "concurrent puts and gets"])
    }

    @Test func theBaseStoreSeesNoPlaintextNorPlaintextHashes() throws {
        let root = try TestEnvironment.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let base = try DirectoryObjectStore(root: root, create: true)
        let store = SealedObjectStore(base, cipher: Self.cipher)
        let marker = Array("MARKER-in-a-chunk ".utf8)
        let chunk = Array(repeating: marker, count: 4000).flatMap { $0 }
        let other = Array(chunk.reversed())
        let hash = ChunkHash.of(chunk), otherHash = ChunkHash.of(other)
        let piece = ChunkHash.of(Array("a snapshot piece".utf8))
        let pieceKey = "meta/chunks/\(piece.hex.prefix(2))/\(piece.hex)"

        // Chunk bytes come sealed from the chunk transform, with the store's cipher.
        let transform = ChunkTransform(compression: .none, cipher: store.chunkCipher)
        let sealed = transform.encode(chunk, hash: hash), otherSealed = transform.encode(other, hash: otherHash)
        #expect(sealed.bytes.count == chunk.count + ConvergentCipher.chunkOverhead)
        try store.putChunk(hash, sealed.payload)
        let pack = try store.putPack([sealed.payload, otherSealed.payload])
        try store.put(pieceKey, marker)
        try store.put("meta/HEAD", marker)

        var everything: [UInt8] = []
        for info in try base.list(prefix: "") {
            #expect(![hash.hex, otherHash.hex, pack.hex, piece.hex].contains { info.key.contains($0) }, "\(info.key)")
            everything += try base.get(info.key)
        }
        #expect(everything.count > 2 * chunk.count)
        #expect(!Data(everything).contains(Data(marker)))

        // The layers above: logical keys listed, chunks opened by the transform.
        #expect(try store.list(prefix: "chunks/").map(\.key) == [hash.objectKey])
        #expect(try store.list(prefix: "chunks/\(hash.hex.prefix(2))").map(\.key) == [hash.objectKey])
        #expect(try store.list(prefix: "packs/").map(\.key) == [pack.packKey])
        #expect(try store.list(prefix: "meta/chunks/").map(\.key) == [pieceKey])
        #expect(try transform.decode(try store.get(hash.objectKey), codec: .none, hash: hash) == chunk)
        let second = UInt64(sealed.bytes.count)
        let range = second..<(second + UInt64(otherSealed.bytes.count))
        #expect(try transform.decode(try store.get(pack.packKey, range: range), codec: .none, hash: otherHash) == other)
        #expect(try store.get(pieceKey) == marker)
        #expect(try store.head("meta/HEAD")?.size == UInt64(marker.count))
        try store.delete(hash.objectKey)
        #expect(try base.list(prefix: "chunks/").isEmpty)
    }

    @Test func aSealedObjectChangedInTheStoreFailsToOpen() throws {
        let root = try TestEnvironment.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let base = try DirectoryObjectStore(root: root, create: true)
        let store = SealedObjectStore(base, cipher: Self.cipher)
        try store.put("meta/HEAD", Array("head".utf8))
        var stored = try base.get("meta/HEAD")
        stored[stored.count - 1] ^= 1
        try base.put("meta/HEAD", stored)
        #expect(throws: ObjectStoreError.self) { try store.get("meta/HEAD") }
        // Another object's sealed bytes under this key: bound to its key, refused.
        try store.put("meta/lease", Array("lease".utf8))
        try base.put("meta/HEAD", try base.get("meta/lease"))
        #expect(throws: ObjectStoreError.self) { try store.get("meta/HEAD") }
    }
}
