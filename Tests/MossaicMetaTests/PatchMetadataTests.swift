import Foundation
import MossaicCore
@testable import MossaicMeta
import Testing

/// Patches in the metadata (schema 5, the small-write path): appended only over the page they
/// were made against, carried by a shared reference, gone with the page, the file or a
/// truncation past them, and understood by fsck.
@Suite struct PatchMetadataTests {
    let page = UInt64(FormatConstants.chunkSize)

    func patch(_ offset: Int, _ text: String) -> ChunkPatch {
        ChunkPatch(offset: offset, length: text.utf8.count, data: n(text))
    }

    /// A file whose page 0 is stored chunk "base" (4 bytes) and whose size is 2 pages.
    func makeFile(_ m: SQLiteMetaStore, _ name: String) throws -> InodeNumber {
        let f = try m.create(parent: .root, name: n(name), file, now: .now())
        let ref = ChunkRef(index: ChunkIndex(0), hash: hash("base"), length: 4)
        _ = try m.commit(FileCommit(ino: f.ino, chunks: [(ChunkIndex(0), ref)],
                                    newChunks: [NewChunk(hash: hash("base"), length: 4, state: .stored, inlineData: nil)],
                                    size: 2 * page, mtime: .now(), ctime: .now()))
        return f.ino
    }

    func append(_ m: SQLiteMetaStore, _ ino: InodeNumber, index: UInt64, base: ChunkRef?, length: Int, _ patches: [ChunkPatch]) throws {
        _ = try m.commit(FileCommit(ino: ino, chunks: [], newChunks: [], size: 2 * page, mtime: .now(), ctime: .now(),
                                    patches: [PagePatches(index: ChunkIndex(index), base: base, length: length, patches: patches)]))
    }

    @Test func patchesAppendOnlyOverThePageTheyWereMadeFor() throws {
        let (m, _) = try makeStore()
        let ino = try makeFile(m, "f")
        let base = try #require(try m.chunkRefs(ino, indexes: 0...0).first)
        try append(m, ino, index: 0, base: base, length: 10, [patch(2, "xy"), patch(6, "four")])
        var refs = try m.chunkRefs(ino, indexes: 0...1)
        #expect(refs.count == 1 && refs[0].length == 10 && refs[0].chunkLength == 4 && refs[0].hash == hash("base"))
        #expect(refs[0].patches == [patch(2, "xy"), patch(6, "four")])
        #expect(try m.attributes(of: ino).allocatedBytes == 4096)

        // Made against the page as it was before the first append: refused, nothing changes.
        #expect(throws: MetaError.staleBase) { try append(m, ino, index: 0, base: base, length: 12, [patch(10, "zz")]) }
        #expect(try m.chunkRefs(ino, indexes: 0...0) == refs)
        // Against the page as it is now: appended after the others.
        try append(m, ino, index: 0, base: refs[0], length: 12, [patch(10, "zz")])
        refs = try m.chunkRefs(ino, indexes: 0...0)
        #expect(refs[0].patches.map(\.offset) == [2, 6, 10])

        // A hole gets the empty chunk as its base; a hole's patches need the page to be a hole.
        try append(m, ino, index: 1, base: nil, length: 100, [ChunkPatch(offset: 0, length: 100, data: n("h"))])
        #expect(throws: MetaError.staleBase) { try append(m, ino, index: 1, base: nil, length: 100, [patch(0, "h")]) }
        let hole = try #require(try m.chunkRefs(ino, indexes: 1...1).first)
        #expect(hole.chunkLength == 0 && hole.length == 100 && hole.patches == [ChunkPatch(offset: 0, length: 100, data: n("h"))])
        #expect(try m.checkConsistency().isEmpty)
    }

    @Test func patchesGoWithTheirPageReferenceOrFile() throws {
        let (m, _) = try makeStore()
        let ino = try makeFile(m, "f")
        let base = try #require(try m.chunkRefs(ino, indexes: 0...0).first)
        try append(m, ino, index: 0, base: base, length: 2001, [patch(100, "a"), patch(2000, "b")])
        // A shared reference carries them to another file.
        let patched = try #require(try m.chunkRefs(ino, indexes: 0...0).first)
        let other = try m.create(parent: .root, name: n("g"), file, now: .now())
        _ = try m.commit(FileCommit(ino: other.ino, chunks: [(ChunkIndex(0), patched)], newChunks: [], size: 2001, mtime: .now(), ctime: .now()))
        #expect(try m.chunkRefs(other.ino, indexes: 0...0).first?.patches == patched.patches)
        #expect(try m.chunkInfo(hash("base"))?.refcount == 2)

        // Truncation: patches wholly past the cut go, one across it stays.
        _ = try m.setAttributes(of: ino, AttributeChanges(size: 2000), now: .now())
        #expect(try m.chunkRefs(ino, indexes: 0...0).first?.patches == [patch(100, "a")])
        // A new reference for the page replaces its patches.
        _ = try m.commit(FileCommit(ino: ino, chunks: [(ChunkIndex(0), ChunkRef(index: ChunkIndex(0), hash: hash("base"), length: 4))],
                                    newChunks: [], size: 4, mtime: .now(), ctime: .now()))
        #expect(try m.chunkRefs(ino, indexes: 0...0).first?.patches == [])
        // The other file's go with it.
        let gone = try m.unlink(parent: .root, name: n("g"), now: .now())
        try m.purgeOrphan(gone.ino)
        #expect(try m.checkConsistency().isEmpty)
        #expect(try m.read { (c) throws(MetaError) in try c.queryOne("SELECT count(*) FROM chunk_patches") { $0.int(0) } } == 0)
    }

    @Test func fsckFindsAndRemovesStrayPatches() throws {
        let (m, _) = try makeStore()
        let ino = try makeFile(m, "f")
        let base = try #require(try m.chunkRefs(ino, indexes: 0...0).first)
        try append(m, ino, index: 0, base: base, length: 2001, [patch(2000, "b")])
        #expect(try m.checkConsistency().isEmpty)  // a reference as long as its patches reach is sound
        // One longer than its chunk and patches is not; nor is a patch with no page.
        try m.write { (c) throws(MetaError) in
            try c.run("UPDATE file_chunks SET length = 2002 WHERE ino = ?", [.int(Int64(ino.rawValue))])
        }
        try m.write { (c) throws(MetaError) in
            try c.run("INSERT INTO chunk_patches(ino, idx, seq, offset, length, data) VALUES(?, 7, 0, 0, 1, x'01')", [.int(Int64(ino.rawValue))])
        }
        #expect(try m.checkConsistency().map(\.kind) == [.referenceTooLong, .strayPatch])
        #expect(try m.repairConsistency() == 2)
        #expect(try m.checkConsistency().isEmpty)
        #expect(try m.chunkRefs(ino, indexes: 0...0).first?.patches == [patch(2000, "b")])
    }
}
