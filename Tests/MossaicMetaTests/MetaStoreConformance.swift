import Foundation
import MossaicCore
import MossaicMeta
import Synchronization
import Testing

/// The behaviour every `MetaStore` engine must show, run against each engine (SQLite today;
/// PostgreSQL is planned, ARCHITECTURE.md §9). `make` gives a fresh, empty filesystem's
/// metadata with its root directory. Engine-specific behaviour (SQLite's files, snapshots,
/// schema migration) is tested beside the engine, not here.
///
/// Cases are plain blocking code, and concurrency is exercised with real threads: the engines
/// block, and Swift Testing's pool is only 2 wide here.
struct MetaStoreConformance {
    let make: () throws -> any MetaStore

    typealias Case = (name: String, run: @Sendable (MetaStoreConformance) throws -> Void)

    static let cases: [Case] = [
        ("create lookup and link counts", { try $0.createLookupAndLinkCounts() }),
        ("unlink orphans only at the last name", { try $0.unlinkOrphansOnlyAtTheLastName() }),
        ("rmdir needs an empty directory", { try $0.rmdirNeedsAnEmptyDirectory() }),
        ("rename replaces and checks kinds", { try $0.renameReplacesAndChecksKinds() }),
        ("rename directory moves link counts and refuses its subtree", { try $0.renameDirectoryMovesLinkCountsAndRefusesItsSubtree() }),
        ("exchange swaps two names", { try $0.exchangeSwapsTwoNames() }),
        ("names are bytes not text", { try $0.namesAreBytesNotText() }),
        ("directory pages follow names, not positions", { try $0.directoryPagesFollowNames() }),
        ("refcounts follow references", { try $0.refcountsFollowReferences() }),
        ("truncation shortens references without new chunks", { try $0.truncationShortensReferencesWithoutNewChunks() }),
        ("inline chunks go with their last reference", { try $0.inlineChunksGoWithTheirLastReference() }),
        ("statfs totals follow every change", { try $0.statfsTotalsFollowEveryChange() }),
        ("commit of an unknown chunk is refused", { try $0.commitOfAnUnknownChunkIsRefused() }),
        ("xattr modes and errors", { try $0.xattrModesAndErrors() }),
        ("resolve answers a lookup in one read", { try $0.resolveGivesTheDirectoryAndTheEntry() }),
        ("a write is seen by the next read on any thread", { try $0.writesAreSeenByReadsOnOtherThreads() }),
        ("readers and writers at once", { try $0.concurrentReadersAndWriters() }),
        ("settings", { try $0.settingsRoundTrip() }),
        ("fallocate reservations", { try $0.allocationsFollowReserveAndRelease() }),
        ("sync makes non-durable commits durable", { try $0.syncClearsUnsyncedChanges() }),
    ]

    /// Runs every case (or the named ones); a case that throws is recorded and the next one runs.
    func run(engine: String, only names: Set<String>? = nil) {
        for c in Self.cases where names?.contains(c.name) ?? true {
            do {
                try c.run(self)
            } catch {
                Issue.record("\(engine): case \"\(c.name)\" threw \(error)")
            }
        }
    }

    // MARK: - Namespace

    func createLookupAndLinkCounts() throws {
        let m = try make()
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

    func unlinkOrphansOnlyAtTheLastName() throws {
        let m = try make()
        let f = try m.create(parent: .root, name: n("f"), file, now: .now())
        _ = try m.link(f.ino, parent: .root, name: n("g"), now: .now())
        #expect(try m.unlink(parent: .root, name: n("f"), now: .now()).orphaned == false)
        #expect(try m.unlink(parent: .root, name: n("g"), now: .now()) == .init(ino: f.ino, orphaned: true))
        #expect(try m.orphans() == [f.ino])
        try m.purgeOrphan(f.ino)
        #expect(try m.orphans().isEmpty)
        #expect(throws: MetaError.notFound) { try m.attributes(of: f.ino) }
    }

    func rmdirNeedsAnEmptyDirectory() throws {
        let m = try make()
        let d = try m.create(parent: .root, name: n("d"), dir, now: .now())
        _ = try m.create(parent: d.ino, name: n("f"), file, now: .now())
        #expect(throws: MetaError.notEmpty) { try m.rmdir(parent: .root, name: n("d"), now: .now()) }
        #expect(throws: MetaError.isDirectory) { try m.unlink(parent: .root, name: n("d"), now: .now()) }
        _ = try m.unlink(parent: d.ino, name: n("f"), now: .now())
        #expect(try m.rmdir(parent: .root, name: n("d"), now: .now()) == d.ino)
        #expect(try m.attributes(of: .root).nlink == 2)
    }

    func renameReplacesAndChecksKinds() throws {
        let m = try make()
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

    func renameDirectoryMovesLinkCountsAndRefusesItsSubtree() throws {
        let m = try make()
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

    func exchangeSwapsTwoNames() throws {
        let m = try make()
        let a = try m.create(parent: .root, name: n("a"), file, now: .now())
        let d = try m.create(parent: .root, name: n("d"), dir, now: .now())
        _ = try m.rename(parent: .root, name: n("a"), newParent: .root, newName: n("d"), flags: .exchange, now: .now())
        #expect(try m.lookup(parent: .root, name: n("a")).ino == d.ino)
        #expect(try m.lookup(parent: .root, name: n("d")).ino == a.ino)
        #expect(throws: MetaError.notFound) {
            try m.rename(parent: .root, name: n("a"), newParent: .root, newName: n("zz"), flags: .exchange, now: .now())
        }
    }

    func namesAreBytesNotText() throws {
        let m = try make()
        let invalidUTF8: [UInt8] = [0xff, 0xfe, 0x41]
        let f = try m.create(parent: .root, name: invalidUTF8, file, now: .now())
        #expect(try m.readDirectory(.root).entries.map(\.name) == [invalidUTF8])
        #expect(try m.lookup(parent: .root, name: invalidUTF8).ino == f.ino)
    }

    /// Keyset pages: name order is byte order (a prefix first, bytes above 0x7f after ASCII),
    /// a page starts after the given name whether or not it still exists, and a name created or
    /// removed before the page was read neither repeats nor hides another.
    func directoryPagesFollowNames() throws {
        let m = try make()
        let d = try m.create(parent: .root, name: n("d"), dir, now: .now())
        let names: [[UInt8]] = [n("a"), n("ab"), n("b"), [0xc3, 0xa9], n("B"), [0x61, 0x00, 0x62]]
        for name in names { _ = try m.create(parent: d.ino, name: name, file, now: .now()) }
        let sorted = names.sorted { $0.lexicographicallyPrecedes($1) }
        #expect(try m.readDirectory(d.ino, after: nil, limit: 100).map(\.name) == sorted)
        let first = try m.readDirectory(d.ino, after: nil, limit: 2)
        #expect(first.map(\.name) == Array(sorted[0..<2]))
        #expect(first[0].attributes.kind == .regular && first[0].attributes.nlink == 1)
        // Between pages: the last name read goes, one before it and one after it come.
        _ = try m.unlink(parent: d.ino, name: sorted[1], now: .now())
        _ = try m.create(parent: d.ino, name: n("A"), file, now: .now())
        _ = try m.create(parent: d.ino, name: n("zz"), file, now: .now())
        let rest = try m.readDirectory(d.ino, after: sorted[1], limit: 100).map(\.name)
        #expect(rest == Array(sorted[2..<5]) + [n("zz"), sorted[5]])  // [0xc3, 0xa9] after "zz"
        #expect(try m.readDirectory(d.ino, after: sorted[5], limit: 100).isEmpty)
        #expect(try m.readDirectory(d.ino, after: nil, limit: 0).isEmpty)
        let f = try m.lookup(parent: d.ino, name: n("ab"))
        #expect(throws: MetaError.notDirectory) { try m.readDirectory(f.ino, after: nil, limit: 10) }
        #expect(throws: MetaError.notFound) { try m.readDirectory(InodeNumber(999_999), after: nil, limit: 10) }
    }

    // MARK: - Chunks

    func commit(_ m: any MetaStore, _ ino: InodeNumber, _ refs: [(UInt64, String?)], size: UInt64) throws {
        let changes = refs.map { (i, s) in (ChunkIndex(i), s.map { ChunkRef(index: ChunkIndex(i), hash: hash($0), length: $0.utf8.count) }) }
        let new = refs.compactMap { $0.1 }.map { NewChunk(hash: hash($0), length: $0.utf8.count, state: .stored, inlineData: nil) }
        _ = try m.commit(FileCommit(ino: ino, chunks: changes, newChunks: new, size: size, mtime: .now(), ctime: .now()))
    }

    func refcountsFollowReferences() throws {
        let m = try make()
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

    func truncationShortensReferencesWithoutNewChunks() throws {
        let m = try make()
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

    func inlineChunksGoWithTheirLastReference() throws {
        let m = try make()
        let f = try m.create(parent: .root, name: n("f"), file, now: .now())
        let h = hash("small")
        _ = try m.commit(FileCommit(ino: f.ino, chunks: [(ChunkIndex(0), ChunkRef(index: ChunkIndex(0), hash: h, length: 5))],
                                    newChunks: [NewChunk(hash: h, length: 5, state: .inline, inlineData: n("small"))],
                                    size: 5, mtime: .now(), ctime: .now()))
        #expect(try m.inlineData(h) == n("small"))
        _ = try m.setAttributes(of: f.ino, AttributeChanges(size: 0), now: .now())
        #expect(try m.chunkInfo(h) == nil)
    }

    /// `usage` (statfs) agrees with the aggregates `status` shows after every kind of change.
    func statfsTotalsFollowEveryChange() throws {
        let m = try make()
        func agree(_ step: String) throws {
            let details = try m.usageDetails()
            #expect(try m.usage() == MetaUsage(inodes: details.inodes, usedBytes: details.usedBytes), "\(step)")
        }
        let cs = UInt64(FormatConstants.chunkSize)
        try agree("empty")
        let d = try m.create(parent: .root, name: n("d"), dir, now: .now())
        let f = try m.create(parent: d.ino, name: n("f"), file, now: .now())
        let g = try m.create(parent: .root, name: n("g"), file, now: .now())
        try agree("created")
        try commit(m, f.ino, [(0, "A"), (1, "BB")], size: cs + 2)
        let h = hash("small")
        _ = try m.commit(FileCommit(ino: g.ino, chunks: [(ChunkIndex(0), ChunkRef(index: ChunkIndex(0), hash: h, length: 5))],
                                    newChunks: [NewChunk(hash: h, length: 5, state: .inline, inlineData: n("small"))],
                                    size: 5, mtime: .now(), ctime: .now()))
        #expect(try m.usage().usedBytes == 1 + 2 + 5)
        try agree("committed")
        _ = try m.setAttributes(of: f.ino, AttributeChanges(size: 1), now: .now())  // "BB" released, still held
        try agree("truncated")
        _ = try m.link(g.ino, parent: d.ino, name: n("g2"), now: .now())
        _ = try m.unlink(parent: .root, name: n("g"), now: .now())
        try agree("one of two names unlinked")
        _ = try m.unlink(parent: d.ino, name: n("g2"), now: .now())
        try m.purgeOrphan(g.ino)  // the inline chunk goes with its last reference
        try agree("purged")
        _ = try m.unlink(parent: d.ino, name: n("f"), now: .now())
        try m.purgeOrphan(f.ino)
        _ = try m.rmdir(parent: .root, name: n("d"), now: .now())
        try agree("emptied")
        #expect(try m.usage().inodes == 1)
    }

    func commitOfAnUnknownChunkIsRefused() throws {
        let m = try make()
        let f = try m.create(parent: .root, name: n("f"), file, now: .now())
        #expect(throws: MetaError.self) {
            _ = try m.commit(FileCommit(ino: f.ino, chunks: [(ChunkIndex(0), ChunkRef(index: ChunkIndex(0), hash: hash("x"), length: 1))],
                                        newChunks: [], size: 1, mtime: .now(), ctime: .now()))
        }
        #expect(try m.attributes(of: f.ino).size == 0)  // rolled back
    }

    // MARK: - Extended attributes

    func xattrModesAndErrors() throws {
        let m = try make()
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

    // MARK: - Lookups

    func resolveGivesTheDirectoryAndTheEntry() throws {
        let m = try make()
        let d = try m.create(parent: .root, name: n("d"), dir, now: .now())
        let f = try m.create(parent: d.ino, name: n("f"), file, now: .now())
        let found = try m.resolve(parent: d.ino, name: n("f"))
        #expect(found.directory == (try m.attributes(of: d.ino)))
        #expect(found.entry == f)
        let missing = try m.resolve(parent: d.ino, name: n("nope"))
        #expect(missing.directory.ino == d.ino && missing.entry == nil)
        #expect(throws: MetaError.notDirectory) { try m.resolve(parent: f.ino, name: n("x")) }
        #expect(throws: MetaError.notFound) { try m.resolve(parent: InodeNumber(999_999), name: n("x")) }
    }

    // MARK: - Concurrency

    /// Each name created on this thread is found at once by a lookup on another: a mutation
    /// is visible to every read that starts after it returned.
    func writesAreSeenByReadsOnOtherThreads() throws {
        let m = try make()
        let created = DispatchSemaphore(value: 0), checked = DispatchSemaphore(value: 0)
        let misses = Mutex<[Int]>([]), rounds = 200
        let reader = Thread {
            for i in 0..<rounds {
                created.wait()
                if (try? m.lookup(parent: .root, name: n("f\(i)"))) == nil { misses.withLock { $0.append(i) } }
                checked.signal()
            }
        }
        reader.start()
        for i in 0..<rounds {
            _ = try m.create(parent: .root, name: n("f\(i)"), file, now: .now())
            created.signal()
            checked.wait()
        }
        #expect(misses.withLock { $0 } == [])
    }

    /// Two writers fill their own directories while two readers list and resolve them: a
    /// listing only grows, every name it shows resolves, and nothing is lost.
    func concurrentReadersAndWriters() throws {
        let m = try make()
        let dirs = try (0..<2).map { i in try m.create(parent: .root, name: n("w\(i)"), dir, now: .now()).ino }
        let perWriter = 150
        let problems = Mutex<[String]>([])
        let writersDone = Atomic<Int>(0)
        DispatchQueue.concurrentPerform(iterations: 4) { worker in
            do {
                if worker < 2 {
                    defer { writersDone.add(1, ordering: .releasing) }
                    for i in 0..<perWriter { _ = try m.create(parent: dirs[worker], name: n("f\(i)"), file, now: .now()) }
                } else {
                    let d = dirs[worker - 2]
                    var seen = 0
                    repeat {
                        let finished = writersDone.load(ordering: .acquiring) == 2
                        let entries = try m.readDirectory(d).entries
                        if entries.count < seen { problems.withLock { $0.append("listing shrank from \(seen) to \(entries.count)") } }
                        seen = entries.count
                        for e in entries.suffix(3) where try m.lookup(parent: d, name: e.name).ino != e.attributes.ino {
                            problems.withLock { $0.append("entry and lookup disagree") }
                        }
                        if finished { break }
                    } while true
                    if seen != perWriter { problems.withLock { $0.append("saw \(seen) of \(perWriter) names at the end") } }
                }
            } catch {
                problems.withLock { $0.append("worker \(worker): \(error)") }
            }
        }
        #expect(problems.withLock { $0 } == [])
        #expect(try m.attributes(of: .root).nlink == 4)
    }

    // MARK: - Settings, fallocate, durability

    func settingsRoundTrip() throws {
        let m = try make()
        #expect(try m.setting("conformance.key") == nil)
        try m.setSetting("conformance.key", "one")
        try m.setSetting("conformance.key", "two")
        #expect(try m.setting("conformance.key") == "two")
    }

    func allocationsFollowReserveAndRelease() throws {
        let m = try make()
        let f = try m.create(parent: .root, name: n("f"), file, now: .now())
        let grown = try m.changeAllocation(f.ino, reserve: 0..<8192, release: nil, growTo: 8192, touch: .both, now: .now())
        #expect(grown.size == 8192 && grown.reservedBytes == 8192)
        #expect(try m.allocations(of: f.ino) == [0..<8192])
        let punched = try m.changeAllocation(f.ino, reserve: nil, release: 0..<4096, growTo: nil, touch: .none, now: .now())
        #expect(punched.size == 8192 && punched.reservedBytes == 4096)
        #expect(try m.allocations(of: f.ino) == [4096..<8192])
        #expect(throws: MetaError.self) {
            try m.changeAllocation(InodeNumber(999_999), reserve: 0..<4096, release: nil, growTo: nil, touch: .none, now: .now())
        }
    }

    func syncClearsUnsyncedChanges() throws {
        let m = try make()
        let f = try m.create(parent: .root, name: n("f"), file, now: .now())
        let h = hash("x")
        _ = try m.commit(FileCommit(ino: f.ino, chunks: [(ChunkIndex(0), ChunkRef(index: ChunkIndex(0), hash: h, length: 1))],
                                    newChunks: [NewChunk(hash: h, length: 1, state: .inline, inlineData: n("x"))],
                                    size: 1, mtime: .now(), ctime: .now()), durable: false)
        #expect(m.hasUnsyncedChanges)
        try m.sync()
        #expect(!m.hasUnsyncedChanges)
        #expect(try m.attributes(of: f.ino).size == 1)
    }
}
