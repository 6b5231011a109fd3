import Logging
import MossaicCache
import MossaicCore
import MossaicMeta
import MossaicObjectStore
import Synchronization

/// The only owner of chunk identity and placement (ARCHITECTURE.md §8).
///
/// - "Is this chunk new?" is answered here, once, by `prepare`: a chunk this process stored
///   and no commit has published yet (`placed`), a chunk the metadata knows, an inline chunk,
///   or a new one whose bytes must be stored. (The metadata's `ON CONFLICT DO NOTHING` on the
///   chunk row is not a second decision: it only keeps two racing commits of one new chunk
///   from failing; the losing copy is garbage for gc.)
/// - "Which object holds it?" is decided here too, by `store`: one object of its own, a range
///   of a pack of up to `packChunks` chunks, or a staged file (`writeback`) that background
///   threads turn into an object. The locations go into ONE metadata transaction (the commit).
/// - Reads of committed chunks: inline bytes from the metadata, everything else through the
///   verifying, singleflight `BlobCache`, including read-ahead runs.
/// - "What bytes go to the store?" — the chunk transform (`transform`, from the superblock:
///   compression, ARCHITECTURE.md §10) is applied here to every new chunk, in `prepare`, on
///   the hashing thread; whatever stores the result (object, pack, staging) stores that form,
///   and its codec and stored length go into the chunk's row. Readers undo it (`BlobCache`).
///
/// Threading: every method may be called from any thread; `workers` hash and store chunks
/// for writers and commits, `fetchers` run read-ahead.
final class ChunkStore: Sendable {
    struct Configuration: Sendable {
        /// Chunks up to this many bytes live in the metadata (the superblock's `inline_max`).
        var inlineMax: Int
        /// New chunks stored together as one pack object, at most (1: every chunk its own).
        var packChunks: Int
        /// Stage new chunks locally; background threads store them (`writeback`).
        var writeback: Bool
        /// Threads hashing and storing chunks (`upload_threads`).
        var workerThreads: Int
        /// Threads fetching ahead of sequential readers.
        var fetchThreads: Int
    }

    /// Chunks this process put into the store whose rows may not be committed yet, and the
    /// single-object PUTs in flight: another page with the same bytes needs no second PUT, and
    /// its row must name the same place.
    private struct Placements {
        var locations: [ChunkHash: Placed] = [:]
        var putting: [ChunkHash: Future<Placed, FSError>] = [:]
        var objectsStored = 0

        mutating func remember(_ hash: ChunkHash, _ location: Placed) {
            // Bounded: forgetting only risks one redundant PUT of identical bytes.
            if locations.count >= 100_000 { locations.removeAll(keepingCapacity: true) }
            locations[hash] = location
        }
    }

    let metadata: any MetaStore
    let cache: BlobCache
    let configuration: Configuration
    /// Hashing and storing: the writers' streaming uploads and the commits' chunks.
    let workers: WorkerPool
    private let fetchers: WorkerPool
    private let placements = Mutex(Placements())
    /// Where writers and the reclaim sweep meet (`SweepFence`). Lock order: fence, then
    /// placements, then the metadata's connection; never the other way round.
    private let fence = ConditionBox(SweepFence())
    private let logger: Logger

    init(metadata: any MetaStore, cache: BlobCache, configuration: Configuration, logger: Logger) {
        self.metadata = metadata
        self.cache = cache
        self.configuration = configuration
        self.logger = logger
        workers = WorkerPool(threads: configuration.workerThreads, name: "mossaicfs-upload")
        fetchers = WorkerPool(threads: configuration.fetchThreads, name: "mossaicfs-fetch")
    }

    deinit { workers.stop(); fetchers.stop() }

    var store: any ObjectStore { cache.store }
    var staging: StagingArea? { cache.staging }
    /// The superblock's chunk transform; the cache (and staging) undo it with the same one.
    var transform: ChunkTransform { cache.transform }
    /// Objects (single chunks and packs) this process PUT.
    var objectsStored: Int { placements.withLock { $0.objectsStored } }

    // MARK: Identity

    /// Makes `content` (page `index`'s bytes) a chunk: trailing zeros dropped, hashed, and
    /// settled at once if it is known (stored by this process, or in the metadata: dedup) or
    /// small enough to be inline; otherwise its bytes are returned to be stored (`store`).
    /// Nil for an all-zero page (a hole).
    ///
    /// Trailing zeros are not stored because a reference reads as zeros past its length: a
    /// sparse tail costs nothing and a short written prefix may become an inline chunk.
    func prepare(_ content: [UInt8], index: UInt64) throws(FSError) -> PreparedChunk? {
        guard let last = content.lastIndex(where: { $0 != 0 }) else { return nil }
        let bytes = last + 1 == content.count ? content : Array(content[...last])
        let hash = ChunkHash.of(bytes)
        let ref = ChunkRef(index: ChunkIndex(index), hash: hash, length: bytes.count)
        let (pin, placed) = pin(hash)
        if let placed {
            // Stored by this process; the row may or may not be committed: offered again, the
            // commit inserts it at most once.
            return PreparedChunk(stored: StoredChunk(ref: ref, new: NewChunk(hash: hash, length: bytes.count, state: .stored, inlineData: nil,
                                                                             location: placed.location, storedLength: placed.storedLength),
                                                     pin: pin), bytes: nil)
        }
        // A small chunk always carries its bytes, known to the metadata or not: an inline row
        // goes with its last reference, which another file's commit or purge may drop between
        // this look-up and our commit (another host's, or a FORGET's on this one — a window of
        // network round trips with PostgreSQL); the commit then inserts it again (ON CONFLICT
        // DO NOTHING where it is still there) instead of failing on an unknown chunk.
        if bytes.count <= configuration.inlineMax {
            return PreparedChunk(stored: StoredChunk(ref: ref, new: NewChunk(hash: hash, length: bytes.count, state: .inline, inlineData: bytes)),
                                 bytes: nil)
        }
        if try meta({ () throws(MetaError) in try metadata.chunkInfo(hash) }) != nil {
            return PreparedChunk(stored: StoredChunk(ref: ref, new: nil, pin: pin), bytes: nil)
        }
        let encoded = transform.encode(bytes, hash: hash)
        return PreparedChunk(stored: StoredChunk(ref: ref, new: NewChunk(hash: hash, length: bytes.count, state: .stored, inlineData: nil,
                                                                         location: ChunkLocation(.object, codec: encoded.codec),
                                                                         storedLength: encoded.bytes.count),
                                                 pin: pin),
                             bytes: NewChunkBytes(plaintext: bytes, encoded: encoded))
    }

    /// Pins `hash` before anything about it is looked up, and returns where this process
    /// placed it, if it did and that object is not being reclaimed. Waits while the sweep is
    /// deleting the chunk: afterwards its row is gone and the chunk is simply new again.
    private func pin(_ hash: ChunkHash) -> (ChunkPin, Placed?) {
        fence.wait { f -> (ChunkPin, Placed?)? in
            guard !f.condemnedHashes.contains(hash) else { return nil }
            var placed = placements.withLock { $0.locations[hash] }
            if let p = placed, f.condemnedKeys.contains(p.location.key(of: hash)) { placed = nil }
            let key = placed?.location.key(of: hash)
            f.pin(hash, key: key)
            return (ChunkPin(hash: hash, key: key, fence: fence), placed)
        }
    }

    // MARK: Reclaiming

    /// Runs the reclaim sweep's decision (`decide`, ONE metadata transaction, given the chunks
    /// and objects writers rely on) with the fence locked, so no writer pins or looks up a
    /// chunk meanwhile; the chunks and objects it took are condemned before the lock is let
    /// go — a writer wanting one of them waits in `pin` until `absolve` — and this process
    /// forgets having placed anything there.
    func condemn(_ decide: (_ pinnedHashes: Set<ChunkHash>, _ pinnedKeys: Set<String>) throws(FSError) -> ChunkSweep) throws(FSError) -> ChunkSweep {
        try fence.withLock { (f) throws(FSError) -> ChunkSweep in
            let sweep = try decide(Set(f.pinnedHashes.keys), Set(f.pinnedKeys.keys))
            guard !sweep.chunks.isEmpty else { return sweep }
            let hashes = Set(sweep.chunks.map(\.chunk.hash)), keys = Set(sweep.objects.map(\.key))
            f.condemnedHashes.formUnion(hashes)
            f.condemnedKeys.formUnion(keys)
            placements.withLock { p in
                p.locations = p.locations.filter { !hashes.contains($0.key) && !keys.contains($0.value.location.key(of: $0.key)) }
            }
            return sweep
        }
    }

    /// The sweep is done with `sweep`'s objects (deleted, or left for `gc`): writers waiting
    /// for its chunks go on.
    func absolve(_ sweep: ChunkSweep) {
        guard !sweep.chunks.isEmpty else { return }
        fence.withLock { f in
            f.condemnedHashes.subtract(sweep.chunks.map(\.chunk.hash))
            f.condemnedKeys.subtract(sweep.objects.map(\.key))
        }
    }

    /// Forgets where this process stored `hashes`: a reclaim sweep of another host (PostgreSQL)
    /// deleted them, or may have; the next `prepare` looks them up, and stores them anew.
    func forget(_ hashes: [ChunkHash]) {
        placements.withLock { p in for hash in hashes { p.locations[hash] = nil } }
    }

    // MARK: Placement

    /// Stores the new chunks among `prepared`: uploaded as ONE pack (a single one as its own
    /// object), or staged one by one in write-back mode. Returns them with their locations.
    func store(_ prepared: [PreparedChunk]) throws(FSError) -> [StoredChunk] {
        var locations: [ChunkHash: Placed] = [:]
        let new = prepared.compactMap { p in p.bytes.map { (hash: p.stored.ref.hash, bytes: $0) } }
        if configuration.writeback, let staging {
            for chunk in new where locations[chunk.hash] == nil {
                locations[chunk.hash] = try stage(chunk.hash, chunk.bytes, in: staging)
            }
        } else {
            locations = try putPack(new)
        }
        return prepared.map { p in
            var stored = p.stored
            if let placed = locations[stored.ref.hash] {
                stored.new?.location = placed.location
                stored.new?.storedLength = placed.storedLength
            }
            return stored
        }
    }

    /// One page made a stored chunk (prepared, and stored if new).
    func storeChunk(_ content: [UInt8], index: UInt64) throws(FSError) -> StoredChunk? {
        guard let prepared = try prepare(content, index: index) else { return nil }
        return try store([prepared])[0]
    }

    /// Completed pages of a streaming writer made chunks, the new ones stored as one pack.
    func storePages(_ pages: [(UInt64, [UInt8])]) throws(FSError) -> [StoredChunk?] {
        var prepared: [PreparedChunk?] = []
        for (index, bytes) in pages { prepared.append(try prepare(bytes, index: index)) }
        let stored = try store(prepared.compactMap { $0 })
        var next = stored.makeIterator()
        return prepared.map { $0 == nil ? nil : next.next()! }
    }

    /// Stores new chunks with ONE PUT of a pack (their bytes concatenated, named by their
    /// hashes: `ChunkHash.packName`). Chunks this process stored before are not stored again;
    /// a single remaining chunk becomes its own object (a pack of one would only be a longer
    /// name). Concurrent packs holding one chunk are not merged: both are complete, and the
    /// row names one.
    private func putPack(_ chunks: [(hash: ChunkHash, bytes: NewChunkBytes)]) throws(FSError) -> [ChunkHash: Placed] {
        var locations: [ChunkHash: Placed] = [:]
        var members: [(hash: ChunkHash, bytes: NewChunkBytes)] = []
        placements.withLock { p in
            for chunk in chunks where locations[chunk.hash] == nil {
                if let known = p.locations[chunk.hash] { locations[chunk.hash] = known; continue }
                locations[chunk.hash] = Placed(location: .object, storedLength: 0)  // placeholder: marks the hash as taken
                members.append(chunk)
            }
        }
        if members.count == 1 {
            locations[members[0].hash] = try putObject(members[0].hash, members[0].bytes)
            return locations
        }
        guard !members.isEmpty else { return locations }
        // The members' stored forms go to the store as they are, not copied into one buffer: a
        // store that sends them (S3) reads them one after the other.
        let packHash: ChunkHash
        do { packHash = try store.putPack(members.map { $0.bytes.encoded.payload }) } catch { throw CacheError.store(error).fsError }
        placements.withLock { p in
            p.objectsStored += 1
            var offset: UInt64 = 0
            for member in members {
                let encoded = member.bytes.encoded
                let placed = Placed(location: .packed(pack: packHash, offset: offset, length: encoded.bytes.count, codec: encoded.codec),
                                    storedLength: encoded.bytes.count)
                offset += UInt64(encoded.bytes.count)
                p.remember(member.hash, placed)
                locations[member.hash] = placed
            }
        }
        for member in members { cache.keepWritten(member.hash, member.bytes.plaintext, large: true) }
        return locations
    }

    /// Stores a chunk as its own object. Only a PUT by this process proves the object is
    /// there: a cached copy does not, since `mossaicfs gc` may have deleted the object of a
    /// chunk no metadata referenced any more. Concurrent PUTs of one chunk share one request.
    private func putObject(_ hash: ChunkHash, _ bytes: NewChunkBytes) throws(FSError) -> Placed {
        enum Step { case done(Placed), lead(Future<Placed, FSError>), follow(Future<Placed, FSError>) }
        let step: Step = placements.withLock { p in
            if let placed = p.locations[hash] { return .done(placed) }
            if let flight = p.putting[hash] { return .follow(flight) }
            let flight = Future<Placed, FSError>()
            p.putting[hash] = flight
            return .lead(flight)
        }
        switch step {
        case .done(let placed):
            return placed
        case .follow(let flight):
            return try flight.wait()
        case .lead(let flight):
            let placed = Placed(bytes.encoded)
            var result: Result<Placed, FSError> = .success(placed)
            do { try store.putChunk(hash, bytes.encoded.payload) } catch { result = .failure(CacheError.store(error).fsError) }
            placements.withLock { p in
                p.putting[hash] = nil
                if case .success = result { p.objectsStored += 1; p.remember(hash, placed) }
            }
            flight.finish(result)
            _ = try result.get()
            cache.keepWritten(hash, bytes.plaintext, large: false)
            return placed
        }
    }

    /// Write-back mode: makes the chunk durable in the staging area; background threads store
    /// it. Chunks this process has stored already are not staged. Staged chunks become their
    /// own objects.
    private func stage(_ hash: ChunkHash, _ bytes: NewChunkBytes, in staging: StagingArea) throws(FSError) -> Placed {
        if let placed = placements.withLock({ $0.locations[hash] }) { return placed }
        do { try staging.stage(hash, bytes.encoded) } catch { throw CacheError.staging(error).fsError }
        return Placed(bytes.encoded)
    }

    // MARK: Reads

    /// Bytes `pageRange` of a committed page: the referenced chunk's bytes up to the
    /// reference's length, zeros after it and for a hole.
    func bytes(_ ref: ChunkRef?, _ pageRange: Range<Int>) throws(FSError) -> [UInt8] {
        guard let ref, pageRange.lowerBound < ref.length else { return [UInt8](repeating: 0, count: pageRange.count) }
        if !ref.patches.isEmpty { return try patchedBytes(ref, pageRange) }
        if ref.length > configuration.inlineMax { return Array(try pieces(ref, pageRange).joined()) }
        var piece = [UInt8](repeating: 0, count: pageRange.count)
        let chunk = try chunkBytes(ref)
        let upper = min(pageRange.upperBound, ref.length, chunk.count)
        if upper > pageRange.lowerBound {
            piece.replaceSubrange(0..<(upper - pageRange.lowerBound), with: chunk[pageRange.lowerBound..<upper])
        }
        return piece
    }

    /// `bytes` as pieces: for a stored chunk, only the bytes wanted as a slice of the cached
    /// chunk (the cache verifies a chunk once) and zeros past the chunk's end.
    func pieces(_ ref: ChunkRef?, _ pageRange: Range<Int>) throws(FSError) -> [ArraySlice<UInt8>] {
        guard let ref, ref.length > configuration.inlineMax, ref.patches.isEmpty, pageRange.lowerBound < ref.length else {
            return [try bytes(ref, pageRange)[...]]
        }
        let wanted = pageRange.lowerBound..<min(pageRange.upperBound, ref.length)
        let bytes: ArraySlice<UInt8>
        do { bytes = try cache.read(ref.hash, at: ref.location, range: wanted) } catch { throw error.fsError }
        guard bytes.count < pageRange.count else { return [bytes] }
        return [bytes, ArraySlice(repeating: 0, count: pageRange.count - bytes.count)]
    }

    /// Bytes `pageRange` of a page with patches: its chunk's bytes (up to the chunk's own
    /// length), each patch laid over them in order, zeros elsewhere, all cut at the
    /// reference's length.
    private func patchedBytes(_ ref: ChunkRef, _ pageRange: Range<Int>) throws(FSError) -> [UInt8] {
        var page = [UInt8](repeating: 0, count: pageRange.count)
        let start = pageRange.lowerBound
        let chunkPart = ChunkRef(index: ref.index, hash: ref.hash, length: min(ref.length, ref.chunkLength), location: ref.location)
        let baseEnd = min(pageRange.upperBound, chunkPart.length)
        if baseEnd > start {
            let base = try bytes(chunkPart, start..<baseEnd)
            page.replaceSubrange(0..<base.count, with: base)
        }
        for patch in ref.patches {
            let lower = max(patch.offset, start), upper = min(patch.offset + patch.length, pageRange.upperBound, ref.length)
            guard lower < upper else { continue }
            let dataEnd = min(upper, patch.offset + patch.data.count)
            if dataEnd > lower {
                page.replaceSubrange((lower - start)..<(dataEnd - start), with: patch.data[(lower - patch.offset)..<(dataEnd - patch.offset)])
            }
            let zeroStart = max(lower, dataEnd)
            if upper > zeroStart {
                page.replaceSubrange((zeroStart - start)..<(upper - start), with: repeatElement(0, count: upper - zeroStart))
            }
        }
        return page
    }

    /// A chunk's bytes: inline from the metadata, or through the verifying blob cache.
    func chunkBytes(_ ref: ChunkRef) throws(FSError) -> [UInt8] {
        // A chunk is inline iff its own length is at most inline_max; a reference longer than
        // that cannot be to an inline chunk, so skip the metadata query for big chunks.
        if ref.length <= configuration.inlineMax,
           let data = try meta({ () throws(MetaError) in try metadata.inlineData(ref.hash) }) {
            return data
        }
        do {
            return try cache.read(ref.hash, at: ref.location)
        } catch {
            throw error.fsError  // the cache logged a corrupt chunk once; the bridge logs the op
        }
    }

    /// Fetches the chunks of `window` into the cache in the background; `candidates` are the
    /// file's references from the window's start to `packChunks - 1` past its end. A
    /// foreground read of a chunk being fetched joins that fetch (singleflight).
    ///
    /// Chunks stored together in a pack are fetched together: the window is extended to the
    /// end of the pack its last chunk is in (a sequential reader wants those next anyway), and
    /// each run of consecutive chunks at consecutive offsets of one pack is one ranged GET.
    /// Returns the last chunk index fetched when that is past the window.
    func fetchAhead(_ window: ClosedRange<UInt64>, candidates: [ChunkRef]) -> UInt64? {
        var runs: [[ChunkRef]] = []
        var extending = true  // the last run may still grow past the window
        for ref in candidates where min(ref.length, ref.chunkLength) > configuration.inlineMax {
            let inWindow = window.contains(ref.index.rawValue)
            if cache.isCachedOrComing(ref.hash) {
                // No GET needed: read (verified) on a job of its own, in parallel with others.
                if inWindow { runs.append([ref]) }
                extending = false
            } else if extending, let previous = runs.last?.last, Self.continues(previous, with: ref) {
                runs[runs.count - 1].append(ref)
            } else if inWindow {
                runs.append([ref])
                extending = true
            } else {
                extending = false  // past the window and not continuing a pack run: left for later
            }
        }
        for run in runs {
            let chunks = run.map { (hash: $0.hash, location: $0.location) }
            fetchers.run { [cache] in cache.prefetch(chunks) }
        }
        guard let last = runs.last?.last?.index.rawValue, last > window.upperBound else { return nil }
        return last
    }

    /// Whether `next` is the chunk after `previous` in the file and right after it in the same pack.
    private static func continues(_ previous: ChunkRef, with next: ChunkRef) -> Bool {
        next.index.rawValue == previous.index.rawValue + 1 && previous.location.isFollowed(by: next.location)
    }
}

/// A page made a chunk: its reference, and the chunk row to insert if the chunk is new.
struct StoredChunk: Sendable {
    var ref: ChunkRef
    var new: NewChunk?
    /// Keeps the reclaim sweep off the chunk until its commit is done (or abandoned).
    var pin: ChunkPin?
}

/// What the reclaim sweep must not take, and what it is taking (ChunkStore's fence):
/// - pinned: chunks a prepared commit will reference (a known row it deduplicated against, a
///   placement, a new upload) and objects of placements it will name, counted per pin;
/// - condemned: chunks whose rows a sweep transaction deleted and objects it is deleting.
/// A writer pins before it looks a chunk up, and the sweep decides with the same lock held,
/// so either the sweep sees the pin and spares the chunk, or the writer sees it condemned
/// and waits until its object is gone, then stores it anew.
struct SweepFence {
    var pinnedHashes: [ChunkHash: Int] = [:]
    var pinnedKeys: [String: Int] = [:]
    var condemnedHashes: Set<ChunkHash> = []
    var condemnedKeys: Set<String> = []

    mutating func pin(_ hash: ChunkHash, key: String?) {
        pinnedHashes[hash, default: 0] += 1
        if let key { pinnedKeys[key, default: 0] += 1 }
    }

    mutating func unpin(_ hash: ChunkHash, key: String?) {
        if let n = pinnedHashes[hash] { pinnedHashes[hash] = n > 1 ? n - 1 : nil }
        if let key, let n = pinnedKeys[key] { pinnedKeys[key] = n > 1 ? n - 1 : nil }
    }
}

/// One pin of the fence, released when its last copy goes: a `StoredChunk` travels from the
/// writer's uploads to the commit, and the commit keeps its pins until its transaction is done.
final class ChunkPin: Sendable {
    let hash: ChunkHash
    let key: String?
    let fence: ConditionBox<SweepFence>

    init(hash: ChunkHash, key: String?, fence: ConditionBox<SweepFence>) {
        self.hash = hash; self.key = key; self.fence = fence
    }

    deinit { fence.withLock { [hash, key] f in f.unpin(hash, key: key) } }
}

/// A page made a chunk that may still have to be stored: `bytes` are set when the chunk is
/// new and not inline, and `stored.new`'s location is filled in when they are stored.
struct PreparedChunk: Sendable {
    var stored: StoredChunk
    var bytes: NewChunkBytes?
}

/// A new chunk's bytes: its plaintext (for the disk cache) and its stored form (for the store).
struct NewChunkBytes: Sendable {
    var plaintext: [UInt8]
    var encoded: EncodedChunk
}

/// Where this process put a chunk, and the bytes it takes there (its row's `stored_length`).
struct Placed: Sendable, Equatable {
    var location: ChunkLocation
    var storedLength: Int

    init(location: ChunkLocation, storedLength: Int) {
        self.location = location; self.storedLength = storedLength
    }

    /// Its own object (alone, or staged to become one), holding `encoded`.
    init(_ encoded: EncodedChunk) {
        self.init(location: ChunkLocation(.object, codec: encoded.codec), storedLength: encoded.bytes.count)
    }
}

extension ChunkStore.Configuration {
    /// The part of the mount options the store reads, and the superblock's inline bound
    /// (in an extension, so that tests keep the memberwise initializer).
    init(_ options: MountConfiguration, inlineMax: Int) {
        self.init(inlineMax: inlineMax, packChunks: options.packChunks, writeback: options.writeback,
                  workerThreads: options.readOnly ? 1 : options.uploadThreads, fetchThreads: max(1, options.readAheadChunks))
    }
}
