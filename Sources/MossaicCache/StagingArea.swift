#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Logging
import MossaicCore
import MossaicObjectStore

/// Write-back staging (`-o writeback`): chunks a commit needs, kept fsynced in
/// `cache_dir/staging/<hash>` until background threads have stored them in the object store.
/// A file holds the chunk's stored form, exactly the bytes its object will hold, and its name
/// says the form (`ChunkCodec.fileSuffix`: `<hash>.zst` for a zstd frame), so that uploading
/// it after a crash needs nothing but the file; reading one decodes and verifies it.
///
/// A commit in write-back mode stages its new chunks here instead of waiting for their PUTs,
/// then publishes its SQLite transaction: the file is durable locally at once, and in the store
/// once the queue reaches it. Files are published by temp + fsync + rename + directory fsync, so
/// after a crash every staged file is whole, and the next mount uploads them before anything
/// else (whatever its options: leftovers are replayed by read-write mounts without `writeback`
/// too). A staged file is removed only after its PUT succeeded (and the bytes went to the disk
/// cache, through `onUploaded`), so a read that misses here finds the chunk in a cache or the
/// store.
///
/// The staged bytes are bounded (`limit`): `stage` waits for uploads to make room, which is how
/// a store outage eventually holds writers back instead of filling the disk. Uploads that fail
/// are retried without end, with exponential backoff up to 30 s, so that when the store comes
/// back everything drains without intervention.
public final class StagingArea: Sendable {
    private struct State {
        /// Staged chunks not yet stored, with their stored forms' sizes and codecs (also those
        /// being uploaded).
        var staged: [ChunkHash: (size: Int, codec: ChunkCodec)] = [:]
        /// Upload order: oldest first. May hold hashes already uploaded (skipped when taken).
        var queue: [ChunkHash] = []
        var queueHead = 0
        var uploading: Set<ChunkHash> = []
        var stagedBytes = 0
        var stopping = false
        var threadsRunning = 0
        /// Since when uploads fail (nil: they don't); the outage is logged once at its start and end.
        var failingSince: Timestamp?
        var uploadedTotal = 0
    }
    /// File I/O happens outside it.
    private let state = ConditionBox(State())

    public let directory: String
    public let limit: Int
    /// Undoes the stored forms (the superblock's transform), to verify and serve staged chunks.
    public let transform: ChunkTransform
    private let logger: Logger

    /// Opens `directory` (created if missing), sweeps interrupted temp files and queues every
    /// staged chunk found there, oldest first.
    public init(directory: String, limit: Int, transform: ChunkTransform = .identity, logger: Logger) throws(SystemError) {
        self.directory = directory
        self.limit = max(limit, FormatConstants.chunkSize)
        self.transform = transform
        self.logger = logger
        try PosixFiles.makeDirectories(directory + "/.tmp", mode: 0o700)
        for name in try PosixFiles.listDirectory(directory + "/.tmp") { unlink(directory + "/.tmp/" + name) }
        var found: [(ChunkHash, ChunkCodec, Int, Int64, Int)] = []
        for name in try PosixFiles.listDirectory(directory) {
            var st = stat()
            guard let (hash, codec) = Self.parse(name), stat(directory + "/" + name, &st) == 0 else { continue }
            found.append((hash, codec, Int(st.st_size), Int64(st.st_mtim.tv_sec), Int(st.st_mtim.tv_nsec)))
        }
        state.withLock { s in
            for (hash, codec, size, _, _) in found.sorted(by: { ($0.3, $0.4) < ($1.3, $1.4) }) {
                s.staged[hash] = (size, codec)
                s.stagedBytes += size
                s.queue.append(hash)
            }
        }
    }

    /// The file that holds chunk `hash` staged in form `codec` in the staging `directory`
    /// (also for fsck, which reads staged chunks without opening the staging area).
    public static func path(of hash: ChunkHash, codec: ChunkCodec, in directory: String) -> String {
        directory + "/" + hash.hex + codec.fileSuffix
    }

    /// The chunk and form a staged file's name says; nil for any other name (`.damaged` files).
    private static func parse(_ name: String) -> (ChunkHash, ChunkCodec)? {
        for codec in ChunkCodec.allCases where name.hasSuffix(codec.fileSuffix) {
            if let hash = ChunkHash(hex: name.dropLast(codec.fileSuffix.count)) { return (hash, codec) }
        }
        return nil
    }

    /// Chunks and bytes staged and not yet stored.
    public var pending: (chunks: Int, bytes: Int) {
        state.withLock { ($0.staged.count, $0.stagedBytes) }
    }

    /// Chunks stored by the upload threads since the start.
    public var uploaded: Int { state.withLock { $0.uploadedTotal } }

    public func contains(_ hash: ChunkHash) -> Bool { state.withLock { $0.staged[hash] != nil } }

    private func path(_ hash: ChunkHash, _ codec: ChunkCodec) -> String { Self.path(of: hash, codec: codec, in: directory) }

    /// Starts `threads` upload threads. `onUploaded` is called with each chunk stored (its
    /// plaintext), before its staged file is removed (the blob cache keeps the bytes on disk).
    public func start(store: any ObjectStore, threads: Int, onUploaded: @escaping @Sendable (ChunkHash, [UInt8]) -> Void) {
        state.withLock { $0.threadsRunning += max(1, threads) }
        for i in 0..<max(1, threads) {
            let thread = Thread { [self] in self.uploadLoop(store: store, onUploaded: onUploaded) }
            thread.name = "mossaicfs-writeback-\(i)"
            thread.start()
        }
    }

    /// Stages chunk `hash` in its stored form `encoded` (made from bytes that hash to it):
    /// durable on local disk when this returns. Waits while the staged bytes would exceed the
    /// limit.
    public func stage(_ hash: ChunkHash, _ encoded: EncodedChunk) throws(SystemError) {
        let bytes = encoded.bytes
        var waited = false
        // Reserved before the file exists, so concurrent stagers respect the limit too; the
        // upload threads only take it once it is queued.
        let reserved = state.wait { s -> Bool? in
            if s.staged[hash] != nil { return false }
            if s.stagedBytes > 0, s.stagedBytes + bytes.count > limit, !s.stopping {
                if !waited {
                    waited = true
                    logger.info("write-back staging is full; writes wait for uploads", metadata: [
                        "staged_bytes": "\(s.stagedBytes)", "limit": "\(limit)"])
                }
                return nil
            }
            s.staged[hash] = (bytes.count, encoded.codec)
            s.stagedBytes += bytes.count
            return true
        }
        guard reserved else { return }
        do {
            try PosixFiles.writeAtomically(bytes, to: path(hash, encoded.codec), tempDirectory: directory + "/.tmp", durable: true)
        } catch {
            state.withLock { s in
                s.staged[hash] = nil
                s.stagedBytes -= bytes.count
            }
            throw error
        }
        state.withLock { $0.queue.append(hash) }
    }

    /// The plaintext of staged chunk `hash`, decoded and verified, or nil if it is not staged
    /// (any more).
    public func read(_ hash: ChunkHash) -> [UInt8]? {
        guard let codec = state.withLock({ $0.staged[hash]?.codec }), let stored = try? PosixFiles.read(path(hash, codec)) else { return nil }
        do {
            return try transform.decode(stored, codec: codec, hash: hash)
        } catch {
            logger.error("staged chunk damaged on local disk: its bytes do not match its name", metadata: [
                "chunk": "\(hash)", "path": "\(path(hash, codec))", "damage": "\(error)"])
            return nil
        }
    }

    /// Waits until every chunk staged now is stored, at most `timeout` seconds. True if so.
    /// A snapshot of the metadata calls this after copying it: the copy references no chunk
    /// staged later than that, so once these are stored, every chunk it names is in the store.
    public func waitForStaged(timeout: Double) -> Bool {
        let target = state.withLock { Set($0.staged.keys) }
        return state.wait(seconds: timeout) { s in target.isDisjoint(with: s.staged.keys) ? true : nil } ?? false
    }

    /// Waits until nothing is staged, calling `progress` about every `every` seconds with what
    /// is left. Gives up after `timeout` seconds (nil: never) and returns what is left then.
    @discardableResult
    public func drain(timeout: Double? = nil, every: Double = 5,
                      progress: (_ chunks: Int, _ bytes: Int) -> Void) -> (chunks: Int, bytes: Int) {
        let started = Timestamp.monotonicNow()
        while true {
            let (left, draining) = state.withLock { s in ((s.staged.count, s.stagedBytes), s.threadsRunning > 0) }
            let remaining = timeout.map { $0 - Timestamp.monotonicNow().secondsSince(started) }
            guard left.0 > 0, draining, remaining.map({ $0 > 0 }) ?? true else { return left }
            progress(left.0, left.1)
            _ = state.wait(seconds: min(every, remaining ?? every)) { s in s.staged.isEmpty || s.threadsRunning == 0 ? () : nil }
        }
    }

    /// Stops the upload threads after their current PUT; what is left stays staged.
    public func stop() {
        state.withLock { $0.stopping = true }
        state.wait { $0.threadsRunning > 0 ? nil : () }
    }

    // MARK: Upload threads

    private func next() -> (ChunkHash, ChunkCodec)? {
        state.wait { s -> (ChunkHash, ChunkCodec)?? in
            guard !s.stopping else { return .some(nil) }
            while s.queueHead < s.queue.count {
                let hash = s.queue[s.queueHead]
                s.queueHead += 1
                if s.queueHead > 4096, s.queueHead * 2 > s.queue.count { s.queue.removeFirst(s.queueHead); s.queueHead = 0 }
                if let staged = s.staged[hash], !s.uploading.contains(hash) {
                    s.uploading.insert(hash)
                    return .some((hash, staged.codec))
                }
            }
            return nil
        }
    }

    private func uploadLoop(store: any ObjectStore, onUploaded: @Sendable (ChunkHash, [UInt8]) -> Void) {
        defer { state.withLock { $0.threadsRunning -= 1 } }
        var backoff = 0.5
        while let (hash, codec) = next() {
            let file = path(hash, codec)
            let stored: [UInt8]
            do {
                stored = try PosixFiles.read(file)
            } catch {
                logger.error("cannot read staged chunk; it stays staged", metadata: ["chunk": "\(hash)", "error": "\(error)"])
                requeue(hash, after: 30)
                continue
            }
            let plaintext: [UInt8]
            do {
                plaintext = try transform.decode(stored, codec: codec, hash: hash)
            } catch {
                // Not uploaded: a wrong object under this name would poison every reader.
                // Kept for inspection (fsck reports the files referencing it as damaged).
                logger.error("staged chunk damaged on local disk: not uploaded; moved aside", metadata: ["chunk": "\(hash)", "damage": "\(error)"])
                rename(file, file + ".damaged")
                finished(hash, bytes: 0)
                continue
            }
            do {
                // A raw chunk's SHA-256 is its name; a transformed one's is left to a store
                // that signs by it (S3 hashes the payload as it sends it; a local store never).
                try store.putChunk(hash, transform.storesPlaintext(codec) ? HashedBytes(stored, sha256: hash) : HashedBytes(stored, identity: hash))
            } catch {
                let first = state.withLock { s in
                    defer { if s.failingSince == nil { s.failingSince = .now() } }
                    return s.failingSince == nil
                }
                if first {
                    logger.warning("write-back uploads fail; staged chunks are kept and retried until the store answers",
                                   metadata: ["error": "\(error)"])
                }
                requeue(hash, after: backoff)
                backoff = min(backoff * 2, 30)
                continue
            }
            backoff = 0.5
            onUploaded(hash, plaintext)
            unlink(file)
            finished(hash, bytes: stored.count)
        }
    }

    /// Puts `hash` back at the head of the queue after waiting `seconds` (or until stopped).
    private func requeue(_ hash: ChunkHash, after seconds: Double) {
        _ = state.wait(seconds: seconds) { $0.stopping ? () : nil }
        state.withLock { s in
            s.uploading.remove(hash)
            if s.queueHead > 0 { s.queueHead -= 1; s.queue[s.queueHead] = hash } else { s.queue.insert(hash, at: 0) }
        }
    }

    private func finished(_ hash: ChunkHash, bytes: Int) {
        let outage: (since: Timestamp, staged: Int)? = state.withLock { s in
            s.uploading.remove(hash)
            if let staged = s.staged.removeValue(forKey: hash) { s.stagedBytes -= staged.size }
            s.uploadedTotal += bytes > 0 ? 1 : 0
            defer { s.failingSince = nil }
            return s.failingSince.map { ($0, s.staged.count) }
        }
        if let outage {
            logger.info("write-back uploads succeed again", metadata: [
                "outage_seconds": "\(Int(Timestamp.now().secondsSince(outage.since)))", "staged_chunks": "\(outage.staged)"])
        }
    }
}
