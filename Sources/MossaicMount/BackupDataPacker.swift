import MossaicCore
import MossaicMeta
import MossaicObjectStore

/// The inline chunks of one metadata backup being written (`BackupCatalog.write`): each goes
/// where an earlier backup already put it, or else into a new data object of this backup
/// (`backups/data/<backup id>-<NNNNNN>`, many chunks one after the other, up to `objectBytes`,
/// so a backup of 10⁵ small files costs tens of PUTs, not 10⁵).
///
/// What is known to be stored is read from the base — the newest complete backup when this one
/// started — and nothing else: its dump's chunk lines say where each inline chunk is, its
/// manifest lists its data objects and their sizes, and one listing of `backups/data/` checks
/// they are still there (an object missing or of another size is not reused; its chunks are
/// stored again). Data objects of a backup that never completed (a host died) are not known
/// and so never reused: their chunks are stored again, and `prune` deletes the orphans.
/// The base stays in the store while this backup is in progress (`BackupCatalog.prune`).
///
/// A data object that later backups use for less than half its bytes (its other chunks were
/// deleted from the filesystem) is not reused: its live chunks are stored again, so it stops
/// being named once the backups that name it are pruned — dead bytes do not pile up forever.
///
/// Not thread-safe: one dump calls it, line after line.
final class BackupDataPacker {
    static let objectBytes = 8 << 20

    private let store: any ObjectStore
    private let backupID: String
    private let transform: ChunkTransform
    /// Chunks stored by the base, in the data objects that may be reused.
    private var known: [ChunkHash: DumpDataReference] = [:]
    /// The sizes of the base's data objects that are still there.
    private var knownSizes: [String: Int64] = [:]
    /// Every data object this backup names, and its size.
    private(set) var named: [String: Int64] = [:]
    private var pending: [UInt8] = []
    private var nextObject = 0
    private(set) var newObjects = 0
    private(set) var newBytes: Int64 = 0
    private(set) var reusedChunks = 0

    init(store: any ObjectStore, backupID: String, compression: Compression) {
        self.store = store
        self.backupID = backupID
        // Compressed as the filesystem's stored chunks are (and kept raw when that saves
        // little); never sealed: PostgreSQL filesystems are not encrypted (format refuses).
        self.transform = ChunkTransform(compression: compression)
    }

    /// Learns what the base backup `base` stored, from its manifest and its dump.
    func learn(base: BackupCatalog.Manifest, dump reader: DumpReader) throws {
        guard let objects = base.data, !objects.isEmpty else { return }
        let listed = try listedData()
        var sizes: [String: Int64] = [:]
        for object in objects where listed[object.name] == object.bytes { sizes[object.name] = object.bytes }
        var live: [String: Int64] = [:]
        var found: [ChunkHash: DumpDataReference] = [:]
        reader.dataSource = { reference, hash, _ in
            if let size = sizes[reference.object], reference.offset + reference.length <= size {
                found[hash] = reference
                live[reference.object, default: 0] += reference.length
            }
            return []
        }
        _ = try reader.header()
        try reader.readToEnd()
        known = found.filter { _, reference in
            let size = sizes[reference.object] ?? 0
            return 2 * (live[reference.object] ?? 0) >= size
        }
        knownSizes = sizes
    }

    /// `DumpWriter.DataReferencing`: where chunk `hash`'s bytes are kept.
    func reference(_ hash: ChunkHash, _ bytes: [UInt8]) throws -> DumpDataReference? {
        if let reference = known[hash] {
            reusedChunks += 1
            named[reference.object] = knownSizes[reference.object] ?? 0
            return reference
        }
        // A row whose bytes are not its chunk's (damage in the database) stays in its line, as
        // it is: a data object's content is checked by the chunks' names on restore, and one
        // damaged row must not stop every backup.
        guard ChunkHash.of(bytes) == hash else { return nil }
        let encoded = transform.encode(bytes, hash: hash)
        if !pending.isEmpty && pending.count + encoded.bytes.count > Self.objectBytes { try flush() }
        let reference = DumpDataReference(object: currentName, offset: Int64(pending.count), length: Int64(encoded.bytes.count),
                                          codec: encoded.codec)
        pending += encoded.bytes
        return reference
    }

    /// Uploads what is pending, then checks that every data object this backup names is in
    /// the store, at its size; after the dump, before the manifest. Pruning never deletes what
    /// a backup in progress reuses (`BackupCatalog.prune`); this one listing also catches what
    /// that cannot rule out (a host of an older release pruning the base meanwhile, a hand).
    func finish() throws {
        if !pending.isEmpty { try flush() }
        guard !named.isEmpty else { return }
        let listed = try listedData()
        for (name, size) in named.sorted(by: { $0.key < $1.key }) where listed[name] != size {
            throw DumpError.io("\(BackupCatalog.dataPrefix)\(name), which this backup names, is gone from the store or changed while it was written: the backup is abandoned (incomplete); the next one stores its chunks again")
        }
    }

    /// The data objects in the store, by name, and their sizes: one listing.
    private func listedData() throws -> [String: Int64] {
        Dictionary(try store.list(prefix: BackupCatalog.dataPrefix).map {
            (String($0.key.dropFirst(BackupCatalog.dataPrefix.count)), Int64($0.size))
        }, uniquingKeysWith: { a, _ in a })
    }

    private var currentName: String {
        let n = String(nextObject)
        return backupID + "-" + String(repeating: "0", count: max(0, 6 - n.count)) + n
    }

    private func flush() throws {
        let name = currentName
        _ = try store.put(BackupCatalog.dataPrefix + name, pending, condition: .none)
        named[name] = Int64(pending.count)
        newObjects += 1
        newBytes += Int64(pending.count)
        nextObject += 1
        pending.removeAll(keepingCapacity: true)
    }
}
