import Foundation
import Logging
import MossaicCore
import MossaicMeta
import MossaicObjectStore

/// Dumps of a PostgreSQL filesystem's metadata kept in its own store, so that the bucket alone
/// still restores the tree (ARCHITECTURE.md §9): `mossaicfs load --from-backup`.
///
/// Layout: `backups/<id>/<NNNNNN>.jsonl.zst` are the dump (`MetadataDump`) cut at line
/// boundaries into parts of about `partBytes`, each one zstd frame; `backups/<id>/manifest.json`
/// is written last, so a backup without it (a host that died halfway) is incomplete and never
/// read. `<id>` is the start time in UTC (`20261206T173000.250Z`), so names sort by age. The store
/// is the filesystem's own, written like the metadata snapshots of SQLite filesystems are: as
/// plain objects of the store (an encrypted store seals every object it is given; PostgreSQL
/// filesystems are not encrypted yet, `format` says so).
public enum BackupCatalog {
    public static let prefix = "backups/"
    static let partBytes = 4 << 20
    /// A part holds `partBytes` of lines plus at most one line more: a line is at most a
    /// chunk's inline data or a patch in base64, well under 4 MiB.
    static let partLimit = 16 << 20

    public struct Manifest: Codable, Sendable, Equatable {
        public var fsUUID: String
        public var created: String
        public var parts: Int
        public var records: Int64
        public var bytes: Int64
        enum CodingKeys: String, CodingKey { case fsUUID = "fs_uuid", created, parts, records, bytes }
    }

    /// The ids of the complete backups in `store`, oldest first.
    public static func complete(in store: any ObjectStore) throws(ObjectStoreError) -> [String] {
        try store.list(prefix: prefix).compactMap { info -> String? in
            guard info.key.hasSuffix("/manifest.json") else { return nil }
            let id = info.key.dropFirst(prefix.count).dropLast("/manifest.json".count)
            return id.contains("/") ? nil : String(id)
        }.sorted()
    }

    public static func manifest(_ id: String, in store: any ObjectStore) throws -> Manifest {
        let bytes = try store.get(prefix + id + "/manifest.json")
        return try JSONDecoder().decode(Manifest.self, from: Data(bytes))
    }

    static func partKey(_ id: String, _ index: Int) -> String {
        let n = String(index)
        return prefix + id + "/" + String(repeating: "0", count: max(0, 6 - n.count)) + n + ".jsonl.zst"
    }

    /// The dump's bytes of backup `id`, part after part (nil after the last), for `DumpReader`.
    public static func source(_ id: String, manifest: Manifest, in store: any ObjectStore) -> () throws -> [UInt8]? {
        var next = 0
        return {
            guard next < manifest.parts else { return nil }
            let key = partKey(id, next)
            next += 1
            let frame = try store.get(key)
            do { return try Zstd.decompress(frame, limit: partLimit) } catch {
                throw DumpError.io("\(store.displayName)/\(key): \(error)")
            }
        }
    }

    /// Writes a dump of `metadata` as a new backup; returns its id and what it holds.
    public static func write(_ metadata: PostgresMetaStore, fsUUID: String, to store: any ObjectStore,
                             now: Date = Date()) throws -> (id: String, summary: MetadataDump.Summary) {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyyMMdd'T'HHmmss.SSS'Z'"
        let id = formatter.string(from: now)
        var pending: [UInt8] = []
        var parts = 0
        var bytes: Int64 = 0
        func put(_ block: [UInt8]) throws {
            guard let frame = Zstd.compress(block, level: 3, capacity: block.count + block.count / 8 + 1024) else {
                throw DumpError.io("cannot compress a backup part")
            }
            _ = try store.put(partKey(id, parts), frame, condition: .none)
            parts += 1
            bytes += Int64(frame.count)
        }
        let summary = try metadata.dump(fsUUID: fsUUID, created: ISO8601DateFormatter().string(from: now)) { block in
            // Blocks end at line boundaries: whole blocks make a part.
            pending += block
            if pending.count >= partBytes {
                try put(pending)
                pending.removeAll(keepingCapacity: true)
            }
        }
        if !pending.isEmpty { try put(pending) }
        let manifest = Manifest(fsUUID: fsUUID, created: summary.header.created, parts: parts, records: summary.records, bytes: bytes)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        _ = try store.put(prefix + id + "/manifest.json", Array(try encoder.encode(manifest)) + [0x0a], condition: .none)
        return (id, summary)
    }

    /// The object keys of the stored chunks that the complete backups in `store` name, and how
    /// many backups there are: `gc` keeps those objects, so every backup stays restorable until
    /// it is pruned (as a metadata snapshot of a SQLite filesystem keeps its chunks).
    public static func referencedObjects(in store: any ObjectStore) throws -> (keys: Set<String>, backups: Int) {
        var keys: Set<String> = []
        let ids = try complete(in: store)
        for id in ids {
            let reader = DumpReader(source: source(id, manifest: try manifest(id, in: store), in: store))
            _ = try reader.header()
            try reader.storedChunkKeys { keys.insert($0) }
        }
        return (keys, ids.count)
    }

    /// Deletes all but the `keep` newest complete backups, and incomplete ones older than the
    /// newest complete one (a host died while writing them). A manifest goes first, so a
    /// backup half deleted is an incomplete one, never read.
    public static func prune(_ store: any ObjectStore, keep: Int) throws(ObjectStoreError) {
        let objects = try store.list(prefix: prefix)
        var byBackup: [String: [String]] = [:]
        for info in objects {
            let rest = info.key.dropFirst(prefix.count)
            guard let slash = rest.firstIndex(of: "/") else { continue }
            byBackup[String(rest[..<slash]), default: []].append(info.key)
        }
        let complete = byBackup.filter { $0.value.contains { $0.hasSuffix("/manifest.json") } }.keys.sorted()
        guard let newest = complete.last else { return }
        let doomed = Set(complete.dropLast(max(1, keep))).union(byBackup.keys.filter { !complete.contains($0) && $0 < newest })
        for id in doomed.sorted() {
            let keys = byBackup[id] ?? []
            let manifests = keys.filter { $0.hasSuffix("/manifest.json") }
            for key in manifests + keys.filter({ !$0.hasSuffix("/manifest.json") }) { try store.delete(key) }
        }
    }
}

/// The periodic backup of a read-write mount of a PostgreSQL filesystem: every
/// `backup_interval`, one host among all that mount it (whichever claims the turn first in the
/// database, `PostgresMetaStore.claimBackup`) writes a backup and prunes to `backup_keep`.
public final class MetadataBackup: Sendable {
    private let worker: PeriodicWorker

    public init(store: any ObjectStore, metadata: PostgresMetaStore, fsUUID: String, interval: Double, keep: Int, logger: Logger) {
        let nanoseconds = Int64(interval * 1e9)
        // Looked at a few times per interval (at most every minute): a host that claims the turn
        // late still writes close to when it is due.
        worker = PeriodicWorker(name: "mossaicfs-backup", interval: min(60, max(0.5, interval / 4))) {
            do {
                guard try metadata.claimBackup(interval: nanoseconds, now: Timestamp.now().nanoseconds) else { return }
                let started = ContinuousClock.now
                let (id, summary) = try BackupCatalog.write(metadata, fsUUID: fsUUID, to: store)
                try BackupCatalog.prune(store, keep: keep)
                logger.info("metadata backup written", metadata: [
                    "backup": "\(BackupCatalog.prefix)\(id)", "records": "\(summary.records)",
                    "seconds": "\((ContinuousClock.now - started).components.seconds)"])
            } catch {
                logger.warning("metadata backup failed (tried again at the next interval)", metadata: ["error": "\(error)"])
            }
        }
    }

    public func start() { worker.start() }
    public func stop() { worker.stop() }
}
