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
/// pack (`packs/`), which holds several chunks. Damage is reported per chunk, with the object the
/// bytes should be in. A good copy found locally (disk cache, write-back staging) is put back as
/// the chunk's own object and its row pointed there: rebuilding a pack would need every other
/// chunk in it, and a chunk is found by its row wherever it is.
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
        public init(verify: Bool, repair: Bool, blobsDirectory: String?, stagingDirectory: String? = nil, threads: Int = 8) {
            self.verify = verify; self.repair = repair; self.blobsDirectory = blobsDirectory
            self.stagingDirectory = stagingDirectory; self.threads = threads
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
            if size < store.chunkSealing.storedRange(of: r.chunk.location, length: r.length).upperBound { report.corrupt.append(r.chunk); continue }
            present.append(r)
        }
        if let staging = options.stagingDirectory {
            // Write-back staging holds chunks bound for their own objects (rows without a pack):
            // each staged file is read and verified once, and with --repair uploaded from there.
            var stillMissing: [LocatedChunk] = []
            for chunk in report.missing {
                let path = "\(staging)/\(chunk.hash.hex)"
                guard chunk.location == .object, let bytes = try? PosixFiles.read(path), ChunkHash.of(bytes) == chunk.hash else {
                    stillMissing.append(chunk); continue
                }
                report.staged.append(chunk.hash)
                // Uploaded and its staged file removed, as the next mount would do.
                if options.repair, (try? store.putChunk(chunk.hash, bytes)) != nil {
                    unlink(path)
                    report.restored.append(chunk.hash)
                }
            }
            report.missing = stillMissing
        }

        if options.verify {
            let objects = Dictionary(grouping: present, by: \.chunk.key)
            report.corrupt += verify(objects, store: store, threads: options.threads, progress: progress)
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

    /// GETs every object once, `threads` at a time, and re-hashes the referenced chunks in it
    /// (a chunk object must be exactly its chunk). Returns the bad chunks; an object that
    /// cannot be read makes all of its chunks bad.
    private static func verify(_ objects: [String: [(chunk: LocatedChunk, length: Int)]], store: any ObjectStore, threads: Int,
                               progress: @escaping @Sendable (ProgressEvent) -> Void) -> [LocatedChunk] {
        let work = objects.map { (key: $0.key, chunks: $0.value) }
        let state = Mutex((done: 0, bad: [LocatedChunk]()))
        WorkerPool.forEach(count: work.count, width: threads) { i in
            let (key, chunks) = work[i]
            let bytes = try? store.get(key)
            let sealing = store.chunkSealing
            let bad = chunks.filter { c in
                guard let bytes else { return true }
                // Opened first where the filesystem is encrypted: the GCM tag is checked too.
                func hashes(_ stored: [UInt8]) -> Bool {
                    guard let plain = try? sealing.open(stored, hash: c.chunk.hash) else { return false }
                    return ChunkHash.of(plain) == c.chunk.hash
                }
                guard case .packed = c.chunk.location else { return !hashes(bytes) }
                let range = sealing.storedRange(of: c.chunk.location, length: c.length)
                guard range.upperBound <= UInt64(bytes.count) else { return true }
                if sealing.cipher == nil {
                    return bytes[Int(range.lowerBound)..<Int(range.upperBound)].withUnsafeBytes { ChunkHash.of($0) } != c.chunk.hash
                }
                return !hashes(Array(bytes[Int(range.lowerBound)..<Int(range.upperBound)]))
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

    /// Puts `chunk` back as its own object from a copy that still hashes to its name — the disk
    /// cache, else write-back staging — and points its row there if it was in a pack. The row
    /// moves only after the object is stored: a row must never name a missing object.
    private static func restore(_ chunk: LocatedChunk, options: Options, store: any ObjectStore,
                                metadata: any MetaStore) throws(FSError) -> Bool {
        let candidates = [options.blobsDirectory.map { BlobCache.diskCachePath(of: chunk.hash, in: $0) },
                          options.stagingDirectory.map { "\($0)/\(chunk.hash.hex)" }].compactMap { $0 }
        guard let bytes = candidates.lazy.compactMap({ try? PosixFiles.read($0) }).first(where: { ChunkHash.of($0) == chunk.hash }),
              (try? store.putChunk(chunk.hash, bytes)) != nil else { return false }
        if chunk.location != .object {
            try meta { () throws(MetaError) in try metadata.relocateChunk(chunk.hash, to: .object) }
        }
        return true
    }
}
