#if canImport(Glibc)
import Glibc
#endif
import MossaicCore

/// Chunks cached on local disk under `directory/ab/<hash>`, bounded in bytes and by a floor of
/// free space on the filesystem that holds them. Files are published by temp + rename, so a
/// crash leaves whole files or temp files (swept at start). The index lives in memory and is
/// rebuilt from the directory at start (by mtime), so the cache is reused across remounts.
/// Not thread-safe: `BlobCache` serialises index updates; file I/O happens outside its lock.
struct DiskLRU {
    private struct Entry { var size: Int; var lastUse: UInt64 }
    let directory: String
    let limit: Int
    let freeSpaceFloor: Int
    private var entries: [ChunkHash: Entry] = [:]
    private var clock: UInt64 = 0
    private(set) var bytes = 0

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

    /// Records a file just published and returns the paths to delete to stay within bounds.
    mutating func added(_ hash: ChunkHash, size: Int) -> [String] {
        clock += 1
        if let old = entries.updateValue(Entry(size: size, lastUse: clock), forKey: hash) { bytes -= old.size }
        bytes += size
        var needFree = bytes - limit
        var fs = statvfs()
        if statvfs(directory, &fs) == 0 {
            let free = Int(fs.f_bavail) * Int(fs.f_frsize)
            needFree = max(needFree, freeSpaceFloor - free)
        }
        guard needFree > 0 else { return [] }
        var victims: [String] = []
        for (key, entry) in entries.sorted(by: { $0.value.lastUse < $1.value.lastUse }) {
            guard needFree > 0 else { break }
            if key == hash { continue }
            entries[key] = nil
            bytes -= entry.size
            needFree -= entry.size
            victims.append(path(key))
        }
        return victims
    }

    mutating func removed(_ hash: ChunkHash) {
        if let old = entries.removeValue(forKey: hash) { bytes -= old.size }
    }
}
