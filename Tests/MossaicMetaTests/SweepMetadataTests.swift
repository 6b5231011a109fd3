import Foundation
import MossaicCore
@testable import MossaicMeta
import Testing

/// The metadata side of the reclaim sweep (SQLiteMetaStore+Sweep.swift, schema 4's triggers):
/// which released chunks the snapshots of the store can still need, and one transaction
/// deciding between the sweep and a commit that references a chunk again.
@Suite struct SweepMetadataTests {
    let later = Timestamp(nanoseconds: Timestamp.now().nanoseconds + 3_600_000_000_000)

    /// File `f` referencing `chunks` (stored, `.object` unless a location is given).
    func commit(_ m: SQLiteMetaStore, _ ino: InodeNumber, _ chunks: [(String, ChunkLocation)]) throws {
        let changes = chunks.enumerated().map { (i, c) in
            (ChunkIndex(UInt64(i)), Optional(ChunkRef(index: ChunkIndex(UInt64(i)), hash: hash(c.0), length: c.0.utf8.count)))
        }
        let new = chunks.map { NewChunk(hash: hash($0.0), length: $0.0.utf8.count, state: .stored, inlineData: nil, location: $0.1) }
        _ = try m.commit(FileCommit(ino: ino, chunks: changes, newChunks: new, size: UInt64(chunks.count) * UInt64(FormatConstants.chunkSize),
                                    mtime: .now(), ctime: .now()))
    }

    /// What a published snapshot of the database as it is now records.
    func publish(_ m: SQLiteMetaStore, generation: Int64) throws {
        let state = try m.replicationState()
        try m.recordPublishedSnapshot(generation: generation, id: "snap-\(generation)", changeSequence: state.changeSequence)
    }

    func removeFile(_ m: SQLiteMetaStore, _ name: String) throws {
        let gone = try m.unlink(parent: .root, name: n(name), now: .now())
        try m.purgeOrphan(gone.ino)
    }

    @Test func onlySnapshotsBetweenCreationAndReleaseNeedAChunk() {
        let r = ReleasedChunk(chunk: LocatedChunk(hash: hash("a"), location: .object), length: 1, createdGeneration: 3,
                              freeGeneration: 7, released: .now())
        #expect(!r.isNeeded(bySnapshots: []))
        #expect(!r.isNeeded(bySnapshots: [1, 2, 3]))        // published before the row existed
        #expect(!r.isNeeded(bySnapshots: [7, 8, 9]))        // cut after the release
        #expect(r.isNeeded(bySnapshots: [2, 4, 9]))
        #expect(r.isNeeded(bySnapshots: [6]))
        #expect(!r.isNeeded(bySnapshots: [3, 7]))
    }

    @Test func aReleaseCountsOnceASnapshotContainsIt() throws {
        let (m, _) = try makeStore()
        let f = try m.create(parent: .root, name: n("f"), file, now: .now())
        try publish(m, generation: 1)
        try commit(m, f.ino, [("A", .object)])          // created after generation 1
        try publish(m, generation: 2)                    // references A
        try removeFile(m, "f")
        // Released, but no published snapshot holds the release yet.
        #expect(try m.settleReleasedChunks() == 0)
        #expect(try m.releasedChunks(before: later, limit: 10).isEmpty)
        try publish(m, generation: 3)
        #expect(try m.settleReleasedChunks() == 1)
        let released = try m.releasedChunks(before: later, limit: 10)
        #expect(released.map(\.chunk.hash) == [hash("A")])
        #expect(released.first?.createdGeneration == 1)
        #expect(released.first?.freeGeneration == 3)
        // Snapshot 2 references it; 1 and 3 do not.
        #expect(released.first?.isNeeded(bySnapshots: [1, 2, 3]) == true)
        #expect(released.first?.isNeeded(bySnapshots: [1, 3]) == false)
        // Not past the grace: released now, asked for releases before an hour ago.
        #expect(try m.releasedChunks(before: Timestamp(nanoseconds: Timestamp.now().nanoseconds - 3_600_000_000_000), limit: 10).isEmpty)

        let swept = try m.sweepReleasedChunks(released, sparedHashes: [], sparedKeys: [])
        #expect(swept.chunks.map(\.chunk.hash) == [hash("A")])
        #expect(swept.objects.map(\.key) == [hash("A").objectKey])
        #expect(try m.chunkInfo(hash("A")) == nil)
        #expect(try m.replicationState().changeSequence == swept.changeSequence)
    }

    /// A commit referencing the chunk again between the sweep's read and its transaction
    /// wins: the transaction finds the row changed and leaves it. A pinned chunk stays too.
    @Test func aChunkACommitRevivesStays() throws {
        let (m, _) = try makeStore()
        let f = try m.create(parent: .root, name: n("f"), file, now: .now())
        try commit(m, f.ino, [("A", .object), ("B", .object)])
        try removeFile(m, "f")
        try publish(m, generation: 1)
        #expect(try m.settleReleasedChunks() == 2)
        let released = try m.releasedChunks(before: later, limit: 10)
        #expect(released.count == 2)

        let g = try m.create(parent: .root, name: n("g"), file, now: .now())
        try commit(m, g.ino, [("A", .object)])           // dedup: the row at refcount 0 is used again
        #expect(try m.chunkInfo(hash("A"))?.refcount == 1)
        let swept = try m.sweepReleasedChunks(released, sparedHashes: [hash("B")], sparedKeys: [])
        #expect(swept.chunks.isEmpty)
        #expect(try m.chunkInfo(hash("A"))?.refcount == 1)
        #expect(try m.chunkInfo(hash("B"))?.refcount == 0)
        // Released again, A waits for a snapshot holding the new release.
        try removeFile(m, "g")
        #expect(try m.settleReleasedChunks() == 0)
        #expect(try m.releasedChunks(before: later, limit: 10).map(\.chunk.hash) == [hash("B")])
    }

    /// A pack goes whole, with all its rows, once every chunk in it is free; one live chunk
    /// keeps it and every row in it.
    @Test func aPackGoesOnlyWithAllItsChunks() throws {
        let (m, _) = try makeStore()
        let p1 = hash("pack1"), p2 = hash("pack2")
        let f = try m.create(parent: .root, name: n("f"), file, now: .now())
        let g = try m.create(parent: .root, name: n("g"), file, now: .now())
        try commit(m, f.ino, [("A", .packed(pack: p1, offset: 0, length: 1)), ("B", .packed(pack: p1, offset: 1, length: 1))])
        try commit(m, g.ino, [("C", .packed(pack: p2, offset: 0, length: 1)), ("D", .packed(pack: p2, offset: 1, length: 1))])
        try removeFile(m, "f")
        // g loses only chunk 1 (D): C keeps pack 2.
        _ = try m.commit(FileCommit(ino: g.ino, chunks: [(ChunkIndex(1), nil)], newChunks: [], size: UInt64(FormatConstants.chunkSize),
                                    mtime: .now(), ctime: .now()))
        try publish(m, generation: 1)
        #expect(try m.settleReleasedChunks() == 3)
        let released = try m.releasedChunks(before: later, limit: 10)
        #expect(Set(released.map(\.chunk.hash)) == [hash("A"), hash("B")])  // D's pack is live
        let swept = try m.sweepReleasedChunks(released, sparedHashes: [], sparedKeys: [])
        #expect(Set(swept.chunks.map(\.chunk.hash)) == [hash("A"), hash("B")])
        #expect(swept.objects.map(\.key) == [p1.packKey])
        #expect(swept.objects.first?.bytes == 2)
        #expect(try m.chunkInfo(hash("D"))?.refcount == 0)
    }

    /// Stored chunks already at refcount 0 when a database migrates to schema 4 count as
    /// released then, by generation 0: every existing snapshot may need them.
    @Test func migratedReleasesAreNeededByEveryExistingSnapshot() throws {
        let (m, dir) = try makeStore()
        let f = try m.create(parent: .root, name: n("f"), file, now: .now())
        try commit(m, f.ino, [("A", .object)])
        try removeFile(m, "f")
        // Back to schema 3 without the columns' values, as a build before the sweep left it.
        try m.write(counted: false) { (c) throws(MetaError) in
            try c.execute("DROP TRIGGER chunks_created; DROP TRIGGER chunks_released; DROP TRIGGER chunks_revived; DROP INDEX chunks_released")
            try c.execute("ALTER TABLE chunks DROP COLUMN created_gen; ALTER TABLE chunks DROP COLUMN released_seq")
            try c.execute("ALTER TABLE chunks DROP COLUMN released_ms; ALTER TABLE chunks DROP COLUMN free_gen; DROP TABLE chunk_patches")
            try c.execute("""
                DROP TRIGGER usage_inode_added; DROP TRIGGER usage_inode_removed; DROP TRIGGER usage_chunk_added;
                DROP TRIGGER usage_chunk_removed; DROP TRIGGER usage_chunk_changed; DROP TABLE usage
                """)
            try c.execute("ALTER TABLE chunks DROP COLUMN codec; ALTER TABLE chunks DROP COLUMN stored_length")
            try c.execute("PRAGMA user_version = 3")
        }
        let again = try SQLiteMetaStore(path: dir + "/meta.db")
        try publish(again, generation: 5)
        // The migration's own change_seq is not in snapshot 5 (nothing changed since): a change first.
        _ = try again.create(parent: .root, name: n("g"), file, now: .now())
        try publish(again, generation: 6)
        #expect(try again.settleReleasedChunks() == 1)
        let released = try again.releasedChunks(before: later, limit: 10)
        #expect(released.first?.createdGeneration == 0)
        #expect(released.first?.isNeeded(bySnapshots: [1]) == true)
        #expect(released.first?.isNeeded(bySnapshots: [6]) == false)
    }
}
