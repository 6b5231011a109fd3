#if canImport(Glibc)
import Glibc
#endif
import Logging
import MossaicCore
import MossaicObjectStore
import Synchronization

/// The verified, singleflight READ cache beneath `ChunkStore` (MossaicFS), which alone
/// decides what is stored where. Chunks by hash: memory LRU, then write-back staging, then
/// disk LRU, then the object store, where a chunk is its own object or a range of a pack
/// (`ChunkLocation`). Callers pass the location their metadata row names; the cache itself is
/// keyed by hash only. Chunks this process stored are kept on disk through `keepWritten`.
///
/// Every byte handed out is verified: chunks from the store and from the disk cache are
/// re-hashed, and a mismatch is an error (from the store) or a dropped cache file that is
/// fetched again (from disk). Concurrent misses of one chunk share one GET (singleflight).
/// Lock order: `state` is a leaf lock; no I/O happens while it is held.
public final class BlobCache: Sendable {
    public struct Configuration: Sendable {
        public var memoryLimit: Int
        /// Directory of the disk cache; nil disables it (e.g. for a local directory store,
        /// whose objects are already on this disk).
        public var diskDirectory: String?
        public var diskLimit: Int
        /// Free space the disk cache leaves on its filesystem (`cache_free`); it also always
        /// leaves a reserve for meta.db (`DiskLRU.reserve(onFilesystemOf:)`), also with 0.
        public var freeSpaceFloor: Int
        /// Keep the chunks of packs (large writes) in the disk cache too (`cache_large_writes`).
        /// Off by default, as JuiceFS's `--cache-large-write`: copying a big file in would
        /// otherwise evict what was being read, and writing every streamed byte to the cache
        /// disk cost 13 % of the daemon's CPU in a sequential write (docs/BENCHMARKS.md).
        public var cacheLargeWrites: Bool
        /// Measures the filesystem of the disk cache's directory; tests give the cache a disk of
        /// their choosing.
        public var diskSpace: @Sendable (String) -> DiskSpace?
        /// The cache a mount's options ask for (`mem_cache_size`, `cache_size`, `cache_free`,
        /// `cache_large_writes`).
        public init(_ options: MountConfiguration, diskDirectory: String?) {
            self.init(memoryLimit: options.memoryCacheBytes, diskDirectory: diskDirectory, diskLimit: options.diskCacheBytes,
                      freeSpaceFloor: options.cacheFreeBytes, cacheLargeWrites: options.cacheLargeWrites)
        }

        /// A cache of the given bounds; what is not given is as the mount options' defaults.
        public init(memoryLimit: Int = MountConfiguration().memoryCacheBytes, diskDirectory: String? = nil,
                    diskLimit: Int = MountConfiguration().diskCacheBytes, freeSpaceFloor: Int = MountConfiguration().cacheFreeBytes,
                    cacheLargeWrites: Bool = MountConfiguration().cacheLargeWrites,
                    diskSpace: @escaping @Sendable (String) -> DiskSpace? = { DiskSpace.of($0) }) {
            self.memoryLimit = memoryLimit; self.diskDirectory = diskDirectory; self.diskLimit = diskLimit; self.freeSpaceFloor = freeSpaceFloor
            self.cacheLargeWrites = cacheLargeWrites; self.diskSpace = diskSpace
        }
    }

    /// Counters for status and tests.
    public struct Statistics: Sendable, Equatable {
        public var memoryHits = 0
        public var diskHits = 0
        public var storeGets = 0
        public var corrupt = 0
        /// Chunks not written to the disk cache for lack of room on its filesystem.
        public var diskSkipped = 0
        public var memoryBytes = 0
        public var diskBytes = 0
    }

    private struct State {
        var memory: MemoryLRU
        var disk: DiskLRU?
        var inFlight: [ChunkHash: Flight] = [:]
        /// Corrupt chunks already logged: each is reported once, however often it is read.
        var reportedCorrupt: Set<ChunkHash> = []
        /// Chunks whose disk-cache file (or, for a local store, whose object) this process has
        /// hashed or written from verified bytes: ranges of them are read without loading and
        /// re-hashing the whole chunk (`read(_:range:)`). Bounded: forgetting only costs one
        /// more full verification.
        var verified: Set<ChunkHash> = []
        /// A chunk was left out of the disk cache for lack of room and this was logged; cleared
        /// when a cache file is written again, so each such episode is logged once, not per chunk.
        var diskFullReported = false
        var stats = Statistics()
    }

    /// One fetch in progress; followers wait on it.
    private typealias Flight = Future<[UInt8], CacheError>

    public let store: any ObjectStore
    /// Write-back staging (read-write mounts): chunks committed but not yet in the store.
    public let staging: StagingArea?
    private let state: Mutex<State>
    private let logger: Logger
    private let cacheLargeWrites: Bool
    private let diskDirectory: String?
    private let diskSpace: @Sendable (String) -> DiskSpace?

    public init(store: any ObjectStore, configuration: Configuration, staging: StagingArea? = nil, logger: Logger) throws(SystemError) {
        self.store = store
        self.staging = staging
        self.logger = logger
        cacheLargeWrites = configuration.cacheLargeWrites
        diskDirectory = configuration.diskDirectory
        diskSpace = configuration.diskSpace
        var disk: DiskLRU?
        var victims: [String] = []
        if let dir = configuration.diskDirectory {
            disk = try DiskLRU(directory: dir, limit: configuration.diskLimit, freeSpaceFloor: configuration.freeSpaceFloor)
            // Within bounds before the first write: the metadata on this filesystem needs its
            // room from the start, whatever filled it while the cache was not running.
            victims = disk!.trim(space: configuration.diskSpace(dir))
        }
        for victim in victims { unlink(victim) }
        state = Mutex(State(memory: MemoryLRU(limit: configuration.memoryLimit), disk: disk))
    }

    /// Where chunk `hash` is cached under a disk-cache directory (cache_dir/blobs): for the
    /// offline tools (fsck, gc) that read or drop cached copies without opening the cache.
    public static func diskCachePath(of hash: ChunkHash, in directory: String) -> String {
        DiskLRU.path(of: hash, in: directory)
    }

    public var statistics: Statistics {
        state.withLock { s in
            var out = s.stats
            out.memoryBytes = s.memory.bytes
            out.diskBytes = s.disk?.bytes ?? 0
            return out
        }
    }

    /// The verified bytes of chunk `hash`, whose metadata row says it is at `location`.
    public func read(_ hash: ChunkHash, at location: ChunkLocation) throws(CacheError) -> [UInt8] {
        enum Step { case hit([UInt8]), disk(String), lead(Flight), follow(Flight) }
        let step: Step = state.withLock { s in
            if let bytes = s.memory.get(hash) { s.stats.memoryHits += 1; return .hit(bytes) }
            if let flight = s.inFlight[hash] { return .follow(flight) }
            let flight = Flight()
            s.inFlight[hash] = flight
            if s.disk?.contains(hash) == true, let path = s.disk?.path(hash) { return .disk(path) }
            return .lead(flight)
        }
        switch step {
        case .hit(let bytes): return bytes
        case .follow(let flight): return try flight.wait()
        case .disk(let path):
            do {
                let bytes = try PosixFiles.read(path)
                if ChunkHash.of(bytes) == hash {
                    finishFlight(hash, .success(bytes), source: .disk)
                    return bytes
                }
            } catch where error.errno == ENOENT {
                // Evicted since it was looked up (a writer made room): not damage, a miss.
                state.withLock { s in s.disk?.removed(hash) }
                return try fetch(hash, at: location)
            } catch {}
            // Truncated or damaged cache file: drop it and fetch again.
            logger.warning("dropping damaged cache file", metadata: ["chunk": "\(hash)", "path": "\(path)"])
            unlink(path)
            state.withLock { s in s.disk?.removed(hash) }
            return try fetch(hash, at: location)
        case .lead:
            if let bytes = readStaged(hash) { return bytes }
            return try fetch(hash, at: location)
        }
    }

    /// A staged chunk may not be in the store yet: its staged file is the authoritative copy.
    /// Called as the leader of the chunk's flight.
    private func readStaged(_ hash: ChunkHash) -> [UInt8]? {
        guard let bytes = staging?.read(hash) else { return nil }
        finishFlight(hash, .success(bytes), source: .staging)
        return bytes
    }

    private enum Source { case disk, staging, store }

    /// Bytes `range` of chunk `hash`. A chunk verified earlier in this process is read in
    /// part, from its disk-cache file or (local stores) its object, so a random reader of a
    /// file larger than the memory cache reads 4 KiB, not a whole chunk that it re-hashes.
    /// Anything else goes through `read(_:)`, which verifies the whole chunk first.
    ///
    /// The trust is per process: a cache file or local object altered behind the daemon's
    /// back after it was verified is not noticed by ranged reads (as with the page cache).
    /// The bytes come as a slice: of the cached chunk itself when it is in memory (no copy).
    public func read(_ hash: ChunkHash, at location: ChunkLocation, range: Range<Int>) throws(CacheError) -> ArraySlice<UInt8> {
        enum Plan { case memory([UInt8]), file(String), local, whole }
        let isLocal = store.isLocal
        let plan: Plan = state.withLock { s in
            if let bytes = s.memory.get(hash) { s.stats.memoryHits += 1; return .memory(bytes) }
            guard s.verified.contains(hash) else { return .whole }
            if s.disk != nil {
                guard s.disk!.contains(hash) else { return .whole }
                return .file(s.disk!.path(hash))
            }
            return isLocal ? .local : .whole
        }
        switch plan {
        case .memory(let bytes):
            return Self.slice(bytes, range)
        case .file(let path):
            if let bytes = try? PosixFiles.read(path, offset: UInt64(range.lowerBound), count: range.count), bytes.count == range.count {
                state.withLock { $0.stats.diskHits += 1 }
                return bytes[...]
            }
        case .local:
            // Only where the store holds plaintext: a sealed chunk is opened as a whole.
            if store.chunkSealing.cipher == nil, let bytes = try? store.get(location.key(of: hash), range: location.objectRange(range)),
               bytes.count == range.count {
                state.withLock { $0.stats.diskHits += 1 }
                return bytes[...]
            }
        case .whole:
            break
        }
        // Not verified, or its file changed length or vanished (evicted): the whole chunk.
        state.withLock { _ = $0.verified.remove(hash) }
        return Self.slice(try read(hash, at: location), range)
    }

    /// Whether chunk `hash` needs no GET to be read: it is in memory or the disk cache, or a
    /// fetch of it is under way. Read-ahead verifies such chunks one per job (in parallel, as
    /// their hashing is the work) and gathers only the others into pack runs.
    public func isCachedOrComing(_ hash: ChunkHash) -> Bool {
        state.withLock { s in s.memory.contains(hash) || s.inFlight[hash] != nil || s.disk?.contains(hash) == true }
    }

    /// Read-ahead of chunks that lie one after another in one pack: ONE ranged GET for all of
    /// them instead of one per chunk (S3 charges per request), each chunk then verified and
    /// cached on its own. Chunks cached or being fetched already are skipped; anything that
    /// is not such a run (own objects, staged chunks) is read chunk by chunk. A chunk whose
    /// bytes in the run do not verify is fetched again alone, which reports it as corrupt.
    public func prefetch(_ chunks: [(hash: ChunkHash, location: ChunkLocation)]) {
        let pack = chunks.first?.location.pack
        guard chunks.count > 1, let pack, chunks.allSatisfy({ $0.location.pack == pack }) else {
            for chunk in chunks { _ = try? read(chunk.hash, at: chunk.location) }
            return
        }
        let led: [(hash: ChunkHash, location: ChunkLocation, flight: Flight)] = state.withLock { s in
            var led: [(hash: ChunkHash, location: ChunkLocation, flight: Flight)] = []
            for chunk in chunks where !s.memory.contains(chunk.hash) && s.inFlight[chunk.hash] == nil && s.disk?.contains(chunk.hash) != true {
                let flight = Flight()
                s.inFlight[chunk.hash] = flight
                led.append((chunk.hash, chunk.location, flight))
            }
            return led
        }
        guard !led.isEmpty else { return }
        // One ranged GET from the first to the last chunk led here, received as one buffer per
        // chunk (chunks cached meanwhile leave gaps, received as parts of their own): no run
        // buffer to map and copy the chunks out of.
        let sealing = store.chunkSealing
        let packed = led.compactMap { chunk -> (hash: ChunkHash, offset: UInt64, length: Int)? in
            guard case .packed(_, let offset, let length) = chunk.location else { return nil }
            return (chunk.hash, offset, sealing.storedLength(length))
        }
        var placed: [(hash: ChunkHash, part: Int, length: Int)] = []
        var plan: [Int] = []
        var lower: UInt64 = 0, cursor: UInt64 = 0
        for chunk in packed.sorted(by: { $0.offset < $1.offset }) {
            if plan.isEmpty { lower = chunk.offset; cursor = chunk.offset }
            guard chunk.offset >= cursor else { continue }  // overlaps the one before: fetched alone below
            if chunk.offset > cursor { plan.append(Int(chunk.offset - cursor)) }
            placed.append((chunk.hash, plan.count, chunk.length))
            plan.append(chunk.length)
            cursor = chunk.offset + UInt64(chunk.length)
        }
        let parts = plan.isEmpty ? nil : try? store.get(pack.packKey, range: lower..<cursor, parts: plan)
        var done: Set<ChunkHash> = []
        for chunk in placed {
            guard let parts, chunk.part < parts.count, parts[chunk.part].count == chunk.length else { continue }
            if let bytes = try? sealing.open(parts[chunk.part], hash: chunk.hash), ChunkHash.of(bytes) == chunk.hash {
                finishFlight(chunk.hash, .success(bytes), source: .store)
                writeToDisk(chunk.hash, bytes)
                done.insert(chunk.hash)
            }
        }
        for chunk in led where !done.contains(chunk.hash) {
            _ = try? fetch(chunk.hash, at: chunk.location)  // alone: retried, and reported if corrupt
        }
    }

    /// `range` of `bytes`, cut at their end; a view of the same storage, not a copy.
    private static func slice(_ bytes: [UInt8], _ range: Range<Int>) -> ArraySlice<UInt8> {
        let upper = min(range.upperBound, bytes.count)
        return upper > range.lowerBound ? bytes[range.lowerBound..<upper] : []
    }

    private func markVerified(_ s: inout State, _ hash: ChunkHash) {
        if s.verified.count >= 1_000_000 { s.verified.removeAll(keepingCapacity: true) }
        s.verified.insert(hash)
    }

    /// GETs the chunk as the leader of its flight, opens it (`ChunkSealing`: an encrypted
    /// filesystem's GCM tag is checked), verifies it and caches it.
    private func fetch(_ hash: ChunkHash, at location: ChunkLocation) throws(CacheError) -> [UInt8] {
        let result: Result<[UInt8], CacheError>
        let sealing = store.chunkSealing
        do {
            let stored: [UInt8]
            switch location {
            case .object: stored = try store.get(hash.objectKey)
            case .packed(let pack, _, let length): stored = try store.get(pack.packKey, range: sealing.storedRange(of: location, length: length))
            }
            if let bytes = try? sealing.open(stored, hash: hash) {
                let actual = ChunkHash.of(bytes)
                result = actual == hash ? .success(bytes) : .failure(.corrupt(hash: hash, actual: actual))
            } else {
                result = .failure(.unauthentic(hash: hash))
            }
            if case .failure(let error) = result, state.withLock({ $0.reportedCorrupt.insert(hash).inserted }) {
                let why = if case .corrupt = error { "its bytes do not match its name" } else { "it does not authenticate under the filesystem's key" }
                var metadata: Logger.Metadata = ["chunk": "\(hash)"]
                if case .corrupt(_, let actual) = error { metadata["actual"] = "\(actual)" }
                logger.error("corrupt chunk in store: \(why); reads of it fail with EIO (run mossaicfs fsck --verify)", metadata: metadata)
            }
        } catch {
            result = .failure(.store(error))
        }
        finishFlight(hash, result, source: .store)
        if case .success(let bytes) = result { writeToDisk(hash, bytes) }
        return try result.get()
    }

    private func finishFlight(_ hash: ChunkHash, _ result: Result<[UInt8], CacheError>, source: Source) {
        let flight: Flight? = state.withLock { s in
            switch result {
            case .success(let bytes):
                s.memory.insert(hash, bytes)
                if source == .store { s.stats.storeGets += 1 } else { s.stats.diskHits += 1 }
                // Its disk file (or a local store's object) just hashed right; a remote
                // chunk's disk file is marked when it is written (writeToDisk).
                if source == .disk || (source == .store && store.isLocal) { markVerified(&s, hash) }
            case .failure(.corrupt), .failure(.unauthentic):
                s.stats.storeGets += 1
                s.stats.corrupt += 1
            case .failure:
                s.stats.storeGets += 1
            }
            return s.inFlight.removeValue(forKey: hash)
        }
        flight?.finish(result)
    }

    /// Keeps chunk `hash` that this process just stored (its `bytes` were hashed to `hash` by
    /// the writer) in the disk cache, so reading it back needs no GET. Not in the memory
    /// cache: a writer streaming a large file would fill it with chunks that are rarely read
    /// at once, and memory is the budget that counts. A `large` write (a pack: a sequential
    /// writer's full pages, or a commit of several) is kept only with `cacheLargeWrites`.
    public func keepWritten(_ hash: ChunkHash, _ bytes: [UInt8], large: Bool) {
        guard !large || cacheLargeWrites else { return }
        writeToDisk(hash, bytes)
    }

    /// A chunk the write-back threads stored: its staged bytes move to the disk cache.
    public func keepUploaded(_ hash: ChunkHash, _ bytes: [UInt8]) {
        writeToDisk(hash, bytes)
    }

    /// Publishes a disk-cache file (temp + rename) after evicting what the bounds require to
    /// make room for it. A cache file is never worth a failed write: every caller's chunk is in
    /// the store or staging already, so a chunk that does not fit is simply not cached — when
    /// even an empty cache leaves too little free space, or when writing fails with ENOSPC or
    /// EDQUOT once more after evicting. Failures are logged, not thrown.
    private func writeToDisk(_ hash: ChunkHash, _ bytes: [UInt8]) {
        guard let diskDirectory else { return }
        let space = diskSpace(diskDirectory)  // measured outside the lock: a system call
        guard let (admission, path, temp) = state.withLock({ s -> (DiskLRU.Admission, String, String)? in
            guard let admission = s.disk?.admit(hash, size: bytes.count, space: space) else { return nil }
            return (admission, s.disk!.path(hash), s.disk!.temporaryDirectory)
        }) else { return }
        switch admission {
        case .cached:
            return
        case .noRoom(let victims):
            for victim in victims { unlink(victim) }
            skipDiskWrite(hash, because: "less than cache_free and the cache's reserve would stay free even with the disk cache empty")
            return
        case .write(let victims):
            for victim in victims { unlink(victim) }
        }
        var failure = publish(bytes, at: path, tempDirectory: temp)
        if let error = failure, Self.isOutOfSpace(error) {
            // The free space measured was not there (another writer on the filesystem, a
            // quota): evict as much again and try once more.
            let victims = state.withLock { s in s.disk?.makeRoom(bytes.count) ?? [] }
            if !victims.isEmpty {
                for victim in victims { unlink(victim) }
                failure = publish(bytes, at: path, tempDirectory: temp)
            }
        }
        if let error = failure {
            state.withLock { s in s.disk?.abandoned(size: bytes.count) }
            if Self.isOutOfSpace(error) {
                skipDiskWrite(hash, because: "\(error)")
            } else {
                logger.warning("cannot write cache file", metadata: ["path": "\(path)", "error": "\(error)"])
            }
            return
        }
        // `bytes` hash to `hash` (every caller verified or computed it): the file is verified.
        state.withLock { s in
            markVerified(&s, hash)
            s.disk?.added(hash, size: bytes.count)
            s.diskFullReported = false
        }
    }

    private func publish(_ bytes: [UInt8], at path: String, tempDirectory: String) -> SystemError? {
        do {
            try PosixFiles.makeDirectories(PosixFiles.directoryName(path), mode: 0o700)
            try PosixFiles.writeAtomically(bytes, to: path, tempDirectory: tempDirectory, durable: false)
            return nil
        } catch {
            return error
        }
    }

    private static func isOutOfSpace(_ error: SystemError) -> Bool {
        error.errno == ENOSPC || error.errno == EDQUOT
    }

    /// A chunk left out of the disk cache for lack of room: counted, and logged once until a
    /// cache file is written again (a full disk would otherwise log every chunk).
    private func skipDiskWrite(_ hash: ChunkHash, because reason: String) {
        let first = state.withLock { s in
            s.stats.diskSkipped += 1
            defer { s.diskFullReported = true }
            return !s.diskFullReported
        }
        guard first else { return }
        logger.warning("disk cache full: chunks are not cached until there is room again; reads of them go to the store",
                       metadata: ["chunk": "\(hash)", "reason": "\(reason)"])
    }
}
