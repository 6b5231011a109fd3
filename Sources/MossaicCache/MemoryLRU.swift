import MossaicCore

/// Least-recently-used chunks in memory, bounded in bytes. Not thread-safe: `BlobCache` keeps it
/// inside its mutex.
struct MemoryLRU {
    private struct Entry { var bytes: [UInt8]; var lastUse: UInt64 }
    private var entries: [ChunkHash: Entry] = [:]
    private var clock: UInt64 = 0
    private(set) var bytes = 0
    let limit: Int

    init(limit: Int) { self.limit = limit }

    mutating func get(_ hash: ChunkHash) -> [UInt8]? {
        guard var entry = entries[hash] else { return nil }
        clock += 1
        entry.lastUse = clock
        entries[hash] = entry
        return entry.bytes
    }

    mutating func insert(_ hash: ChunkHash, _ data: [UInt8]) {
        guard data.count <= limit else { return }
        clock += 1
        if let old = entries.updateValue(Entry(bytes: data, lastUse: clock), forKey: hash) { bytes -= old.bytes.count }
        bytes += data.count
        // Evict in batches of the oldest quarter: a scan per eviction would be O(n²) under a
        // streaming read; one sort per batch is O(n log n) and rare.
        if bytes > limit {
            let target = limit - limit / 4
            for (key, entry) in entries.sorted(by: { $0.value.lastUse < $1.value.lastUse }) {
                guard bytes > target else { break }
                if key == hash { continue }
                entries[key] = nil
                bytes -= entry.bytes.count
            }
        }
    }

    mutating func remove(_ hash: ChunkHash) {
        if let old = entries.removeValue(forKey: hash) { bytes -= old.bytes.count }
    }

    var count: Int { entries.count }

    /// Whether `hash` is cached, without counting as a use.
    func contains(_ hash: ChunkHash) -> Bool { entries[hash] != nil }
}
