import Foundation
import Logging
import MossaicCache
import MossaicCore
import MossaicObjectStore
import Testing

@Suite struct BlobCacheRangeTests {
    /// A local store's chunk is verified whole once; later ranges are read in place.
    @Test func rangesOfAVerifiedChunkAreReadInPlaceAndAShortFileFallsBackToAVerifiedRead() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("cache-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        let store = try DirectoryObjectStore(root: root, create: true)
        let cache = try BlobCache(store: store, configuration: .init(memoryLimit: 0), logger: Logger(label: "test"))
        let bytes = randomBytes(MiB, seed: 77)
        let hash = ChunkHash.of(bytes)
        _ = try store.put(hash.objectKey, bytes)

        #expect(Array(try cache.read(hash, at: .object, range: 100..<4196)) == Array(bytes[100..<4196]))
        #expect(cache.statistics.storeGets == 1)  // the first read loads and verifies it whole
        #expect(Array(try cache.read(hash, at: .object, range: 8192..<12288)) == Array(bytes[8192..<12288]))
        #expect(cache.statistics.storeGets == 1)  // in place: no second load
        #expect(cache.statistics.diskHits == 1)

        // The object shrinks behind the cache's back: a range past its end is not trusted; the
        // whole chunk is loaded again and fails verification.
        let path = root + "/" + hash.objectKey
        #expect(truncate(path, off_t(MiB / 2)) == 0)
        #expect(throws: CacheError.self) { try cache.read(hash, at: .object, range: (MiB - 4096)..<MiB) }
    }
}
