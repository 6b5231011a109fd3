import Foundation
import Logging
import MossaicCore
import MossaicMeta
import MossaicObjectStore

/// Dumps of a PostgreSQL filesystem's metadata kept in its own store, so that the bucket alone
/// still restores the tree (ARCHITECTURE.md §9): `mossaicfs load --from-backup`.
///
/// Layout:
/// - `backups/<id>/started.json`, written first: `{"base": <id>}`, the complete backup this one
///   reuses inline data of (none: `{}`). It marks the backup in progress for `prune`.
/// - `backups/<id>/<NNNNNN>.jsonl.zst`: the dump (`MetadataDump`, format version 2) cut at line
///   boundaries into parts of about `partBytes`, each one zstd frame. Its lines hold the
///   metadata, and patches' bytes (`chunk_patches`: small and short-lived — folded into their
///   chunk by the next commit of the file — so not worth an object of their own); an inline
///   chunk's line names where its bytes are instead (`DumpDataReference`).
/// - `backups/data/<id>-<NNNNNN>`: inline chunks' bytes, one after another, up to 8 MiB per
///   object, each compressed as the filesystem's stored chunks are. A backup stores only the
///   inline chunks its base does not hold (`BackupDataPacker`), so after the first backup each
///   one adds the metadata lines and the new small files' bytes, and tens of PUTs.
/// - `backups/<id>/manifest.json`, written last: the parts, and every data object the dump
///   names (`data`), with sizes. A backup without it (a host that died halfway) is incomplete
///   and never read; its data objects are never reused, and pruned once old.
///
/// `<id>` is the start time in UTC (`20261206T173000.250Z`), so names sort by age. The store is
/// the filesystem's own, written like the metadata snapshots of SQLite filesystems are: as
/// plain objects of the store (an encrypted store seals every object it is given; PostgreSQL
/// filesystems are not encrypted yet, `format` says so). Backups of format 1 (every inline
/// chunk's bytes in base64 in its line; no `format` in the manifest) still load.
public enum BackupCatalog {
    public static let prefix = "backups/"
    /// Where inline chunks' bytes are kept, shared by all backups.
    public static let dataPrefix = prefix + "data/"
    static let partBytes = 4 << 20
    /// A part holds `partBytes` of lines plus at most one line more: a line is at most a
    /// chunk's inline data or a patch in base64, well under 4 MiB.
    static let partLimit = 16 << 20
    /// The manifest format written now: inline data in `dataPrefix` objects.
    public static let format = 2
    /// How long a backup may be in progress. Everything `prune` might take from under a
    /// backup being written is spared for this long: its own parts and data objects (by their
    /// age) and its base (while its `started.json` is younger). A writer gives up on a backup
    /// that took more than half of it, so a prune — which takes far less than the other half —
    /// never deletes what a backup that still completes names.
    public static let inProgressGrace: Double = 6 * 3600

    public struct Manifest: Codable, Sendable, Equatable {
        public var fsUUID: String
        public var created: String
        public var parts: Int
        public var records: Int64
        public var bytes: Int64
        /// 2: inline data in data objects; absent: 1, inline data in the lines.
        public var format: Int?
        /// The data objects (names under `dataPrefix`) the dump names, and their sizes.
        public var data: [DataObject]?
        /// The backup whose data objects this one reused.
        public var base: String?
        /// What this backup added under `dataPrefix`.
        public var newDataObjects: Int?
        public var newDataBytes: Int64?

        public struct DataObject: Codable, Sendable, Equatable {
            public var name: String
            public var bytes: Int64
        }

        enum CodingKeys: String, CodingKey {
            case fsUUID = "fs_uuid", created, parts, records, bytes, format, data, base
            case newDataObjects = "new_data_objects", newDataBytes = "new_data_bytes"
        }
    }

    struct Started: Codable {
        var base: String?
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
    /// Its inline chunks' bytes are not fetched: `restoreReader` does that.
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

    static func id(of date: Date) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyyMMdd'T'HHmmss.SSS'Z'"
        return formatter.string(from: date)
    }

    /// Writes a dump of `metadata` as a new backup; returns its id and what it holds.
    public static func write(_ metadata: PostgresMetaStore, fsUUID: String, to store: any ObjectStore, compression: Compression = .none,
                             now: Date = Date()) throws -> (id: String, summary: MetadataDump.Summary) {
        let (id, summary, _) = try write(fsUUID: fsUUID, to: store, compression: compression, now: now) { created, reference, sink in
            try metadata.dump(fsUUID: fsUUID, created: created, dataReference: reference, sink: sink)
        }
        return (id, summary)
    }

    /// Writes a new backup of the dump `dump` makes (given the header's `created`, where inline
    /// chunks go, and where its blocks go); returns its id, what it holds and its manifest.
    public static func write(fsUUID: String, to store: any ObjectStore, compression: Compression = .none, now: Date = Date(),
                             dump: (_ created: String, _ dataReference: @escaping DumpWriter.DataReferencing,
                                    _ sink: @escaping ([UInt8]) throws -> Void) throws -> MetadataDump.Summary)
        throws -> (id: String, summary: MetadataDump.Summary, manifest: Manifest) {
        let started = ContinuousClock.now
        let id = id(of: now)
        let base = try complete(in: store).last
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        // First, so that a prune from now on keeps the base whose data objects this one reuses.
        _ = try store.put(prefix + id + "/started.json", Array(try encoder.encode(Started(base: base))) + [0x0a], condition: .none)
        let packer = BackupDataPacker(store: store, backupID: id, compression: compression)
        if let base {
            let baseManifest = try manifest(base, in: store)
            try packer.learn(base: baseManifest, dump: DumpReader(source: source(base, manifest: baseManifest, in: store)))
        }
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
        let summary = try dump(ISO8601DateFormatter().string(from: now), packer.reference) { block in
            // Blocks end at line boundaries: whole blocks make a part.
            pending += block
            if pending.count >= partBytes {
                try put(pending)
                pending.removeAll(keepingCapacity: true)
            }
        }
        if !pending.isEmpty { try put(pending) }
        try packer.finish()
        let took = Double((ContinuousClock.now - started).components.seconds)
        guard took < inProgressGrace / 2 else {
            throw DumpError.io("the backup took \(Int(took)) s, longer than \(Int(inProgressGrace / 2)) s: a prune may have deleted what it reuses, so it is abandoned (incomplete)")
        }
        let manifest = Manifest(fsUUID: fsUUID, created: summary.header.created, parts: parts, records: summary.records, bytes: bytes,
                                format: format, data: packer.named.map { Manifest.DataObject(name: $0.key, bytes: $0.value) }
                                    .sorted { $0.name < $1.name },
                                base: base, newDataObjects: packer.newObjects, newDataBytes: packer.newBytes)
        _ = try store.put(prefix + id + "/manifest.json", Array(try encoder.encode(manifest)) + [0x0a], condition: .none)
        return (id, summary, manifest)
    }

    /// The object keys of the stored chunks that the complete backups in `store` name, and how
    /// many backups there are: `gc` keeps those objects, so every backup stays restorable until
    /// it is pruned (as a metadata snapshot of a SQLite filesystem keeps its chunks). The
    /// backups' own data objects (`dataPrefix`) are not among them: `referencedData` names those.
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

    /// The keys of the data objects (`dataPrefix`) the manifests of backups `ids` name.
    public static func referencedData(of ids: [String], in store: any ObjectStore) throws -> Set<String> {
        var keys: Set<String> = []
        for id in ids {
            for object in try manifest(id, in: store).data ?? [] { keys.insert(dataPrefix + object.name) }
        }
        return keys
    }

    /// The data objects among `listed` that are named by no key in `referenced` and older than
    /// `grace` seconds at `now` (an object of unknown age is spared): what may be deleted.
    public static func unreferencedData(_ listed: [ObjectInfo], referenced: Set<String>, grace: Double, now: Timestamp) -> [ObjectInfo] {
        listed.filter { info in
            guard info.key.hasPrefix(dataPrefix), !referenced.contains(info.key), let written = info.lastModified else { return false }
            return now.secondsSince(written) >= grace
        }
    }

    /// Deletes all but the `keep` newest complete backups, incomplete ones older than the
    /// newest complete one that wrote nothing for `inProgressGrace` (a host died while writing
    /// them), and the data objects no remaining complete backup names. A manifest goes first,
    /// so a backup half deleted is an incomplete one, never read.
    ///
    /// Why a backup being written elsewhere meanwhile loses nothing it names: it names its own
    /// data objects, younger than the grace while it runs, so spared; and objects its base
    /// names. Its base is the newest complete backup when it started: while its `started.json`
    /// is younger than the grace, that base is kept whatever `keep` says, so the objects it
    /// names are kept too. A backup that started after this prune listed the store has as base
    /// the newest complete one listed (kept: the newest always is) or one completed since,
    /// which names only objects young enough to be spared or named by its own base, kept so.
    public static func prune(_ store: any ObjectStore, keep: Int, now: Timestamp = .now()) throws {
        let objects = try store.list(prefix: prefix)
        var byBackup: [String: [ObjectInfo]] = [:]
        var data: [ObjectInfo] = []
        for info in objects {
            if info.key.hasPrefix(dataPrefix) { data.append(info); continue }
            let rest = info.key.dropFirst(prefix.count)
            guard let slash = rest.firstIndex(of: "/") else { continue }
            byBackup[String(rest[..<slash]), default: []].append(info)
        }
        let complete = byBackup.filter { $0.value.contains { $0.key.hasSuffix("/manifest.json") } }.keys.sorted()
        guard let newest = complete.last else { return }
        let young = { (infos: [ObjectInfo]) -> Bool in
            infos.contains { info in info.lastModified.map { now.secondsSince($0) < inProgressGrace } ?? true }
        }
        var inProgress: [String] = []
        var dead: [String] = []
        for (id, infos) in byBackup where !complete.contains(id) {
            if young(infos) { inProgress.append(id) } else if id < newest { dead.append(id) }
        }
        var kept = Set(complete.suffix(max(1, keep)))
        for id in inProgress {
            // A backup without started.json (written before it existed, or not yet) reuses
            // nothing; one that cannot be read stops the prune rather than guess.
            let bytes: [UInt8]
            do throws(ObjectStoreError) { bytes = try store.get(prefix + id + "/started.json") } catch {
                if case .notFound = error { continue }
                throw error
            }
            if let base = try JSONDecoder().decode(Started.self, from: Data(bytes)).base, complete.contains(base) { kept.insert(base) }
        }
        let doomed = Set(complete).subtracting(kept).union(dead)
        for id in doomed.sorted() {
            let keys = (byBackup[id] ?? []).map(\.key)
            let manifests = keys.filter { $0.hasSuffix("/manifest.json") }
            for key in manifests + keys.filter({ !$0.hasSuffix("/manifest.json") }) { try store.delete(key) }
        }
        let referenced = try referencedData(of: kept.sorted(), in: store)
        for info in unreferencedData(data, referenced: referenced, grace: inProgressGrace, now: now) { try store.delete(info.key) }
    }
}

/// The periodic backup of a read-write mount of a PostgreSQL filesystem: every
/// `backup_interval`, one host among all that mount it (whichever claims the turn first in the
/// database, `PostgresMetaStore.claimBackup`) writes a backup and prunes to `backup_keep`.
public final class MetadataBackup: Sendable {
    private let worker: PeriodicWorker

    public init(store: any ObjectStore, metadata: PostgresMetaStore, fsUUID: String, compression: Compression = .none,
                interval: Double, keep: Int, logger: Logger) {
        let nanoseconds = Int64(interval * 1e9)
        // Looked at a few times per interval (at most every minute): a host that claims the turn
        // late still writes close to when it is due.
        worker = PeriodicWorker(name: "mossaicfs-backup", interval: min(60, max(0.5, interval / 4))) {
            do {
                guard try metadata.claimBackup(interval: nanoseconds, now: Timestamp.now().nanoseconds) else { return }
                let started = ContinuousClock.now
                let (id, summary) = try BackupCatalog.write(metadata, fsUUID: fsUUID, to: store, compression: compression)
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
