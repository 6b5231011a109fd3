import Foundation
import MossaicCore
@testable import MossaicMeta
import MossaicTestSupport
import Synchronization
import Testing

/// One PostgreSQL server for this file's tests (started by Tests/e2e/pgserver.py, stopped at
/// exit); each store gets a database of its own.
private let server = Result { try PostgresTestServer(repositoryRoot: URL(fileURLWithPath: #filePath).deletingLastPathComponent()
                                                        .deletingLastPathComponent().deletingLastPathComponent()) }
private let databases = Atomic<Int>(0)

/// A fresh, empty filesystem's metadata in a new database, with its root directory; `hosts`
/// stores on that one database, as several hosts mounting one filesystem would have.
func makePostgresStores(hosts: Int = 1) throws -> [PostgresMetaStore] {
    let url = try makePostgresDatabase()
    let stores = try (0..<hosts).map { _ in try PostgresMetaStore(url: url) }
    try stores[0].createRootIfMissing(permissions: 0o755, uid: 0, gid: 0, now: .now())
    return stores
}

/// A new, empty database on the test server; returns its URL.
func makePostgresDatabase() throws -> String {
    let pg = try server.get()
    let name = "fs\(databases.add(1, ordering: .relaxed).newValue)"
    try PostgresConnection(conninfo: pg.url).execute("CREATE DATABASE \(name)")
    return pg.url(database: name)
}

@Suite("MetaStore conformance on PostgreSQL")
struct PostgresConformanceTests {
    @Test func postgres() {
        MetaStoreConformance(make: { try makePostgresStores()[0] }).run(engine: "PostgreSQL")
    }
}

/// What only the PostgreSQL engine does: several hosts on one database, keyset pages, schema.
@Suite struct PostgresEngineTests {
    /// The outcome of a transaction whose COMMIT went out on a connection that was then lost:
    /// committed, rolled back, and one a server crash forgot (an id "in the future") — each is
    /// told apart, so `write` neither reports a landed change as failed nor runs it twice.
    @Test func aLostCommitsOutcomeIsLookedUp() throws {
        let url = try makePostgresDatabase()
        let store = try PostgresMetaStore(url: url)
        let c = try PostgresConnection(conninfo: url)
        let lost = MetaError.postgres(state: "08006", message: "connection lost", context: "COMMIT")
        let committed = try #require(try c.executeReturningText(PostgresMetaStore.begin()))
        try c.execute("CREATE TABLE t(x bigint); COMMIT")
        let rolledBack = try #require(try c.executeReturningText(PostgresMetaStore.begin()))
        try c.execute("ROLLBACK")
        #expect(try store.outcome(ofTransaction: committed, since: .now, lost: lost) == .committed)
        #expect(try store.outcome(ofTransaction: rolledBack, since: .now, lost: lost) == .notCommitted)
        let future = String((UInt64(committed) ?? 0) + 1_000_000)
        #expect(try store.outcome(ofTransaction: future, since: .now, lost: lost) == .notCommitted)
    }

    /// Three "hosts" create in one directory at once: every create lands (conflicts on the
    /// directory's row are retried, not lost) and the link count counts them all.
    @Test func hostsCreatingInOneDirectoryAllSucceed() throws {
        let stores = try makePostgresStores(hosts: 3)
        let d = try stores[0].create(parent: .root, name: n("shared"), dir, now: .now())
        let failures = Mutex<[String]>([])
        DispatchQueue.concurrentPerform(iterations: 6) { worker in
            let m = stores[worker % 3]
            for i in 0..<40 {
                do {
                    _ = try m.create(parent: d.ino, name: n("w\(worker)-\(i)"), i % 4 == 0 ? dir : file, now: .now())
                } catch {
                    failures.withLock { $0.append("\(worker)/\(i): \(error)") }
                }
            }
        }
        #expect(failures.withLock { $0 } == [])
        #expect(try stores[1].readDirectory(d.ino).entries.count == 240)
        #expect(try stores[2].attributes(of: d.ino).nlink == 2 + 60)
    }

    /// Two hosts reference and release one inline chunk over and over, each in its own file:
    /// with no refcount, the last release deletes the row while the other host may be adding a
    /// reference — the foreign key makes one of them retry, so no reference ever names a
    /// missing chunk and the row goes with the last reference.
    @Test func hostsSharingAnInlineChunkNeverLoseIt() throws {
        let stores = try makePostgresStores(hosts: 2)
        let files = try (0..<2).map { i in try stores[0].create(parent: .root, name: n("f\(i)"), file, now: .now()).ino }
        let h = hash("shared")
        let failures = Mutex<[String]>([])
        DispatchQueue.concurrentPerform(iterations: 2) { i in
            let m = stores[i]
            for round in 0..<60 {
                do {
                    _ = try m.commit(FileCommit(ino: files[i], chunks: [(ChunkIndex(0), ChunkRef(index: ChunkIndex(0), hash: h, length: 6))],
                                                newChunks: [NewChunk(hash: h, length: 6, state: .inline, inlineData: n("shared"))],
                                                size: 6, mtime: .now(), ctime: .now()), durable: false)
                    if try m.inlineData(h) != n("shared") { failures.withLock { $0.append("\(i)/\(round): chunk gone while referenced") } }
                    _ = try m.setAttributes(of: files[i], AttributeChanges(size: 0), now: .now())
                } catch {
                    failures.withLock { $0.append("\(i)/\(round): \(error)") }
                }
            }
        }
        #expect(failures.withLock { $0 } == [])
        #expect(try stores[0].checkConsistency() == [])
        #expect(try stores[1].chunkInfo(h) == nil)
    }

    /// Two hosts move two directories into each other at once: one wins, the other is refused
    /// (never a cycle cut off from the root).
    @Test func crossedDirectoryRenamesNeverMakeACycle() throws {
        let stores = try makePostgresStores(hosts: 2)
        for round in 0..<10 {
            let a = try stores[0].create(parent: .root, name: n("a\(round)"), dir, now: .now())
            let b = try stores[0].create(parent: .root, name: n("b\(round)"), dir, now: .now())
            let results = Mutex<[Bool]>([])
            DispatchQueue.concurrentPerform(iterations: 2) { i in
                let (name, into) = i == 0 ? (n("a\(round)"), b.ino) : (n("b\(round)"), a.ino)
                do {
                    _ = try stores[i].rename(parent: .root, name: name, newParent: into, newName: n("x"), flags: [], now: .now())
                    results.withLock { $0.append(true) }
                } catch {
                    if (error as? MetaError) != .invalidArgument { Issue.record("rename \(i): \(error)") }
                    results.withLock { $0.append(false) }
                }
            }
            #expect(results.withLock { $0.filter { $0 }.count } == 1)
            // Both still reach the root.
            for ino in [a.ino, b.ino] {
                var current = ino
                for _ in 0..<4 where current != .root { current = try stores[0].parentDirectory(of: current).ino }
                #expect(current == .root)
            }
        }
    }

    /// fsck on this engine: damage made behind the engine's back is found, repaired, and gone.
    @Test func checkFindsAndRepairsDamage() throws {
        let url = try makePostgresDatabase()
        let m = try PostgresMetaStore(url: url)
        try m.createRootIfMissing(permissions: 0o755, uid: 0, gid: 0, now: .now())
        let d = try m.create(parent: .root, name: n("d"), dir, now: .now())
        let f = try m.create(parent: d.ino, name: n("f"), file, now: .now())
        let h = hash("x")
        _ = try m.commit(FileCommit(ino: f.ino, chunks: [(ChunkIndex(0), ChunkRef(index: ChunkIndex(0), hash: h, length: 1))],
                                    newChunks: [NewChunk(hash: h, length: 1, state: .inline, inlineData: n("x"))],
                                    size: 1, mtime: .now(), ctime: .now()))
        #expect(try m.checkConsistency() == [])
        let damage = try PostgresConnection(conninfo: url)
        try damage.execute("UPDATE inodes SET nlink = 7 WHERE ino = \(f.ino.rawValue)")
        try damage.execute("UPDATE inodes SET allocated = 1 WHERE ino = \(f.ino.rawValue)")
        try damage.execute("DELETE FROM dentries WHERE parent = 1")  // d is cut off from the root
        let kinds = Set(try m.checkConsistency().map(\.kind))
        #expect(kinds == [.linkCount, .allocation, .unreachable])
        #expect(try m.repairConsistency() > 0)
        #expect(try m.checkConsistency() == [])
        let lostFound = try m.lookup(parent: .root, name: n("lost+found"))
        #expect(try m.lookup(parent: lostFound.ino, name: n("#\(d.ino.rawValue)")).ino == d.ino)
        #expect(try m.attributes(of: f.ino).nlink == 1)
    }

    /// The server drops every connection of the store (as at a restart): the next calls open
    /// new ones and succeed, reads and writes alike.
    @Test func droppedConnectionsAreReplaced() throws {
        let url = try makePostgresDatabase()
        let m = try PostgresMetaStore(url: url)
        try m.createRootIfMissing(permissions: 0o755, uid: 0, gid: 0, now: .now())
        let f = try m.create(parent: .root, name: n("before"), file, now: .now())
        let admin = try PostgresConnection(conninfo: url)
        let dropped = try admin.query("""
            SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()
            """) { _ in 1 }
        #expect(dropped.count >= 1)
        #expect(try m.attributes(of: f.ino) == f)
        _ = try m.create(parent: .root, name: n("after"), file, now: .now())
        #expect(try m.readDirectory(.root).entries.map(\.name) == [n("after"), n("before")])
    }

    @Test func reopeningKeepsTheSchemaAndTheTree() throws {
        let url = try makePostgresDatabase()
        let m = try PostgresMetaStore(url: url)
        #expect(try m.createRootIfMissing(permissions: 0o755, uid: 0, gid: 0, now: .now()))
        let f = try m.create(parent: .root, name: n("f"), file, now: Timestamp(nanoseconds: 77))
        let again = try PostgresMetaStore(url: url)
        #expect(try !again.createRootIfMissing(permissions: 0o700, uid: 0, gid: 0, now: .now()))
        #expect(try again.lookup(parent: .root, name: n("f")) == f)
        #expect(try again.setting("schema_version") == String(PostgresSchema.version))
        let reader = try PostgresMetaStore(url: url, readOnly: true)
        #expect(try reader.lookup(parent: .root, name: n("f")) == f)
        #expect(throws: MetaError.self) { try reader.create(parent: .root, name: n("g"), file, now: .now()) }
        #expect(try again.resolve(parent: .root, name: n("g")).entry == nil)
        try PostgresConnection(conninfo: url).execute("UPDATE settings SET value = '999' WHERE key = 'schema_version'")
        #expect(throws: MetaError.self) { try PostgresMetaStore(url: url) }
    }

    /// statfs's counters (schema 10): hosts writing at once each count into their own
    /// connections' rows, the sum is what the tables hold on every host, and when a host's
    /// connections end the sweep's mark step folds their rows into row 0 without changing it.
    @Test func usageCountersFollowEveryHostAndFoldWhenConnectionsEnd() throws {
        let url = try makePostgresDatabase()
        let a = try PostgresMetaStore(url: url)
        try a.createRootIfMissing(permissions: 0o755, uid: 0, gid: 0, now: .now())
        var b: PostgresMetaStore? = try PostgresMetaStore(url: url)
        let hosts = [a, b!]
        let failures = Mutex<[String]>([])
        DispatchQueue.concurrentPerform(iterations: 2) { i in
            let m = hosts[i]
            do {
                let d = try m.create(parent: .root, name: n("d\(i)"), dir, now: .now())
                for k in 0..<40 {
                    let f = try m.create(parent: d.ino, name: n("f\(k)"), file, now: .now())
                    let data = n("host \(i) file \(k)")
                    let h = hash("host \(i) file \(k)")
                    _ = try m.commit(FileCommit(ino: f.ino, chunks: [(ChunkIndex(0), ChunkRef(index: ChunkIndex(0), hash: h, length: data.count))],
                                                newChunks: [NewChunk(hash: h, length: data.count, state: .inline, inlineData: data)],
                                                size: UInt64(data.count), mtime: .now(), ctime: .now()), durable: false)
                    if k % 4 == 0 {
                        _ = try m.unlink(parent: d.ino, name: n("f\(k)"), now: .now())
                        try m.purgeOrphan(f.ino)
                    }
                }
            } catch {
                failures.withLock { $0.append("host \(i): \(error)") }
            }
        }
        #expect(failures.withLock { $0 } == [])
        let details = try a.usageDetails()
        let expected = MetaUsage(inodes: details.inodes, usedBytes: details.usedBytes)
        #expect(expected.inodes == 1 + 2 + 2 * 30)
        #expect(try a.usage() == expected)
        #expect(try b!.usage() == expected)
        #expect(try a.checkConsistency() == [])
        let probe = try PostgresConnection(conninfo: url)
        let rows = { try probe.queryOne("SELECT count(*)::bigint FROM usage_counts") { $0.int(0) } ?? 0 }
        let rowsWithB = try rows()
        #expect(rowsWithB >= 3)  // row 0, and at least one connection of each host
        b = nil  // host B unmounts: its connections end
        // The server notices a closed connection on its own time: poll the fold, no fixed wait.
        let deadline = ContinuousClock.now + .seconds(10)
        var folded = false
        while !folded && ContinuousClock.now < deadline {
            _ = try a.markUnreferencedChunks()
            folded = try rows() < rowsWithB
            if !folded { usleep(100_000) }
        }
        #expect(folded)
        #expect(try a.usage() == expected)
        #expect(try a.checkConsistency() == [])
    }

    /// fsck finds counter rows that disagree with the tables, and --repair recounts them.
    @Test func damagedUsageCountersAreFoundAndRecounted() throws {
        let url = try makePostgresDatabase()
        let m = try PostgresMetaStore(url: url)
        try m.createRootIfMissing(permissions: 0o755, uid: 0, gid: 0, now: .now())
        _ = try m.create(parent: .root, name: n("f"), file, now: .now())
        let right = try m.usage()
        let damage = try PostgresConnection(conninfo: url)
        try damage.execute("UPDATE usage_counts SET inodes = inodes + 5, bytes = bytes - 7 WHERE pid = 0")
        #expect(try m.usage() != right)
        #expect(try m.checkConsistency().map(\.kind) == [.usage])
        #expect(try m.repairConsistency() == 1)
        #expect(try m.usage() == right)
        #expect(try m.checkConsistency() == [])
    }
}

/// The lock tables (`PostgresMetaStore+Locks`): each store is a host with its own session.
@Suite struct PostgresLockTableTests {
    @Test func rangeLocksExcludeAcrossHostsUntilUnlockedOrClosed() throws {
        let stores = try makePostgresStores(hosts: 3)
        let (a, b, c) = (stores[0], stores[1], stores[2])
        let f = try a.create(parent: .root, name: n("f"), file, now: .now())
        #expect(try a.setRangeLock(f.ino, .exclusive, 0...99, owner: 1, pid: 4242))
        #expect(try !b.setRangeLock(f.ino, .exclusive, 50...60, owner: 1, pid: 1))
        #expect(try !b.setRangeLock(f.ino, .shared, 99...99, owner: 1, pid: 1))
        #expect(try b.setRangeLock(f.ino, .exclusive, 100...199, owner: 1, pid: 1))
        // Another host sees the holder without its pid; the holder's host sees the pid.
        let seen = try #require(try c.conflictingRangeLock(f.ino, .shared, 0...10, owner: 9))
        #expect(seen.range == 0...99 && seen.kind == .exclusive && seen.pid == 0 && seen.owner.session == a.session)
        #expect(try a.conflictingRangeLock(f.ino, .shared, 0...10, owner: 2)?.pid == 4242)
        // Unlocking the middle leaves both ends locked.
        #expect(try a.setRangeLock(f.ino, nil, 40...59, owner: 1, pid: 4242))
        #expect(try b.setRangeLock(f.ino, .exclusive, 40...59, owner: 1, pid: 1))
        #expect(try !b.setRangeLock(f.ino, .exclusive, 39...40, owner: 2, pid: 1))
        // A close by the owner drops what it holds.
        try a.releaseRangeLocks(f.ino, owner: 1)
        #expect(try c.setRangeLock(f.ino, .shared, 0...39, owner: 1, pid: 1))
        #expect(try c.setRangeLock(f.ino, .shared, 60...99, owner: 1, pid: 1))
    }

    @Test func flocksExcludeAcrossHostsAndGoWithTheSession() throws {
        let stores = try makePostgresStores(hosts: 2)
        let (a, b) = (stores[0], stores[1])
        let f = try a.create(parent: .root, name: n("f"), file, now: .now())
        #expect(try a.setFlock(f.ino, .shared, owner: 1))
        #expect(try b.setFlock(f.ino, .shared, owner: 1))
        #expect(try !b.setFlock(f.ino, .exclusive, owner: 1))
        #expect(try b.setFlock(f.ino, nil, owner: 1))
        // Converting its own lock: only other descriptions' locks conflict.
        #expect(try a.setFlock(f.ino, .exclusive, owner: 1))
        #expect(try !a.setFlock(f.ino, .shared, owner: 2))
        #expect(try !b.setFlock(f.ino, .shared, owner: 1))
        try a.releaseSessionLocks()
        #expect(try b.setFlock(f.ino, .exclusive, owner: 1))
    }

    /// Hosts racing for one exclusive lock: exactly one wins each round (the inode's row lock
    /// serializes them, and READ COMMITTED lets the loser see the winner's row).
    @Test func racingHostsNeverBothTakeOneLock() throws {
        let stores = try makePostgresStores(hosts: 3)
        let f = try stores[0].create(parent: .root, name: n("f"), file, now: .now())
        for round in 0..<20 {
            let winners = Atomic<Int>(0)
            DispatchQueue.concurrentPerform(iterations: 3) { host in
                let useFlock = round % 2 == 0
                let took = useFlock ? (try? stores[host].setFlock(f.ino, .exclusive, owner: 1))
                                    : (try? stores[host].setRangeLock(f.ino, .exclusive, 0...0, owner: 1, pid: 1))
                if took == true { winners.add(1, ordering: .relaxed) }
            }
            #expect(winners.load(ordering: .relaxed) == 1)
            for s in stores { try s.releaseSessionLocks() }
        }
    }

    /// A version-6 database (before the lock tables and the sweep's columns) is upgraded in place
    /// when a host opens it.
    @Test func aVersion6DatabaseGetsTheLockTables() throws {
        let url = try makePostgresDatabase()
        let m = try PostgresMetaStore(url: url)
        try m.createRootIfMissing(permissions: 0o755, uid: 0, gid: 0, now: .now())
        let f = try m.create(parent: .root, name: n("f"), file, now: .now())
        try PostgresConnection(conninfo: url).execute("""
            DROP TABLE plocks; DROP TABLE flocks; DROP TABLE open_files; DROP TABLE sessions;
            DROP TABLE swept_objects; DROP SEQUENCE swept_seq;
            DROP FUNCTION mossaicfs_usage_changed CASCADE; DROP FUNCTION mossaicfs_usage_add; DROP FUNCTION mossaicfs_chunk_bytes;
            DROP TABLE usage_counts;
            ALTER TABLE chunks DROP COLUMN unreferenced_since, DROP COLUMN unreferenced_xmax;
            UPDATE settings SET value = '6' WHERE key = 'schema_version'
            """)
        let upgraded = try PostgresMetaStore(url: url)
        #expect(try upgraded.setting("schema_version") == String(PostgresSchema.version))
        #expect(try upgraded.lookup(parent: .root, name: n("f")) == f)
        #expect(try upgraded.setRangeLock(f.ino, .exclusive, 0...9, owner: 1, pid: 1))
        #expect(try upgraded.markUnreferencedChunks() != nil)   // and version 9's sweep columns
        // Version 10's counters start from what the tables held, and follow from there.
        #expect(try upgraded.usage() == MetaUsage(inodes: 2, usedBytes: 0))
        _ = try upgraded.create(parent: .root, name: n("g"), file, now: .now())
        #expect(try upgraded.usage().inodes == 3)
        #expect(try upgraded.checkConsistency() == [])
    }
}

/// Sessions (schema 8): heartbeats, the cleanup of dead ones, files unlinked while open on
/// another host, and a session found deleted.
@Suite struct PostgresSessionTests {
    private func register(_ store: PostgresMetaStore, expiry: Double = 300,
                          lost: @escaping @Sendable (String) -> Void = { _ in }) throws {
        try store.registerSession(host: "host-\(store.sessionID.prefix(4))", pid: 42, version: "test", expiry: expiry, onLost: lost)
    }

    /// Polls `condition` for up to 10 s (no fixed sleep: an expiry is judged by the server's clock).
    private func eventually(_ condition: () throws -> Bool) throws -> Bool {
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline {
            if try condition() { return true }
            usleep(100_000)
        }
        return false
    }

    /// A session whose heartbeat stopped is cleaned up by another host's heartbeat: its locks
    /// and open files go with it, and the file it alone kept after an unlink is reclaimed. A
    /// live session's rows are untouched.
    @Test func aDeadSessionIsCleanedUpByALiveOne() throws {
        let stores = try makePostgresStores(hosts: 3)
        let (dying, live, other) = (stores[0], stores[1], stores[2])
        try register(dying, expiry: 1)
        try register(live)
        try register(other)
        let f = try live.create(parent: .root, name: n("f"), file, now: .now())
        let g = try live.create(parent: .root, name: n("g"), file, now: .now())
        #expect(try dying.setFlock(f.ino, .exclusive, owner: 1))
        #expect(try dying.setRangeLock(f.ino, .exclusive, 0...9, owner: 1, pid: 7))
        try dying.opened(g.ino, token: 1)
        try other.opened(f.ino, token: 5)
        _ = try live.unlink(parent: .root, name: n("g"), now: .now())
        #expect(try live.orphans() == [])          // open on the dying host: kept
        #expect(try !live.setFlock(f.ino, .shared, owner: 1))
        #expect(try live.sessions().count == 3)

        // No heartbeat from `dying` any more; `live`'s heartbeats clean it up once it expired.
        var cleaned = SessionCleanup()
        #expect(try eventually {
            let c = try live.heartbeat()
            cleaned.sessions += c.sessions
            cleaned.reclaimed += c.reclaimed
            return cleaned.sessions > 0
        })
        #expect(cleaned == SessionCleanup(sessions: 1, reclaimed: 1))
        #expect(throws: MetaError.notFound) { try live.attributes(of: g.ino) }
        #expect(try live.setFlock(f.ino, .exclusive, owner: 1))
        #expect(try live.conflictingRangeLock(f.ino, .exclusive, 0...9, owner: 9) == nil)
        let left = try live.sessions()
        #expect(Set(left.map(\.id)) == [live.sessionID, other.sessionID])
        #expect(left.first { $0.id == other.sessionID }?.openFiles == 1)   // a live session's open stays
        #expect(left.allSatisfy { $0.alive })
    }

    /// A file unlinked on one host while open on two others stays (attributes, chunk map)
    /// until the last of them closes it; `orphans()` leaves it out meanwhile; a close racing a
    /// new opening on the same host (another token) leaves that opening's row.
    @Test func anUnlinkedFileLivesUntilTheLastCloseAnywhere() throws {
        let stores = try makePostgresStores(hosts: 3)
        for s in stores { try register(s) }
        let (a, b, c) = (stores[0], stores[1], stores[2])
        let f = try a.create(parent: .root, name: n("f"), file, now: .now())
        try b.opened(f.ino, token: 1)
        try c.opened(f.ino, token: 1)
        let unlinked = try a.unlink(parent: .root, name: n("f"), now: .now())
        #expect(unlinked.orphaned)
        #expect(try a.orphans() == [])
        try a.purgeOrphan(f.ino)                  // the unlinking host's kernel forgot it
        #expect(try b.attributes(of: f.ino).nlink == 0)
        try b.opened(f.ino, token: 2)             // reopened on b: a new opening
        try b.closed(f.ino, token: 1)             // the old opening's close, late: not b's row any more
        try c.closed(f.ino, token: 1)
        #expect(try a.attributes(of: f.ino).nlink == 0)
        #expect(try a.sessions().first { $0.id == b.sessionID }?.openFiles == 1)
        try b.closed(f.ino, token: 2)             // the last close anywhere reclaims it
        #expect(throws: MetaError.notFound) { try a.attributes(of: f.ino) }
        #expect(try a.orphans() == [])
        // An inode already reclaimed cannot be recorded open.
        #expect(throws: MetaError.notFound) { try b.opened(f.ino, token: 3) }
    }

    /// A clean end deletes the session's rows and reclaims what only it had open; a store
    /// without a session (fsck, a read-only mount) records no opens.
    @Test func endingASessionDeletesItsRows() throws {
        let stores = try makePostgresStores(hosts: 2)
        let (a, b) = (stores[0], stores[1])
        try register(a)
        let f = try a.create(parent: .root, name: n("f"), file, now: .now())
        try a.opened(f.ino, token: 1)
        #expect(try a.setFlock(f.ino, .exclusive, owner: 1))
        _ = try b.unlink(parent: .root, name: n("f"), now: .now())
        try b.opened(f.ino, token: 1)             // b has no session: records nothing
        #expect(try a.endSession() == SessionCleanup(sessions: 1, reclaimed: 1))
        #expect(try b.sessions() == [])
        #expect(throws: MetaError.notFound) { try b.attributes(of: f.ino) }
        let g = try b.create(parent: .root, name: n("g"), file, now: .now())
        #expect(try b.setFlock(g.ino, .exclusive, owner: 1))
    }

    /// A session that another host deleted (it was taken for dead) is lost: its heartbeat says
    /// so, its owner is told once, and every write fails with `sessionLost` — also a write that
    /// comes before the next heartbeat, after a pause longer than half the expiry (a suspended
    /// machine resuming).
    @Test func aSessionDeletedByAnotherHostIsLost() throws {
        let stores = try makePostgresStores(hosts: 2)
        let (a, b) = (stores[0], stores[1])
        let told = Atomic<Int>(0)
        try register(a, expiry: 1, lost: { _ in told.add(1, ordering: .relaxed) })
        try register(b)
        let f = try a.create(parent: .root, name: n("f"), file, now: .now())
        try a.opened(f.ino, token: 1)
        #expect(try eventually { try b.heartbeat().sessions == 1 })
        // No heartbeat of `a` ran since: its next write checks its row first.
        #expect(throws: MetaError.sessionLost) { try a.create(parent: .root, name: n("g"), file, now: .now()) }
        #expect(throws: MetaError.sessionLost) { try a.heartbeat() }
        #expect(throws: MetaError.sessionLost) { try a.setFlock(f.ino, .exclusive, owner: 1) }
        #expect(throws: MetaError.sessionLost) { try a.setAttributes(of: f.ino, AttributeChanges(size: 0), now: .now()) }
        #expect(a.sessionLost)
        #expect(told.load(ordering: .relaxed) == 1)
        // Reads go on; the others are unaffected.
        #expect(try a.attributes(of: f.ino).ino == f.ino)
        #expect(try b.setFlock(f.ino, .exclusive, owner: 1))
        #expect(try b.sessions().map(\.id) == [b.sessionID])
    }
}
