#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Logging
import MossaicCache
import MossaicCore
import MossaicObjectStore
import MossaicTestSupport
import Testing

/// The disk cache on a filesystem that is short of room: it keeps cache_free and its reserve
/// (room for meta.db) free, and a chunk it cannot write is not cached — never an error.
/// Model disks (an injected `diskSpace`) run anywhere; the real small filesystems are tmpfs
/// mounts, so those tests need root.
@Suite struct BlobCacheDiskSpaceTests {
    static let isRoot = getuid() == 0

    /// A cache_dir filesystem of `size` bytes (tmpfs), unmounted and removed afterwards.
    private func withTmpfs(size: Int, _ body: (String) throws -> Void) throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tmpfs-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { rmdir(dir) }
        try #require(mount("tmpfs", dir, "tmpfs", 0, "size=\(size),mode=0700") == 0, "mount tmpfs: errno \(errno)")
        defer { if umount(dir) != 0 { umount2(dir, Int32(MNT_DETACH)) } }
        try body(dir)
    }

    private func makeStore() throws -> (root: String, store: DirectoryObjectStore) {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("store-\(UUID().uuidString)").path
        return (root, try DirectoryObjectStore(root: root, create: true))
    }

    private static func available(_ path: String) -> Int {
        var fs = statvfs()
        guard statvfs(path, &fs) == 0 else { return -1 }
        return Int(fs.f_bavail) * Int(fs.f_frsize)
    }

    /// Bytes of the files under `dir`: what the cache occupies on a model disk.
    private static func usage(_ dir: String) -> Int {
        var total = 0
        for case let name as String in FileManager.default.enumerator(atPath: dir) ?? FileManager.DirectoryEnumerator() {
            var st = stat()
            if stat(dir + "/" + name, &st) == 0, st.st_mode & S_IFMT == S_IFREG { total += Int(st.st_size) }
        }
        return total
    }

    /// A model disk of `total` bytes on which `other` bytes are used by something else and the
    /// rest by what lies under the cache directory.
    private static func modelDisk(total: Int, other: Int) -> @Sendable (String) -> DiskSpace? {
        { dir in DiskSpace(total: total, available: total - other - usage(dir)) }
    }

    /// A cache in `directory` whose disk claims a terabyte free: only the real filesystem under
    /// it can say no (ENOSPC), as when another writer or a quota took the room it measured.
    private func cacheClaimingRoom(store: DirectoryObjectStore, directory: String,
                                   messages: CapturingLogHandler.Messages) throws -> BlobCache {
        try BlobCache(store: store, configuration: .init(memoryLimit: 0, diskDirectory: directory, freeSpaceFloor: 0,
                                                         diskSpace: { _ in DiskSpace(total: 1 << 40, available: 1 << 40) }),
                      logger: CapturingLogHandler.logger(into: messages))
    }

    /// Stores `count` chunks of 1 MiB and reads each back right after, checking its bytes.
    private func uploadAndReadBack(_ cache: BlobCache, count: Int, seed: UInt64) throws {
        for i in 0..<count {
            let bytes = randomBytes(MiB, seed: seed + UInt64(i))
            let hash = ChunkHash.of(bytes)
            try storeAndKeep(cache, hash, bytes)
            #expect(try cache.read(hash, at: .object) == bytes)
        }
    }

    /// cache_free=0 used to mean no floor at all: the cache filled its filesystem (and meta.db's
    /// commits on it failed). It keeps its reserve free — 8 MiB on a 16 MiB filesystem — and
    /// still caches up to there.
    @Test(.enabled(if: isRoot, "mounting a tmpfs needs root"))
    func withCacheFreeZeroTheReserveStaysFreeOnARealFilesystem() throws {
        let (root, store) = try makeStore()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try withTmpfs(size: 16 * MiB) { dir in
            let cache = try BlobCache(store: store, configuration: .init(memoryLimit: 0, diskDirectory: dir + "/blobs", freeSpaceFloor: 0),
                                      logger: Logger(label: "test"))
            var last: (ChunkHash, [UInt8])?
            for i in 0..<24 {
                let bytes = randomBytes(MiB, seed: 100 + UInt64(i))
                let hash = ChunkHash.of(bytes)
                try storeAndKeep(cache, hash, bytes)
                #expect(Self.available(dir) >= 8 * MiB, "after chunk \(i)")
                last = (hash, bytes)
            }
            #expect(cache.statistics.diskBytes >= 6 * MiB)  // evicted to the reserve, not emptied
            let (hash, bytes) = try #require(last)
            #expect(try cache.read(hash, at: .object) == bytes)
            #expect(cache.statistics.diskHits == 1)  // the newest chunk is cached
            #expect(cache.statistics.storeGets == 0)
        }
    }

    /// Eviction on a model disk of 64 MiB, 10 MiB of it used by others: the free space never
    /// drops under max(cache_free, reserve), and the cache fills the rest.
    @Test(arguments: [(floor: 0, keptFree: 8 * MiB), (floor: 20 * MiB, keptFree: 20 * MiB), (floor: 5 * MiB, keptFree: 8 * MiB)])
    func evictionKeepsTheLargerOfCacheFreeAndTheReserveFree(floor: Int, keptFree: Int) throws {
        let (root, store) = try makeStore()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let dir = root + "-cache"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let disk = Self.modelDisk(total: 64 * MiB, other: 10 * MiB)
        let cache = try BlobCache(store: store, configuration: .init(memoryLimit: 0, diskDirectory: dir, freeSpaceFloor: floor, diskSpace: disk),
                                  logger: Logger(label: "test"))
        for i in 0..<70 {
            let bytes = randomBytes(MiB, seed: 200 + UInt64(i))
            try storeAndKeep(cache, ChunkHash.of(bytes), bytes)
            #expect(try #require(disk(dir)).available >= keptFree, "after chunk \(i)")
        }
        #expect(cache.statistics.diskBytes >= 54 * MiB - keptFree - MiB)
        #expect(cache.statistics.diskSkipped == 0)
    }

    /// cache_size bounds the cache too, however much room the disk has.
    @Test func cacheSizeBoundsTheCacheOnALargeDisk() throws {
        let (root, store) = try makeStore()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let dir = root + "-cache"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let cache = try BlobCache(store: store, configuration: .init(memoryLimit: 0, diskDirectory: dir, diskLimit: 5 * MiB, freeSpaceFloor: 0,
                                                                     diskSpace: Self.modelDisk(total: 1 << 40, other: 0)),
                                  logger: Logger(label: "test"))
        for i in 0..<12 {
            let bytes = randomBytes(MiB, seed: 300 + UInt64(i))
            try storeAndKeep(cache, ChunkHash.of(bytes), bytes)
            #expect(Self.usage(dir) <= 5 * MiB)
        }
        #expect(cache.statistics.diskBytes == 5 * MiB)
    }

    /// A cache_free larger than the disk leaves no room at all: nothing is cached, every write
    /// succeeds, and the lack of room is logged once, not per chunk.
    @Test func cacheFreeLargerThanTheDiskCachesNothingAndLogsOnce() throws {
        let (root, store) = try makeStore()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let dir = root + "-cache"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let messages = CapturingLogHandler.Messages()
        let cache = try BlobCache(store: store, configuration: .init(memoryLimit: 0, diskDirectory: dir, freeSpaceFloor: 1 << 40,
                                                                     diskSpace: Self.modelDisk(total: 64 * MiB, other: 0)),
                                  logger: CapturingLogHandler.logger(into: messages))
        var chunks: [(ChunkHash, [UInt8])] = []
        for i in 0..<5 {
            let bytes = randomBytes(MiB, seed: 400 + UInt64(i))
            try storeAndKeep(cache, ChunkHash.of(bytes), bytes)
            chunks.append((ChunkHash.of(bytes), bytes))
        }
        #expect(Self.usage(dir) == 0)
        #expect(cache.statistics.diskBytes == 0)
        #expect(cache.statistics.diskSkipped == 5)
        #expect(messages.all.filter { $0.level == .warning }.count == 1)
        for (hash, bytes) in chunks { #expect(try cache.read(hash, at: .object) == bytes) }  // from the store
    }

    /// The disk is fuller than the cache measured (another writer, a quota): a cache write that
    /// fails with ENOSPC evicts and retries once.
    @Test(.enabled(if: isRoot, "mounting a tmpfs needs root"))
    func aCacheWriteThatFailsWithENOSPCEvictsAndRetries() throws {
        let (root, store) = try makeStore()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try withTmpfs(size: 16 * MiB) { dir in
            let messages = CapturingLogHandler.Messages()
            let cache = try cacheClaimingRoom(store: store, directory: dir + "/blobs", messages: messages)
            try uploadAndReadBack(cache, count: 40, seed: 500)  // each read from its cache file
            #expect(cache.statistics.diskHits == 40)
            #expect(cache.statistics.storeGets == 0)
            #expect(cache.statistics.diskSkipped == 0)
            #expect(messages.all.filter { $0.level >= .warning }.isEmpty)
        }
    }

    /// When evicting does not help (the cache is empty, something else filled the disk), the
    /// chunk is not cached, the write succeeds, and this is logged once; once there is room
    /// again, chunks are cached again.
    @Test(.enabled(if: isRoot, "mounting a tmpfs needs root"))
    func whenEvictingCannotMakeRoomTheChunkIsSkippedAndLoggedOnce() throws {
        let (root, store) = try makeStore()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try withTmpfs(size: 16 * MiB) { dir in
            let filler = dir + "/filler"
            let fd = open(filler, O_WRONLY | O_CREAT, 0o600)
            try #require(fd >= 0)
            let block = [UInt8](repeating: 1, count: 64 << 10)
            while block.withUnsafeBytes({ write(fd, $0.baseAddress, $0.count) }) > 0 {}
            #expect(errno == ENOSPC)
            close(fd)
            let messages = CapturingLogHandler.Messages()
            let cache = try cacheClaimingRoom(store: store, directory: dir + "/blobs", messages: messages)
            try uploadAndReadBack(cache, count: 5, seed: 600)  // each read from the store
            #expect(cache.statistics.diskSkipped == 10)  // offered by each upload and each read back
            #expect(cache.statistics.diskBytes == 0)
            #expect(messages.all.filter { $0.level == .warning }.count == 1)

            unlink(filler)
            let bytes = randomBytes(MiB, seed: 699)
            try storeAndKeep(cache, ChunkHash.of(bytes), bytes)
            #expect(cache.statistics.diskBytes == MiB)
        }
    }
}

/// What the chunk store does with a chunk it stores alone: PUT it, then keep it in the disk cache.
func storeAndKeep(_ cache: BlobCache, _ hash: ChunkHash, _ bytes: [UInt8]) throws {
    try cache.store.putChunk(hash, bytes)
    cache.keepWritten(hash, bytes, large: false)
}
