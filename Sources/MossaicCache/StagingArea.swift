#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Logging
import MossaicCore
import MossaicObjectStore

/// Write-back staging (`-o writeback`): chunks a commit needs, kept fsynced in
/// `cache_dir/staging/<hash>` until background threads have stored them in the object store.
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
public final class StagingArea: @unchecked Sendable {
    // @unchecked: every `var` below is guarded by `condition`; file I/O happens outside it.
    private let condition = NSCondition()
    /// Staged chunks not yet stored, with their sizes (also those being uploaded).
    private var staged: [ChunkHash: Int] = [:]
    /// Upload order: oldest first. May hold hashes already uploaded (skipped when taken).
    private var queue: [ChunkHash] = []
    private var queueHead = 0
    private var uploading: Set<ChunkHash> = []
    private var stagedBytes = 0
    private var stopping = false
    private var threadsRunning = 0
    /// Since when uploads fail (nil: they don't); the outage is logged once at its start and end.
    private var failingSince: Timestamp?
    private var uploadedTotal = 0

    public let directory: String
    public let limit: Int
    private let logger: Logger

    /// Opens `directory` (created if missing), sweeps interrupted temp files and queues every
    /// staged chunk found there, oldest first.
    public init(directory: String, limit: Int, logger: Logger) throws(SystemError) {
        self.directory = directory
        self.limit = max(limit, FormatConstants.chunkSize)
        self.logger = logger
        try PosixFiles.makeDirectories(directory + "/.tmp", mode: 0o700)
        for name in try PosixFiles.listDirectory(directory + "/.tmp") { unlink(directory + "/.tmp/" + name) }
        var found: [(ChunkHash, Int, Int64, Int)] = []
        for name in try PosixFiles.listDirectory(directory) {
            var st = stat()
            guard let hash = ChunkHash(hex: name), stat(directory + "/" + name, &st) == 0 else { continue }
            found.append((hash, Int(st.st_size), Int64(st.st_mtim.tv_sec), Int(st.st_mtim.tv_nsec)))
        }
        for (hash, size, _, _) in found.sorted(by: { ($0.2, $0.3) < ($1.2, $1.3) }) {
            staged[hash] = size
            stagedBytes += size
            queue.append(hash)
        }
    }

    /// Chunks and bytes staged and not yet stored.
    public var pending: (chunks: Int, bytes: Int) {
        condition.lock(); defer { condition.unlock() }
        return (staged.count, stagedBytes)
    }

    /// Chunks stored by the upload threads since the start.
    public var uploaded: Int {
        condition.lock(); defer { condition.unlock() }
        return uploadedTotal
    }

    public func contains(_ hash: ChunkHash) -> Bool {
        condition.lock(); defer { condition.unlock() }
        return staged[hash] != nil
    }

    private func path(_ hash: ChunkHash) -> String { directory + "/" + hash.hex }

    /// Starts `threads` upload threads. `onUploaded` is called with each chunk stored, before
    /// its staged file is removed (the blob cache keeps the bytes on disk).
    public func start(store: any ObjectStore, threads: Int, onUploaded: @escaping @Sendable (ChunkHash, [UInt8]) -> Void) {
        condition.lock()
        threadsRunning += max(1, threads)
        condition.unlock()
        for i in 0..<max(1, threads) {
            let thread = Thread { [self] in self.uploadLoop(store: store, onUploaded: onUploaded) }
            thread.name = "mossaicfs-writeback-\(i)"
            thread.start()
        }
    }

    /// Stages chunk `hash` (`bytes` hash to it): durable on local disk when this returns. Waits
    /// while the staged bytes would exceed the limit.
    public func stage(_ hash: ChunkHash, _ bytes: [UInt8]) throws(SystemError) {
        condition.lock()
        if staged[hash] != nil { condition.unlock(); return }
        var waited = false
        while stagedBytes > 0, stagedBytes + bytes.count > limit, !stopping {
            if !waited {
                waited = true
                logger.info("write-back staging is full; writes wait for uploads", metadata: [
                    "staged_bytes": "\(stagedBytes)", "limit": "\(limit)"])
            }
            condition.wait()
        }
        // Reserved before the file exists, so concurrent stagers respect the limit too; the
        // upload threads only take it once it is queued.
        staged[hash] = bytes.count
        stagedBytes += bytes.count
        condition.unlock()
        do {
            try PosixFiles.writeAtomically(bytes, to: path(hash), tempDirectory: directory + "/.tmp", durable: true)
        } catch {
            condition.lock()
            staged[hash] = nil
            stagedBytes -= bytes.count
            condition.broadcast()
            condition.unlock()
            throw error
        }
        condition.lock()
        queue.append(hash)
        condition.broadcast()
        condition.unlock()
    }

    /// The staged bytes of `hash`, verified, or nil if it is not staged (any more).
    public func read(_ hash: ChunkHash) -> [UInt8]? {
        guard contains(hash), let bytes = try? PosixFiles.read(path(hash)) else { return nil }
        guard ChunkHash.of(bytes) == hash else {
            logger.error("staged chunk damaged on local disk: its bytes do not match its name", metadata: [
                "chunk": "\(hash)", "path": "\(path(hash))"])
            return nil
        }
        return bytes
    }

    /// Waits until every chunk staged now is stored, at most `timeout` seconds. True if so.
    /// A snapshot of the metadata calls this after copying it: the copy references no chunk
    /// staged later than that, so once these are stored, every chunk it names is in the store.
    public func waitForStaged(timeout: Double) -> Bool {
        condition.lock(); defer { condition.unlock() }
        let target = Set(staged.keys)
        let deadline = Date(timeIntervalSinceNow: timeout)
        while !target.isDisjoint(with: staged.keys) {
            if !condition.wait(until: deadline) { return target.isDisjoint(with: staged.keys) }
        }
        return true
    }

    /// Waits until nothing is staged, calling `progress` about every `every` seconds with what
    /// is left. Gives up after `timeout` seconds (nil: never) and returns what is left then.
    @discardableResult
    public func drain(timeout: Double? = nil, every: Double = 5,
                      progress: (_ chunks: Int, _ bytes: Int) -> Void) -> (chunks: Int, bytes: Int) {
        let deadline = timeout.map { Date(timeIntervalSinceNow: $0) }
        condition.lock(); defer { condition.unlock() }
        while !staged.isEmpty, threadsRunning > 0 {
            if let deadline, deadline.timeIntervalSinceNow <= 0 { break }
            progress(staged.count, stagedBytes)
            var next = Date(timeIntervalSinceNow: every)
            if let deadline, deadline < next { next = deadline }
            while !staged.isEmpty, Date() < next { _ = condition.wait(until: next) }
        }
        return (staged.count, stagedBytes)
    }

    /// Stops the upload threads after their current PUT; what is left stays staged.
    public func stop() {
        condition.lock()
        stopping = true
        condition.broadcast()
        while threadsRunning > 0 { condition.wait() }
        condition.unlock()
    }

    // MARK: Upload threads

    private func next() -> ChunkHash? {
        condition.lock(); defer { condition.unlock() }
        while !stopping {
            while queueHead < queue.count {
                let hash = queue[queueHead]
                queueHead += 1
                if queueHead > 4096, queueHead * 2 > queue.count { queue.removeFirst(queueHead); queueHead = 0 }
                if staged[hash] != nil, !uploading.contains(hash) {
                    uploading.insert(hash)
                    return hash
                }
            }
            condition.wait()
        }
        return nil
    }

    private func uploadLoop(store: any ObjectStore, onUploaded: @Sendable (ChunkHash, [UInt8]) -> Void) {
        defer {
            condition.lock(); threadsRunning -= 1; condition.broadcast(); condition.unlock()
        }
        var backoff = 0.5
        while let hash = next() {
            let file = path(hash)
            let bytes: [UInt8]
            do {
                bytes = try PosixFiles.read(file)
            } catch {
                logger.error("cannot read staged chunk; it stays staged", metadata: ["chunk": "\(hash)", "error": "\(error)"])
                requeue(hash, after: 30)
                continue
            }
            guard ChunkHash.of(bytes) == hash else {
                // Not uploaded: a wrong object under this name would poison every reader.
                // Kept for inspection (fsck reports the files referencing it as damaged).
                logger.error("staged chunk damaged on local disk: not uploaded; moved aside", metadata: ["chunk": "\(hash)"])
                rename(file, file + ".damaged")
                finished(hash, bytes: 0)
                continue
            }
            do {
                try store.putChunk(hash, bytes)
            } catch {
                condition.lock()
                let first = failingSince == nil
                if first { failingSince = .now() }
                condition.unlock()
                if first {
                    logger.warning("write-back uploads fail; staged chunks are kept and retried until the store answers",
                                   metadata: ["error": "\(error)"])
                }
                requeue(hash, after: backoff)
                backoff = min(backoff * 2, 30)
                continue
            }
            backoff = 0.5
            onUploaded(hash, bytes)
            unlink(file)
            finished(hash, bytes: bytes.count)
        }
    }

    /// Puts `hash` back at the head of the queue after waiting `seconds` (or until stopped).
    private func requeue(_ hash: ChunkHash, after seconds: Double) {
        condition.lock(); defer { condition.unlock() }
        let until = Date(timeIntervalSinceNow: seconds)
        while !stopping, Date() < until { _ = condition.wait(until: until) }
        uploading.remove(hash)
        if queueHead > 0 { queueHead -= 1; queue[queueHead] = hash } else { queue.insert(hash, at: 0) }
        condition.broadcast()
    }

    private func finished(_ hash: ChunkHash, bytes: Int) {
        condition.lock(); defer { condition.unlock() }
        uploading.remove(hash)
        if let size = staged.removeValue(forKey: hash) { stagedBytes -= size }
        uploadedTotal += bytes > 0 ? 1 : 0
        if let since = failingSince {
            failingSince = nil
            logger.info("write-back uploads succeed again", metadata: [
                "outage_seconds": "\(Int(Timestamp.now().secondsSince(since)))", "staged_chunks": "\(staged.count)"])
        }
        condition.broadcast()
    }
}
