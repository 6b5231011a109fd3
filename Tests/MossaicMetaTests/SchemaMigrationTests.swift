import Foundation
import MossaicCore
@testable import MossaicMeta
import Testing

/// Schema 1 (every stored chunk its own object) to schema 2 (packs), and what gc and fsck read
/// from either.
@Suite struct SchemaMigrationTests {
    /// A database of the schema `steps` make (version `steps.count`), as an older build left
    /// it: the root directory and file `f` (inode 2) of `fileSize` bytes; its chunks are the
    /// caller's to add.
    func oldDatabase(_ steps: [String], fileSize: Int64, allocated: Int64) throws -> (String, SQLiteConnection) {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("schema-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let path = dir + "/meta.db"
        let c = try SQLiteConnection(path: path, readOnly: false)
        for step in steps { try c.execute(step) }
        try c.execute("PRAGMA user_version = \(steps.count)")
        let directory = Int64(FileKind.directory.rawValue), regular = Int64(FileKind.regular.rawValue)
        try c.run("""
            INSERT INTO inodes(ino, kind, mode, uid, gid, size, nlink, atime_ns, mtime_ns, ctime_ns, allocated, parent)
            VALUES(1, ?, 493, 0, 0, 0, 2, 0, 0, 0, 0, 1), (2, ?, 420, 0, 0, ?, 1, 0, 0, 0, ?, 1)
            """, [.int(directory), .int(regular), .int(fileSize), .int(allocated)])
        try c.run("INSERT INTO dentries(parent, name, ino) VALUES(1, ?, 2)", [.blob(Array("f".utf8))])
        return (path, c)
    }

    /// A version-1 database as a build before packs left it: a file of one stored chunk `used`,
    /// and the row of a deleted file's chunk `freed` at refcount 0.
    func versionOneDatabase(used: ChunkHash, freed: ChunkHash) throws -> String {
        let (path, c) = try oldDatabase([Schema.v1], fileSize: 100, allocated: 100)
        try c.run("INSERT INTO file_chunks(ino, idx, hash, length) VALUES(2, 0, ?, 100)", [.blob(used.bytes)])
        try c.run("INSERT INTO chunks(hash, length, refcount, state, data) VALUES(?, 100, 1, 2, NULL), (?, 200, 0, 2, NULL)",
                  [.blob(used.bytes), .blob(freed.bytes)])
        return path
    }

    func userVersion(_ path: String) throws -> Int64? {
        try SQLiteConnection(path: path, readOnly: true).queryOne("PRAGMA user_version") { $0.int(0) }
    }

    @Test func aVersionOneDatabaseMigratesAndItsChunksAreObjects() throws {
        let used = hash("used"), freed = hash("freed")
        let path = try versionOneDatabase(used: used, freed: freed)

        // A snapshot of schema 1 is read as it is (read-only, not migrated): no pack column.
        #expect(try SQLiteMetaStore.referencedStoredChunks(inDatabase: path) == [LocatedChunk(hash: used, location: .object)])
        #expect(try userVersion(path) == 1)

        let m = try SQLiteMetaStore(path: path)
        #expect(try userVersion(path) == Schema.version)
        #expect(try m.checkConsistency().isEmpty)
        // Schema 3 counts data in whole 4 KiB blocks.
        #expect(try m.attributes(of: InodeNumber(2)).allocatedBytes == 4096)
        #expect(try m.chunkRefs(InodeNumber(2), indexes: 0...0).map(\.location) == [.object])
        let rows = try m.chunkRowsForCollection()
        #expect(rows.live == [LocatedChunk(hash: used, location: .object)])
        #expect(rows.unreferenced == [LocatedChunk(hash: freed, location: .object)])
        #expect(try m.knownStoredChunks().map(\.key).sorted() == [freed.objectKey, used.objectKey].sorted())

        // Schema 2 places a chunk in a pack, and every reader sees it there.
        let inPack = ChunkLocation.packed(pack: hash("pack"), offset: 4096, length: 100)
        try m.relocateChunk(used, to: inPack, storedLength: 100)
        #expect(try m.chunkRefs(InodeNumber(2), indexes: 0...0).map(\.location) == [inPack])
        #expect(try m.referencedStoredChunkLengths().map { [$0.chunk.key: $0.length] } == [[hash("pack").packKey: 100]])
        #expect(try SQLiteMetaStore.referencedStoredChunks(inDatabase: path) == [LocatedChunk(hash: used, location: inPack)])
    }

    /// A version-5 database as a build before compression left it: one chunk its own object,
    /// one in a pack, both stored as they are.
    func versionFiveDatabase(object: ChunkHash, packed: ChunkHash, pack: ChunkHash) throws -> String {
        let (path, c) = try oldDatabase([Schema.v1, Schema.v2, Schema.v3, Schema.v4, Schema.v5], fileSize: 1048676, allocated: 1052672)
        try c.run("INSERT INTO file_chunks(ino, idx, hash, length) VALUES(2, 0, ?, 1048576), (2, 1, ?, 100)",
                  [.blob(object.bytes), .blob(packed.bytes)])
        try c.run("""
            INSERT INTO chunks(hash, length, refcount, state, data, pack, pack_offset, created_gen)
            VALUES(?, 1048576, 1, 2, NULL, NULL, NULL, 0), (?, 100, 1, 2, NULL, ?, 4096, 0)
            """, [.blob(object.bytes), .blob(packed.bytes), .blob(pack.bytes)])
        return path
    }

    @Test func aVersionFiveDatabaseMigratesWithEveryChunkStoredAsItIs() throws {
        let object = hash("object"), packed = hash("packed"), pack = hash("pack")
        let path = try versionFiveDatabase(object: object, packed: packed, pack: pack)
        let inPack = ChunkLocation.packed(pack: pack, offset: 4096, length: 100)

        // A snapshot of schema 5 is read as it is (read-only, not migrated): no codec column.
        #expect(try SQLiteMetaStore.referencedStoredChunks(inDatabase: path)
                == [LocatedChunk(hash: object, location: .object), LocatedChunk(hash: packed, location: inPack)])
        #expect(try userVersion(path) == 5)

        let m = try SQLiteMetaStore(path: path)
        #expect(try userVersion(path) == Schema.version)
        #expect(try m.checkConsistency().isEmpty)
        let refs = try m.chunkRefs(InodeNumber(2), indexes: 0...1)
        #expect(refs.map(\.location) == [.object, inPack])
        #expect(refs.map(\.chunkLength) == [1 << 20, 100])
        #expect(try m.referencedStoredChunkLengths().map(\.length).sorted() == [100, 1 << 20])
        let usage = try m.usageDetails()
        #expect(usage.storedBytes == (1 << 20) + 100 && usage.uncompressedBytes == usage.storedBytes && usage.compressionSavedBytes == 0)

        // A compressed chunk committed now: its row keeps the codec and the stored length, which
        // readers get as the pack range, while the reference keeps the plaintext's length.
        let zipped = hash("zipped"), pack2 = hash("pack2")
        let frame = ChunkLocation.packed(pack: pack2, offset: 0, length: 300, codec: .zstd)
        let g = try m.create(parent: .root, name: Array("g".utf8), NewNode(kind: .regular, permissions: 0o644, uid: 0, gid: 0), now: .now())
        _ = try m.commit(FileCommit(ino: g.ino, chunks: [(ChunkIndex(0), ChunkRef(index: ChunkIndex(0), hash: zipped, length: 1 << 20))],
                                    newChunks: [NewChunk(hash: zipped, length: 1 << 20, state: .stored, inlineData: nil, location: frame,
                                                         storedLength: 300)],
                                    size: 1 << 20, mtime: .now(), ctime: .now()), durable: false)
        let ref = try #require(try m.chunkRefs(g.ino, indexes: 0...0).first)
        #expect(ref.location == frame && ref.chunkLength == 1 << 20)
        let after = try m.usageDetails()
        #expect(after.storedBytes == usage.storedBytes + 300)
        #expect(after.uncompressedBytes == usage.uncompressedBytes + (1 << 20))
        #expect(after.compressionSavedBytes == (1 << 20) - 300)
        #expect(try m.usage().usedBytes == after.usedBytes)  // statfs counts stored bytes too

        // fsck putting it back as its own object, raw.
        try m.relocateChunk(zipped, to: .object, storedLength: 1 << 20)
        #expect(try m.chunkRefs(g.ino, indexes: 0...0).first?.location == .object)
        #expect(try m.usageDetails().compressionSavedBytes == 0)
    }
}
