import Foundation
import MossaicCore
import MossaicMeta
import Testing

/// A metadata store in a fresh temporary directory, with a root directory.
func makeStore() throws -> (SQLiteMetaStore, String) {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("meta-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    let store = try SQLiteMetaStore(path: dir + "/meta.db")
    try store.createRootIfMissing(permissions: 0o755, uid: 0, gid: 0, now: .now())
    return (store, dir)
}

func n(_ s: String) -> [UInt8] { Array(s.utf8) }

let file = SQLiteMetaStore.NewNode(kind: .regular, permissions: 0o644, uid: 1, gid: 2)
let dir = SQLiteMetaStore.NewNode(kind: .directory, permissions: 0o755, uid: 1, gid: 2)

func hash(_ s: String) -> ChunkHash { ChunkHash.of(Array(s.utf8)) }

@Suite struct NamespaceTests {
    @Test func createLookupAndLinkCounts() throws {
        let (m, _) = try makeStore()
        let d = try m.create(parent: .root, name: n("d"), dir, now: .now())
        #expect(d.nlink == 2)
        #expect(try m.attributes(of: .root).nlink == 3)
        let f = try m.create(parent: d.ino, name: n("f"), file, now: .now())
        #expect(try m.lookup(parent: d.ino, name: n("f")).ino == f.ino)
        #expect(throws: MetaError.exists) { try m.create(parent: d.ino, name: n("f"), file, now: .now()) }
        #expect(throws: MetaError.notFound) { try m.lookup(parent: d.ino, name: n("nope")) }
        #expect(throws: MetaError.notDirectory) { try m.lookup(parent: f.ino, name: n("x")) }
        let linked = try m.link(f.ino, parent: .root, name: n("g"), now: .now())
        #expect(linked.nlink == 2)
        #expect(throws: MetaError.isDirectory) { try m.link(d.ino, parent: .root, name: n("h"), now: .now()) }
    }

    @Test func unlinkOrphansOnlyAtTheLastName() throws {
        let (m, _) = try makeStore()
        let f = try m.create(parent: .root, name: n("f"), file, now: .now())
        _ = try m.link(f.ino, parent: .root, name: n("g"), now: .now())
        #expect(try m.unlink(parent: .root, name: n("f"), now: .now()).orphaned == false)
        #expect(try m.unlink(parent: .root, name: n("g"), now: .now()) == .init(ino: f.ino, orphaned: true))
        #expect(try m.orphans() == [f.ino])
        try m.purgeOrphan(f.ino)
        #expect(try m.orphans().isEmpty)
        #expect(throws: MetaError.notFound) { try m.attributes(of: f.ino) }
    }

    @Test func rmdirNeedsAnEmptyDirectory() throws {
        let (m, _) = try makeStore()
        let d = try m.create(parent: .root, name: n("d"), dir, now: .now())
        _ = try m.create(parent: d.ino, name: n("f"), file, now: .now())
        #expect(throws: MetaError.notEmpty) { try m.rmdir(parent: .root, name: n("d"), now: .now()) }
        #expect(throws: MetaError.isDirectory) { try m.unlink(parent: .root, name: n("d"), now: .now()) }
        _ = try m.unlink(parent: d.ino, name: n("f"), now: .now())
        #expect(try m.rmdir(parent: .root, name: n("d"), now: .now()) == d.ino)
        #expect(try m.attributes(of: .root).nlink == 2)
    }

    @Test func renameReplacesAndChecksKinds() throws {
        let (m, _) = try makeStore()
        let a = try m.create(parent: .root, name: n("a"), file, now: .now())
        let b = try m.create(parent: .root, name: n("b"), file, now: .now())
        let replaced = try m.rename(parent: .root, name: n("a"), newParent: .root, newName: n("b"), flags: [], now: .now())
        #expect(replaced == .init(ino: b.ino, orphaned: true))
        #expect(try m.lookup(parent: .root, name: n("b")).ino == a.ino)
        _ = try m.create(parent: .root, name: n("d"), dir, now: .now())
        #expect(throws: MetaError.isDirectory) {
            try m.rename(parent: .root, name: n("b"), newParent: .root, newName: n("d"), flags: [], now: .now())
        }
        #expect(throws: MetaError.notDirectory) {
            try m.rename(parent: .root, name: n("d"), newParent: .root, newName: n("b"), flags: [], now: .now())
        }
        #expect(throws: MetaError.exists) {
            try m.rename(parent: .root, name: n("b"), newParent: .root, newName: n("d"), flags: .noReplace, now: .now())
        }
    }

    @Test func renameDirectoryMovesLinkCountsAndRefusesItsSubtree() throws {
        let (m, _) = try makeStore()
        let p = try m.create(parent: .root, name: n("p"), dir, now: .now())
        let q = try m.create(parent: p.ino, name: n("q"), dir, now: .now())
        let r = try m.create(parent: .root, name: n("r"), dir, now: .now())
        #expect(throws: MetaError.invalidArgument) {
            try m.rename(parent: .root, name: n("p"), newParent: q.ino, newName: n("x"), flags: [], now: .now())
        }
        _ = try m.rename(parent: p.ino, name: n("q"), newParent: r.ino, newName: n("q2"), flags: [], now: .now())
        #expect(try m.attributes(of: p.ino).nlink == 2)
        #expect(try m.attributes(of: r.ino).nlink == 3)
        #expect(try m.readDirectory(q.ino).parent == r.ino)
    }

    @Test func exchangeSwapsTwoNames() throws {
        let (m, _) = try makeStore()
        let a = try m.create(parent: .root, name: n("a"), file, now: .now())
        let d = try m.create(parent: .root, name: n("d"), dir, now: .now())
        _ = try m.rename(parent: .root, name: n("a"), newParent: .root, newName: n("d"), flags: .exchange, now: .now())
        #expect(try m.lookup(parent: .root, name: n("a")).ino == d.ino)
        #expect(try m.lookup(parent: .root, name: n("d")).ino == a.ino)
        #expect(throws: MetaError.notFound) {
            try m.rename(parent: .root, name: n("a"), newParent: .root, newName: n("zz"), flags: .exchange, now: .now())
        }
    }

    @Test func namesAreBytesNotText() throws {
        let (m, _) = try makeStore()
        let invalidUTF8: [UInt8] = [0xff, 0xfe, 0x41]
        let f = try m.create(parent: .root, name: invalidUTF8, file, now: .now())
        #expect(try m.readDirectory(.root).entries.map(\.name) == [invalidUTF8])
        #expect(try m.lookup(parent: .root, name: invalidUTF8).ino == f.ino)
    }
}

@Suite struct ChunkTests {
    func commit(_ m: SQLiteMetaStore, _ ino: InodeNumber, _ refs: [(UInt64, String?)], size: UInt64) throws {
        let changes = refs.map { (i, s) in (ChunkIndex(i), s.map { ChunkRef(index: ChunkIndex(i), hash: hash($0), length: $0.utf8.count) }) }
        let new = refs.compactMap { $0.1 }.map { NewChunk(hash: hash($0), length: $0.utf8.count, state: .stored, inlineData: nil) }
        _ = try m.commit(FileCommit(ino: ino, chunks: changes, newChunks: new, size: size, mtime: .now(), ctime: .now()))
    }

    @Test func refcountsFollowReferences() throws {
        let (m, _) = try makeStore()
        let f = try m.create(parent: .root, name: n("f"), file, now: .now())
        let g = try m.create(parent: .root, name: n("g"), file, now: .now())
        try commit(m, f.ino, [(0, "A"), (1, "A")], size: UInt64(FormatConstants.chunkSize) + 1)
        try commit(m, g.ino, [(0, "A")], size: 1)
        #expect(try m.chunkInfo(hash("A"))?.refcount == 3)
        try commit(m, f.ino, [(1, "B")], size: UInt64(FormatConstants.chunkSize) + 1)
        #expect(try m.chunkInfo(hash("A"))?.refcount == 2)
        #expect(try m.chunkInfo(hash("B"))?.refcount == 1)
        _ = try m.unlink(parent: .root, name: n("f"), now: .now())
        try m.purgeOrphan(f.ino)
        #expect(try m.chunkInfo(hash("A"))?.refcount == 1)
        // A stored chunk keeps its row at refcount 0 for garbage collection.
        #expect(try m.chunkInfo(hash("B"))?.refcount == 0)
        #expect(try m.unreferencedStoredChunks() == [hash("B")])
    }

    @Test func truncationShortensReferencesWithoutNewChunks() throws {
        let (m, _) = try makeStore()
        let cs = UInt64(FormatConstants.chunkSize)
        let f = try m.create(parent: .root, name: n("f"), file, now: .now())
        try commit(m, f.ino, [(0, "A"), (1, "B"), (2, "C")], size: 2 * cs + 1)
        let attrs = try m.setAttributes(of: f.ino, AttributeChanges(size: cs + 10), now: .now())
        #expect(attrs.size == cs + 10)
        let refs = try m.chunkRefs(f.ino, indexes: 0...10)
        #expect(refs.map(\.index.rawValue) == [0, 1])
        #expect(refs[1].length == 1)  // "B" is one byte, shorter than the cut
        #expect(try m.chunkInfo(hash("C"))?.refcount == 0)
        #expect(throws: MetaError.isDirectory) { try m.setAttributes(of: .root, AttributeChanges(size: 0), now: .now()) }
    }

    @Test func inlineChunksGoWithTheirLastReference() throws {
        let (m, _) = try makeStore()
        let f = try m.create(parent: .root, name: n("f"), file, now: .now())
        let h = hash("small")
        _ = try m.commit(FileCommit(ino: f.ino, chunks: [(ChunkIndex(0), ChunkRef(index: ChunkIndex(0), hash: h, length: 5))],
                                    newChunks: [NewChunk(hash: h, length: 5, state: .inline, inlineData: n("small"))],
                                    size: 5, mtime: .now(), ctime: .now()))
        #expect(try m.inlineData(h) == n("small"))
        _ = try m.setAttributes(of: f.ino, AttributeChanges(size: 0), now: .now())
        #expect(try m.chunkInfo(h) == nil)
    }

    @Test func commitOfAnUnknownChunkIsRefused() throws {
        let (m, _) = try makeStore()
        let f = try m.create(parent: .root, name: n("f"), file, now: .now())
        #expect(throws: MetaError.self) {
            _ = try m.commit(FileCommit(ino: f.ino, chunks: [(ChunkIndex(0), ChunkRef(index: ChunkIndex(0), hash: hash("x"), length: 1))],
                                        newChunks: [], size: 1, mtime: .now(), ctime: .now()))
        }
        #expect(try m.attributes(of: f.ino).size == 0)  // rolled back
    }
}

@Suite struct XattrAndPersistenceTests {
    @Test func xattrModesAndErrors() throws {
        let (m, _) = try makeStore()
        let f = try m.create(parent: .root, name: n("f"), file, now: .now())
        #expect(throws: MetaError.noAttribute) { try m.xattr(f.ino, name: n("user.a")) }
        try m.setXattr(f.ino, name: n("user.a"), value: n("1"), mode: .create, now: .now())
        #expect(throws: MetaError.exists) { try m.setXattr(f.ino, name: n("user.a"), value: n("2"), mode: .create, now: .now()) }
        #expect(throws: MetaError.noAttribute) { try m.setXattr(f.ino, name: n("user.b"), value: n("2"), mode: .replace, now: .now()) }
        try m.setXattr(f.ino, name: n("user.a"), value: [], mode: .replace, now: .now())
        #expect(try m.xattr(f.ino, name: n("user.a")) == [])
        #expect(try m.xattrNames(f.ino) == [n("user.a")])
        try m.removeXattr(f.ino, name: n("user.a"), now: .now())
        #expect(throws: MetaError.noAttribute) { try m.removeXattr(f.ino, name: n("user.a"), now: .now()) }
    }

    @Test func reopenKeepsEverything() throws {
        let (m, dir) = try makeStore()
        let f = try m.create(parent: .root, name: n("f"), file, now: Timestamp(nanoseconds: 123))
        try m.sync()
        let again = try SQLiteMetaStore(path: dir + "/meta.db")
        #expect(try again.lookup(parent: .root, name: n("f")).mtime == Timestamp(nanoseconds: 123))
        #expect(try again.lookup(parent: .root, name: n("f")).ino == f.ino)
    }
}
