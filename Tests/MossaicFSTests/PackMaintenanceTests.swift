import Foundation
import Logging
import MossaicCache
import MossaicCore
import MossaicFS
import MossaicMaintenance
import MossaicMeta
import MossaicMount
import MossaicObjectStore
import MossaicReplication
import Testing

/// `gc` and `fsck` with packs: chunk rows placed in `packs/` objects are built directly (a pack
/// put into a directory store, a commit whose new chunks carry `.packed` locations), so these
/// tests do not depend on the write path that produces them.
struct PackRig {
    let root: String
    let store: DirectoryObjectStore
    let cachePath: String
    let logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })

    init() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("packs-\(UUID().uuidString)").path
        store = try DirectoryObjectStore(root: root + "/store", create: true)
        _ = try Superblock.format(store, inlineMax: 16 << 10, force: false)
        cachePath = root + "/cache"
        try FileManager.default.createDirectory(atPath: cachePath, withIntermediateDirectories: true)
    }

    var metadataPath: String { cachePath + "/meta.db" }
    var blobsPath: String { cachePath + "/blobs" }
    var stagingPath: String { cachePath + "/staging" }

    /// A fresh connection to the cache_dir's metadata; gc opens its own, so callers let this one
    /// go before running it.
    func metadata() throws -> SQLiteMetaStore {
        let m = try SQLiteMetaStore(path: metadataPath)
        try m.createRootIfMissing(permissions: 0o755, uid: 0, gid: 0, now: .now())
        return m
    }

    /// Distinct chunk contents, short: the tests need a few of them, not megabytes.
    static func chunkBytes(_ seed: UInt64) -> [UInt8] { randomBytes(3000, seed: seed) }

    /// Puts a pack of `chunks` into the store; returns their locations in it.
    func putPack(_ chunks: [[UInt8]]) throws -> (pack: ChunkHash, locations: [ChunkLocation]) {
        let pack = try store.putPack(chunks.map { HashedBytes($0, sha256: ChunkHash.of($0)) })
        var offset: UInt64 = 0, locations: [ChunkLocation] = []
        for c in chunks {
            locations.append(.packed(pack: pack, offset: offset, length: c.count))
            offset += UInt64(c.count)
        }
        return (pack, locations)
    }

    /// A file `name` whose chunk i is `chunks[i]`, stored at `locations[i]`.
    @discardableResult
    func commitFile(_ m: SQLiteMetaStore, _ name: String, _ chunks: [[UInt8]], _ locations: [ChunkLocation]) throws -> InodeNumber {
        let f = try m.create(parent: .root, name: Array(name.utf8), .init(kind: .regular, permissions: 0o644, uid: 0, gid: 0), now: .now())
        var refs: [(ChunkIndex, ChunkRef?)] = [], new: [NewChunk] = []
        for (i, (bytes, location)) in zip(chunks, locations).enumerated() {
            let hash = ChunkHash.of(bytes)
            refs.append((ChunkIndex(UInt64(i)), ChunkRef(index: ChunkIndex(UInt64(i)), hash: hash, length: bytes.count)))
            new.append(NewChunk(hash: hash, length: bytes.count, state: .stored, inlineData: nil, location: location))
        }
        let size = UInt64((chunks.count - 1) * FormatConstants.chunkSize + chunks.last!.count)
        _ = try m.commit(FileCommit(ino: f.ino, chunks: refs, newChunks: new, size: size, mtime: .now(), ctime: .now()))
        return f.ino
    }

    func remove(_ m: SQLiteMetaStore, _ name: String) throws {
        let unlinked = try m.unlink(parent: .root, name: Array(name.utf8), now: .now())
        try m.purgeOrphan(unlinked.ino)
    }

    /// Writes a chunk's copy where the disk cache keeps it.
    func cache(_ bytes: [UInt8]) throws {
        let path = BlobCache.diskCachePath(of: ChunkHash.of(bytes), in: blobsPath)
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        #expect(FileManager.default.createFile(atPath: path, contents: Data(bytes)))
    }

    func cached(_ bytes: [UInt8]) -> Bool {
        FileManager.default.fileExists(atPath: BlobCache.diskCachePath(of: ChunkHash.of(bytes), in: blobsPath))
    }

    func keys(_ prefix: String) throws -> Set<String> { Set(try store.list(prefix: prefix).map(\.key)) }

    func gc(grace: Double = 0) throws -> GarbageCollector.Report {
        try GarbageCollector.run(store: store, cacheDirectory: cachePath, options: .init(dryRun: false, grace: grace),
                                 logger: logger, progress: { _ in })
    }

    func fsck(_ m: SQLiteMetaStore, verify: Bool = false, repair: Bool = false) throws -> FilesystemChecker.Report {
        try FilesystemChecker.run(store: store, metadata: m, options: .init(verify: verify, repair: repair, blobsDirectory: blobsPath,
                                                                           stagingDirectory: stagingPath, threads: 2),
                                  progress: { _ in })
    }
}

@Suite struct PackGarbageCollectorTests {
    @Test func aPackStaysWholeWhileOneChunkIsLiveAndGoesWithItsRowsWhenNoneIs() throws {
        let rig = try PackRig()
        let p1 = [1, 2, 3].map { PackRig.chunkBytes($0) }
        let p2 = [4, 5, 6].map { PackRig.chunkBytes($0) }
        let single = PackRig.chunkBytes(7)
        let (pack1, at1) = try rig.putPack(p1)
        let (pack2, at2) = try rig.putPack(p2)
        try rig.store.putChunk(ChunkHash.of(single), single)
        for c in p1 + p2 + [single] { try rig.cache(c) }
        do {
            let m = try rig.metadata()
            // "keep" uses one chunk of pack 1; "gone" used the rest of it, all of pack 2 and a
            // chunk object, and is deleted: those rows are at refcount 0.
            try rig.commitFile(m, "keep", [p1[0]], [at1[0]])
            try rig.commitFile(m, "gone", [p1[1], p1[2]] + p2 + [single], [at1[1], at1[2]] + at2 + [.object])
            try rig.remove(m, "gone")
        }

        let report = try rig.gc()
        #expect(report.scannedPacks == 2 && report.scannedChunks == 1)
        #expect(report.deletedPacks == 1 && report.deletedChunks == 1)
        #expect(report.unreferencedInLivePacks == 2)
        #expect(report.rowsDropped == 4)  // pack 2's three and the chunk object's
        #expect(report.errors.isEmpty)
        #expect(try rig.keys("packs/") == [pack1.packKey])
        #expect(try rig.keys("chunks/").isEmpty)
        #expect(!report.dryRun && report.bytesFreed == UInt64((p2.flatMap { $0 } + single).count))
        // Pack 2's chunks left the disk cache with their rows; pack 1's stay, rows and all.
        #expect(p2.allSatisfy { !rig.cached($0) } && !rig.cached(single))
        #expect(p1.allSatisfy { rig.cached($0) })
        let m = try rig.metadata()
        for c in p2 + [single] { #expect(try m.chunkInfo(ChunkHash.of(c)) == nil) }
        for c in p1[1...] { #expect(try m.chunkInfo(ChunkHash.of(c))?.refcount == 0) }
        #expect(try FilesystemChecker.run(store: rig.store, metadata: m, options: .init(verify: true, repair: false, blobsDirectory: nil),
                                          progress: { _ in }).isClean)
    }

    @Test func aPackOnlyASnapshotReferencesIsKeptAndGarbageOnceNoChunkInItIsUsed() throws {
        let rig = try PackRig()
        let chunks = [1, 2, 3].map { PackRig.chunkBytes($0) }
        let (pack, at) = try rig.putPack(chunks)
        do {
            let m = try rig.metadata()
            try rig.commitFile(m, "f", [chunks[0]], [at[0]])
        }
        // The first run publishes a snapshot in which "f" uses the pack.
        #expect(try rig.gc().deletedPacks == 0)
        do { try rig.remove(try rig.metadata(), "f") }
        let kept = try rig.gc()
        #expect(kept.deletedPacks == 0 && kept.keptForSnapshots == 1 && kept.rowsDropped == 0)
        #expect(try rig.keys("packs/") == [pack.packKey])

        // Retention prunes every snapshot but HEAD's (taken by that run, without "f"): the pack
        // is garbage now, and goes with the chunk rows in it.
        let head = try #require(try SnapshotCatalog(store: rig.store).head()).pointer.snapshot
        for info in try rig.store.list(prefix: MetadataLayout.snapshotsPrefix) where info.key != MetadataLayout.manifest(head) {
            try rig.store.delete(info.key)
        }
        let gone = try rig.gc()
        #expect(gone.deletedPacks == 1 && gone.rowsDropped == 1)
        #expect(try rig.keys("packs/").isEmpty)
    }
}

@Suite struct PackCheckerTests {
    /// A file of three chunks in one pack, and one of a chunk that is its own object.
    func packedFile(_ rig: PackRig) throws -> (m: SQLiteMetaStore, chunks: [[UInt8]], pack: ChunkHash, single: [UInt8]) {
        let chunks = [11, 12, 13].map { PackRig.chunkBytes($0) }
        let single = PackRig.chunkBytes(14)
        let (pack, at) = try rig.putPack(chunks)
        try rig.store.putChunk(ChunkHash.of(single), single)
        let m = try rig.metadata()
        try rig.commitFile(m, "packed", chunks, at)
        try rig.commitFile(m, "single", [single], [.object])
        return (m, chunks, pack, single)
    }

    @Test func aCleanPackIsVerifiedWithOneGetAndAPackNoRowNamesIsUnreferenced() throws {
        let rig = try PackRig()
        let f = try packedFile(rig)
        let clean = try rig.fsck(f.m, verify: true)
        #expect(clean.isClean && clean.missing.isEmpty && clean.corrupt.isEmpty)
        #expect(clean.referencedChunks == 4 && clean.referencedObjects == 2)
        #expect(clean.checkedChunks == 4 && clean.checkedObjects == 2)
        #expect(clean.unreferencedObjects == 0)

        let stray = [PackRig.chunkBytes(15)]
        _ = try rig.putPack(stray)
        #expect(try rig.fsck(f.m).unreferencedObjects == 1)
    }

    @Test func aMissingPacksChunksAreMissingUnderThePacksKey() throws {
        let rig = try PackRig()
        let f = try packedFile(rig)
        try rig.store.delete(f.pack.packKey)
        let report = try rig.fsck(f.m)
        #expect(!report.isClean)
        #expect(Set(report.missing.map(\.hash)) == Set(f.chunks.map { ChunkHash.of($0) }))
        #expect(report.missing.allSatisfy { $0.key == f.pack.packKey })
        #expect(report.corrupt.isEmpty && report.staged.isEmpty)
    }

    @Test func aDamagedPackNamesItsBadChunkAndATruncatedOneThoseItLost() throws {
        let rig = try PackRig()
        let f = try packedFile(rig)
        var bytes = try rig.store.get(f.pack.packKey)
        bytes[f.chunks[0].count + 10] ^= 0xff  // inside the second chunk
        try rig.store.put(f.pack.packKey, bytes)
        #expect(try rig.fsck(f.m).isClean)  // only --verify downloads
        let verified = try rig.fsck(f.m, verify: true)
        #expect(verified.corrupt.map(\.hash) == [ChunkHash.of(f.chunks[1])])
        #expect(verified.corrupt.first?.key == f.pack.packKey && !verified.isClean)

        // Cut into the third chunk: the listing's size tells, without downloading.
        try rig.store.put(f.pack.packKey, Array(bytes.dropLast(1)))
        let cut = try rig.fsck(f.m)
        #expect(cut.corrupt.map(\.hash) == [ChunkHash.of(f.chunks[2])] && cut.missing.isEmpty)
        let both = try rig.fsck(f.m, verify: true)
        #expect(Set(both.corrupt.map(\.hash)) == [ChunkHash.of(f.chunks[1]), ChunkHash.of(f.chunks[2])])
    }

    @Test func repairPutsCachedCopiesBackAsTheirOwnObjectsAndMovesTheRows() throws {
        let rig = try PackRig()
        let f = try packedFile(rig)
        try rig.store.delete(f.pack.packKey)
        for c in f.chunks { try rig.cache(c) }
        let repaired = try rig.fsck(f.m, repair: true)
        #expect(repaired.isClean)
        #expect(Set(repaired.restored) == Set(f.chunks.map { ChunkHash.of($0) }))
        for c in f.chunks {
            #expect(try rig.store.get(ChunkHash.of(c).objectKey) == c)
        }
        let ino = try f.m.lookup(parent: .root, name: Array("packed".utf8)).ino
        #expect(try f.m.chunkRefs(ino, indexes: 0...2).map(\.location) == [.object, .object, .object])

        let again = try rig.fsck(f.m, verify: true)
        #expect(again.isClean && again.missing.isEmpty && again.corrupt.isEmpty && again.restored.isEmpty)
        #expect(again.referencedObjects == 4 && again.unreferencedObjects == 0)
    }

    @Test func aDamagedPackIsRepairedPerChunkFromTheCache() throws {
        let rig = try PackRig()
        let f = try packedFile(rig)
        var bytes = try rig.store.get(f.pack.packKey)
        bytes[5] ^= 0xff  // inside the first chunk
        try rig.store.put(f.pack.packKey, bytes)
        try rig.cache(f.chunks[0])
        let repaired = try rig.fsck(f.m, verify: true, repair: true)
        #expect(repaired.isClean && repaired.restored == [ChunkHash.of(f.chunks[0])])
        let ino = try f.m.lookup(parent: .root, name: Array("packed".utf8)).ino
        // Only the bad chunk moved; the others are still read from the pack.
        #expect(try f.m.chunkRefs(ino, indexes: 0...2).map(\.location.pack) == [nil, f.pack, f.pack])
        #expect(try rig.fsck(f.m, verify: true).isClean)
    }

    @Test func aStagedChunkObjectIsStagedNotMissingAndRepairUploadsIt() throws {
        let rig = try PackRig()
        let f = try packedFile(rig)
        let key = ChunkHash.of(f.single).objectKey
        try rig.store.delete(key)
        try FileManager.default.createDirectory(atPath: rig.stagingPath, withIntermediateDirectories: true)
        #expect(FileManager.default.createFile(atPath: rig.stagingPath + "/" + ChunkHash.of(f.single).hex, contents: Data(f.single)))
        let seen = try rig.fsck(f.m)
        #expect(seen.missing.isEmpty && seen.staged == [ChunkHash.of(f.single)])
        let uploaded = try rig.fsck(f.m, repair: true)
        #expect(uploaded.isClean && uploaded.restored == [ChunkHash.of(f.single)])
        #expect(try rig.store.get(key) == f.single)
        #expect(try rig.fsck(f.m, verify: true).isClean)
    }
}
