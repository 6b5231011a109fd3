import Foundation
import Logging
import MossaicCore
import MossaicMeta
import MossaicObjectStore
import MossaicReplication
import MossaicTestSupport
import Synchronization
import Testing

let quiet = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
let fsUUID = "00000000-0000-0000-0000-00000000f00d"

func name(_ s: String) -> [UInt8] { Array(s.utf8) }
let regular = NewNode(kind: .regular, permissions: 0o644, uid: 1, gid: 2)

/// A directory store and a metadata database in a fresh temp directory.
struct Rig {
    let root: String
    let base: DirectoryObjectStore
    let metadata: SQLiteMetaStore

    init(changeRecordingLimit: Int64 = SQLiteMetaStore.changeRecordingMemoryLimit) throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("repl-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        base = try DirectoryObjectStore(root: root + "/store", create: true)
        metadata = try SQLiteMetaStore(path: root + "/meta.db", changeRecordingLimit: changeRecordingLimit)
        try metadata.createRootIfMissing(permissions: 0o755, uid: 0, gid: 0, now: .now())
        try metadata.setSetting("fs_uuid", fsUUID)
    }

    func writer(_ store: (any ObjectStore)? = nil, retention: SnapshotRetention = .init(keep: 30),
                clock: @escaping @Sendable () -> Timestamp = { .now() }, lease: WriterLease? = nil) throws -> SnapshotWriter {
        let s = store ?? base
        let catalog = SnapshotCatalog(store: base)  // the mount-time read, without faults
        let head = try catalog.head()
        let manifest = try head.map { try catalog.manifest($0.pointer.snapshot) }
        return SnapshotWriter(store: s, metadata: metadata, head: head, headManifest: manifest,
                              configuration: .init(fsUUID: fsUUID, workPath: root + "/work.db", retention: retention, host: "test",
                                                   clock: clock),
                              lease: lease, logger: quiet)
    }

    @discardableResult
    func addFile(_ n: String) throws -> FileAttributes {
        try metadata.create(parent: .root, name: name(n), regular, now: .now())
    }

    func names(_ m: SQLiteMetaStore) throws -> [String] {
        try m.readDirectory(.root).entries.map { String(decoding: $0.name, as: UTF8.self) }
    }

    /// Every manifest's pieces exist; HEAD names an existing manifest.
    func checkStoreIsConsistent() throws {
        let catalog = SnapshotCatalog(store: base)
        for m in try catalog.manifests() {
            for hash in m.pieceHashes {
                #expect(try base.head(MetadataLayout.chunk(hash)) != nil, "snapshot \(m.id) lists a missing piece")
            }
        }
        if let head = try catalog.head() {
            #expect(throws: Never.self) { try catalog.manifest(head.pointer.snapshot) }
        }
    }

    func pieceKeys() throws -> Set<String> { Set(try base.list(prefix: MetadataLayout.chunksPrefix).map(\.key)) }
}

@Suite struct SnapshotWriterTests {
    @Test func snapshotRestoresAndIsCleanAfterwards() throws {
        let rig = try Rig()
        try rig.addFile("a")
        let f = try rig.addFile("b")
        try rig.metadata.setXattr(f.ino, name: name("user.k"), value: name("v"), mode: .any, now: .now())
        let writer = try rig.writer()
        guard case .published(let manifest, let stats) = try writer.snapshot() else { Issue.record("nothing published"); return }
        #expect(manifest.generation == 1 && manifest.parent == nil && manifest.fsUUID == fsUUID)
        #expect(manifest.files == 2 && stats.piecesUploaded == stats.pieces)
        #expect(try SnapshotCatalog(store: rig.base).head()?.pointer.snapshot == manifest.id)
        // The live database now knows it is at that snapshot, and clean.
        let state = try rig.metadata.replicationState()
        #expect(state.snapshotID == manifest.id && state.generation == 1 && !state.isDirty && state.pending == nil)
        #expect(try writer.snapshot() == .unchanged(manifest.id))

        // Restore elsewhere: same tree, and the copy says "generation 1, clean".
        let restored = rig.root + "/restored.db"
        try SnapshotDownloader.download(manifest, from: rig.base, to: restored)
        let copy = try SQLiteMetaStore(path: restored)
        #expect(try rig.names(copy) == ["a", "b"])
        #expect(try copy.xattr(f.ino, name: name("user.k")) == name("v"))
        let copyState = try copy.replicationState()
        #expect(copyState.snapshotID == manifest.id && !copyState.isDirty)
        try rig.checkStoreIsConsistent()
    }

    @Test func unchangedRegionsAreNotUploadedAgain() throws {
        let rig = try Rig()
        // A database of several MiB: 3000 files with a 1 KiB xattr each.
        let value = [UInt8](repeating: 0x61, count: 1024)
        for i in 0..<3000 {
            let f = try rig.addFile("file-\(i)")
            try rig.metadata.setXattr(f.ino, name: name("user.pad"), value: value, mode: .any, now: .now())
        }
        let writer = try rig.writer()
        guard case .published(let first, let full) = try writer.snapshot() else { Issue.record("nothing published"); return }
        #expect(full.pieces >= 4 && full.piecesUploaded == full.pieces)
        try rig.addFile("one-more")
        guard case .published(let second, let delta) = try writer.snapshot() else { Issue.record("nothing published"); return }
        #expect(second.parent == first.id && second.generation == 2)
        // The second snapshot ships the rows that changed, not the database's pieces.
        #expect(delta.incremental && second.chunks == first.chunks && second.changesets.count == 1)
        #expect(delta.bytesUploaded < 16 << 10, "a one-file change shipped \(delta.bytesUploaded) bytes")
        #expect(try writer.snapshot() == .unchanged(second.id))
    }

    @Test func readOnlyActivityDoesNotMakeTheDatabaseDirty() throws {
        let rig = try Rig()
        let f = try rig.addFile("a")
        let writer = try rig.writer()
        _ = try writer.snapshot()
        // A no-op write transaction (purging an inode that is no orphan) and a sync change nothing.
        try rig.metadata.purgeOrphan(f.ino)
        try rig.metadata.sync()
        _ = try rig.metadata.lookup(parent: .root, name: name("a"))
        #expect(try !rig.metadata.replicationState().isDirty)
        guard case .unchanged = try writer.snapshot() else { Issue.record("a snapshot without changes"); return }
        _ = try rig.metadata.unlink(parent: .root, name: name("a"), now: .now())
        #expect(try rig.metadata.replicationState().isDirty)
    }

    @Test func aSecondWriterLosesTheHeadSwap() throws {
        let rig = try Rig()
        try rig.addFile("a")
        let first = try rig.writer()
        _ = try first.snapshot()
        let stale = try rig.writer()  // read HEAD now …
        try rig.addFile("b")
        _ = try first.snapshot()       // … then HEAD moves
        try rig.addFile("c")
        #expect(throws: ReplicationError.self) { try stale.snapshot() }
        do { _ = try stale.snapshot() } catch {
            guard case .headMoved = error else { Issue.record("expected headMoved, got \(error)"); return }
        }
        #expect(try rig.metadata.replicationState().pending == nil)
        try rig.checkStoreIsConsistent()
    }

    /// A store that applies HEAD writes but reports them failed (the response was lost).
    static func lostHeadResponse(_ base: any ObjectStore) -> any ObjectStore {
        PutInterceptingObjectStore(base) { key, data, condition, base throws(ObjectStoreError) in
            let etag = try base.put(key, data, condition: condition)
            if key == MetadataLayout.head { throw .failed("connection reset") }
            return etag
        }
    }

    @Test func aHeadSwapWithAnUnknownOutcomeIsResolved() throws {
        let rig = try Rig()
        try rig.addFile("a")
        _ = try rig.writer().snapshot()
        try rig.addFile("b")
        // The swap happens, its answer is lost: the database keeps a pending record …
        #expect(throws: ReplicationError.self) { try rig.writer(Self.lostHeadResponse(rig.base)).snapshot() }
        let state = try rig.metadata.replicationState()
        let head = try #require(try SnapshotCatalog(store: rig.base).head())
        #expect(state.pending?.id == head.pointer.snapshot && state.generation == 1)
        // … which the mount-time decision promotes: the local database is at HEAD, clean.
        let decision = MountReconciliation.decide(local: state, head: head.pointer, headManifest: nil, discardLocal: false, cacheDirectory: "/c")
        #expect(decision == .useLocal(publishPending: state.pending, snapshotFirst: false, warning: nil))
        // … and so does the next snapshot of a running writer.
        let writer = try rig.writer()
        #expect(try writer.snapshot() == .unchanged(head.pointer.snapshot))
        #expect(try rig.metadata.replicationState().pending == nil)
    }

    @Test func faultsNeverLeaveASnapshotWithMissingPieces() throws {
        let rig = try Rig()
        let value = [UInt8](repeating: 0x62, count: 2048)
        for seed in UInt64(1)...4 {
            let faulty = FaultInjectingObjectStore(rig.base, configuration: .init(failureRate: 0.15, timing: .either, seed: seed))
            let writer = try rig.writer(faulty, retention: .init(keep: 3))
            var published = 0
            for i in 0..<12 {
                let f = try rig.addFile("s\(seed)-\(i)")
                for j in 0..<40 {  // grow the database so that snapshots have several pieces
                    try rig.metadata.setXattr(f.ino, name: name("user.x\(j)"), value: value, mode: .any, now: .now())
                }
                do {
                    if case .published = try writer.snapshot() { published += 1 }
                } catch {
                    if case .headMoved = error { Issue.record("a single writer saw HEAD move: \(error)") }
                }
                try rig.checkStoreIsConsistent()
            }
            #expect(faulty.injectedFaults > 0)
            #expect(published > 0)
        }
        // Without faults, everything is published and restores.
        let writer = try rig.writer(retention: .init(keep: 3))
        _ = try writer.snapshot()
        try rig.checkStoreIsConsistent()
        let head = try #require(try SnapshotCatalog(store: rig.base).head())
        let restored = rig.root + "/restored.db"
        try SnapshotDownloader.download(try SnapshotCatalog(store: rig.base).manifest(head.pointer.snapshot), from: rig.base, to: restored)
        #expect(try rig.names(SQLiteMetaStore(path: restored)) == rig.names(rig.metadata))
        // Row for row: changesets of failed attempts shipped with later ones, none lost.
        #expect(try IncrementalSnapshotTests.rows(restored) == IncrementalSnapshotTests.rows(rig.root + "/meta.db"))
        // Leftovers of failed attempts are swept; nothing a manifest lists is.
        try writer.sweepUnreferencedPieces()
        let listed = try SnapshotCatalog(store: rig.base).manifests().reduce(into: Set<String>()) { set, m in
            for h in m.pieceHashes { set.insert(MetadataLayout.chunk(h)) }
        }
        #expect(try rig.pieceKeys() == listed)
    }
}

@Suite struct RetentionTests {
    @Test func pruningKeepsTheRetainedChainAndEveryPieceItUses() throws {
        let rig = try Rig()
        let value = [UInt8](repeating: 0x63, count: 4096)
        let writer = try rig.writer(retention: .init(keep: 2))
        var ids: [String] = []
        for i in 0..<5 {
            let f = try rig.addFile("f\(i)")
            for j in 0..<200 { try rig.metadata.setXattr(f.ino, name: name("user.\(j)"), value: value, mode: .any, now: .now()) }
            guard case .published(let m, _) = try writer.snapshot() else { Issue.record("nothing published"); return }
            ids.append(m.id)
        }
        let catalog = SnapshotCatalog(store: rig.base)
        #expect(try catalog.snapshotIDs() == Array(ids.suffix(2)))
        let retained = try SnapshotRetention(keep: 2).retained(in: catalog)
        #expect(retained.map(\.id) == ids.suffix(2).reversed())
        // Exactly the pieces of the retained snapshots remain: none missing, none leaked.
        let needed = retained.reduce(into: Set<String>()) { set, m in for h in m.pieceHashes { set.insert(MetadataLayout.chunk(h)) } }
        #expect(try rig.pieceKeys() == needed)
        // And the oldest retained one still restores.
        try SnapshotDownloader.download(retained[1], from: rig.base, to: rig.root + "/old.db")
        #expect(try rig.names(SQLiteMetaStore(path: rig.root + "/old.db")).count == 4)
    }

    @Test func fileChunksOfEveryRetainedSnapshotAreReferenced() throws {
        let rig = try Rig()
        let writer = try rig.writer(retention: .init(keep: 2))
        // A file with one stored chunk X, its own object, and one Y in a pack …
        let f = try rig.addFile("big")
        let x = ChunkHash.of(name("chunk X")), y = ChunkHash.of(name("chunk Y"))
        let inPack = ChunkLocation.packed(pack: ChunkHash.of(name("pack")), offset: 1 << 20, length: 1 << 20)
        _ = try rig.metadata.commit(FileCommit(ino: f.ino, chunks: [(ChunkIndex(0), ChunkRef(index: ChunkIndex(0), hash: x, length: 1 << 20)),
                                                                    (ChunkIndex(1), ChunkRef(index: ChunkIndex(1), hash: y, length: 1 << 20))],
                                               newChunks: [NewChunk(hash: x, length: 1 << 20, state: .stored, inlineData: nil),
                                                           NewChunk(hash: y, length: 1 << 20, state: .stored, inlineData: nil, location: inPack)],
                                               size: 2 << 20, mtime: .now(), ctime: .now()))
        guard case .published(let withX, _) = try writer.snapshot() else { Issue.record("nothing published"); return }
        // … removed: its refcount drops to 0 after the first snapshot was taken.
        _ = try rig.metadata.unlink(parent: .root, name: name("big"), now: .now())
        try rig.metadata.purgeOrphan(f.ino)
        #expect(try rig.metadata.chunkInfo(x)?.refcount == 0)
        #expect(try !rig.metadata.referencedStoredChunks().contains(x))
        guard case .published(let withoutX, _) = try writer.snapshot() else { Issue.record("nothing published"); return }

        let catalog = SnapshotCatalog(store: rig.base)
        let both = try SnapshotRetention(keep: 2).retained(in: catalog)
        #expect(both.map(\.id) == [withoutX.id, withX.id])
        // With the location the snapshot gives each: gc keeps the object holding the bytes.
        #expect(try catalog.referencedFileChunks(of: both, workDirectory: rig.root)
                == [LocatedChunk(hash: x, location: .object), LocatedChunk(hash: y, location: inPack)])
        #expect(try catalog.referencedFileChunks(of: SnapshotRetention(keep: 1).retained(in: catalog), workDirectory: rig.root).isEmpty)
    }
}

@Suite struct ReconciliationTests {
    func state(generation: Int64, id: String?, dirty: Bool, pending: PendingSnapshot? = nil) -> ReplicationState {
        ReplicationState(changeSequence: dirty ? 8 : 7, generation: generation, snapshotID: id, snapshotChangeSequence: 7, pending: pending)
    }
    let h5 = HeadPointer(snapshot: "0000000005-aaaaaaaa", generation: 5)

    @Test func decisions() {
        func decide(_ local: ReplicationState?, _ head: HeadPointer?, discard: Bool = false) -> MountReconciliation.Decision {
            MountReconciliation.decide(local: local, head: head, headManifest: nil, discardLocal: discard, cacheDirectory: "/c")
        }
        #expect(decide(nil, nil) == .fresh)
        #expect(decide(nil, h5) == .restore)
        #expect(decide(state(generation: 5, id: h5.snapshot, dirty: false), h5) == .useLocal(publishPending: nil, snapshotFirst: false, warning: nil))
        // Crash before the last snapshot, same machine: local wins and is published first.
        #expect(decide(state(generation: 5, id: h5.snapshot, dirty: true), h5) == .useLocal(publishPending: nil, snapshotFirst: true, warning: nil))
        // Another machine wrote since: refused, or replaced on request.
        guard case .refuse(let why) = decide(state(generation: 4, id: "0000000004-bbbbbbbb", dirty: true), h5) else {
            Issue.record("older local metadata was not refused"); return
        }
        #expect(why.contains("discard_local") && why.contains("older") && !why.contains("\n"))
        #expect(decide(state(generation: 4, id: "0000000004-bbbbbbbb", dirty: false), h5, discard: true) == .replaceLocal)
        // Diverged (same generation, another snapshot): refused too.
        guard case .refuse = decide(state(generation: 5, id: "0000000005-cccccccc", dirty: false), h5) else {
            Issue.record("diverged local metadata was not refused"); return
        }
        // A pending snapshot that HEAD names was published.
        let p = PendingSnapshot(generation: 5, id: h5.snapshot, changeSequence: 8)
        #expect(decide(state(generation: 4, id: "0000000004-bbbbbbbb", dirty: true, pending: p), h5)
                == .useLocal(publishPending: p, snapshotFirst: false, warning: nil))
        // HEAD older than the local metadata (rolled back), or gone: local wins.
        guard case .useLocal(nil, true, .some) = decide(state(generation: 6, id: "0000000006-dddddddd", dirty: false), h5) else {
            Issue.record("newer local metadata did not win"); return
        }
        guard case .useLocal(nil, true, .some) = decide(state(generation: 6, id: "0000000006-dddddddd", dirty: false), nil) else {
            Issue.record("local metadata without HEAD did not win"); return
        }
        #expect(decide(state(generation: 0, id: nil, dirty: true), nil) == .useLocal(publishPending: nil, snapshotFirst: true, warning: nil))
    }
}

@Suite struct LeaseTests {
    let here = HostIdentity(hostname: "a", machineID: "m-a", bootID: "boot-1")
    let there = HostIdentity(hostname: "b", machineID: "m-b", bootID: "boot-9")

    /// Seconds a forced takeover waited (`WriterLease.acquire`'s sleep, not slept here).
    final class Waited: Sendable {
        let seconds = Mutex(0.0)
    }

    func acquire(_ store: any ObjectStore, _ host: HostIdentity, pid: Int32 = getpid(), cache: String = "/c1",
                 force: Bool = false, at: Int64 = 0, waited: Waited = Waited()) throws(ReplicationError) -> WriterLease {
        let now = Timestamp(nanoseconds: 1_800_000_000_000_000_000 + at * 1_000_000_000)
        return try WriterLease.acquire(store: store, identity: host, pid: pid, cacheDirectory: cache, duration: 60,
                                       force: force, now: { now }, sleep: { s in waited.seconds.withLock { $0 += s } }, logger: quiet)
    }

    @Test func secondWriterIsRefusedWithTheHolderNamed() throws {
        let rig = try Rig()
        let first = try acquire(rig.base, here)
        do {
            _ = try acquire(rig.base, there, at: 30)
            Issue.record("a second writer got the lease")
        } catch {
            guard case .leaseHeld = error else { Issue.record("\(error)"); return }
            let text = error.description
            #expect(text.contains("host a") && text.contains("pid \(getpid())") && text.contains("cache_dir /c1") && text.contains("expires"))
            #expect(!text.contains("\n"))
        }
        // The holder renews and releases; then anyone gets it.
        try first.renew()
        try first.release()
        #expect(try rig.base.head(MetadataLayout.lease) == nil)
        _ = try acquire(rig.base, there)
    }

    @Test func takeovers() throws {
        let rig = try Rig()
        let dead: Int32 = 2_147_483_000  // above pid_max: no such process
        // Same host and cache_dir: the caller holds that cache_dir's lock, so the holder is gone.
        let old = try acquire(rig.base, here, cache: "/c1")
        let same = try acquire(rig.base, here, cache: "/c1", at: 1)
        #expect(throws: ReplicationError.self) { try old.renew() }
        #expect(old.lostReason != nil)
        // Same host, another cache_dir, live pid: refused; dead pid or another boot: taken over.
        #expect(throws: ReplicationError.self) { try acquire(rig.base, here, cache: "/c2", at: 2) }
        _ = same
        try rig.base.delete(MetadataLayout.lease)
        _ = try acquire(rig.base, here, pid: dead, cache: "/c1", at: 3)
        _ = try acquire(rig.base, here, cache: "/c2", at: 4)
        // Forced on the holder's own host while its process runs: refused.
        do {
            _ = try acquire(rig.base, here, cache: "/c8", force: true, at: 5)
            Issue.record("force_lease took the lease of a live process on this machine")
        } catch {
            #expect(error.description.contains("still runs on this machine"))
        }
        var rebooted = here; rebooted.bootID = "boot-2"
        _ = try acquire(rig.base, rebooted, cache: "/c3", at: 5)
        // Another host: refused until the lease expires, or with force.
        #expect(throws: ReplicationError.self) { try acquire(rig.base, there, at: 30) }
        _ = try acquire(rig.base, there, at: 66)
        // Forced from another host: it waits until the holder's lease has run out (so the
        // holder, if alive, fenced itself), renewing its own meanwhile.
        let waited = Waited()
        _ = try acquire(rig.base, here, cache: "/c9", force: true, at: 70, waited: waited)
        #expect(waited.seconds.withLock { $0 } == 56)
    }

    @Test func aWriterThatCannotRenewFencesItselfBeforeTheLeaseExpires() throws {
        let rig = try Rig()
        let lease = try acquire(rig.base, here)
        let start = Timestamp.monotonicNow()
        func at(_ seconds: Double) -> Timestamp { Timestamp(nanoseconds: start.nanoseconds + Int64(seconds * 1e9)) }
        #expect(lease.fenceReason(now: at(0)) == nil)
        #expect(lease.fenceReason(now: at(49)) == nil)
        // 5/6 of the 60 s lease after the last renewal began: no more acknowledgements, 10 s
        // before another machine may take the lease over.
        let why = lease.fenceReason(now: at(50.5))
        #expect(why?.contains("could not be renewed") == true)
        // A renewal counts from when it began; one that finds the lease taken over is final.
        let renewed = Timestamp.monotonicNow()
        try lease.renew()
        #expect(lease.fenceReason(now: Timestamp(nanoseconds: renewed.nanoseconds + 49_900_000_000)) == nil)
        _ = try acquire(rig.base, there, force: true, at: 1)
        #expect(throws: ReplicationError.self) { try lease.renew() }
        #expect(lease.fenceReason()?.contains("lost") == true)
    }

    @Test func aLostLeaseStopsTheWriter() throws {
        let rig = try Rig()
        let lease = try acquire(rig.base, here)
        try rig.addFile("a")
        let writer = try rig.writer(lease: lease)
        _ = try writer.snapshot()
        _ = try acquire(rig.base, there, force: true, at: 1)
        #expect(throws: ReplicationError.self) { try lease.renew() }
        try rig.addFile("b")
        do { _ = try writer.snapshot(); Issue.record("a writer without lease published") } catch {
            guard case .leaseLost = error else { Issue.record("\(error)"); return }
        }
        // Its release leaves the new holder's lease alone.
        try lease.release()
        #expect(try rig.base.head(MetadataLayout.lease) != nil)
    }
}

@Suite struct FollowerTests {
    @Test func aReadOnlyStoreFollowsHead() throws {
        let rig = try Rig()
        try rig.addFile("a")
        let writer = try rig.writer()
        guard case .published(let first, _) = try writer.snapshot() else { Issue.record("nothing published"); return }
        let dir = rig.root + "/snapshots"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let path = dir + "/" + first.id + ".db"
        try SnapshotDownloader.download(first, from: rig.base, to: path)
        try SQLiteMetaStore.prepareSnapshotFile(path)
        let ro = try SQLiteMetaStore(path: path, readOnly: true)
        let follower = HeadFollower(store: rig.base, metadata: ro, directory: dir,
                                    current: .init(manifest: first, path: path, headETag: try SnapshotCatalog(store: rig.base).head()?.etag),
                                    fsUUID: fsUUID, interval: 1, logger: quiet)
        #expect(try follower.poll() == nil)
        try rig.addFile("b")
        guard case .published(let second, _) = try writer.snapshot() else { Issue.record("nothing published"); return }
        #expect(try follower.poll() == second.id)
        #expect(try rig.names(ro) == ["a", "b"])
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == [second.id + ".db"])
        #expect(throws: MetaError.self) { try ro.setSetting("x", "y") }
    }

    @Test func resolveByGeneration() throws {
        let rig = try Rig()
        try rig.addFile("a")
        let writer = try rig.writer()
        guard case .published(let first, _) = try writer.snapshot() else { Issue.record("nothing published"); return }
        let catalog = SnapshotCatalog(store: rig.base)
        #expect(try catalog.resolve("1").id == first.id)
        #expect(try catalog.resolve(first.id).id == first.id)
        #expect(throws: ReplicationError.noSuchSnapshot("7")) { try catalog.resolve("7") }
    }
}
