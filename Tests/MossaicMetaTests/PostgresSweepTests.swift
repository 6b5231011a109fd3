import Foundation
import MossaicCore
@testable import MossaicMeta
import Synchronization
import Testing

/// The reclaim sweep of mounted hosts on PostgreSQL (PostgresMetaStore+Sweep): marks, the
/// grace, row locks against a host committing a reference, and the tombstones that make a host
/// store again what the sweep deleted.
@Suite struct PostgresSweepTests {
    /// A stored chunk (its own object) of `seed`'s bytes.
    func chunk(_ seed: String) -> (hash: ChunkHash, new: NewChunk, ref: ChunkRef) {
        let h = hash(seed)
        return (h, NewChunk(hash: h, length: 100_000, state: .stored, inlineData: nil), ChunkRef(index: ChunkIndex(0), hash: h, length: 100_000))
    }

    /// Page 0 of `ino` becomes `ref` (nil: a hole), inserting `new` rows.
    @discardableResult
    func commit(_ m: PostgresMetaStore, _ ino: InodeNumber, _ ref: ChunkRef?, new: [NewChunk] = [], after: Int64 = 0) throws(MetaError) -> FileAttributes {
        var c = FileCommit(ino: ino, chunks: [(ChunkIndex(0), ref)], newChunks: new, size: ref == nil ? 0 : 100_000, mtime: .now(), ctime: .now())
        c.storedAfterSweep = after
        return try m.commit(c)
    }

    /// One batch, with no backups and grace `grace`.
    func sweep(_ m: PostgresMetaStore, grace: Double = 0, named: Set<String> = [], pause: () -> Void = {}) throws -> SharedChunkSweep? {
        try m.sweepUnreferencedChunks(grace: grace, limit: 100, after: nil, backupSettled: { $0 == 0 }, named: { key in pause(); return named.contains(key) })
    }

    /// `sweep` until a batch finds eligible rows (at most 10 s): a row marked while a write
    /// transaction of any database of the server ran (the tests run in parallel) waits for it.
    func sweepEventually(_ m: PostgresMetaStore, named: Set<String> = [], pause: () -> Void = {}) throws -> SharedChunkSweep {
        let deadline = Date().addingTimeInterval(10)
        while true {
            let batch = try #require(try sweep(m, named: named, pause: pause))
            if batch.examined > 0 || Date() > deadline { return batch }
            Thread.sleep(forTimeInterval: 0.05)
        }
    }

    @Test func unreferencedChunksAreMarkedSweptAfterTheGraceAndUnmarkedWhenReferencedAgain() throws {
        let m = try makePostgresStores()[0]
        let f = try m.create(parent: .root, name: n("f"), file, now: .now())
        let g = try m.create(parent: .root, name: n("g"), file, now: .now())
        let a = chunk("a"), b = chunk("b")
        try commit(m, f.ino, a.ref, new: [a.new])
        try commit(m, g.ino, b.ref, new: [b.new])
        #expect(try m.markUnreferencedChunks()?.marked == 0)
        try commit(m, f.ino, nil)   // a: unreferenced
        try commit(m, g.ino, nil)   // b: unreferenced
        #expect(try m.markUnreferencedChunks()?.marked == 2)
        // Within the grace: nothing goes.
        #expect(try sweep(m, grace: 3600)?.chunks == 0)
        // b referenced again: its mark goes, and it stays however old the mark was.
        try commit(m, g.ino, b.ref)
        #expect(try m.markUnreferencedChunks()?.cleared == 1)
        let swept = try sweepEventually(m)
        #expect(swept.chunks == 1 && swept.objects.map(\.key) == [a.hash.objectKey])
        #expect(try m.chunkInfo(a.hash) == nil && m.chunkInfo(b.hash) != nil)
        // Pending until the objects are gone.
        #expect(try m.pendingSweptObjects(limit: 10).map(\.key) == [a.hash.objectKey])
        try m.finishSweep(seq: swept.seq, keys: [a.hash.objectKey])
        #expect(try m.pendingSweptObjects(limit: 10).isEmpty)
    }

    /// A pack goes only with all its chunks; an object a retained backup names stays.
    @Test func aPackGoesWholeAndBackupsKeepTheirObjects() throws {
        let m = try makePostgresStores()[0]
        let pack = hash("pack")
        let f = try m.create(parent: .root, name: n("f"), file, now: .now())
        let g = try m.create(parent: .root, name: n("g"), file, now: .now())
        let members = ["p1", "p2"].enumerated().map { i, s in
            NewChunk(hash: hash(s), length: 10, state: .stored, inlineData: nil, location: .packed(pack: pack, offset: UInt64(i * 10), length: 10))
        }
        try commit(m, f.ino, ChunkRef(index: ChunkIndex(0), hash: members[0].hash, length: 10), new: members)
        try commit(m, g.ino, ChunkRef(index: ChunkIndex(0), hash: members[1].hash, length: 10))
        try commit(m, f.ino, nil)
        _ = try m.markUnreferencedChunks()
        #expect(try sweep(m)?.chunks == 0)   // p2 is still referenced
        try commit(m, g.ino, nil)
        _ = try m.markUnreferencedChunks()
        let kept = try sweepEventually(m, named: [pack.packKey])
        #expect(kept.chunks == 0 && kept.keptForBackups == 2)
        let swept = try sweepEventually(m)
        #expect(swept.chunks == 2 && swept.objects.map(\.key) == [pack.packKey])
    }

    /// A backup claimed and not complete yet may hold the rows: no batch until it is.
    @Test func aBackupInProgressHoldsTheSweep() throws {
        let m = try makePostgresStores()[0]
        #expect(try m.claimBackup(interval: 1, now: 42))
        let waiting = try m.sweepUnreferencedChunks(grace: 0, limit: 10, after: nil, backupSettled: { $0 != 42 }, named: { _ in false })
        #expect(waiting?.waitingForBackup == true)
    }

    /// Host B deduplicated against a row the sweep of host A has locked: B's commit waits for
    /// A's transaction, then finds the row gone and says so (nothing committed); stored again
    /// after the deletion is done, B's commit goes through.
    @Test func aCommitReferencingARowBeingSweptWaitsThenStoresAgain() throws {
        let hosts = try makePostgresStores(hosts: 2)
        let (a, b) = (hosts[0], hosts[1])
        let f = try a.create(parent: .root, name: n("f"), file, now: .now())
        let g = try a.create(parent: .root, name: n("g"), file, now: .now())
        let x = chunk("x")
        try commit(a, f.ino, x.ref, new: [x.new])
        try commit(a, f.ino, nil)
        _ = try a.markUnreferencedChunks()
        #expect(try b.chunkInfo(x.hash) != nil)   // B finds the row: no upload

        let outcome = Mutex<Result<FileAttributes, MetaError>?>(nil)
        let started = Mutex(false)
        let swept = try sweepEventually(a, pause: {
            // Inside A's transaction, the rows locked: B commits a reference now.
            guard !started.withLock({ let s = $0; $0 = true; return s }) else { return }
            Thread.detachNewThread {
                let result = Result { () throws(MetaError) in try commit(b, g.ino, x.ref) }
                outcome.withLock { $0 = result }
            }
            Thread.sleep(forTimeInterval: 1)
            #expect(outcome.withLock { $0 } == nil, "B must wait for the sweep's row lock")
        })
        #expect(swept.chunks == 1)
        var result: Result<FileAttributes, MetaError>?
        for _ in 0..<100 where result == nil { Thread.sleep(forTimeInterval: 0.05); result = outcome.withLock { $0 } }
        guard case .failure(.sweptChunks(let through, let pending))? = result else { Issue.record("B: \(String(describing: result))"); return }
        #expect(pending && through < swept.seq)   // the tombstone is pending: not covered
        // Stored again before the objects are deleted is not enough…
        #expect(throws: MetaError.sweptChunks(through: through, pending: true)) { try commit(b, g.ino, x.ref, new: [x.new], after: through) }
        try a.finishSweep(seq: swept.seq, keys: swept.objects.map(\.key))
        // …after it is: the row is back, the tombstone gone.
        do { try commit(b, g.ino, x.ref, new: [x.new], after: through) } catch {
            guard case .sweptChunks(let done, false) = error else { throw error }
            #expect(done >= swept.seq)
            try commit(b, g.ino, x.ref, new: [x.new], after: done)
        }
        #expect(try a.chunkInfo(x.hash)?.refcount == 1)
        let c = try PostgresConnection(conninfo: try hostsURL(a))
        #expect(try c.queryOne("SELECT count(*) FROM swept_objects") { $0.int(0) } == 0)
    }

    /// A host that remembers having stored an object (its placements) the sweep deleted since
    /// cannot commit a new row naming it: it must store it again.
    @Test func aNewRowNamingASweptObjectNeedsItStoredAgain() throws {
        let m = try makePostgresStores()[0]
        let f = try m.create(parent: .root, name: n("f"), file, now: .now())
        let x = chunk("x")
        try commit(m, f.ino, x.ref, new: [x.new])
        try commit(m, f.ino, nil)
        _ = try m.markUnreferencedChunks()
        let swept = try sweepEventually(m)
        #expect(swept.chunks == 1)
        try m.finishSweep(seq: swept.seq, keys: swept.objects.map(\.key))
        #expect(throws: MetaError.sweptChunks(through: swept.seq, pending: false)) { try commit(m, f.ino, x.ref, new: [x.new]) }
        try commit(m, f.ino, x.ref, new: [x.new], after: swept.seq)
        #expect(try m.chunkInfo(x.hash)?.refcount == 1)
    }

    /// A row inserted while a commit runs is not swept before that commit ended (its snapshot
    /// could not see what the sweep did to it).
    @Test func aRowIsNotSweptWhileACommitOlderThanItsMarkRuns() throws {
        let m = try makePostgresStores()[0]
        let url = try hostsURL(m)
        let f = try m.create(parent: .root, name: n("f"), file, now: .now())
        let x = chunk("x")
        let old = try PostgresConnection(conninfo: url)
        _ = try old.executeReturningText(PostgresMetaStore.begin())   // a transaction with an id, left open
        try commit(m, f.ino, x.ref, new: [x.new])
        try commit(m, f.ino, nil)
        _ = try m.markUnreferencedChunks()
        #expect(try sweep(m)?.chunks == 0)
        try old.execute("COMMIT")
        #expect(try sweepEventually(m).chunks == 1)
    }

    func hostsURL(_ m: PostgresMetaStore) throws -> String { m.pool.conninfo }
}
