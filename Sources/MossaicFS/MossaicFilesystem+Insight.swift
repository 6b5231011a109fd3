import Foundation
import MossaicCore
import MossaicMeta
import Synchronization

/// `mossaicfs info` and `mossaicfs warmup`: what a file or tree holds, and fetching its chunks
/// into this daemon's cache. Both take inode numbers (the command stats the paths it is given:
/// st_ino is the inode number here), so no path is resolved twice or differently.
extension MossaicFilesystem {
    /// One inode's figures for `info`: a file's own, a directory's over its whole tree.
    public struct InodeInfo: Codable, Sendable {
        public var inode: UInt64
        /// "file", "directory", "symlink", or another kind's name.
        public var type: String
        /// The inode's own size (a directory's is its entry count, as stat shows it).
        public var size: UInt64
        public var usage: TreeUsage
    }

    /// What `warmup` did.
    public struct WarmupReport: Codable, Sendable {
        public var files: UInt64 = 0
        /// Distinct chunks stored as objects that the files name, and their bytes (inline
        /// chunks live in the metadata and need no fetching).
        public var chunks = 0
        public var bytes = 0
        /// Of those, already in the cache before, fetched now, and not fetched (errors).
        public var cachedBefore = 0
        public var fetched = 0
        public var failed = 0
        public var errors: [String] = []
        /// The store is a local directory: chunks are read from it directly, never cached.
        public var localStore = false
    }

    public func info(_ inodes: [InodeNumber]) throws(FSError) -> [InodeInfo] {
        var result: [InodeInfo] = []
        for ino in inodes {
            let attributes = try meta { () throws(MetaError) in try metadata.attributes(of: ino) }
            let usage = try meta { () throws(MetaError) in try metadata.treeUsage(ino) }
            result.append(InodeInfo(inode: ino.rawValue, type: Self.typeName(attributes.kind), size: attributes.size, usage: usage))
        }
        return result
    }

    /// Reads every chunk the files of `inodes` (directories: their trees) name into the
    /// cache — the disk cache for a remote store — in parallel, one ranged GET per run of
    /// chunks in one pack. `progress` gets the bytes done so far.
    public func warmup(_ inodes: [InodeNumber], progress: @escaping @Sendable (ProgressEvent) -> Void) throws(FSError) -> WarmupReport {
        var report = WarmupReport()
        let cache = self.chunks.cache
        var seen: Set<ChunkHash> = []
        var chunks: [(hash: ChunkHash, location: ChunkLocation, length: Int)] = []
        for ino in inodes {
            _ = try meta { () throws(MetaError) in try metadata.attributes(of: ino) }
            report.files += try meta { () throws(MetaError) in try metadata.treeUsage(ino) }.files
            for chunk in try meta({ () throws(MetaError) in try metadata.treeStoredChunks(ino) }) where seen.insert(chunk.hash).inserted {
                chunks.append(chunk)
            }
        }
        report.chunks = chunks.count
        report.bytes = chunks.reduce(0) { $0 + $1.length }
        if cache.store.isLocal {
            report.localStore = true
            return report
        }
        // Work units: runs of chunks lying one after another in one pack (at most 16, one GET
        // each), else single chunks. Chunks cached already are left out.
        var units: [[(hash: ChunkHash, location: ChunkLocation)]] = []
        var cachedBytes = 0
        for chunk in chunks {
            if cache.isCachedOrComing(chunk.hash) { report.cachedBefore += 1; cachedBytes += chunk.length; continue }
            if let last = units.last?.last, units[units.count - 1].count < 16, last.location.isFollowed(by: chunk.location, overhead: cache.store.chunkSealing.overhead) {
                units[units.count - 1].append((chunk.hash, chunk.location))
            } else {
                units.append([(chunk.hash, chunk.location)])
            }
        }
        let lengths = Dictionary(chunks.map { ($0.hash, $0.length) }, uniquingKeysWith: { a, _ in a })
        let total = report.bytes
        let state = Mutex((done: cachedBytes, fetched: 0, errors: [String]()))
        progress(ProgressEvent("warming up", done: cachedBytes, total: total, unit: .bytes))
        let frozenUnits = units
        WorkerPool.forEach(count: units.count, width: max(4, options.readAheadChunks)) { i in
            let unit = frozenUnits[i]
            cache.prefetch(unit)
            var errors: [String] = []
            // prefetch keeps quiet about failures: a chunk it could not bring is read alone,
            // which says why (and retries it once more).
            for chunk in unit where !cache.isCachedOrComing(chunk.hash) {
                do { _ = try cache.read(chunk.hash, at: chunk.location) } catch { errors.append("chunk \(chunk.hash): \(error)") }
            }
            let bytes = unit.reduce(0) { $0 + (lengths[$1.hash] ?? 0) }
            let done = state.withLock { s -> Int in
                s.done += bytes
                s.fetched += unit.count - errors.count
                s.errors += errors
                return s.done
            }
            progress(ProgressEvent("warming up", done: done, total: total, unit: .bytes))
        }
        let (fetched, errors) = state.withLock { ($0.fetched, $0.errors) }
        report.fetched = fetched
        report.failed = errors.count
        report.errors = Array(errors.sorted().prefix(10))
        return report
    }

    static func typeName(_ kind: FileKind) -> String {
        switch kind {
        case .regular: "file"
        case .directory: "directory"
        case .symlink: "symlink"
        case .fifo: "fifo"
        case .socket: "socket"
        case .characterDevice: "character device"
        case .blockDevice: "block device"
        }
    }
}

extension Encodable {
    /// Pretty, key-sorted JSON: the answers of the control socket.
    var controlJSON: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return String(decoding: (try? encoder.encode(self)) ?? Data(), as: UTF8.self)
    }
}
