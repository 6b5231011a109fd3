import Foundation
import MossaicCore
import MossaicObjectStore
import Synchronization
import Testing

/// The behaviour every `ObjectStore` must show, run against each implementation (directory,
/// S3 on moto, S3 through a fault-injecting proxy). Each case works under its own key namespace,
/// so a run can share a store with other runs.
///
/// Cases are plain blocking code: the stores block, and Swift Testing's pool is only as wide as
/// the machine (2 here), so concurrency is exercised with real threads, never with tasks.
struct ObjectStoreConformance {
    let store: any ObjectStore
    /// Unique key prefix of this run, ending in "/".
    let namespace: String

    /// `under`: where the namespace lies (a store may treat keys under some prefixes apart).
    init(store: any ObjectStore, under: String = "") {
        self.store = store
        self.namespace = under + "conformance-\(UUID().uuidString.prefix(8).lowercased())/"
    }

    typealias Case = (name: String, run: @Sendable (ObjectStoreConformance) throws -> Void)

    static let cases: [Case] = [
        ("round trip", { try $0.roundTrip() }),
        ("overwrite", { try $0.overwrite() }),
        ("ranged get", { try $0.rangedGet() }),
        ("ranged get in parts", { try $0.rangedGetInParts() }),
        ("head", { try $0.headPresentAndAbsent() }),
        ("delete", { try $0.deletePresentAndAbsent() }),
        ("list with pagination", { try $0.listPaginated() }),
        ("special keys", { try $0.specialKeys() }),
        ("if-none-match", { try $0.conditionalCreate() }),
        ("if-match", { try $0.conditionalReplace() }),
        ("concurrent puts and gets", { try $0.concurrentAccess() }),
        ("chunk put", { try $0.chunkPut() }),
        ("pack put", { try $0.packPut() }),
    ]

    /// Runs every case (or the named ones); a case that throws is recorded and the next one runs.
    func run(only names: Set<String>? = nil) {
        for c in Self.cases where names?.contains(c.name) ?? true {
            do {
                try c.run(self)
            } catch {
                Issue.record("\(store.displayName): case \"\(c.name)\" threw \(error)")
            }
        }
    }

    // MARK: - Cases

    func roundTrip() throws {
        for size in [0, 1, (1 << 20) + 1] {
            let key = namespace + "roundtrip/\(size)"
            let data = Self.bytes(size, seed: UInt8(truncatingIfNeeded: size))
            let etag = try store.put(key, data)
            #expect(try store.get(key) == data, "size \(size)")
            let info = try #require(try store.head(key))
            #expect(info.size == UInt64(size))
            #expect(info.etag == etag)
        }
    }

    func overwrite() throws {
        let key = namespace + "overwrite"
        let first = try store.put(key, Self.bytes(100, seed: 1))
        let second = try store.put(key, Self.bytes(37, seed: 2))
        #expect(first != second, "an overwrite must change the ETag")
        #expect(try store.get(key) == Self.bytes(37, seed: 2))
        #expect(try store.head(key)?.size == 37)
    }

    func rangedGet() throws {
        let key = namespace + "ranged"
        let data = Self.bytes(1000, seed: 3)
        try store.put(key, data)
        #expect(try store.get(key, range: 10..<20) == Array(data[10..<20]))
        #expect(try store.get(key, range: 0..<1000) == data)
        #expect(try store.get(key, range: 990..<1010) == Array(data[990..<1000]), "crossing the end is clamped")
        #expect(try store.get(key, range: 1000..<1010) == [], "starting at the end is empty")
        #expect(try store.get(key, range: 2000..<3000) == [], "past the end is empty")
        #expect(try store.get(key, range: 5..<5) == [], "an empty range is empty")
        #expect(throws: ObjectStoreError.notFound(key: namespace + "ranged-missing")) {
            try store.get(namespace + "ranged-missing", range: 0..<10)
        }
        let empty = namespace + "ranged-empty"
        try store.put(empty, [])
        #expect(try store.get(empty, range: 0..<10) == [])
    }

    func headPresentAndAbsent() throws {
        let key = namespace + "head/present"
        let etag = try store.put(key, Self.bytes(12, seed: 4))
        #expect(try store.head(key) == ObjectInfo(key: key, size: 12, etag: etag))
        #expect(try store.head(namespace + "head/absent") == nil)
        #expect(try store.head(namespace + "head") == nil, "a key prefix is not an object")
        #expect(throws: ObjectStoreError.notFound(key: namespace + "head/absent")) {
            try store.get(namespace + "head/absent")
        }
    }

    func deletePresentAndAbsent() throws {
        let key = namespace + "delete/me"
        try store.put(key, [1, 2, 3])
        try store.delete(key)
        #expect(try store.head(key) == nil)
        #expect(throws: ObjectStoreError.notFound(key: key)) { try store.get(key) }
        try store.delete(key)  // deleting a missing object is not an error
        try store.delete(namespace + "delete/never-existed")
    }

    /// 250 objects: with the S3 stores' page size of 100 that is three pages.
    func listPaginated() throws {
        let prefix = namespace + "list/"
        let keys = (0..<250).map { String(format: "\(prefix)k%04d", $0) }
        let objects = keys.enumerated().map { ($1, Self.bytes($0 % 7, seed: 5)) }
        try Self.onThreads(4, items: objects) { object throws(ObjectStoreError) in _ = try store.put(object.0, object.1) }
        // Decoys: same string prefix but another "directory", and a sibling outside it.
        try store.put(namespace + "list-decoy", [0])
        try store.put(namespace + "lis", [0])

        let listed = try store.list(prefix: prefix)
        #expect(listed.map(\.key) == keys)
        #expect(listed.map(\.size) == objects.map { UInt64($0.1.count) })
        let probe = try #require(listed.first { $0.key == keys[123] })
        #expect(try store.head(keys[123])?.etag == probe.etag)
        // The garbage collector's grace period goes by it: written just now, give or take skew.
        let written = try #require(probe.lastModified)
        #expect(abs(Timestamp.now().secondsSince(written)) < 300)

        let narrowed = try store.list(prefix: prefix + "k01")
        #expect(narrowed.map(\.key) == Array(keys[100..<200]))
        #expect(try store.list(prefix: namespace + "nothing-here/").isEmpty)
    }

    func specialKeys() throws {
        let names = ["with space/file name.txt", "trailing space ", "tilde~dash-under_score.dot", "plus+sign",
                     "unicodé/日本語.txt", "emoji-🎉", "amp&eq=q?hash#pct%25;semi,comma", "quote'\"<xml>&amp;"]
        var expected: [String: [UInt8]] = [:]
        for (i, name) in names.enumerated() {
            let key = namespace + "keys/" + name
            let data = Self.bytes(10 + i, seed: UInt8(i))
            let etag = try store.put(key, data)
            expected[key] = data
            #expect(try store.get(key) == data, "key \(name)")
            #expect(try store.head(key)?.etag == etag, "key \(name)")
            #expect(try store.get(key, range: 1..<3) == Array(data[1..<3]), "key \(name)")
        }
        let listed = try store.list(prefix: namespace + "keys/")
        #expect(Set(listed.map(\.key)) == Set(expected.keys))
        for key in expected.keys { try store.delete(key) }
        #expect(try store.list(prefix: namespace + "keys/").isEmpty)
    }

    func conditionalCreate() throws {
        let key = namespace + "lease"
        let first = Self.bytes(20, seed: 6)
        try store.put(key, first, condition: .ifNoneMatch)
        #expect(throws: ObjectStoreError.preconditionFailed(key: key)) {
            try store.put(key, Self.bytes(21, seed: 7), condition: .ifNoneMatch)
        }
        #expect(try store.get(key) == first, "a failed conditional PUT must not change the object")
    }

    func conditionalReplace() throws {
        let key = namespace + "head-pointer"
        let v1 = try store.put(key, Self.bytes(30, seed: 8))
        let v2 = try store.put(key, Self.bytes(31, seed: 9), condition: .ifMatch(v1))
        #expect(v2 != v1)
        #expect(try store.get(key) == Self.bytes(31, seed: 9))
        #expect(try store.head(key)?.etag == v2)
        #expect(throws: ObjectStoreError.preconditionFailed(key: key)) {
            try store.put(key, Self.bytes(32, seed: 10), condition: .ifMatch(v1))
        }
        #expect(try store.get(key) == Self.bytes(31, seed: 9))
        #expect(throws: ObjectStoreError.preconditionFailed(key: namespace + "no-such-pointer")) {
            try store.put(namespace + "no-such-pointer", [1], condition: .ifMatch(v2))
        }
        #expect(try store.head(namespace + "no-such-pointer") == nil)
    }

    /// 8 threads each write and read back their own objects while all read one shared object.
    func concurrentAccess() throws {
        let shared = namespace + "concurrent/shared"
        let sharedData = Self.bytes(64 << 10, seed: 11)
        try store.put(shared, sharedData)
        let work = (0..<8).map { thread in (0..<6).map { (namespace + "concurrent/t\(thread)/o\($0)", Self.bytes(1000 + $0, seed: UInt8(thread))) } }
        try Self.onThreads(8, items: work) { objects throws(ObjectStoreError) in
            for (key, data) in objects {
                _ = try store.put(key, data)
                guard try store.get(key) == data, try store.get(shared) == sharedData else {
                    throw .failed("concurrent read of \(key) returned other bytes")
                }
            }
        }
        #expect(try store.list(prefix: namespace + "concurrent/t").count == 48)
    }

    /// putChunk stores a chunk under its content address (S3 signs the given hash as the
    /// payload's). Chunk keys are not namespaced: the run's namespace is written into the bytes,
    /// so the chunk is this run's own.
    func chunkPut() throws {
        var bytes = Self.bytes(1 << 20, seed: 7)
        bytes.replaceSubrange(0..<namespace.utf8.count, with: Array(namespace.utf8))
        let hash = ChunkHash.of(bytes)
        defer { try? store.delete(hash.objectKey) }
        try store.putChunk(hash, bytes)
        #expect(try store.get(hash.objectKey) == bytes)
        #expect(try store.head(hash.objectKey)?.size == UInt64(bytes.count))
    }

    /// get(range:parts:) hands the range over as consecutive buffers of the asked lengths (how
    /// read-ahead receives a run of packed chunks); past the object's end the last parts are
    /// short or missing.
    func rangedGetInParts() throws {
        let key = namespace + "parts"
        let data = Self.bytes(300_000, seed: 9)
        try store.put(key, data)
        let parts = try store.get(key, range: 1000..<251_000, parts: [100_000, 50_000, 100_000])
        #expect(parts.map(\.count) == [100_000, 50_000, 100_000])
        #expect(parts.flatMap { $0 } == Array(data[1000..<251_000]))
        let tail = try store.get(key, range: 200_000..<400_000, parts: [80_000, 80_000, 40_000])
        #expect(tail.map(\.count) == [80_000, 20_000])
        #expect(tail.flatMap { $0 } == Array(data[200_000...]))
        #expect(throws: ObjectStoreError.notFound(key: namespace + "missing")) {
            try store.get(namespace + "missing", range: 0..<10, parts: [5, 5])
        }
    }

    /// putPack stores its members concatenated under their pack name (S3 sends them as a
    /// stream of pieces signed by the members' hashes; a member under 8 KiB is joined to the
    /// next). Members carry the run's namespace, so the pack is this run's own.
    func packPut() throws {
        let sizes = [1 << 20, 3000, 70_000, 1 << 20, 500]
        let members = sizes.enumerated().map { i, size in
            var bytes = Self.bytes(size, seed: UInt8(20 + i))
            let tag = Array("\(namespace)\(i)".utf8)
            bytes.replaceSubrange(0..<tag.count, with: tag)
            return HashedBytes(bytes, sha256: ChunkHash.of(bytes))
        }
        let name = try store.putPack(members)
        defer { try? store.delete(name.packKey) }
        #expect(name == ChunkHash.packName(members.map(\.sha256)))
        let all = members.flatMap(\.bytes)
        #expect(try store.get(name.packKey) == all)
        #expect(try store.head(name.packKey)?.size == UInt64(all.count))
        var offset: UInt64 = 0
        for member in members {
            let end = offset + UInt64(member.bytes.count)
            #expect(try store.get(name.packKey, range: offset..<end) == member.bytes)
            offset = end
        }
    }

    // MARK: - Helpers

    /// Deterministic, non-repeating-looking bytes (so truncation or shifts are caught).
    static func bytes(_ count: Int, seed: UInt8) -> [UInt8] {
        var x = UInt32(seed) &* 2_654_435_761 &+ 1
        return (0..<count).map { _ in
            x ^= x << 13; x ^= x >> 17; x ^= x << 5
            return UInt8(truncatingIfNeeded: x)
        }
    }

    /// Runs `body` over `items` on `threads` plain threads and waits for all of them; the first
    /// error is rethrown. Plain threads, because the store blocks and the test pool is tiny.
    static func onThreads<T: Sendable>(_ threads: Int, items: [T],
                                       _ body: @escaping @Sendable (T) throws(ObjectStoreError) -> Void) throws(ObjectStoreError) {
        let next = Counter()
        let firstError = ErrorBox()
        let group = DispatchGroup()
        for _ in 0..<threads {
            group.enter()
            Thread {
                defer { group.leave() }
                while let i = next.take(below: items.count), !firstError.isSet {
                    do throws(ObjectStoreError) { try body(items[i]) } catch { firstError.set(error) }
                }
            }.start()
        }
        group.wait()
        if let error = firstError.value { throw error }
    }
}

private final class Counter: Sendable {
    private let value = Mutex(0)
    func take(below limit: Int) -> Int? {
        value.withLock { v in
            guard v < limit else { return nil }
            defer { v += 1 }
            return v
        }
    }
}

private final class ErrorBox: Sendable {
    private let error = Mutex<ObjectStoreError?>(nil)
    var isSet: Bool { error.withLock { $0 != nil } }
    var value: ObjectStoreError? { error.withLock { $0 } }
    func set(_ e: ObjectStoreError) { error.withLock { if $0 == nil { $0 = e } } }
}
