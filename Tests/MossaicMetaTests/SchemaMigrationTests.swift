import Foundation
import MossaicCore
@testable import MossaicMeta
import Testing

/// Schema 1 (every stored chunk its own object) to schema 2 (packs), and what gc and fsck read
/// from either.
@Suite struct SchemaMigrationTests {
    /// A version-1 database as a build before packs left it: a file of one stored chunk `used`,
    /// and the row of a deleted file's chunk `freed` at refcount 0.
    func versionOneDatabase(used: ChunkHash, freed: ChunkHash) throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("schema-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let path = dir + "/meta.db"
        let c = try SQLiteConnection(path: path, readOnly: false)
        try c.execute(Schema.v1)
        try c.execute("PRAGMA user_version = 1")
        let directory = Int64(FileKind.directory.rawValue), regular = Int64(FileKind.regular.rawValue)
        try c.run("""
            INSERT INTO inodes(ino, kind, mode, uid, gid, size, nlink, atime_ns, mtime_ns, ctime_ns, allocated, parent)
            VALUES(1, ?, 493, 0, 0, 0, 2, 0, 0, 0, 0, 1), (2, ?, 420, 0, 0, 100, 1, 0, 0, 0, 100, 1)
            """, [.int(directory), .int(regular)])
        try c.run("INSERT INTO dentries(parent, name, ino) VALUES(1, ?, 2)", [.blob(Array("f".utf8))])
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
        try m.relocateChunk(used, to: inPack)
        #expect(try m.chunkRefs(InodeNumber(2), indexes: 0...0).map(\.location) == [inPack])
        #expect(try m.referencedStoredChunkLengths().map { [$0.chunk.key: $0.length] } == [[hash("pack").packKey: 100]])
        #expect(try SQLiteMetaStore.referencedStoredChunks(inDatabase: path) == [LocatedChunk(hash: used, location: inPack)])
    }
}
