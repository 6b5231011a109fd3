import Foundation
import MossaicCore
import MossaicMeta
import MossaicObjectStore
import MossaicReplication
import MossaicTestSupport
import Testing

/// Retention by count, age and size (`SnapshotRetention`, issue 20): the chain the rules keep,
/// and the writer pruning exactly the rest, pieces and all.
@Suite struct SnapshotRetentionTests {
    static let day = 86_400.0

    /// Adds a file (so there is something to snapshot) and publishes a snapshot.
    static func publish(_ rig: Rig, _ writer: SnapshotWriter, _ file: String) throws -> SnapshotManifest {
        try rig.addFile(file)
        guard case .published(let m, _) = try writer.snapshot() else { throw ReplicationError.local("nothing published") }
        return m
    }

    /// The store holds exactly the manifests `expected` and the pieces they list; the oldest of
    /// them restores.
    static func expectStoreHolds(_ rig: Rig, _ expected: [SnapshotManifest]) throws {
        let catalog = SnapshotCatalog(store: rig.base)
        #expect(try catalog.snapshotIDs() == expected.map(\.id).sorted())
        let needed = expected.reduce(into: Set<String>()) { set, m in for h in m.pieceHashes { set.insert(MetadataLayout.chunk(h)) } }
        #expect(try rig.pieceKeys() == needed)
        let oldest = try #require(expected.min { $0.generation < $1.generation })
        let path = rig.root + "/oldest.db"
        SQLiteMetaStore.removeDatabaseFiles(path)
        try SnapshotDownloader.download(oldest, from: rig.base, to: path)
        #expect(try SQLiteMetaStore(path: path).replicationState().snapshotID == oldest.id)
    }

    @Test func snapshotsOlderThanTheAgeArePrunedAtTheNextSnapshot() throws {
        let rig = try Rig()
        let clock = TestClock()
        let writer = try rig.writer(retention: .init(keep: 30, maxAge: 3 * Self.day), clock: clock.reading)
        var taken: [SnapshotManifest] = []
        for i in 0..<6 {
            if i > 0 { clock.advance(days: 1) }
            taken.append(try Self.publish(rig, writer, "day-\(i)"))
        }
        #expect(taken.map(\.createdNanoseconds) == taken.map(\.createdNanoseconds).sorted())
        // Day 5: days 4, 3 and 2 (exactly 3 days old) stay, days 1 and 0 went.
        try Self.expectStoreHolds(rig, Array(taken[2...]))

        // Nothing changes for a month: no snapshot, so nothing is pruned meanwhile …
        clock.advance(days: 30)
        #expect(try writer.snapshot() == .unchanged(taken[5].id))
        try Self.expectStoreHolds(rig, Array(taken[2...]))
        // … and the next snapshot is the only one young enough; the old HEAD goes too.
        let next = try Self.publish(rig, writer, "later")
        try Self.expectStoreHolds(rig, [next])
    }

    /// A chain with two bases: s1 (full) ← s2 (a changeset on s1's base) ← s3 (a full copy:
    /// the database changed while no writer recorded it) ← s4 (a changeset on s3's base).
    /// Returns them oldest first, and the bytes of the pieces s2 holds that s4 does not (s1
    /// holds none beyond s2's, s3 none beyond s4's).
    static func twoBases(_ rig: Rig, clock: TestClock) throws -> (chain: [SnapshotManifest], olderBaseBytes: Int64) {
        let value = [UInt8](repeating: 0x71, count: 2048)
        for i in 0..<100 {
            let f = try rig.addFile("pad-\(i)")
            try rig.metadata.setXattr(f.ino, name: name("user.pad"), value: value, mode: .any, now: .now())
        }
        let first = try rig.writer(retention: .everything, clock: clock.reading)
        let s1 = try publish(rig, first, "one")
        let s2 = try publish(rig, first, "two")
        try rig.addFile("unrecorded")
        let second = try rig.writer(retention: .everything, clock: clock.reading)
        let s3 = try publish(rig, second, "three")
        let s4 = try publish(rig, second, "four")
        #expect(s2.chunks == s1.chunks && s2.changesets.count == 1)
        #expect(s3.changesets.isEmpty && Set(s3.chunks.map(\.sha256)).isDisjoint(with: s1.chunks.map(\.sha256)))
        #expect(s4.chunks == s3.chunks && s4.changesets.count == 1)
        let headPieces = s4.pieceHashes
        var olderBase: Int64 = 0
        var seen: Set<ChunkHash> = []
        for piece in s2.chunks + s2.changesets where !headPieces.contains(piece.hash!) && seen.insert(piece.hash!).inserted {
            olderBase += Int64(piece.size)
        }
        #expect(olderBase == s1.databaseBytes + s2.changesetBytes)
        return ([s1, s2, s3, s4], olderBase)
    }

    @Test func theSizeRuleCountsWhatHeadDoesNotHoldOnce() throws {
        let rig = try Rig()
        let clock = TestClock()
        let (chain, older) = try Self.twoBases(rig, clock: clock)
        let (s1, s2, s3, s4) = (chain[0], chain[1], chain[2], chain[3])
        let catalog = SnapshotCatalog(store: rig.base)
        func kept(_ r: SnapshotRetention) throws -> [String] { try r.retained(in: catalog, now: clock.now).map(\.id) }

        // s3 shares every piece with HEAD: free. s2 brings s1's base and its changeset; s1 then
        // nothing more.
        #expect(try kept(.init(keep: 30, maxSize: .bytes(0))) == [s4.id, s3.id])
        #expect(try kept(.init(keep: 30, maxSize: .bytes(Int(older) - 1))) == [s4.id, s3.id])
        #expect(try kept(.init(keep: 30, maxSize: .bytes(Int(older)))) == [s4.id, s3.id, s2.id, s1.id])

        // A percentage is of everything HEAD needs: its base and its changesets.
        let headBytes = s4.databaseBytes + s4.changesetBytes
        let percent = Int((older * 100 + headBytes - 1) / headBytes)  // the least that covers s2
        #expect(try kept(.init(keep: 30, maxSize: .percent(percent))) == [s4.id, s3.id, s2.id, s1.id])
        #expect(try kept(.init(keep: 30, maxSize: .percent(percent - 1))) == [s4.id, s3.id])
        // The defaults of a mount: 50 % of HEAD cannot hold an older base of about HEAD's size.
        #expect(try kept(SnapshotRetention(MountConfiguration())) == [s4.id, s3.id])
    }

    @Test func aSnapshotIsKeptOnlyIfEveryRuleKeepsItAndRetentionIsAPrefix() throws {
        let rig = try Rig()
        let clock = TestClock()
        let (chain, older) = try Self.twoBases(rig, clock: clock)
        let ids = chain.reversed().map(\.id)  // newest first
        let catalog = SnapshotCatalog(store: rig.base)
        func kept(_ r: SnapshotRetention, at now: Timestamp) throws -> [String] { try r.retained(in: catalog, now: now).map(\.id) }
        let enough = RetentionSize.bytes(Int(older))

        // Count and size: the smaller wins.
        #expect(try kept(.init(keep: 3, maxSize: enough), at: clock.now) == Array(ids.prefix(3)))
        #expect(try kept(.init(keep: 3, maxSize: .bytes(0)), at: clock.now) == Array(ids.prefix(2)))
        // Age and size: once every older snapshot is too old, only HEAD stays.
        let later = Timestamp(nanoseconds: clock.now.nanoseconds + Int64(2 * Self.day * 1e9))
        #expect(try kept(.init(keep: 30, maxAge: 3 * Self.day, maxSize: enough), at: later) == ids)
        #expect(try kept(.init(keep: 30, maxAge: Self.day, maxSize: enough), at: later) == [ids[0]])

        // A prefix: s2 is dropped by size, so s1 goes too although it costs nothing more and is
        // young enough.
        #expect(try kept(.init(keep: 30, maxAge: 3 * Self.day, maxSize: .bytes(Int(older) - 1)), at: clock.now) == Array(ids.prefix(2)))
    }

    @Test func headIsAlwaysKept() throws {
        let rig = try Rig()
        let clock = TestClock()
        let strict = SnapshotRetention(keep: 1, maxAge: 0, maxSize: .bytes(0))
        let writer = try rig.writer(retention: strict, clock: clock.reading)
        _ = try Self.publish(rig, writer, "a")
        let head = try Self.publish(rig, writer, "b")
        try Self.expectStoreHolds(rig, [head])
        // However old HEAD gets, and however small the bounds.
        let catalog = SnapshotCatalog(store: rig.base)
        let decade = Timestamp(nanoseconds: clock.now.nanoseconds + Int64(3650 * Self.day * 1e9))
        #expect(try strict.retained(in: catalog, now: decade).map(\.id) == [head.id])
        #expect(try SnapshotRetention(keep: 30, maxAge: 0, maxSize: .percent(0)).retained(in: catalog, now: decade).map(\.id) == [head.id])
    }

    @Test func theWriterPrunesWhatTheSizeRuleDrops() throws {
        let rig = try Rig()
        let clock = TestClock()
        let (chain, older) = try Self.twoBases(rig, clock: clock)
        // Bound large enough: a fifth snapshot (on s3's base) prunes nothing.
        let roomy = try rig.writer(retention: .init(keep: 30, maxSize: .bytes(Int(older))), clock: clock.reading)
        let s5 = try Self.publish(rig, roomy, "five")
        #expect(s5.chunks == chain[3].chunks)
        try Self.expectStoreHolds(rig, chain + [s5])
        // One byte less: s2 and with it s1 go, with s1's base and s2's changeset.
        let tight = try rig.writer(retention: .init(keep: 30, maxSize: .bytes(Int(older) - 1)), clock: clock.reading)
        let s6 = try Self.publish(rig, tight, "six")
        try Self.expectStoreHolds(rig, [chain[2], chain[3], s5, s6])
        try rig.checkStoreIsConsistent()
    }
}
