#if canImport(Glibc)
import Glibc
#endif
import MossaicCache
import MossaicCore
import MossaicMeta
import MossaicObjectStore
import Synchronization

/// `mossaicfs fsck`: the metadata's own consistency, and the metadata against the store.
public enum FilesystemChecker {
    public struct Report: Sendable {
        /// Metadata inconsistencies found (before any repair).
        public var problems: [String] = []
        /// Metadata inconsistencies still there after repairing (empty without --repair).
        public var remaining: [String] = []
        public var repairedRows = 0
        /// Referenced chunks with no object in the store: their files read as EIO there.
        public var missing: [ChunkHash] = []
        /// Objects whose bytes do not hash to their name (--verify).
        public var corrupt: [ChunkHash] = []
        /// Missing or corrupt objects put back from a good copy in the local disk cache.
        public var restored: [ChunkHash] = []
        /// Referenced chunks not in the store yet but staged by a write-back mount: not damage,
        /// the next mount uploads them first (`--repair` does now, and lists them in `restored`).
        public var staged: [ChunkHash] = []
        /// Objects no chunk row knows: garbage for `gc`, not damage.
        public var unreferencedObjects = 0
        public var checkedObjects = 0
        public var referencedObjects = 0

        /// What is still wrong at the end.
        public var isClean: Bool {
            remaining.isEmpty && missing.allSatisfy { restored.contains($0) } && corrupt.allSatisfy { restored.contains($0) }
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

    public static func run(store: any ObjectStore, metadata: SQLiteMetaStore, options: Options,
                           progress: @escaping @Sendable (String, Int, Int) -> Void) throws(FSError) -> Report {
        var report = Report()
        report.problems = try meta { () throws(MetaError) in try metadata.checkConsistency() }.map(\.description)
        if options.repair && !report.problems.isEmpty {
            report.repairedRows = try meta { () throws(MetaError) in try metadata.repairConsistency() }
            report.remaining = try meta { () throws(MetaError) in try metadata.checkConsistency() }.map(\.description)
        } else {
            report.remaining = report.problems
        }

        progress("listing objects", 0, 0)
        let listed: [ObjectInfo]
        do { listed = try store.list(prefix: "chunks/") } catch { throw .io(error.description) }
        var present: [ChunkHash: UInt64] = [:]
        for info in listed {
            guard let hash = ChunkHash(hex: info.key.split(separator: "/").last ?? "") else { continue }
            present[hash] = info.size
        }
        let known = try meta { () throws(MetaError) in try metadata.knownStoredChunks() }
        report.unreferencedObjects = present.keys.filter { !known.contains($0) }.count
        let referenced = try meta { () throws(MetaError) in try metadata.referencedStoredChunkLengths() }
        report.referencedObjects = referenced.count
        report.missing = referenced.filter { present[$0.0] == nil }.map(\.0)
        if let staging = options.stagingDirectory {
            // Each staged file is read and verified once, and with --repair uploaded from there.
            var stillMissing: [ChunkHash] = []
            for hash in report.missing {
                let path = "\(staging)/\(hash.hex)"
                guard let bytes = try? PosixFiles.read(path), ChunkHash.of(bytes) == hash else { stillMissing.append(hash); continue }
                report.staged.append(hash)
                // Uploaded and its staged file removed, as the next mount would do.
                if options.repair, (try? store.putChunk(hash, bytes)) != nil {
                    unlink(path)
                    report.restored.append(hash)
                }
            }
            report.missing = stillMissing
        }

        if options.verify {
            let candidates = referenced.filter { present[$0.0] != nil }.map(\.0)
            report.corrupt = verify(candidates, store: store, threads: options.threads, progress: progress)
            report.checkedObjects = candidates.count
        }
        if options.repair, let blobs = options.blobsDirectory {
            for hash in report.missing + report.corrupt where restoreFromCache(hash, blobs: blobs, store: store) {
                report.restored.append(hash)
            }
        }
        return report
    }

    /// GETs and re-hashes every object, `threads` at a time. Returns the bad ones.
    private static func verify(_ hashes: [ChunkHash], store: any ObjectStore, threads: Int,
                               progress: @escaping @Sendable (String, Int, Int) -> Void) -> [ChunkHash] {
        let state = Mutex((done: 0, bad: [ChunkHash]()))
        ParallelLoop.run(count: hashes.count, threads: threads) { i in
            let hash = hashes[i]
            let good = (try? store.get(hash.objectKey)).map { ChunkHash.of($0) == hash } ?? false
            let done = state.withLock { s -> Int in
                s.done += 1
                if !good { s.bad.append(hash) }
                return s.done
            }
            progress("verifying objects", done, hashes.count)
        }
        return state.withLock { $0.bad }.sorted { $0.hex < $1.hex }
    }

    /// Puts a chunk back from the disk cache if the cached copy still hashes to its name.
    private static func restoreFromCache(_ hash: ChunkHash, blobs: String, store: any ObjectStore) -> Bool {
        guard let bytes = try? PosixFiles.read(BlobCache.diskCachePath(of: hash, in: blobs)), ChunkHash.of(bytes) == hash else { return false }
        return (try? store.putChunk(hash, bytes)) != nil
    }
}
