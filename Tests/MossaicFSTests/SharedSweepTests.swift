import Foundation
import Logging
import MossaicCore
@testable import MossaicFS
@testable import MossaicMeta
import MossaicMount
import MossaicObjectStore
import MossaicTestSupport
import Synchronization
import Testing

/// One PostgreSQL server for this file's tests; each filesystem gets a database of its own.
private let server = Result { try PostgresTestServer(repositoryRoot: URL(fileURLWithPath: #filePath).deletingLastPathComponent()
                                                        .deletingLastPathComponent().deletingLastPathComponent()) }
private let databases = Atomic<Int>(0)

/// The reclaim sweep of mounted hosts on a PostgreSQL filesystem (SharedChunkSweeper), two
/// "hosts" opened by the loader as mounts open them (without FUSE) on one database and store.
@Suite struct SharedSweepTests {
    let logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
    let files = ReplicationLoaderTests()

    /// A PostgreSQL filesystem in a new directory store and database, opened read-write by
    /// `hosts` hosts, each with its own cache directory, and a zero grace.
    func hosts(_ count: Int) throws -> (store: DirectoryObjectStore, hosts: [FilesystemLoader.Opened]) {
        let pg = try server.get()
        let name = "fs\(databases.add(1, ordering: .relaxed).newValue)"
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("sharedsweep-\(UUID().uuidString)").path
        let store = try DirectoryObjectStore(root: root + "/store", create: true)
        try PostgresConnection(conninfo: pg.url).execute("CREATE DATABASE \(name)")
        let url = pg.url(database: name)
        let superblock = try Superblock.format(store, inlineMax: 16 << 10, meta: try PostgresURL(parsing: url), force: false)
        let metadata = try PostgresMetaStore(url: url, connections: 1)
        try metadata.createRootIfMissing(permissions: 0o777, uid: 0, gid: 0, now: .now())
        _ = try metadata.claim(filesystem: superblock.uuid)
        let opened = try (0..<count).map { i in
            var options = MountConfiguration()
            options.cacheDirectory = root + "/cache\(i)"
            options.packChunks = 1
            options.sweepGrace = 0
            options.backupInterval = 0
            return try FilesystemLoader.open(store: store, settings: .init(options: options), logger: logger)
        }
        return (store, opened)
    }

    func content(_ seed: UInt8) -> [UInt8] {
        (0..<FormatConstants.chunkSize).map { i in UInt8(truncatingIfNeeded: (UInt64(i) &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(seed)) >> 40) }
    }

    func objects(_ store: DirectoryObjectStore) throws -> [String] {
        try (store.list(prefix: "chunks/") + store.list(prefix: "packs/")).map(\.key).sorted()
    }

    /// Rounds until one deletes something (at most 10 s: a row waits for the write
    /// transactions of the server that ran when it was marked, other tests' included).
    func sweepEventually(_ sweeper: SharedChunkSweeper) throws -> SharedChunkSweeper.Report {
        let deadline = Date().addingTimeInterval(10)
        while true {
            let r = try sweeper.sweep()
            if r.chunks > 0 || Date() > deadline { return r }
            Thread.sleep(forTimeInterval: 0.05)
        }
    }

    /// Host B remembers having stored a chunk (its placements) that host A's sweep deleted
    /// after B's file went: B writing those bytes again stores them again — its commit finds the
    /// object's tombstone — instead of naming the deleted object. Both hosts then read it back.
    @Test func aChunkSweptUnderAHostsMemoryIsStoredAgain() throws {
        let (store, hosts) = try hosts(2)
        let (a, b) = (hosts[0], hosts[1])
        defer { for h in hosts { h.stopBackground(finalSnapshot: false) } }
        let bytes = content(7)
        try files.write(b.filesystem, "first", bytes)
        let key = ChunkHash.of(bytes).objectKey
        #expect(try objects(store) == [key])

        let ino = try a.filesystem.lookup(parent: .root, name: Array("first".utf8)).ino
        try a.filesystem.unlink(parent: .root, name: Array("first".utf8))
        a.filesystem.forget(ino, count: 1)
        let swept = try sweepEventually(try #require(a.sharedSweeper))
        #expect(swept.chunks == 1 && swept.objects == 1 && swept.bytes > 0)
        #expect(try objects(store) == [])

        try files.write(b.filesystem, "again", bytes)
        #expect(try objects(store) == [key])
        #expect(try files.read(a.filesystem, "again") == bytes)
        #expect(try files.read(b.filesystem, "again") == bytes)
    }

    /// A round finishes what a sweeper that stopped between its two steps left: the objects of
    /// pending tombstones are deleted, and the tombstones done.
    @Test func pendingTombstonesAreFinishedByTheNextRound() throws {
        let (store, hosts) = try hosts(1)
        let a = hosts[0]
        defer { a.stopBackground(finalSnapshot: false) }
        let bytes = content(9)
        try files.write(a.filesystem, "f", bytes)
        let ino = try a.filesystem.lookup(parent: .root, name: Array("f".utf8)).ino
        try a.filesystem.unlink(parent: .root, name: Array("f".utf8))
        a.filesystem.forget(ino, count: 2)
        let metadata = try #require(a.filesystem.metadata as? PostgresMetaStore)
        _ = try metadata.markUnreferencedChunks()
        // Rows and tombstones only, as if the sweeper died before deleting objects.
        let deadline = Date().addingTimeInterval(10)
        var batch = SharedChunkSweep()
        while batch.chunks == 0 && Date() < deadline {
            batch = try #require(try metadata.sweepUnreferencedChunks(grace: 0, limit: 10, after: nil, backupSettled: { _ in true },
                                                                      named: { _ in false }))
        }
        let left = try objects(store)
        #expect(batch.chunks == 1 && left.count == 1)
        let r = try #require(a.sharedSweeper).sweep()
        let after = try objects(store), pending = try metadata.pendingSweptObjects(limit: 10)
        #expect(r.objects == 1 && after.isEmpty && pending.isEmpty)
    }
}
