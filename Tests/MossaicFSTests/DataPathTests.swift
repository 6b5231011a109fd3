import Foundation
import Logging
import MossaicCache
import MossaicCore
@testable import MossaicFS
import MossaicMeta
import MossaicObjectStore
import MossaicTestSupport
import Synchronization
import Testing

/// 1 MiB of bytes that no other (file, page) pair has, and with no trailing zeros.
private func page(_ file: Int, _ index: Int, round: Int = 0) -> [UInt8] {
    var bytes = [UInt8](repeating: 0, count: MiB)
    bytes.withUnsafeMutableBytes { raw in
        let words = raw.bindMemory(to: UInt64.self)
        for i in 0..<words.count { words[i] = 0xA5 << 56 | UInt64(file) << 48 | UInt64(index) << 32 | UInt64(round) << 24 | UInt64(i) }
    }
    return bytes
}

/// ChunkStore: the one dedup decision and the placement of new chunks.
@Suite struct ChunkStoreTests {
    @Test func newChunksOfOneStoreAreOnePackAndAreNotStoredAgain() throws {
        let f = try Fixture()
        let pages = (0..<3).map { page(1, $0) }
        let prepared = try pages.enumerated().map { try #require(try f.fs.chunks.prepare($0.element, index: UInt64($0.offset))) }
        #expect(prepared.allSatisfy { $0.bytes != nil })
        let before = f.putControl.puts.load(ordering: .relaxed)
        let stored = try f.fs.chunks.store(prepared)
        #expect(f.putControl.puts.load(ordering: .relaxed) - before == 1)
        #expect(try f.store.list(prefix: "packs/").map(\.size) == [UInt64(3 * MiB)])
        guard case .packed(_, let offset, let length) = stored[2].new?.location.placement else { Issue.record("not packed"); return }
        #expect(offset == UInt64(2 * MiB) && length == MiB)

        // The same bytes again, before any commit: settled by prepare, no bytes to store, the
        // same place.
        let again = try #require(try f.fs.chunks.prepare(pages[2], index: 9))
        #expect(again.bytes == nil)
        #expect(again.stored.new?.location == stored[2].new?.location)
        _ = try f.fs.chunks.store([again])
        #expect(f.putControl.puts.load(ordering: .relaxed) - before == 1)
    }

    @Test func aChunkTheMetadataKnowsIsNotNew() throws {
        let f = try Fixture()
        let (ino, h) = try f.createFile("a")
        try f.write(ino, h, 0, page(2, 0))
        try f.fs.release(ino, handle: h)
        // A chunk store that has not stored it itself (another mount's, or after a restart).
        let fresh = ChunkStore(metadata: f.fs.metadata, cache: f.fs.chunks.cache, configuration: f.fs.chunks.configuration,
                               logger: Logger(label: "test"))
        let prepared = try #require(try fresh.prepare(page(2, 0), index: 5))
        #expect(prepared.bytes == nil && prepared.stored.new == nil)
        #expect(prepared.stored.ref.hash == ChunkHash.of(page(2, 0)))
    }

    /// An inline chunk the metadata knows when a commit is prepared, and that loses its last
    /// reference (a purge) before the commit runs: the commit puts it back rather than failing
    /// on an unknown chunk (the PostgreSQL POSIX run lost writes so, under FORGET's purges).
    @Test func aSmallChunkDroppedBeforeTheCommitIsInsertedAgain() throws {
        let f = try Fixture()
        let small = Array("the same few bytes".utf8)
        let (a, ha) = try f.createFile("a")
        try f.write(a, ha, 0, small)
        try f.fs.release(a, handle: ha)
        let (b, hb) = try f.createFile("b")
        let prepared = try #require(try f.fs.chunks.prepare(small, index: 0))
        let new = try #require(prepared.stored.new)
        #expect(new.state == .inline && new.inlineData == small)
        try f.fs.unlink(parent: .root, name: Array("a".utf8))
        f.fs.forget(a, count: 1)  // the kernel lets go: purged
        #expect(try f.fs.metadata.chunkInfo(ChunkHash.of(small)) == nil)  // gone with its last reference
        let now = Timestamp.now()
        _ = try f.fs.metadata.commit(FileCommit(ino: b, chunks: [(ChunkIndex(0), prepared.stored.ref)], newChunks: [new],
                                                size: UInt64(small.count), mtime: now, ctime: now, patches: []), durable: false)
        try f.fs.release(b, handle: hb)
        let h = try f.fs.open(b, mode: .init(writable: false))
        #expect(try f.fs.read(b, handle: h, offset: 0, size: 100) == small)
    }

    /// Eight threads store the same new chunk at once: one PUT. The first PUT is held until
    /// every thread has asked, so the others meet it in flight.
    @Test func concurrentStoresOfOneChunkShareOnePut() throws {
        let asked = ConditionBox(0)
        let f = try Fixture(beforePut: { key in if key.hasPrefix("chunks/") { asked.wait { $0 >= 8 ? () : nil } } })
        let bytes = page(3, 0)
        let pool = WorkerPool(threads: 8, name: "test")
        defer { pool.stopAndWait() }
        let before = f.putControl.puts.load(ordering: .relaxed)
        let futures = (0..<8).map { _ in
            pool.submit { () throws(FSError) -> ChunkLocation? in
                asked.withLock { $0 += 1 }
                return try f.fs.chunks.storeChunk(bytes, index: 0)?.new?.location
            }
        }
        for future in futures { #expect(try future.wait() == .object) }
        #expect(f.putControl.puts.load(ordering: .relaxed) - before == 1)
    }

    /// A pack's chunks (a large write) reach the disk cache only with `cacheLargeWrites`; a
    /// chunk stored alone always does.
    @Test(arguments: [false, true]) func packsReachTheDiskCacheOnlyWhenAskedTo(cacheLargeWrites: Bool) throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("cs-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        let store = try DirectoryObjectStore(root: root + "/store", create: true)
        try PosixFiles.makeDirectories(root + "/meta", mode: 0o700)
        let metadata = try SQLiteMetaStore(path: root + "/meta/meta.db")
        let cache = try BlobCache(store: store, configuration: .init(memoryLimit: 0, diskDirectory: root + "/cache",
                                                                    cacheLargeWrites: cacheLargeWrites), logger: Logger(label: "test"))
        let chunks = ChunkStore(metadata: metadata, cache: cache, configuration: .init(
            inlineMax: 4096, packChunks: 4, writeback: false, workerThreads: 2, fetchThreads: 1), logger: Logger(label: "test"))
        let pages = (0..<3).map { page(4, $0) }
        let packed = try chunks.store(pages.prefix(2).enumerated().map { try #require(try chunks.prepare($0.element, index: UInt64($0.offset))) })
        let alone = try #require(try chunks.storeChunk(pages[2], index: 2))
        #expect(alone.new?.location == .object)
        for (i, stored) in (packed + [alone]).enumerated() {
            #expect(try cache.read(stored.ref.hash, at: stored.new!.location) == pages[i])
        }
        #expect(cache.statistics.storeGets == (cacheLargeWrites ? 0 : 2))
        #expect(cache.statistics.diskHits == (cacheLargeWrites ? 3 : 1))
    }
}

/// BlobCache under contention: one GET per chunk however many readers miss it at once, and
/// verified bytes while readers race evictions.
@Suite struct BlobCacheConcurrencyTests {
    private func storeWithChunks(_ count: Int) throws -> (root: String, store: FaultInjectingObjectStore, pages: [[UInt8]]) {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("bc-\(UUID().uuidString)").path
        let directory = try DirectoryObjectStore(root: root, create: true)
        let pages = (0..<count).map { page(5, $0) }
        for p in pages { try directory.putChunk(ChunkHash.of(p), p) }
        return (root, FaultInjectingObjectStore(directory, configuration: .init(failureRate: 0)), pages)
    }

    @Test func readersMissingOneChunkAtOnceShareOneGet() throws {
        let (root, store, pages) = try storeWithChunks(1)
        defer { try? FileManager.default.removeItem(atPath: root) }
        let cache = try BlobCache(store: store, configuration: .init(memoryLimit: 8 * MiB), logger: Logger(label: "test"))
        let hash = ChunkHash.of(pages[0])
        let pool = WorkerPool(threads: 8, name: "test")
        defer { pool.stopAndWait() }
        let futures = (0..<8).map { _ in pool.submit { () throws(CacheError) -> [UInt8] in try cache.read(hash, at: .object) } }
        for future in futures { #expect(try future.wait() == pages[0]) }
        #expect(store.calls == 1)
    }

    @Test func readersRacingEvictionsGetVerifiedBytes() throws {
        let (root, store, pages) = try storeWithChunks(12)
        defer { try? FileManager.default.removeItem(atPath: root) }
        // Memory for 2 chunks, disk for 3: nearly every read evicts something another reads.
        let cache = try BlobCache(store: store, configuration: .init(memoryLimit: 2 * MiB, diskDirectory: root + "/cache",
                                                                    diskLimit: 3 * MiB, freeSpaceFloor: 0), logger: Logger(label: "test"))
        let wrong = Mutex(0)
        WorkerPool.forEach(count: 400, width: 6) { i in
            let k = (i * 7 + i / 5) % pages.count
            let range = (i % 3 == 0) ? 0..<MiB : (i * 4096 % MiB)..<min(MiB, i * 4096 % MiB + 8192)
            let bytes = try? cache.read(ChunkHash.of(pages[k]), at: .object, range: range)
            if bytes.map(Array.init) != Array(pages[k][range]) { wrong.withLock { $0 += 1 } }
        }
        #expect(wrong.withLock { $0 } == 0)
    }
}

/// FileWriter, FileReader and the MemoryLimiter against commits.
@Suite struct WriteReadConcurrencyTests {
    /// 16 writers of 16 MiB each at once, under a 16 MiB bound for all of them (each file
    /// alone may buffer 12 MiB): none fails, the bound holds, writers did wait, and every
    /// byte is there afterwards.
    @Test func writersStayUnderTheGlobalBoundAndNeverFail() throws {
        let f = try Fixture(writeMemoryBytes: 16 * MiB)
        let files = try (0..<16).map { try f.createFile("w\($0)") }
        let failures = Mutex([String]())
        WorkerPool.forEach(count: 16, width: 16) { n in
            let (ino, h) = files[n]
            do {
                for index in 0..<16 { try f.write(ino, h, UInt64(index * MiB), page(n, index)) }
                try f.fs.release(ino, handle: h)
            } catch {
                failures.withLock { $0.append("\(n): \(error)") }
            }
        }
        #expect(failures.withLock { $0 } == [])
        let usage = f.fs.writeMemory.current
        #expect(usage.peak <= 16 * MiB)
        #expect(usage.waits > 0)
        #expect(usage.used == 0)
        for (n, (ino, _)) in files.enumerated() {
            let h = try f.fs.open(ino, mode: .init(writable: false))
            for index in [0, 7, 15] {
                #expect(try f.fs.read(ino, handle: h, offset: UInt64(index * MiB), size: MiB) == page(n, index))
            }
            try f.fs.release(ino, handle: h)
        }
    }

    /// A writer waiting for memory that every file holds while being committed is woken by a
    /// release, and one that is interrupted gets EINTR.
    @Test func aWaitingWriterIsWokenByAReleaseOrAnInterruption() throws {
        let limiter = MemoryLimiter(limit: 2 * MiB)
        try limiter.reserve(2 * MiB, interruption: nil) { .pending }
        let pool = WorkerPool(threads: 2, name: "test")
        defer { pool.stopAndWait() }
        let waiting = pool.submit { () throws(FSError) in try limiter.reserve(MiB, interruption: nil) { .pending } }
        let interruption = Interruption()
        let interrupted = pool.submit { () throws(FSError) in try limiter.reserve(MiB, interruption: interruption) { .pending } }
        interruption.interrupt()
        #expect(throws: FSError.interrupted) { try interrupted.wait() }
        limiter.release(MiB)
        try waiting.wait()
        #expect(limiter.current.used == 2 * MiB)
    }

    /// Writers rewrite a file round after round while another thread commits it over and
    /// over: every commit publishes a consistent state, and the end is the last round.
    @Test func writersAndCommitsOfOneFileInterleaveSafely() throws {
        let f = try Fixture()
        let (ino, h) = try f.createFile("a")
        let rounds = 12
        let writing = Atomic<Bool>(true)
        let pool = WorkerPool(threads: 2, name: "test")
        defer { pool.stopAndWait() }
        let committer = pool.submit { () throws(FSError) in
            while writing.load(ordering: .relaxed) { try f.fs.flush(ino, handle: h) }
        }
        let writer = pool.submit { () throws(FSError) in
            defer { writing.store(false, ordering: .relaxed) }
            for round in 0..<rounds {
                for index in 0..<4 {
                    let bytes = page(6, index, round: round)
                    _ = try PosixFiles.withBytes(bytes) { (raw) throws(FSError) in try f.fs.write(ino, handle: h, offset: UInt64(index * MiB), data: raw) }
                }
            }
        }
        try writer.wait()
        try committer.wait()
        try f.fs.release(ino, handle: h)
        let r = try f.fs.open(ino, mode: .init(writable: false))
        for index in 0..<4 { #expect(try f.fs.read(ino, handle: r, offset: UInt64(index * MiB), size: MiB) == page(6, index, round: rounds - 1)) }
        try f.fs.release(ino, handle: r)
    }

    /// The reader's chunk map, fetched once per open, is refreshed by every change of the
    /// chunk list: a commit through another handle, a truncation, a punched hole, a
    /// copy_file_range.
    @Test func anOpenReadersChunkMapFollowsEveryChange() throws {
        let f = try Fixture()
        let (ino, w) = try f.createFile("a")
        try f.write(ino, w, 0, page(7, 0) + page(7, 1))
        try f.fs.flush(ino, handle: w)
        let r = try f.fs.open(ino, mode: .init(writable: false))
        #expect(try f.fs.read(ino, handle: r, offset: 0, size: MiB) == page(7, 0))  // map loaded

        try f.write(ino, w, 0, page(7, 0, round: 1))
        try f.fs.flush(ino, handle: w)
        #expect(try f.fs.read(ino, handle: r, offset: 0, size: MiB) == page(7, 0, round: 1))

        _ = try f.fs.setattr(ino, .init(size: UInt64(MiB)), handle: w)
        _ = try f.fs.setattr(ino, .init(size: UInt64(2 * MiB)), handle: w)
        #expect(try f.fs.read(ino, handle: r, offset: UInt64(MiB), size: MiB) == [UInt8](repeating: 0, count: MiB))

        try f.fs.fallocate(ino, handle: w, mode: .punchHole, offset: 0, length: UInt64(MiB))
        #expect(try f.fs.read(ino, handle: r, offset: 0, size: 4096) == [UInt8](repeating: 0, count: 4096))

        let (source, s) = try f.createFile("b")
        try f.write(source, s, 0, page(8, 0))
        try f.fs.flush(source, handle: s)
        _ = try f.fs.copyFileRange(from: source, handle: s, offset: 0, to: ino, handle: w, offset: UInt64(MiB), length: UInt64(MiB))
        #expect(try f.fs.read(ino, handle: r, offset: UInt64(MiB), size: MiB) == page(8, 0))
        for (i, h) in [(ino, r), (ino, w), (source, s)] { try f.fs.release(i, handle: h) }
    }
}

/// Close-to-open across hosts: what an open file keeps of the data (its size, its chunk map)
/// is revalidated at the next open.
@Suite struct CloseToOpenTests {
    /// Another host commits the file (here straight to the metadata, with chunks a chunk store
    /// of its own stored) while a handle here, open since before, had read and mapped the old
    /// data: the next open reads the new data whole, and tells the kernel to drop its pages.
    @Test func anOpenReadsAnotherHostsCommitThoughTheFileStayedOpenHere() throws {
        let f = try Fixture()
        let (ino, h) = try f.createFile("a")
        try f.write(ino, h, 0, page(3, 0))
        try f.fs.release(ino, handle: h)
        let kept = try f.fs.open(ino, mode: .init(writable: false))
        #expect(try f.fs.read(ino, handle: kept, offset: 0, size: MiB) == page(3, 0))

        let otherHost = ChunkStore(metadata: f.fs.metadata, cache: f.fs.chunks.cache, configuration: f.fs.chunks.configuration,
                                   logger: Logger(label: "other host"))
        let pages = (0..<2).map { page(4, $0) }
        let prepared = try pages.enumerated().map { try #require(try otherHost.prepare($0.element, index: UInt64($0.offset))) }
        let stored = try otherHost.store(prepared)
        let now = Timestamp.now()
        _ = try f.fs.metadata.commit(FileCommit(ino: ino, chunks: stored.enumerated().map { (ChunkIndex(UInt64($0.offset)), $0.element.ref) },
                                                newChunks: stored.compactMap(\.new), size: UInt64(2 * MiB), mtime: now, ctime: now,
                                                patches: []), durable: false)

        let (again, keepCache) = try f.fs.openKeepingCache(ino, mode: .init(writable: false))
        #expect(!keepCache)
        #expect(try f.fs.getattr(ino).size == UInt64(2 * MiB))
        #expect(try f.fs.read(ino, handle: again, offset: 0, size: 2 * MiB) == pages[0] + pages[1])
        #expect(try f.fs.read(ino, handle: kept, offset: UInt64(MiB), size: MiB) == pages[1])
    }
}
