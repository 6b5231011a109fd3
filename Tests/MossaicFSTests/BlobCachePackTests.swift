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

    /// Read-ahead of a run of chunks in one pack is one GET; a damaged chunk in the run is
    /// not handed out (it is fetched alone and reported corrupt), its neighbours are.
    @Test func prefetchOfARunIsOneGetAndADamagedChunkIsNotServed() throws {
        let (root, store) = try makeStore()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let chunks = (0..<4).map { randomBytes(MiB, seed: 20 + UInt64($0)) }
        let hashes = chunks.map { ChunkHash.of($0) }
        let pack = try store.putPack(zip(chunks, hashes).map { HashedBytes($0.0, sha256: $0.1) })
        var locations: [ChunkHash: ChunkLocation] = [:]
        for i in 0..<4 { locations[hashes[i]] = .packed(pack: pack, offset: UInt64(i * MiB), length: MiB) }
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
}
