import Foundation
import Logging
import MossaicCore
@testable import MossaicFS
import MossaicMount
import MossaicObjectStore
import Testing

/// The reclaim sweep of a read-write mount (ChunkSweeper.swift), through the loader as a
/// mount opens it, without FUSE: what retained metadata snapshots need stays, what none needs
/// goes once released longer than the grace, and a commit relying on a released chunk keeps it.
@Suite struct ReclaimSweepTests {
    let logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
    /// An hour from now: past the default grace (600 s) of every release in these tests.
    let later = Timestamp(nanoseconds: Timestamp.now().nanoseconds + 3_600_000_000_000)

    struct Rig {
        let root: String
        let store: DirectoryObjectStore
        let opened: FilesystemLoader.Opened
        var fs: MossaicFilesystem { opened.filesystem }

        /// Keys of chunk objects and packs in the store.
        func dataObjects() throws -> [String] {
            try (store.list(prefix: "chunks/") + store.list(prefix: "packs/")).map(\.key).sorted()
        }
    }

    func rig(metaKeep: Int, capacity: Int = 0) throws -> Rig {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("sweep-\(UUID().uuidString)").path
        let store = try DirectoryObjectStore(root: root + "/store", create: true)
        _ = try Superblock.format(store, inlineMax: 16 << 10, force: false)
        var options = MountConfiguration()
        options.cacheDirectory = root + "/cache"
        options.metaKeep = metaKeep
        options.packChunks = 1
        options.capacityBytes = capacity
        let opened = try FilesystemLoader.open(store: store, settings: .init(options: options), logger: logger)
        return Rig(root: root, store: store, opened: opened)
    }

    /// `chunks` full chunks, different from those of every other call with another `seed`.
    func content(_ seed: UInt8, chunks: Int) -> [UInt8] {
        (0..<(chunks * FormatConstants.chunkSize)).map { i in
            UInt8(truncatingIfNeeded: ((UInt64(i) &+ UInt64(seed) << 32) &* 0x9E37_79B9_7F4A_7C15) >> 40)
        }
    }

    /// Files are written and read as in ReplicationLoaderTests.
    let files = ReplicationLoaderTests()
    func write(_ fs: MossaicFilesystem, _ name: String, _ bytes: [UInt8]) throws { try files.write(fs, name, bytes) }
    func read(_ fs: MossaicFilesystem, _ name: String) throws -> [UInt8] { try files.read(fs, name) }

    /// rm: the name goes, and with the kernel's references (create's and this lookup's) the
    /// inode and its chunk references.
    func remove(_ fs: MossaicFilesystem, _ name: String) throws {
        let ino = try fs.lookup(parent: .root, name: Array(name.utf8)).ino
        try fs.unlink(parent: .root, name: Array(name.utf8))
        fs.forget(ino, count: 2)
    }

    /// A file of `content(seed, chunks:)` written, removed, and its release in a published
    /// snapshot; returns its bytes.
    func released(_ r: Rig, seed: UInt8, chunks: Int) throws -> [UInt8] {
        let data = content(seed, chunks: chunks)
        try write(r.fs, "a", data)
        try remove(r.fs, "a")
        _ = try r.fs.snapshotMetadata()
        return data
    }

    @Test func aChunkARetainedSnapshotReferencesStays() throws {
        let r = try rig(metaKeep: 2)
        defer { r.opened.stopBackground(finalSnapshot: false) }
        try write(r.fs, "a", content(1, chunks: 2))
        let objects = try r.dataObjects()
        #expect(objects.count == 2)
        _ = try r.fs.snapshotMetadata()                  // references a's chunks
        try remove(r.fs, "a")
        _ = try r.fs.snapshotMetadata()                  // holds the release; both retained
        let kept = try #require(try r.fs.sweepReleasedChunks(now: later))
        #expect(kept.chunks == 0 && kept.objects == 0)
        #expect(kept.keptForSnapshots == 2)
        #expect(try r.dataObjects() == objects)
        // Deleted data still takes space until reclaimed: df counts it.
        #expect(try r.fs.statfs().totalBlocks - r.fs.statfs().freeBlocks == UInt64(2 * FormatConstants.chunkSize / 4096))
    }

    @Test func aReleasedChunkPastGraceAndOlderThanEverySnapshotGoes() throws {
        let r = try rig(metaKeep: 1, capacity: 64 << 20)
        defer { r.opened.stopBackground(finalSnapshot: false) }
        try write(r.fs, "a", content(2, chunks: 2))
        try write(r.fs, "small", Array("kept".utf8))
        _ = try r.fs.snapshotMetadata()
        try remove(r.fs, "a")
        _ = try r.fs.snapshotMetadata()                  // meta_keep=1: the snapshot naming a's chunks is pruned
        let stats = try r.fs.statfs()
        #expect(stats.totalBlocks == UInt64(64 << 20) / 4096)
        #expect(stats.freeBlocks == stats.totalBlocks - UInt64(2 * FormatConstants.chunkSize / 4096) - 1)
        // Within the grace (released just now, sweep_grace 600 s): nothing goes yet.
        #expect(try r.fs.sweepReleasedChunks()?.chunks == 0)
        #expect(try r.dataObjects().count == 2)
        let swept = try #require(try r.fs.sweepReleasedChunks(now: later))
        #expect(swept.chunks == 2 && swept.objects == 2)
        #expect(swept.bytes == UInt64(2 * FormatConstants.chunkSize))
        #expect(try r.dataObjects().isEmpty)
        #expect(try read(r.fs, "small") == Array("kept".utf8))
        // The space is back in df.
        #expect(try r.fs.statfs().freeBlocks == stats.totalBlocks - 1)
        #expect(try r.fs.sweepReleasedChunks(now: later)?.chunks == 0)
    }

    /// A commit that deduplicates against a released chunk pins it before it looks it up: the
    /// sweep leaves it (and its object), and the commit references it again.
    @Test func aChunkACommitRevivesStays() throws {
        let r = try rig(metaKeep: 1)
        defer { r.opened.stopBackground(finalSnapshot: false) }
        let data = try released(r, seed: 3, chunks: 2)
        // A writer of the same first chunk, between its dedup lookup and its commit.
        let first = Array(data.prefix(FormatConstants.chunkSize))
        let prepared = try #require(try r.fs.chunks.prepare(first, index: 0))
        #expect(prepared.bytes == nil)                   // known: the released row
        let swept = try withExtendedLifetime(prepared) { try #require(try r.fs.sweepReleasedChunks(now: later)) }
        #expect(swept.chunks == 1)                       // the other chunk only
        #expect(try r.dataObjects() == [ChunkHash.of(first).objectKey])
        // The whole path: a file of the same bytes revives it; the sweep keeps it.
        try write(r.fs, "b", first)
        _ = try r.fs.snapshotMetadata()
        #expect(try r.fs.sweepReleasedChunks(now: later)?.chunks == 0)
        #expect(try read(r.fs, "b") == first)
        #expect(try r.dataObjects() == [ChunkHash.of(first).objectKey])
    }

    /// A chunk the sweep deleted is new again for the next writer: stored anew, readable.
    @Test func aSweptChunkIsStoredAgainWhenWrittenAgain() throws {
        let r = try rig(metaKeep: 1)
        defer { r.opened.stopBackground(finalSnapshot: false) }
        let data = try released(r, seed: 4, chunks: 1)
        #expect(try r.fs.sweepReleasedChunks(now: later)?.objects == 1)
        #expect(try r.dataObjects().isEmpty)
        try write(r.fs, "b", data)
        #expect(try r.dataObjects() == [ChunkHash.of(data).objectKey])
        #expect(try read(r.fs, "b") == data)
    }
}
