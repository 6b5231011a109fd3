#if canImport(Glibc)
import Glibc
#endif
import MossaicCache
import MossaicCore
import MossaicFS
import MossaicMeta
import MossaicObjectStore
import Synchronization

/// `mossaicfs fsck`: the metadata's own consistency, and the metadata against the store.
///
/// Chunks are checked where their rows place them: their own object (`chunks/`) or a range of a
/// pack (`packs/`), which holds several chunks. Verifying decodes each chunk's stored bytes
/// with the codec its row names (the superblock's transform) and hashes the plaintext. Damage
/// is reported per chunk, with the object the bytes should be in. A good copy found locally
/// (disk cache, write-back staging) is put back as the chunk's own object and its row pointed
/// there: rebuilding a pack would need every other chunk in it, and a chunk is found by its
/// row wherever it is.
public enum FilesystemChecker {
    public struct Report: Sendable {
        /// Metadata inconsistencies found (before any repair).
        public var problems: [String] = []
        /// Metadata inconsistencies still there after repairing (empty without --repair).
        public var remaining: [String] = []
        public var repairedRows = 0
        /// Referenced chunks whose object is not in the store: their files read as EIO there.
        public var missing: [LocatedChunk] = []
        /// Referenced chunks whose bytes are there but wrong: not hashing to their name
        /// (--verify), or past the end of an object (a pack) cut short (seen in the listing).
        public var corrupt: [LocatedChunk] = []
        /// Missing or corrupt chunks put back (as their own objects) from a good local copy.
        public var restored: [ChunkHash] = []
        /// Referenced chunks not in the store yet but staged by a write-back mount: not damage,
        /// the next mount uploads them first (`--repair` does now, and lists them in `restored`).
        public var staged: [ChunkHash] = []
        /// Objects (chunk objects and packs) no chunk row names: garbage for `gc`, not damage.
        public var unreferencedObjects = 0
        /// Objects downloaded by --verify, and the referenced chunks re-hashed in them.
        public var checkedObjects = 0
        public var checkedChunks = 0
        /// Referenced stored chunks, and the objects holding them.
        public var referencedChunks = 0
        public var referencedObjects = 0

        /// What is still wrong at the end.
        public var isClean: Bool {
            remaining.isEmpty && (missing + corrupt).allSatisfy { restored.contains($0.hash) }
        }
    }

    public struct Options: Sendable {
        public var verify: Bool
        public var repair: Bool
        /// The disk cache (cache_dir/blobs), where good copies may be found.
        public var blobsDirectory: String?
        /// Write-back staging (cache_dir/staging): chunks committed but not yet uploaded.
        public var stagingDirectory: String?
        public var threads: Int
        /// The superblock's chunk transform: how stored bytes are read, and how restored
        /// chunks are stored.
        public var transform: ChunkTransform
        public init(verify: Bool, repair: Bool, blobsDirectory: String?, stagingDirectory: String? = nil, threads: Int = 8,
                    transform: ChunkTransform = .identity) {
            self.verify = verify; self.repair = repair; self.blobsDirectory = blobsDirectory
            self.stagingDirectory = stagingDirectory; self.threads = threads; self.transform = transform
        }
    }

    public static func run(store: any ObjectStore, metadata: any MetaStore, options: Options,
                           progress: @escaping @Sendable (ProgressEvent) -> Void) throws(FSError) -> Report {
        var report = Report()
        report.problems = try meta { () throws(MetaError) in try metadata.checkConsistency() }.map(\.description)
        if options.repair && !report.problems.isEmpty {
            report.repairedRows = try meta { () throws(MetaError) in try metadata.repairConsistency() }
            report.remaining = try meta { () throws(MetaError) in try metadata.checkConsistency() }.map(\.description)
        } else {
            report.remaining = report.problems
        }

        progress(ProgressEvent("listing objects", done: 0, total: 0))
        let sizes = try objectSizes(store)
        let known = Set(try meta { () throws(MetaError) in try metadata.knownStoredChunks() }.map(\.key))
        report.unreferencedObjects = sizes.keys.filter { !known.contains($0) }.count
        let referenced = try meta { () throws(MetaError) in try metadata.referencedStoredChunkLengths() }
        report.referencedChunks = referenced.count
        report.referencedObjects = Set(referenced.map(\.chunk.key)).count
        var present: [(chunk: LocatedChunk, length: Int)] = []
        for r in referenced {
            guard let size = sizes[r.chunk.key] else { report.missing.append(r.chunk); continue }
            // The listing gives the size: a pack cut short lost the chunks past its end.
            if size < r.chunk.location.objectRange(0..<r.length).upperBound { report.corrupt.append(r.chunk); continue }
            present.append(r)
        }
        if let staging = options.stagingDirectory {
            // Write-back staging holds chunks bound for their own objects (rows without a pack):
            // each staged file is read and verified once, and with --repair uploaded from there.
            var stillMissing: [LocatedChunk] = []
            for chunk in report.missing {
                let path = StagingArea.path(of: chunk.hash, codec: chunk.location.codec, in: staging)
                guard chunk.location.pack == nil, let stored = try? PosixFiles.read(path),
                      (try? options.transform.decode(stored, codec: chunk.location.codec, hash: chunk.hash)) != nil else {
                    stillMissing.append(chunk); continue
                }
                report.staged.append(chunk.hash)
                // Uploaded and its staged file removed, as the next mount would do.
                if options.repair, (try? store.putChunk(chunk.hash, HashedBytes(stored, identity: chunk.hash))) != nil {
                    unlink(path)
                    report.restored.append(chunk.hash)
                }
            }
            report.missing = stillMissing
        }

        if options.verify {
            let objects = Dictionary(grouping: present, by: \.chunk.key)
            report.corrupt += verify(objects, store: store, transform: options.transform, threads: options.threads, progress: progress)
            report.checkedObjects = objects.count
            report.checkedChunks = present.count
        }
        if options.repair {
            for chunk in report.missing + report.corrupt {
                if try restore(chunk, options: options, store: store, metadata: metadata) { report.restored.append(chunk.hash) }
            }
        }
        return report
    }

    /// Sizes of the chunk objects and packs in the store, by key (other keys are not ours).
    private static func objectSizes(_ store: any ObjectStore) throws(FSError) -> [String: UInt64] {
        var sizes: [String: UInt64] = [:]
        for prefix in ["chunks/", "packs/"] {
            let listed: [ObjectInfo]
            do { listed = try store.list(prefix: prefix) } catch { throw .io(error.description) }
            for info in listed where ChunkHash.dataObject(key: info.key) != nil { sizes[info.key] = info.size }
        }
        return sizes
    }

    /// GETs every object once, `threads` at a time, and decodes and re-hashes the referenced
    /// chunks in it (a chunk object must be exactly its chunk's stored form). Returns the bad
    /// chunks; an object that cannot be read makes all of its chunks bad.
    private static func verify(_ objects: [String: [(chunk: LocatedChunk, length: Int)]], store: any ObjectStore, transform: ChunkTransform,
                               threads: Int, progress: @escaping @Sendable (ProgressEvent) -> Void) -> [LocatedChunk] {
        let work = objects.map { (key: $0.key, chunks: $0.value) }
        let state = Mutex((done: 0, bad: [LocatedChunk]()))
        WorkerPool.forEach(count: work.count, width: threads) { i in
            let (key, chunks) = work[i]
            let bytes = try? store.get(key)
            let bad = chunks.filter { c in
                guard let bytes else { return true }
                let stored: [UInt8]
                if c.chunk.location.pack == nil {
                    stored = bytes
                } else {
                    let range = c.chunk.location.objectRange(0..<c.length)
                    guard range.upperBound <= UInt64(bytes.count) else { return true }
                    stored = Array(bytes[Int(range.lowerBound)..<Int(range.upperBound)])
                }
                return (try? transform.decode(stored, codec: c.chunk.location.codec, hash: c.chunk.hash)) == nil
            }.map(\.chunk)
            let done = state.withLock { s -> Int in
                s.done += 1
                s.bad += bad
                return s.done
            }
            progress(ProgressEvent("verifying objects", done: done, total: work.count))
        }
        return state.withLock { $0.bad }.sorted { $0.hash.hex < $1.hash.hex }
    }

    /// Puts `chunk` back as its own object from a copy that still gives its plaintext — the
    /// disk cache (plaintext), else write-back staging (a stored form) — encoded anew, and
    /// points its row there (place, codec, stored length) if that changed. The row moves only
    /// after the object is stored: a row must never name a missing object.
    private static func restore(_ chunk: LocatedChunk, options: Options, store: any ObjectStore,
                                metadata: any MetaStore) throws(FSError) -> Bool {
        let cached = options.blobsDirectory.flatMap { try? PosixFiles.read(BlobCache.diskCachePath(of: chunk.hash, in: $0)) }
        let staged = options.stagingDirectory.flatMap { staging in
            ChunkCodec.allCases.lazy.compactMap { codec -> [UInt8]? in
                guard let stored = try? PosixFiles.read(StagingArea.path(of: chunk.hash, codec: codec, in: staging)) else { return nil }
                return try? options.transform.decode(stored, codec: codec, hash: chunk.hash)
            }.first
        }
        guard let plaintext = cached.flatMap({ ChunkHash.of($0) == chunk.hash ? $0 : nil }) ?? staged else { return false }
        let encoded = options.transform.encode(plaintext, hash: chunk.hash)
        guard (try? store.putChunk(chunk.hash, encoded.payload)) != nil else { return false }
        let location = ChunkLocation(.object, codec: encoded.codec)
        if chunk.location != location {
            try meta { () throws(MetaError) in try metadata.relocateChunk(chunk.hash, to: location, storedLength: encoded.bytes.count) }
        }
        return true
    }
}
