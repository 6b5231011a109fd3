import Foundation
import Logging
import MossaicCache
import MossaicCore
import MossaicObjectStore
import MossaicTestSupport
import Testing

@Suite struct BlobCachePackTests {
    private func makeStore() throws -> (root: String, store: DirectoryObjectStore) {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("packs-\(UUID().uuidString)").path
        return (root, try DirectoryObjectStore(root: root, create: true))
    }

    /// Several new chunks are one PUT of one object named by their hashes, and each
    /// chunk reads back from its range of it, verified.
    @Test func chunksStoredAsOnePackReadBackFromTheirRanges() throws {
        let (root, store) = try makeStore()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let counting = FaultInjectingObjectStore(store, configuration: .init(failureRate: 0))
        let writer = try BlobCache(store: counting, configuration: .init(memoryLimit: 0), logger: Logger(label: "test"))
        let chunks = (0..<3).map { randomBytes(MiB - $0 * 1000, seed: 10 + UInt64($0)) }
        let hashes = chunks.map { ChunkHash.of($0) }
        let locations = try writer.uploadPack(Array(zip(hashes, chunks)).map { (hash: $0.0, bytes: $0.1) })
        #expect(counting.calls == 1)
        let packs = try store.list(prefix: "packs/")
        #expect(packs.count == 1)
        #expect(try store.list(prefix: "chunks/").isEmpty)
        let pack = try store.get(packs[0].key)
        #expect(packs[0].key == ChunkHash.packName(hashes).packKey)
        #expect(pack == chunks.flatMap { $0 })
        guard case .packed(_, let offset, let length) = locations[hashes[2]] else { Issue.record("not packed"); return }
        #expect(offset == UInt64(chunks[0].count + chunks[1].count))
        #expect(length == chunks[2].count)

        // The same chunks again: already stored by this process, no PUT, same places.
        #expect(try writer.uploadPack([(hash: hashes[1], bytes: chunks[1])]) == [hashes[1]: locations[hashes[1]]!])
        #expect(counting.calls == 1)

        let reader = try BlobCache(store: store, configuration: .init(memoryLimit: 0), logger: Logger(label: "test"))
        for i in 0..<3 {
            #expect(try reader.read(hashes[i], at: locations[hashes[i]]!) == chunks[i])
            #expect(Array(try reader.read(hashes[i], at: locations[hashes[i]]!, range: 5..<4101)) == Array(chunks[i][5..<4101]))
        }
    }

    /// Read-ahead of a run of chunks in one pack is one GET; a damaged chunk in the run is
    /// not handed out (it is fetched alone and reported corrupt), its neighbours are.
    @Test func prefetchOfARunIsOneGetAndADamagedChunkIsNotServed() throws {
        let (root, store) = try makeStore()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let writer = try BlobCache(store: store, configuration: .init(memoryLimit: 0), logger: Logger(label: "test"))
        let chunks = (0..<4).map { randomBytes(MiB, seed: 20 + UInt64($0)) }
        let hashes = chunks.map { ChunkHash.of($0) }
        let locations = try writer.uploadPack(Array(zip(hashes, chunks)).map { (hash: $0.0, bytes: $0.1) })
        let run = hashes.map { (hash: $0, location: locations[$0]!) }

        let counting = FaultInjectingObjectStore(store, configuration: .init(failureRate: 0))
        let reader = try BlobCache(store: counting, configuration: .init(memoryLimit: 8 * MiB), logger: Logger(label: "test"))
        reader.prefetch(run)
        #expect(counting.calls == 1)
        for i in 0..<4 { #expect(try reader.read(hashes[i], at: locations[hashes[i]]!) == chunks[i]) }
        #expect(counting.calls == 1)  // all four came from memory

        // One byte of the third chunk flipped in the pack object.
        let key = locations[hashes[0]]!.key(of: hashes[0])
        var damaged = try store.get(key)
        damaged[2 * MiB + 17] ^= 0xff
        try store.put(key, damaged)
        let fresh = try BlobCache(store: store, configuration: .init(memoryLimit: 8 * MiB), logger: Logger(label: "test"))
        fresh.prefetch(run)
        #expect(try fresh.read(hashes[1], at: locations[hashes[1]]!) == chunks[1])
        #expect(try fresh.read(hashes[3], at: locations[hashes[3]]!) == chunks[3])
        #expect(throws: CacheError.self) { try fresh.read(hashes[2], at: locations[hashes[2]]!) }
        #expect(fresh.statistics.corrupt >= 1)
    }

    /// A pack's chunks (a large write) are kept in the disk cache only with `cacheLargeWrites`;
    /// a chunk stored alone always is. Read back through the same cache with no memory cache:
    /// a disk hit, or a GET from the store.
    @Test(arguments: [false, true]) func packsReachTheDiskCacheOnlyWhenAskedTo(cacheLargeWrites: Bool) throws {
        let (root, store) = try makeStore()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let cache = try BlobCache(store: store, configuration: .init(memoryLimit: 0, diskDirectory: root + "/cache",
                                                                    cacheLargeWrites: cacheLargeWrites), logger: Logger(label: "test"))
        let chunks = (0..<3).map { randomBytes(MiB, seed: 30 + UInt64($0)) }
        let hashes = chunks.map { ChunkHash.of($0) }
        let locations = try cache.uploadPack(Array(zip(hashes, chunks.prefix(2))).map { (hash: $0.0, bytes: $0.1) })
        #expect(try cache.upload(hashes[2], chunks[2]) == .object)

        #expect(try cache.read(hashes[0], at: locations[hashes[0]]!) == chunks[0])
        #expect(try cache.read(hashes[1], at: locations[hashes[1]]!) == chunks[1])
        #expect(cache.statistics.storeGets == (cacheLargeWrites ? 0 : 2))
        #expect(cache.statistics.diskHits == (cacheLargeWrites ? 2 : 0))
        #expect(try cache.read(hashes[2], at: .object) == chunks[2])
        #expect(cache.statistics.diskHits == (cacheLargeWrites ? 3 : 1))
    }
}
