import Foundation
import MossaicCore
@testable import MossaicMeta
import MossaicObjectStore
@testable import MossaicReplication
import MossaicTestSupport
import Synchronization
import Testing

/// The restore of a long chain of changesets: fetched ahead of their application
/// (`ChangesetPrefetcher`), applied without a journal into a scratch file that only a complete,
/// fsynced restore renames into place. What must hold: the result is the live database row
/// for row, the prefetch stays within its bounds and keeps the chain's order, and a restore
/// that fails midway leaves nothing that could be taken for a database — the next one starts
/// over and completes.
@Suite struct RestorePipelineTests {
    /// A rig whose HEAD is a base plus `count` changesets, each adding a few files with inline
    /// data (so the changesets touch `chunks` and `dentries` at random places, like a real chain).
    static func chain(_ count: Int) throws -> (Rig, SnapshotManifest) {
        let rig = try Rig()
        let writer = try rig.writer()
        try rig.addFile("first")
        _ = try writer.snapshot()
        var head: SnapshotManifest?
        for step in 0..<count {
            for i in 0..<5 {
                let file = try rig.addFile("s\(step)-\(i)")
                let data = Array("step \(step) file \(i) ".utf8) + [UInt8](repeating: UInt8(step & 0xff), count: 200 + i)
                let hash = ChunkHash.of(data)
                _ = try rig.metadata.commit(FileCommit(
                    ino: file.ino, chunks: [(ChunkIndex(0), ChunkRef(index: ChunkIndex(0), hash: hash, length: data.count))],
                    newChunks: [NewChunk(hash: hash, length: data.count, state: .stored, inlineData: data)],
                    size: UInt64(data.count), mtime: .now(), ctime: .now()))
            }
            guard case .published(let m, _) = try writer.snapshot() else { throw ReplicationError.local("nothing published") }
            head = m
        }
        return (rig, try #require(head))
    }

    @Test func aLongChainRestoresTheLiveDatabaseRowForRow() throws {
        let (rig, head) = try Self.chain(3 * ChangesetPrefetcher.window)
        #expect(head.changesets.count == 3 * ChangesetPrefetcher.window)
        let restored = rig.root + "/restored.db"
        let stats = try SnapshotDownloader.download(head, from: rig.base, to: restored)
        #expect(stats.bytesDownloaded >= Int(head.changesetBytes))
        #expect(try IncrementalSnapshotTests.rows(restored) == IncrementalSnapshotTests.rows(rig.root + "/meta.db"))
        let state = try SQLiteMetaStore(path: restored).replicationState()
        #expect(state.snapshotID == head.id && !state.isDirty && state.pending == nil)
    }

    /// The changesets come out in the chain's order, whatever order their fetches end in, and
    /// no more are fetched ahead than the window and the byte bound allow.
    @Test func thePrefetchKeepsTheOrderAndItsBounds() throws {
        let (rig, head) = try Self.chain(10)
        let pieces = head.changesets
        for (window, maxBytes, ahead) in [(3, Int.max, 3), (8, 1, 1)] {
            let prefetcher = ChangesetPrefetcher(pieces, of: head.id, from: rig.base, threads: 4, window: window, maxBytes: maxBytes)
            #expect(prefetcher.fetchesAhead == ahead)
            var taken: [ChunkHash] = []
            while let bytes = try prefetcher.next() {
                taken.append(ChunkHash.of(bytes))
                #expect(prefetcher.fetchesAhead <= ahead)
            }
            #expect(taken == pieces.map { $0.hash! })
            #expect(prefetcher.fetchesAhead == 0)
        }
    }

    /// A changeset the store cannot give (here: missing) fails the restore at that changeset —
    /// after the ones before it were applied to the scratch file — and leaves neither the
    /// database nor the scratch file. A crash would leave the scratch file: the next restore
    /// replaces it and completes.
    @Test func aRestoreThatFailsMidwayLeavesNothingAndTheNextOneCompletes() throws {
        let (rig, head) = try Self.chain(12)
        let missing = MetadataLayout.chunk(try #require(head.changesets[7].hash))
        let saved = try rig.base.get(missing)
        try rig.base.delete(missing)
        let restored = rig.root + "/restored.db"
        do {
            try SnapshotDownloader.download(head, from: rig.base, to: restored)
            Issue.record("a restore without one of its changesets completed")
        } catch {
            guard case .damaged(let why) = error else { Issue.record("expected damaged, got \(error)"); return }
            #expect(why.contains(missing), "\(why)")
        }
        #expect(!FileManager.default.fileExists(atPath: restored) && !FileManager.default.fileExists(atPath: restored + ".download"))

        // What a crash midway leaves: a scratch file holding part of the chain.
        try FileManager.default.copyItem(atPath: rig.root + "/meta.db", toPath: restored + ".download")
        try rig.base.put(missing, saved)
        try SnapshotDownloader.download(head, from: rig.base, to: restored)
        #expect(try IncrementalSnapshotTests.rows(restored) == IncrementalSnapshotTests.rows(rig.root + "/meta.db"))
        #expect(!FileManager.default.fileExists(atPath: restored + ".download"))
    }
}
