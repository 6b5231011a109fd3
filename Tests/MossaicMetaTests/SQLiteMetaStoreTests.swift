import Foundation
import MossaicCore
@testable import MossaicMeta
import Synchronization
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

let file = NewNode(kind: .regular, permissions: 0o644, uid: 1, gid: 2)
let dir = NewNode(kind: .directory, permissions: 0o755, uid: 1, gid: 2)

func hash(_ s: String) -> ChunkHash { ChunkHash.of(Array(s.utf8)) }

/// The one conformance suite (MetaStoreConformance), run on every MetaStore engine.
@Suite("MetaStore conformance")
struct MetaStoreConformanceTests {
    @Test func sqlite() {
        MetaStoreConformance(make: { try makeStore().0 }).run(engine: "SQLite")
    }
}

/// What only the SQLite engine does: its database file, its reader connections.
@Suite struct SQLiteEngineTests {
    @Test func reopenKeepsEverything() throws {
        let (m, dir) = try makeStore()
        let f = try m.create(parent: .root, name: n("f"), file, now: Timestamp(nanoseconds: 123))
        try m.sync()
        let again = try SQLiteMetaStore(path: dir + "/meta.db")
        #expect(try again.lookup(parent: .root, name: n("f")).mtime == Timestamp(nanoseconds: 123))
        #expect(try again.lookup(parent: .root, name: n("f")).ino == f.ino)
    }

    /// Reads run on the reader connections: with the writer held inside a transaction (as
    /// during a durable commit's fsync), lookups, getattr and readdir on another thread still
    /// answer — and see the state before that transaction. The bound on the wait only turns a
    /// reader stuck behind the writer into a failure instead of a hung test.
    @Test func readsDoNotWaitForTheWriter() throws {
        let (m, _) = try makeStore()
        let f = try m.create(parent: .root, name: n("f"), file, now: .now())
        let holding = DispatchSemaphore(value: 0), release = DispatchSemaphore(value: 0), writerDone = DispatchSemaphore(value: 0)
        Thread {
            _ = try? m.write { (c) throws(MetaError) in
                try c.run("UPDATE inodes SET size = 42 WHERE ino = ?", [.int(Int64(f.ino.rawValue))])
                holding.signal()
                release.wait()
            }
            writerDone.signal()
        }.start()
        holding.wait()
        let answers = Mutex<[UInt64]>([]), readerDone = DispatchSemaphore(value: 0)
        Thread {
            let sizes = [try? m.lookup(parent: .root, name: n("f")).size, try? m.attributes(of: f.ino).size,
                         try? m.readDirectory(.root).entries.first?.attributes.size]
            answers.withLock { $0 = sizes.map { $0 ?? .max } }
            readerDone.signal()
        }.start()
        let answered = readerDone.wait(timeout: .now() + 60) == .success
        release.signal()
        writerDone.wait()
        #expect(answered, "a read waited for the writer's transaction")
        if !answered { readerDone.wait() }
        #expect(answers.withLock { $0 } == [0, 0, 0])
        #expect(try m.attributes(of: f.ino).size == 42)
    }

    /// A read-only mount switching to a newer snapshot: reads after the switch see the new
    /// database on every reader connection, not one of them still on the old file.
    @Test func replacedDatabaseIsWhatEveryReaderSees() throws {
        let (m, dir) = try makeStore()
        let other = try SQLiteMetaStore(path: dir + "/other.db")
        try other.createRootIfMissing(permissions: 0o755, uid: 0, gid: 0, now: .now())
        _ = try other.create(parent: .root, name: n("only-in-other"), file, now: .now())
        try other.checkpoint()
        let epoch = m.epoch
        try m.replaceDatabase(with: dir + "/other.db")
        #expect(m.epoch != epoch)
        for _ in 0..<(2 * SQLiteReaderPool.defaultSize) {
            #expect(try m.lookup(parent: .root, name: n("only-in-other")).kind == .regular)
        }
    }
}

/// The reads behind lookup, getattr and a readdirplus page are one indexed read each, at any
/// directory size: SQLite's plan for each names a primary-key search and no scan of a table, nor
/// a temporary B-tree for ORDER BY (the page comes in key order).
@Suite struct SQLiteQueryPlanTests {
    func plan(_ m: SQLiteMetaStore, _ sql: String, _ bindings: [SQLValue]) throws -> [String] {
        try m.read { (c) throws(MetaError) in try c.query("EXPLAIN QUERY PLAN " + sql, bindings) { $0.text(3) } }
    }

    @Test func lookupGetattrAndDirectoryPagesUseThePrimaryKeys() throws {
        let (m, _) = try makeStore()
        let d = try m.create(parent: .root, name: n("d"), dir, now: .now())
        for i in 0..<200 { _ = try m.create(parent: d.ino, name: n("f\(i)"), file, now: .now()) }
        let parent = SQLValue.int(Int64(d.ino.rawValue))
        let queries: [(String, [SQLValue])] = [
            (SQLiteMetaStore.resolveQuery, [.blob(n("f7")), parent]),
            ("SELECT \(SQLiteMetaStore.attributeColumns) FROM inodes i WHERE i.ino = ?", [parent]),
            (SQLiteMetaStore.directoryPageQuery, [parent, .blob(n("f50")), .int(100)]),
        ]
        for (sql, bindings) in queries {
            let steps = try plan(m, sql, bindings)
            #expect(!steps.isEmpty)
            for step in steps {
                #expect(step.hasPrefix("SEARCH"), "\(step) in \(sql)")
                #expect(step.contains("PRIMARY KEY"), "\(step) in \(sql)")
            }
            #expect(!steps.contains { $0.contains("TEMP B-TREE") }, "\(steps)")
        }
    }
}
