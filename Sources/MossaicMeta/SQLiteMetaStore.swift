import MossaicCore
import Synchronization

/// The filesystem's metadata in SQLite: inodes, directory entries, chunk lists, chunks with
/// refcounts (small ones inline), symlinks and xattrs.
///
/// The first `MetaStore` engine: one host, the database in the cache directory, snapshots of it
/// in the bucket (`SQLiteMetaStore+Snapshots`).
///
/// One writer connection behind a `Mutex` (SQLite allows one writer at a time anyway) and a few
/// reader connections (`SQLiteReaderPool`): a lookup or getattr never waits behind another
/// file's commit and its fsync. Every mutation is one `BEGIN IMMEDIATE` transaction in WAL mode. File commits (`commit`) and `sync()` are
/// committed with `synchronous=FULL`: when they return, they and everything before them survive
/// power loss. Other metadata changes use `synchronous=NORMAL`: atomic and immediately safe
/// against a crash of the daemon, durable against power loss at the next FULL commit.
///
/// Every write transaction that changes a row also bumps the `change_seq` setting in the same
/// transaction, so "changed since the last metadata snapshot" survives a crash
/// (see `SQLiteMetaStore+Snapshots.swift`).
public final class SQLiteMetaStore: MetaStore {
    /// Replaced only by `replaceDatabase(with:)` (read-only mounts following the store's newest
    /// snapshot); every other use just locks it.
    let connection: Mutex<SQLiteConnection>
    /// The read connections; replaced together with `connection`.
    let readers: Mutex<SQLiteReaderPool>
    public let readOnly: Bool

    /// The database file in use (it changes when a read-only mount switches snapshots).
    public var path: String { connection.withLock { $0.path } }
    /// Transactions committed with synchronous=NORMAL since the last FULL commit.
    private let unsynced = Atomic<Int>(0)
    /// Bumped each time `replaceDatabase` switches to another database: what callers cached
    /// from the old one (open files' chunk maps) is stale then.
    let replacements = Atomic<Int>(0)
    public var epoch: Int { replacements.load(ordering: .acquiring) }
    /// Bytes of unshipped row changes past which change recording is dropped
    /// (`boundChangeRecording`).
    let changeRecordingLimit: Int64

    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    /// `readOnly` opens an existing database without ever writing to it (a downloaded snapshot);
    /// its schema must then already be current (`prepareSnapshotFile`). `changeRecordingLimit`
    /// is lowered by tests only.
    public init(path: String, readOnly: Bool = false,
                changeRecordingLimit: Int64 = SQLiteMetaStore.changeRecordingMemoryLimit) throws(MetaError) {
        let c = try SQLiteConnection(path: path, readOnly: readOnly)
        self.readOnly = readOnly
        self.changeRecordingLimit = changeRecordingLimit
        if readOnly {
            try Self.checkSchema(c, exact: true)
        } else {
            try c.execute("PRAGMA journal_mode=WAL")
            // A PRAGMA that did not take fails silently; read it back.
            let journal = try c.pragma("journal_mode")
            guard journal.lowercased() == "wal" else {
                throw .incompatible("\(path): SQLite refused journal_mode=WAL (got \(journal))")
            }
            try Self.migrate(c)
        }
        connection = Mutex(c)
        readers = Mutex(try SQLiteReaderPool(path: path, readOnly: readOnly))
    }

    /// Refuses a database newer than this build (and, with `exact`, an older one, which a
    /// read-only connection cannot migrate). Returns its version.
    @discardableResult
    static func checkSchema(_ c: SQLiteConnection, exact: Bool = false) throws(MetaError) -> Int64 {
        let version = try c.queryOne("PRAGMA user_version") { $0.int(0) } ?? 0
        if version > Schema.version {
            throw .incompatible("\(c.path) has metadata schema \(version); this mossaicfs understands up to \(Schema.version) (upgrade mossaicfs)")
        }
        if exact && version != Schema.version {
            throw .incompatible("\(c.path) has metadata schema \(version), not \(Schema.version); it must be upgraded before a read-only open")
        }
        return version
    }

    static func migrate(_ c: SQLiteConnection) throws(MetaError) {
        let version = try checkSchema(c)
        guard version < Schema.version else { return }
        // One transaction for all steps: a crash leaves the old version, never half of one.
        try c.transaction(durable: true) { () throws(MetaError) in
            if version < 1 { try c.execute(Schema.v1) }
            if version < 2 { try c.execute(Schema.v2) }
            if version < 3 { try c.execute(Schema.v3) }
            if version < 4 { try c.execute(Schema.v4) }
            if version < 5 { try c.execute(Schema.v5) }
            if version < 6 { try c.execute(Schema.v6) }
            if version < 7 { try c.execute(Schema.v7) }
            try c.execute("PRAGMA user_version = \(Schema.version)")
        }
    }

    /// Runs `body` with the connection; the lock is held for its duration. Never call back into
    /// the store from `body` (the mutex is not reentrant).
    func withConnection<T: Sendable>(_ body: (SQLiteConnection) throws(MetaError) -> T) throws(MetaError) -> T {
        try connection.withLock { (c) throws(MetaError) -> T in try body(c) }
    }

    /// Runs `body` for reads only: on the writer connection when no write holds it, else on a
    /// reader connection. `snapshot`: its statements in one read transaction, for a read of
    /// several statements that must agree with each other.
    ///
    /// Why the writer first: SQLite drops a connection's whole page cache when it starts a read
    /// and finds the WAL changed by another connection, so on a mount that writes (untar, a
    /// build) every read on a pool connection re-reads its pages from the file; the writer's
    /// cache is the one that stays warm. The pool is there for the moments a write transaction
    /// (and its fsync) holds the writer: a lookup then goes on beside it instead of waiting.
    /// Measured: untar of /usr/include/linux three times, 1.59 s with reads always on the pool,
    /// see docs/BENCHMARKS.md.
    func read<T: Sendable>(snapshot: Bool = false, _ body: (SQLiteConnection) throws(MetaError) -> T) throws(MetaError) -> T {
        if let result = try connection.withLockIfAvailable({ (c) throws(MetaError) -> T in
            try SQLiteReaderPool.run(c, snapshot, body)
        }) {
            return result
        }
        let pool = readers.withLock { $0 }
        return try pool.read(snapshot: snapshot, body)
    }

    /// Runs `body` as one write transaction. If it changed any row and `counted` (the default),
    /// `change_seq` is bumped in the same transaction: the snapshotter's persistent "dirty"
    /// mark. Bookkeeping that is not a filesystem change (sync, snapshot records) passes
    /// `counted: false`. Changes are counted with `sqlite3_total_changes` on this connection, so
    /// a transaction that touched nothing (e.g. purging an inode that is not an orphan) leaves
    /// the metadata clean.
    func write<T: Sendable>(durable: Bool = false, counted: Bool = true, _ body: (SQLiteConnection) throws(MetaError) -> T) throws(MetaError) -> T {
        try withConnection { (c) throws(MetaError) in
            let result = try c.transaction(durable: durable) { () throws(MetaError) in
                let before = c.totalChanges
                let result = try body(c)
                if counted && c.totalChanges != before { try Self.countChange(c) }
                return result
            }
            // A FULL commit fsyncs the WAL, and with it every earlier transaction.
            if durable { unsynced.store(0, ordering: .relaxed) } else { unsynced.add(1, ordering: .relaxed) }
            boundChangeRecording(c)
            return result
        }
    }

    /// True if some committed change is not yet durable against power loss.
    public var hasUnsyncedChanges: Bool { unsynced.load(ordering: .relaxed) > 0 }

    /// Makes every change so far durable (fsync, fsyncdir, syncfs): a FULL commit of a
    /// one-row write, which fsyncs the WAL holding all earlier transactions.
    public func sync() throws(MetaError) {
        try write(durable: true, counted: false) { (c) throws(MetaError) in
            try c.run("INSERT INTO settings(key, value) VALUES('last_sync', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                      [.text(String(Timestamp.now().nanoseconds))])
        }
    }

    // MARK: Settings

    public func setting(_ key: String) throws(MetaError) -> String? {
        try read { (c) throws(MetaError) in
            try c.queryOne("SELECT value FROM settings WHERE key = ?", [.text(key)]) { $0.text(0) }
        }
    }

    public func setSetting(_ key: String, _ value: String) throws(MetaError) {
        try write { (c) throws(MetaError) in
            try c.run("INSERT INTO settings(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                      [.text(key), .text(value)])
        }
    }

    /// Creates the root directory if the database has none yet. Returns true if it did.
    @discardableResult
    public func createRootIfMissing(permissions: UInt32, uid: UInt32, gid: UInt32, now: Timestamp) throws(MetaError) -> Bool {
        try write { (c) throws(MetaError) in
            if try c.queryOne("SELECT 1 FROM inodes WHERE ino = 1", row: { _ in true }) != nil { return false }
            try c.run("""
                INSERT INTO inodes(ino, kind, mode, uid, gid, size, nlink, rdev, atime_ns, mtime_ns, ctime_ns, generation, parent)
                VALUES(1, ?, ?, ?, ?, 0, 2, 0, ?, ?, ?, 0, 1)
                """, [.int(Int64(FileKind.directory.rawValue)), .int(Int64(permissions & 0o7777)), .int(Int64(uid)), .int(Int64(gid)),
                      .int(now.nanoseconds), .int(now.nanoseconds), .int(now.nanoseconds)])
            return true
        }
    }

    // MARK: Attributes

    static let attributeColumnNames = ["ino", "kind", "mode", "uid", "gid", "size", "nlink", "rdev", "atime_ns", "mtime_ns", "ctime_ns",
                                       "generation", "allocated", "reserved"]
    static let attributeCount = Int32(attributeColumnNames.count)
    /// The attribute columns of table alias `table`, in the order `attributes(_:from:)` reads.
    static func attributeColumns(of table: String) -> String {
        attributeColumnNames.map { table + "." + $0 }.joined(separator: ", ")
    }
    static let attributeColumns = attributeColumns(of: "i")
    static let resolveQuery = """
        SELECT \(attributeColumns(of: "p")), \(attributeColumns(of: "e"))
        FROM inodes p LEFT JOIN dentries d ON d.parent = p.ino AND d.name = ? LEFT JOIN inodes e ON e.ino = d.ino
        WHERE p.ino = ?
        """

    /// Reads the attribute columns starting at `first` (in `attributeColumns` order).
    static func attributes(_ s: some ResultRow, from first: Int32 = 0) -> FileAttributes {
        FileAttributes(
            ino: InodeNumber(UInt64(s.int(first))),
            kind: FileKind(rawValue: UInt32(s.int(first + 1))) ?? .regular,
            permissions: UInt32(s.int(first + 2)),
            uid: UInt32(truncatingIfNeeded: s.int(first + 3)),
            gid: UInt32(truncatingIfNeeded: s.int(first + 4)),
            size: UInt64(s.int(first + 5)),
            nlink: UInt32(truncatingIfNeeded: s.int(first + 6)),
            rdev: UInt64(bitPattern: s.int(first + 7)),
            atime: Timestamp(nanoseconds: s.int(first + 8)),
            mtime: Timestamp(nanoseconds: s.int(first + 9)),
            ctime: Timestamp(nanoseconds: s.int(first + 10)),
            generation: UInt64(s.int(first + 11)),
            allocatedBytes: UInt64(max(0, s.int(first + 12))),
            reservedBytes: UInt64(max(0, s.int(first + 13))))
    }

    static func attributes(_ c: SQLiteConnection, _ ino: InodeNumber) throws(MetaError) -> FileAttributes {
        guard let attrs = try c.queryOne("SELECT \(attributeColumns) FROM inodes i WHERE i.ino = ?", [.int(Int64(ino.rawValue))],
                                         row: { attributes($0) }) else { throw .notFound }
        return attrs
    }

    public func attributes(of ino: InodeNumber) throws(MetaError) -> FileAttributes {
        try read { (c) throws(MetaError) in try Self.attributes(c, ino) }
    }

    /// The directory and the inode `name` names in it, in one query: the directory's row
    /// LEFT JOINed to the entry, so a missing name (a negative lookup, as common as a found one:
    /// every create, every search along $PATH) costs no second read to tell ENOENT from ENOTDIR.
    public func resolve(parent: InodeNumber, name: [UInt8]) throws(MetaError) -> (directory: FileAttributes, entry: FileAttributes?) {
        let found = try read { (c) throws(MetaError) in
            try c.queryOne(Self.resolveQuery, [.blob(name), .int(Int64(parent.rawValue))]) { s in
                (Self.attributes(s), s.isNull(Self.attributeCount) ? nil : Self.attributes(s, from: Self.attributeCount))
            }
        }
        guard let (directory, entry) = found else { throw .notFound }
        guard directory.kind == .directory else { throw .notDirectory }
        return (directory, entry)
    }

    /// The parent of directory `ino` (the root's is itself), for the kernel's
    /// `lookup(ino, "..")` when it reconnects a directory handle to the tree. Only directories
    /// have one: a file's names may be in many directories.
    public func parentDirectory(of ino: InodeNumber) throws(MetaError) -> FileAttributes {
        try read { (c) throws(MetaError) in
            _ = try Self.directory(c, ino)
            guard let parent = try c.queryOne("SELECT parent FROM inodes WHERE ino = ?", [.int(Int64(ino.rawValue))], row: { $0.int(0) })
            else { throw .notFound }
            return try Self.attributes(c, InodeNumber(UInt64(parent)))
        }
    }

    /// Applies a setattr. A size change of a regular file cuts or drops chunk references (no chunk
    /// is rewritten: `file_chunks.length` shrinks) and, unless given, sets mtime. ctime is `now`.
    /// `xattrs`: attributes set (or, nil, removed) in the same transaction — an ACL kept in step
    /// with the mode.
    public func setAttributes(of ino: InodeNumber, _ changes: AttributeChanges, now: Timestamp,
                              xattrs: [[UInt8]: [UInt8]?]) throws(MetaError) -> FileAttributes {
        try write { (c) throws(MetaError) in
            let old = try Self.attributes(c, ino)
            for (name, value) in xattrs { try Self.storeXattr(c, ino, name: name, value: value) }
            let attrs = try old.applying(changes, now: now)
            if let cut = old.truncation(by: changes) { try Self.cutChunks(c, ino, to: cut) }
            try c.run("""
                UPDATE inodes SET mode = ?, uid = ?, gid = ?, size = ?, atime_ns = ?, mtime_ns = ?, ctime_ns = ? WHERE ino = ?
                """, [.int(Int64(attrs.permissions)), .int(Int64(attrs.uid)), .int(Int64(attrs.gid)), .int(Int64(attrs.size)),
                      .int(attrs.atime.nanoseconds), .int(attrs.mtime.nanoseconds), .int(attrs.ctime.nanoseconds),
                      .int(Int64(ino.rawValue))])
            // Read back: a truncation changed the allocation counts too.
            return try Self.attributes(c, ino)
        }
    }

    /// Sets access times alone (reads, under relatime rules), in one transaction: unlike
    /// setattr, ctime stays. Inodes gone meanwhile are skipped.
    public func touchAccessTimes(_ times: [(InodeNumber, Timestamp)]) throws(MetaError) {
        guard !times.isEmpty else { return }
        try write { (c) throws(MetaError) in
            for (ino, atime) in times {
                try c.run("UPDATE inodes SET atime_ns = ? WHERE ino = ?", [.int(atime.nanoseconds), .int(Int64(ino.rawValue))])
            }
        }
    }

    // MARK: Directories

    /// Every entry of a directory (without `.` and `..`) with its attributes, in name order, and
    /// the directory's parent (for `..`).
    public func readDirectory(_ ino: InodeNumber) throws(MetaError) -> (parent: InodeNumber, entries: [DirectoryEntry]) {
        try read(snapshot: true) { (c) throws(MetaError) in
            let dir = try Self.attributes(c, ino)
            guard dir.kind == .directory else { throw .notDirectory }
            let parent = try c.queryOne("SELECT parent FROM inodes WHERE ino = ?", [.int(Int64(ino.rawValue))]) { $0.int(0) } ?? 1
            let entries = try c.query("""
                SELECT d.name, \(Self.attributeColumns) FROM dentries d JOIN inodes i ON i.ino = d.ino WHERE d.parent = ? ORDER BY d.name
                """, [.int(Int64(ino.rawValue))]) { s in DirectoryEntry(name: s.blob(0), attributes: Self.attributes(s, from: 1)) }
            return (InodeNumber(UInt64(parent)), entries)
        }
    }

    public func readDirectory(_ ino: InodeNumber, after name: [UInt8]?, limit: Int) throws(MetaError) -> [DirectoryEntry] {
        try read { (c) throws(MetaError) in
            _ = try Self.directory(c, ino)
            return try c.query(Self.directoryPageQuery, [.int(Int64(ino.rawValue)), .blob(name ?? []), .int(Int64(max(0, limit)))]) { s in
                DirectoryEntry(name: s.blob(0), attributes: Self.attributes(s, from: 1))
            }
        }
    }

    /// A page of a directory: the primary key (parent, name) is the keyset, so this is a range
    /// scan from the last name of the previous page (the empty name sorts before every other).
    static let directoryPageQuery = """
        SELECT d.name, \(attributeColumns) FROM dentries d JOIN inodes i ON i.ino = d.ino
        WHERE d.parent = ? AND d.name > ? ORDER BY d.name LIMIT ?
        """

    public func readSymlink(_ ino: InodeNumber) throws(MetaError) -> [UInt8] {
        try read { (c) throws(MetaError) in
            guard let target = try c.queryOne("SELECT target FROM symlinks WHERE ino = ?", [.int(Int64(ino.rawValue))], row: { $0.blob(0) })
            else { throw .invalidArgument }
            return target
        }
    }

    // MARK: Usage

    /// One row, kept by triggers (Schema.v7).
    public func usage() throws(MetaError) -> MetaUsage {
        try read { (c) throws(MetaError) in
            guard let row = try c.queryOne("SELECT inodes, bytes FROM usage WHERE id = 0", row: { [$0.int(0), $0.int(1)] }) else {
                throw .incompatible("\(path): the usage row is missing (mossaicfs fsck --repair recounts it)")
            }
            return MetaUsage(inodes: UInt64(max(row[0], 0)), usedBytes: UInt64(max(row[1], 0)))
        }
    }

    /// Forces the WAL into the main database file (at unmount), so the database is one file.
    public func checkpoint() throws(MetaError) {
        try withConnection { (c) throws(MetaError) in try c.execute("PRAGMA wal_checkpoint(TRUNCATE)") }
    }

    /// A consistent copy of the whole database at `path` (SQLite online backup).
    public func backup(to path: String) throws(MetaError) {
        try withConnection { (c) throws(MetaError) in try c.backup(to: path) }
    }
}
