#if canImport(Glibc)
import Glibc
#endif
import MossaicCore

/// Chunks cached on local disk under `directory/ab/<hash>`, bounded in bytes (`limit`,
/// cache_size) and by free space on the filesystem that holds them: the cache evicts so that
/// at least `freeSpaceFloor` (cache_free) stays free, and never less than
/// `reserve(onFilesystemOf:)`, whatever cache_free says. Files are published by temp + rename,
/// so a crash leaves whole files or temp files (swept at start). The index lives in memory and is
/// rebuilt from the directory at start (by mtime), so the cache is reused across remounts.
///
/// Room is made BEFORE a file is written (`admit`), from the free space measured then, less
/// the files other threads are writing at that moment (`pending`): a cache that only checked
/// after writing, and only when cache_free was above the free space, filled its filesystem
/// with cache_free=0 and then failed SQLite's commits on it. No I/O after `init`: the caller
/// measures the free space and deletes the victims returned.
/// Not thread-safe: `BlobCache` serialises index updates; file I/O happens outside its lock.
struct DiskLRU {
    private struct Entry { var size: Int; var lastUse: UInt64 }

    /// What the cache does with a chunk it is offered.
    enum Admission: Equatable {
        /// Delete `victims`, then write the chunk's file and report `added` or `abandoned`.
        case write(victims: [String])
        /// Its file is cached already (now the most recently used): nothing to write.
        case cached
        /// Not even an empty cache would leave room for it: delete `victims` (what the bounds
        /// ask without it) and do not cache it.
        case noRoom(victims: [String])
    }

    let directory: String
    let limit: Int
    let freeSpaceFloor: Int
    private var entries: [ChunkHash: Entry] = [:]
    private var clock: UInt64 = 0
    private(set) var bytes = 0
    /// Bytes of files admitted and being written now: not in `entries` yet, and not (or not
    /// wholly) in the free space a concurrent writer measures.
    private var pending = 0

    /// The room the cache never takes, whatever cache_free says (also 0): meta.db, its WAL and
    /// snapshot.db.tmp (a copy of meta.db for each snapshot) share the cache's filesystem, and
    /// SQLite failing with ENOSPC fails the user's commit, which a cache must never cause.
    /// 5 % of the filesystem, at least 8 MiB (a small meta.db, its WAL and a copy) and at most
    /// 1 GiB (the default cache_free; metadata needing more is what cache_free is for).
    static func reserve(onFilesystemOf total: Int) -> Int {
        min(max(total / 20, 8 << 20), 1 << 30)
    }

    init(directory: String, limit: Int, freeSpaceFloor: Int) throws(SystemError) {
        self.directory = directory
        self.limit = limit
        self.freeSpaceFloor = freeSpaceFloor
        try PosixFiles.makeDirectories(directory + "/.tmp", mode: 0o700)
        for name in try PosixFiles.listDirectory(directory + "/.tmp") { unlink(directory + "/.tmp/" + name) }
        var found: [(ChunkHash, Int, Int64)] = []
        for fan in try PosixFiles.listDirectory(directory) where fan.count == 2 {
            for name in (try? PosixFiles.listDirectory(directory + "/" + fan)) ?? [] {
                var st = stat()
                guard let hash = ChunkHash(hex: name), stat(directory + "/" + fan + "/" + name, &st) == 0 else { continue }
                found.append((hash, Int(st.st_size), Int64(st.st_mtim.tv_sec)))
            }
        }
        for (hash, size, _) in found.sorted(by: { $0.2 < $1.2 }) {
            clock += 1
            entries[hash] = Entry(size: size, lastUse: clock)
            bytes += size
        }
    }

    func path(_ hash: ChunkHash) -> String { Self.path(of: hash, in: directory) }

    static func path(of hash: ChunkHash, in directory: String) -> String {
        let hex = hash.hex
        return "\(directory)/\(hex.prefix(2))/\(hex)"
    }

    var temporaryDirectory: String { directory + "/.tmp" }

    mutating func contains(_ hash: ChunkHash) -> Bool {
        guard var entry = entries[hash] else { return false }
        clock += 1
        entry.lastUse = clock
        entries[hash] = entry
        return true
    }

    /// Offers a chunk of `size` bytes, given its filesystem's `space` just measured (nil: not
    /// known, then only `limit` bounds the cache). The least recently used files go until the
    /// new one fits within `limit` and leaves the floor free.
    mutating func admit(_ hash: ChunkHash, size: Int, space: DiskSpace?) -> Admission {
        if contains(hash) { return .cached }
        // How far over its bounds the cache is without the new file; the file adds its size.
        var excess = bytes + pending - limit
        if let space { excess = max(excess, floor(of: space) - (space.available - pending)) }
        // Not even an empty cache has room: evict only what the bounds ask anyway, not the
        // whole cache for a file that is not written.
        guard excess + size <= bytes else { return .noRoom(victims: evictOldest(atLeast: excess)) }
        let victims = evictOldest(atLeast: excess + size)
        pending += size
        return .write(victims: victims)
    }

    /// The file of an admitted chunk is published.
    mutating func added(_ hash: ChunkHash, size: Int) {
        pending -= size
        clock += 1
        if let old = entries.updateValue(Entry(size: size, lastUse: clock), forKey: hash) { bytes -= old.size }
        bytes += size
    }

    /// The file of an admitted chunk could not be written.
    mutating func abandoned(size: Int) {
        pending -= size
    }

    /// A write failed for lack of space although the bounds allowed it (something else filled
    /// the filesystem since it was measured, or a quota): the paths of at least `size` bytes of
    /// the least recently used files, to delete before one more try. Empty if nothing is cached.
    mutating func makeRoom(_ size: Int) -> [String] {
        evictOldest(atLeast: size)
    }

    /// The paths to delete for the cache found at start to be within its bounds (a smaller
    /// cache_size or a larger cache_free than the last mount's, or a fuller filesystem).
    mutating func trim(space: DiskSpace?) -> [String] {
        var needFree = bytes - limit
        if let space { needFree = max(needFree, floor(of: space) - space.available) }
        return evictOldest(atLeast: needFree)
    }

    mutating func removed(_ hash: ChunkHash) {
        if let old = entries.removeValue(forKey: hash) { bytes -= old.size }
    }

    /// The free space the cache leaves on a filesystem like `space`.
    private func floor(of space: DiskSpace) -> Int {
        max(freeSpaceFloor, Self.reserve(onFilesystemOf: space.total))
    }

    /// Drops the least recently used entries until `needFree` bytes are freed, or none is
    /// left; returns their paths.
    private mutating func evictOldest(atLeast needFree: Int) -> [String] {
        guard needFree > 0 else { return [] }
        var victims: [String] = []
        var freed = 0
        for (key, entry) in entries.sorted(by: { $0.value.lastUse < $1.value.lastUse }) {
            guard freed < needFree else { break }
            entries[key] = nil
            bytes -= entry.size
            freed += entry.size
            victims.append(path(key))
        }
        return victims
    }
}
