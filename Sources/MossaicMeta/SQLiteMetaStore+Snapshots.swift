#if canImport(Glibc)
import Glibc
#endif
import MossaicCore

/// Where this database stands relative to the metadata snapshots in the object store
/// (`settings` rows; the snapshot logic itself is in MossaicReplication).
///
/// - `changeSequence` (`change_seq`): bumped by every write transaction that changed a row.
/// - `generation`, `snapshotID`, `snapshotChangeSequence` (`snapshot_*`): the last snapshot
///   this database was equal to — restored from, or cut from and published — and the
///   `change_seq` it had then. The database is *dirty* when `changeSequence` differs.
/// - `pending` (`snapshot_pending`): a snapshot whose manifest is in the store and whose
///   `meta/HEAD` swap was attempted but not confirmed (a crash between the two). If HEAD names
///   it at the next mount, it was published.
///
/// Snapshot copies carry these rows too, rewritten so that a restored copy says "I am
/// generation N, clean": restoring needs no extra bookkeeping.
public struct ReplicationState: Sendable, Equatable {
    public var changeSequence: Int64
    public var generation: Int64
    public var snapshotID: String?
    public var snapshotChangeSequence: Int64
    public var pending: PendingSnapshot?

    public init(changeSequence: Int64, generation: Int64, snapshotID: String?, snapshotChangeSequence: Int64, pending: PendingSnapshot?) {
        self.changeSequence = changeSequence; self.generation = generation; self.snapshotID = snapshotID
        self.snapshotChangeSequence = snapshotChangeSequence; self.pending = pending
    }

    /// Changed since the last snapshot it was equal to (or never snapshotted).
    public var isDirty: Bool { snapshotID == nil || changeSequence != snapshotChangeSequence }
}

public struct PendingSnapshot: Sendable, Equatable {
    public var generation: Int64
    public var id: String
    public var changeSequence: Int64
    public init(generation: Int64, id: String, changeSequence: Int64) {
        self.generation = generation; self.id = id; self.changeSequence = changeSequence
    }
}

/// What a snapshot copy holds, for its manifest.
public struct SnapshotCopyInfo: Sendable, Equatable {
    /// `change_seq` of the copy: the snapshot contains exactly the changes up to it.
    public var changeSequence: Int64
    public var schemaVersion: Int64
    public var inodes: Int64
    /// Regular files with at least one name, and the sum of their sizes.
    public var files: Int64
    public var logicalBytes: Int64
    public var databaseBytes: Int64
    /// AUTOINCREMENT's counter of inode numbers (see `CapturedChanges.inodeSequence`).
    public var inodeSequence: Int64 = 0
}

extension SQLiteMetaStore {
    enum Keys {
        static let changeSequence = "change_seq"
        static let generation = "snapshot_generation"
        static let snapshotID = "snapshot_id"
        static let snapshotChangeSequence = "snapshot_change_seq"
        static let pending = "snapshot_pending"
    }

    static func countChange(_ c: SQLiteConnection) throws(MetaError) {
        try c.run("""
            INSERT INTO settings(key, value) VALUES('\(Keys.changeSequence)', '1')
            ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1
            """)
    }

    static func replicationState(_ c: SQLiteConnection) throws(MetaError) -> ReplicationState {
        var values: [String: String] = [:]
        for (k, v) in try c.query("SELECT key, value FROM settings WHERE key IN (?, ?, ?, ?, ?)",
                                  [.text(Keys.changeSequence), .text(Keys.generation), .text(Keys.snapshotID),
                                   .text(Keys.snapshotChangeSequence), .text(Keys.pending)], row: { ($0.text(0), $0.text(1)) }) {
            values[k] = v
        }
        var pending: PendingSnapshot?
        if let p = values[Keys.pending] {
            let parts = p.split(separator: " ")
            if parts.count == 3, let g = Int64(parts[0]), let s = Int64(parts[2]) {
                pending = PendingSnapshot(generation: g, id: String(parts[1]), changeSequence: s)
            }
        }
        return ReplicationState(
            changeSequence: values[Keys.changeSequence].flatMap { Int64($0) } ?? 0,
            generation: values[Keys.generation].flatMap { Int64($0) } ?? 0,
            snapshotID: values[Keys.snapshotID],
            snapshotChangeSequence: values[Keys.snapshotChangeSequence].flatMap { Int64($0) } ?? 0,
            pending: pending)
    }

    private static func set(_ c: SQLiteConnection, _ key: String, _ value: String) throws(MetaError) {
        try c.run("INSERT INTO settings(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                  [.text(key), .text(value)])
    }

    static func recordSnapshot(_ c: SQLiteConnection, generation: Int64, id: String, changeSequence: Int64) throws(MetaError) {
        try set(c, Keys.generation, String(generation))
        try set(c, Keys.snapshotID, id)
        try set(c, Keys.snapshotChangeSequence, String(changeSequence))
        try c.run("DELETE FROM settings WHERE key = ?", [.text(Keys.pending)])
    }

    public func replicationState() throws(MetaError) -> ReplicationState {
        try withConnection { (c) throws(MetaError) in try Self.replicationState(c) }
    }

    /// Records that a snapshot's HEAD swap is about to be attempted (not a filesystem change).
    public func recordPendingSnapshot(_ pending: PendingSnapshot) throws(MetaError) {
        try write(durable: true, counted: false) { (c) throws(MetaError) in
            try Self.set(c, Keys.pending, "\(pending.generation) \(pending.id) \(pending.changeSequence)")
        }
    }

    /// Forgets a pending snapshot whose HEAD swap failed.
    public func clearPendingSnapshot() throws(MetaError) {
        try write(durable: true, counted: false) { (c) throws(MetaError) in
            try c.run("DELETE FROM settings WHERE key = ?", [.text(Keys.pending)])
        }
    }

    /// Records that snapshot `id` (generation `generation`, holding this database's changes up
    /// to `changeSequence`) is now the store's HEAD. Durable: after a power loss the database
    /// must not believe itself older than HEAD.
    public func recordPublishedSnapshot(generation: Int64, id: String, changeSequence: Int64) throws(MetaError) {
        try write(durable: true, counted: false) { (c) throws(MetaError) in
            try Self.recordSnapshot(c, generation: generation, id: id, changeSequence: changeSequence)
        }
    }

    /// A consistent copy of the database at `path`, labelled as snapshot `id` of `generation`.
    ///
    /// The copy is made with SQLite's online backup API from a second, read-only connection
    /// inside one read transaction: writers on the main connection go on meanwhile (WAL), and
    /// `change_seq` read in that transaction is exactly the state copied. That transaction
    /// starts under the writer lock, and the writer's change recording restarts at the same
    /// moment, so the next snapshot can ship just the rows changed after this copy
    /// (`SQLiteMetaStore+ChangeCapture.swift`). The copy is then rewritten in place (it is our
    /// private file): its `snapshot_*` rows say "generation N, clean", no `snapshot_pending`,
    /// and `journal_mode=DELETE`, so that a restored or read-only copy is one self-contained
    /// file. The backup writes pages at their page numbers, so regions of the file that did not
    /// change since the last copy are byte-identical and their 1 MiB pieces are not uploaded
    /// again.
    public func snapshotCopy(to path: String, generation: Int64, id: String) throws(MetaError) -> SnapshotCopyInfo {
        Self.removeDatabaseFiles(path)
        let reader = try SQLiteConnection(path: self.path, readOnly: true)
        let changeSequence: Int64
        do {
            changeSequence = try withConnection { (c) throws(MetaError) -> Int64 in
                try reader.execute("BEGIN")
                // The first read starts the read transaction that the backup below reuses.
                let sequence = try Self.replicationState(reader).changeSequence
                if !readOnly {
                    c.changeRecorder = try SQLiteChangeRecorder(on: c)
                    c.unshippedChanges = nil
                }
                return sequence
            }
            try reader.backup(to: path)
            try reader.execute("COMMIT")
        } catch {
            try? reader.execute("ROLLBACK")
            Self.removeDatabaseFiles(path)
            throw error
        }
        do throws(MetaError) {
            let copy = try SQLiteConnection(path: path, readOnly: false)
            try Self.useRollbackJournal(copy)
            try copy.transaction(durable: true) { () throws(MetaError) in
                try Self.recordSnapshot(copy, generation: generation, id: id, changeSequence: changeSequence)
            }
            try Self.compactIfMostlyFree(copy)
            var info = try Self.statistics(copy)
            info.changeSequence = changeSequence
            var st = stat()
            info.databaseBytes = stat(path, &st) == 0 ? Int64(st.st_size) : 0
            return info
        } catch {
            Self.removeDatabaseFiles(path)
            throw error
        }
    }

    /// The database's pages, free pages among them, and page size.
    private static func pageCounts(_ c: SQLiteConnection) throws(MetaError) -> (pages: Int64, free: Int64, size: Int64) {
        try c.queryOne("""
            SELECT page_count, freelist_count, page_size FROM pragma_page_count(), pragma_freelist_count(), pragma_page_size()
            """) { ($0.int(0), $0.int(1), $0.int(2)) } ?? (0, 0, 0)
    }

    /// The bytes of the database's pages in use (its free pages left out): what a compact
    /// copy holds. Deleting many files frees pages without shrinking the file.
    static func liveBytes(_ c: SQLiteConnection) throws(MetaError) -> Int64 {
        let counts = try pageCounts(c)
        return (counts.pages - counts.free) * counts.size
    }

    /// Rewrites a snapshot copy without its free pages when they are more than a quarter of it
    /// (and at least 1 MiB): after `rm -rf` of many small files their bytes are free pages of
    /// the database, which a copy page for page would upload and keep in the store, and which
    /// would make the copy look too big to rebase on (SnapshotWriter). A compacted copy shares
    /// fewer pieces with the previous base (its pages move), so it is done only then.
    static func compactIfMostlyFree(_ copy: SQLiteConnection) throws(MetaError) {
        let counts = try pageCounts(copy)
        guard counts.free * 4 > counts.pages, counts.free * counts.size >= 1 << 20 else { return }
        try copy.execute("VACUUM")
    }

    /// `journal_mode=DELETE`, checked: a snapshot's database is one self-contained file.
    static func useRollbackJournal(_ c: SQLiteConnection) throws(MetaError) {
        try c.execute("PRAGMA journal_mode=DELETE")
        let journal = try c.pragma("journal_mode")
        guard journal.lowercased() == "delete" else {
            throw MetaError.incompatible("\(c.path): SQLite refused journal_mode=DELETE (got \(journal))")
        }
    }

    static func statistics(_ c: SQLiteConnection) throws(MetaError) -> SnapshotCopyInfo {
        let schema = try c.queryOne("PRAGMA user_version") { $0.int(0) } ?? 0
        let inodes = try c.queryOne("SELECT count(*) FROM inodes") { $0.int(0) } ?? 0
        let (files, bytes) = try c.queryOne("SELECT count(*), coalesce(sum(size), 0) FROM inodes WHERE kind = ? AND nlink > 0",
                                            [.int(Int64(FileKind.regular.rawValue))]) { ($0.int(0), $0.int(1)) } ?? (0, 0)
        let sequence = try replicationState(c).changeSequence
        return SnapshotCopyInfo(changeSequence: sequence, schemaVersion: schema, inodes: inodes, files: files,
                                logicalBytes: bytes, databaseBytes: 0, inodeSequence: try inodeSequence(c))
    }

    /// Makes a downloaded snapshot file ready to be opened read-only: refuses a newer schema,
    /// migrates an older one (the file is our private copy), and keeps it a single file
    /// (`journal_mode=DELETE`). Returns its replication state.
    @discardableResult
    public static func prepareSnapshotFile(_ path: String) throws(MetaError) -> ReplicationState {
        let c = try SQLiteConnection(path: path, readOnly: false)
        try c.execute("PRAGMA journal_mode=DELETE")
        try migrate(c)
        return try replicationState(c)
    }

    /// The replication state and statistics of a database file (a snapshot copy), without
    /// changing it.
    public static func inspect(_ path: String) throws(MetaError) -> (state: ReplicationState, info: SnapshotCopyInfo, fsUUID: String?) {
        let c = try SQLiteConnection(path: path, readOnly: true)
        try checkSchema(c)
        let uuid = try c.queryOne("SELECT value FROM settings WHERE key = 'fs_uuid'") { $0.text(0) }
        return (try replicationState(c), try statistics(c), uuid)
    }

    /// Every stored (not inline) chunk the files of the database at `path` reference, where
    /// that database says its bytes are — including chunks whose refcount is 0 in today's
    /// metadata but that this older snapshot still uses, and chunks today's rows place elsewhere
    /// (fsck moved them out of a damaged pack): restoring the snapshot reads its own rows.
    /// For garbage collection (`MossaicReplication.SnapshotCatalog`). Opened read-only and not
    /// migrated: a snapshot of schema 1 has no `pack` column, and all its chunks are objects;
    /// one before schema 6 has no `codec` or `stored_length`, and all its chunks are raw.
    public static func referencedStoredChunks(inDatabase path: String) throws(MetaError) -> Set<LocatedChunk> {
        let c = try SQLiteConnection(path: path, readOnly: true)
        let version = try checkSchema(c)
        let stored: [SQLValue] = [.int(ChunkState.stored.rawValue)]
        if version < 2 {
            return Set(try c.query("""
                SELECT DISTINCT f.hash FROM file_chunks f JOIN chunks c ON c.hash = f.hash WHERE c.state = ?
                """, stored) { LocatedChunk(hash: ChunkHash(bytes: $0.blob(0)), location: .object) })
        }
        let columns = version < 6 ? "c.pack, c.pack_offset, c.length, 0" : ChunkLocation.selected("c.")
        return Set(try c.query("""
            SELECT DISTINCT c.hash, \(columns) FROM file_chunks f JOIN chunks c ON c.hash = f.hash
            WHERE c.state = ?
            """, stored) { LocatedChunk.read($0, from: 0) })
    }

    /// Every stored chunk with a reference in the live database (refcount > 0).
    public func referencedStoredChunks() throws(MetaError) -> Set<ChunkHash> {
        try read { (c) throws(MetaError) in
            Set(try c.query("SELECT hash FROM chunks WHERE state = ? AND refcount > 0", [.int(ChunkState.stored.rawValue)]) {
                ChunkHash(bytes: $0.blob(0))
            })
        }
    }

    /// Switches this store to the database file at `path` (a newer snapshot, for a read-only
    /// mount following the store). Each operation runs on one connection, so it sees either the
    /// old database or the new one, never a mix; old connections close when the last operation
    /// using them is done.
    public func replaceDatabase(with path: String) throws(MetaError) {
        let c = try SQLiteConnection(path: path, readOnly: readOnly)
        if readOnly {
            try Self.checkSchema(c, exact: true)
        } else {
            try c.execute("PRAGMA journal_mode=WAL")
            try Self.migrate(c)
        }
        let pool = try SQLiteReaderPool(path: path, readOnly: readOnly)
        connection.withLock { $0 = c }
        readers.withLock { $0 = pool }
        replacements.add(1, ordering: .releasing)
    }

    /// Removes a database file and its journal/WAL companions (temp copies).
    public static func removeDatabaseFiles(_ file: String) {
        for suffix in ["", "-journal", "-wal", "-shm", ChunkChangeStaging.suffix] { Glibc.unlink(file + suffix) }
    }
}
