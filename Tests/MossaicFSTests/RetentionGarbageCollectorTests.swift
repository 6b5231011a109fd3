import Foundation
import MossaicCore
import MossaicFS
import MossaicMaintenance
import MossaicMeta
import MossaicObjectStore
import MossaicReplication
import MossaicTestSupport
import Testing

/// `gc` against snapshot retention by age and size (`SnapshotRetention`): a chunk stays while a
/// snapshot the mounts' retention keeps references it, and goes once retention pruned it.
@Suite struct RetentionGarbageCollectorTests {
    /// A mount's writer with `retention` publishes a snapshot of `metadata` at `clock`'s time.
    static func snapshot(_ rig: PackRig, _ metadata: SQLiteMetaStore, retention: SnapshotRetention,
                         clock: TestClock) throws -> SnapshotManifest {
        let catalog = SnapshotCatalog(store: rig.store)
        let head = try catalog.head()
        let writer = SnapshotWriter(
            store: rig.store, metadata: metadata, head: head, headManifest: try head.map { try catalog.manifest($0.pointer.snapshot) },
            configuration: .init(fsUUID: try Superblock.load(from: rig.store).uuid, workPath: rig.root + "/work.db",
                                 retention: retention, clock: clock.reading),
            lease: nil, logger: rig.logger)
        guard case .published(let manifest, _) = try writer.snapshot() else { throw ReplicationError.local("nothing published") }
        return manifest
    }

    @Test func chunksOfSnapshotsTheAgeRuleRetainsStayUntilItPrunesThem() throws {
        let rig = try PackRig()
        let clock = TestClock()
        // Only the age rule prunes here: the size bound is far above what the snapshots hold.
        let retention = SnapshotRetention(keep: 30, maxAge: 3 * 86_400, maxSize: .percent(10_000))
        let bytes = PackRig.chunkBytes(1)
        try rig.store.putChunk(ChunkHash.of(bytes), bytes)
        let withFile: SnapshotManifest
        do {
            let m = try rig.metadata()
            try rig.commitFile(m, "f", [bytes], [.object])
            withFile = try Self.snapshot(rig, m, retention: retention, clock: clock)
            clock.advance(days: 1)
            try rig.remove(m, "f")
            _ = try Self.snapshot(rig, m, retention: retention, clock: clock)
        }
        // A day old, the file's snapshot is retained: its chunk, at refcount 0 now, stays.
        #expect(try retention.retained(in: SnapshotCatalog(store: rig.store), now: clock.now).contains { $0.id == withFile.id })
        let kept = try rig.gc()
        #expect(kept.keptForSnapshots == 1 && kept.deletedChunks == 0 && kept.rowsDropped == 0 && kept.errors.isEmpty)
        #expect(try rig.keys("chunks/") == [ChunkHash.of(bytes).objectKey])

        // Four days on, the next snapshot prunes it: the chunk is garbage, row and object.
        clock.advance(days: 4)
        do {
            let m = try rig.metadata()
            _ = try m.create(parent: .root, name: Array("g".utf8), .init(kind: .regular, permissions: 0o644, uid: 0, gid: 0), now: .now())
            _ = try Self.snapshot(rig, m, retention: retention, clock: clock)
        }
        #expect(try !SnapshotCatalog(store: rig.store).snapshotIDs().contains(withFile.id))
        let gone = try rig.gc()
        #expect(gone.deletedChunks == 1 && gone.rowsDropped == 1 && gone.errors.isEmpty)
        #expect(try rig.keys("chunks/").isEmpty)
    }
}
