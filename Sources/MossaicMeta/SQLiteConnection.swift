internal import CSQLite

/// One SQLite connection and its prepared statements.
///
/// Not thread-safe by design (opened with SQLITE_OPEN_NOMUTEX): `SQLiteMetaStore` owns it inside
/// a `Mutex`, so exactly one thread uses it at a time. That is also the single-writer rule of
/// SQLite made explicit. `@unchecked Sendable` only because it wraps a C handle that the mutex
/// confines.
final class SQLiteConnection: @unchecked Sendable {
    private var db: OpaquePointer?
    /// The raw handle, for the session extension (`SQLiteChangeRecorder`).
    var handle: OpaquePointer? { db }
    /// Writer connection only: row changes since the last metadata snapshot capture, and the
    /// changeset of a capture whose snapshot is not yet known to be published
    /// (`SQLiteMetaStore+ChangeCapture.swift`).
    var changeRecorder: SQLiteChangeRecorder?
    var unshippedChanges: [UInt8]?
    private var statements: [String: OpaquePointer] = [:]
    /// The `synchronous` level in force, to switch only when a transaction needs another.
    private var synchronousFull: Bool?
    let path: String

    init(path: String, readOnly: Bool) throws(MetaError) {
        self.path = path
        let flags = (readOnly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) | SQLITE_OPEN_NOMUTEX
        var handle: OpaquePointer?
        let rc = sqlite3_open_v2(path, &handle, flags, nil)
        guard rc == SQLITE_OK, let handle else {
            let message = handle.map { String(cString: sqlite3_errmsg($0)) } ?? "out of memory"
            sqlite3_close_v2(handle)
            throw .sqlite(code: rc, message: message, context: "open \(path)")
        }
        db = handle
        // Wait for a lock held by another process (fsck, status) instead of failing at once.
        sqlite3_busy_timeout(handle, 10_000)
        sqlite3_extended_result_codes(handle, 1)
    }

    deinit {
        changeRecorder = nil  // a session must be deleted before its connection is closed
        for (_, stmt) in statements { sqlite3_finalize(stmt) }
        sqlite3_close_v2(db)
    }

    /// Runs SQL without results (schema, PRAGMAs with no answer needed, BEGIN/COMMIT).
    func execute(_ sql: String) throws(MetaError) {
        var message: UnsafeMutablePointer<CChar>?
        let rc = sqlite3_exec(db, sql, nil, nil, &message)
        if rc != SQLITE_OK {
            let text = message.map { String(cString: $0) } ?? String(cString: sqlite3_errmsg(db))
            sqlite3_free(message)
            throw .sqlite(code: rc, message: text, context: sql)
        }
    }

    /// SQLite's page cache for one bulk transaction into a scratch database, in KiB (a restore
    /// from the store, a load): held only while it runs. Both write in key order nearly
    /// everywhere — a load takes a dump's rows sorted by key, a restore applies `chunks` sorted
    /// by hash (`ChunkChangeStaging`) and the other tables grow at their ends — so a large cache
    /// buys nothing. bench/restore.sh, 2·10⁶ files from a chain of 85 changesets: 256 MiB
    /// restored in 27.2 s at a peak RSS of 399 MiB, 128 MiB in 26.4 s (272 MiB), 64 MiB in
    /// 25.2 and 23.0 s (205 MiB), 32 MiB in 25.4 s (172 MiB). (Before `chunks` was staged, 128
    /// MiB took 33.9 s and 256 MiB 26.6 s at 10⁶ files.)
    static let scratchCacheKiB = 64 << 10

    /// Readies this connection for ONE bulk transaction into a scratch file that nothing else
    /// opens and that a failure or crash discards (the caller fsyncs and renames it into place
    /// when done): no journal — it would copy every page once more, and each spill of the page
    /// cache would sync it — no syncs, and a page cache of `scratchCacheKiB`: with the default
    /// 2 MiB of pages, inserts into the B-trees' middles (a directory's entries keyed by name,
    /// a group of chunk rows) re-read and re-wrote a page each.
    func prepareScratchTransaction() throws(MetaError) {
        try execute("PRAGMA journal_mode=OFF")
        let journal = try pragma("journal_mode")
        guard journal.lowercased() == "off" else { throw .incompatible("\(path): SQLite refused journal_mode=OFF (got \(journal))") }
        try execute("PRAGMA synchronous=OFF")
        try execute("PRAGMA cache_size=-\(Self.scratchCacheKiB)")
    }

    /// Switches this connection's triggers off (for applying changesets, whose rows already
    /// hold what the triggers made of them).
    func disableTriggers() throws(MetaError) {
        let rc = mossaic_sqlite3_disable_triggers(db)
        if rc != SQLITE_OK { throw .sqlite(code: rc, message: String(cString: sqlite3_errmsg(db)), context: "disable triggers") }
    }

    /// A prepared statement for `sql`, compiled once and reused (reset and unbound) afterwards.
    func statement(_ sql: String) throws(MetaError) -> Statement {
        if let stmt = statements[sql] {
            sqlite3_reset(stmt)
            sqlite3_clear_bindings(stmt)
            return Statement(stmt: stmt, db: db, sql: sql)
        }
        var stmt: OpaquePointer?
        let rc = sqlite3_prepare_v3(db, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &stmt, nil)
        guard rc == SQLITE_OK, let stmt else {
            throw .sqlite(code: rc, message: String(cString: sqlite3_errmsg(db)), context: sql)
        }
        statements[sql] = stmt
        return Statement(stmt: stmt, db: db, sql: sql)
    }

    /// Convenience: prepare, bind, and collect every row through `row`.
    func query<T>(_ sql: String, _ bindings: [SQLValue] = [], row: (Statement) -> T) throws(MetaError) -> [T] {
        let s = try statement(sql)
        try s.bind(bindings)
        var out: [T] = []
        while try s.step() { out.append(row(s)) }
        return out
    }

    /// Convenience: the first row, if any.
    func queryOne<T>(_ sql: String, _ bindings: [SQLValue] = [], row: (Statement) -> T) throws(MetaError) -> T? {
        let s = try statement(sql)
        try s.bind(bindings)
        guard try s.step() else { return nil }
        let value = row(s)
        sqlite3_reset(s.stmt)
        return value
    }

    /// Convenience: a statement that returns no rows.
    func run(_ sql: String, _ bindings: [SQLValue] = []) throws(MetaError) {
        let s = try statement(sql)
        try s.bind(bindings)
        while try s.step() {}
    }

    /// Resets every statement still in the middle of its results: an active statement holds
    /// its read transaction open, and with it a stale view of the database.
    func resetActiveStatements() {
        var next = sqlite3_next_stmt(db, nil)
        while let stmt = next {
            if sqlite3_stmt_busy(stmt) != 0 { sqlite3_reset(stmt) }
            next = sqlite3_next_stmt(db, stmt)
        }
    }

    var changes: Int { Int(sqlite3_changes(db)) }
    /// Rows changed by INSERT/UPDATE/DELETE on this connection since it was opened.
    var totalChanges: Int64 { Int64(sqlite3_total_changes64(db)) }
    var lastInsertRowID: Int64 { sqlite3_last_insert_rowid(db) }

    /// Reads a PRAGMA's value back, to check that a setting really took.
    func pragma(_ name: String) throws(MetaError) -> String {
        try queryOne("PRAGMA \(name)") { $0.text(0) } ?? ""
    }

    /// Runs `body` in a `BEGIN IMMEDIATE` transaction: committed if it returns, rolled back if
    /// it throws. IMMEDIATE takes the write lock up front, so a transaction never fails halfway
    /// with SQLITE_BUSY after having read.
    ///
    /// `durable`: commit with `synchronous=FULL` (the WAL is fsynced before COMMIT returns,
    /// which also makes every earlier transaction durable). Otherwise `NORMAL`: atomic, and
    /// safe against a crash of this process, but only durable against power loss at the next
    /// durable commit or checkpoint — the guarantee ext4 gives metadata without fsync.
    func transaction<T>(durable: Bool, _ body: () throws(MetaError) -> T) throws(MetaError) -> T {
        if synchronousFull != durable {
            try execute(durable ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL")
            let level = try pragma("synchronous")
            guard level == (durable ? "2" : "1") else {
                throw .incompatible("SQLite refused synchronous=\(durable ? "FULL" : "NORMAL") (it says \(level))")
            }
            synchronousFull = durable
        }
        try execute("BEGIN IMMEDIATE")
        do {
            let result = try body()
            try execute("COMMIT")
            return result
        } catch {
            try? execute("ROLLBACK")
            throw error
        }
    }

    /// A consistent copy of the database into `path` through SQLite's online backup API.
    func backup(to path: String) throws(MetaError) {
        var dest: OpaquePointer?
        guard sqlite3_open_v2(path, &dest, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nil) == SQLITE_OK else {
            sqlite3_close_v2(dest)
            throw .sqlite(code: SQLITE_CANTOPEN, message: "cannot create backup", context: path)
        }
        defer { sqlite3_close_v2(dest) }
        guard let backup = sqlite3_backup_init(dest, "main", db, "main") else {
            throw .sqlite(code: sqlite3_errcode(dest), message: String(cString: sqlite3_errmsg(dest)), context: "backup \(path)")
        }
        let rc = sqlite3_backup_step(backup, -1)
        sqlite3_backup_finish(backup)
        guard rc == SQLITE_DONE else {
            throw .sqlite(code: rc, message: String(cString: sqlite3_errstr(rc)), context: "backup \(path)")
        }
    }
}

/// A value bound to a statement parameter.
enum SQLValue {
    case int(Int64)
    case blob([UInt8])
    case text(String)
    case null
}

/// A row of a result, as both engines' connections give it (`Statement`, `PostgresRow`): what
/// the readers of records (`attributes(_:from:)`, `ChunkLocation.read`) need, written once.
protocol ResultRow {
    func int(_ column: Int32) -> Int64
    func isNull(_ column: Int32) -> Bool
    func blob(_ column: Int32) -> [UInt8]
    func text(_ column: Int32) -> String
}

/// A prepared statement, valid while its connection's lock is held.
struct Statement: ResultRow {
    let stmt: OpaquePointer
    let db: OpaquePointer?
    let sql: String

    /// `SQLITE_TRANSIENT`: SQLite copies the bound bytes. The C macro does not import.
    private static var transient: sqlite3_destructor_type { unsafeBitCast(-1, to: sqlite3_destructor_type.self) }

    func bind(_ values: [SQLValue]) throws(MetaError) {
        for (i, value) in values.enumerated() {
            let index = Int32(i + 1)
            let rc: Int32
            switch value {
            case .int(let v): rc = sqlite3_bind_int64(stmt, index, v)
            case .blob(let bytes):
                rc = bytes.withUnsafeBytes { raw in
                    // A zero-length blob must still bind as a blob, not NULL.
                    sqlite3_bind_blob64(stmt, index, raw.baseAddress ?? UnsafeRawPointer(bitPattern: 1), UInt64(raw.count), Self.transient)
                }
            case .text(let s): rc = sqlite3_bind_text(stmt, index, s, -1, Self.transient)
            case .null: rc = sqlite3_bind_null(stmt, index)
            }
            try check(rc)
        }
    }

    /// Binds `count` bytes at `bytes` as a blob without copying them (SQLITE_STATIC): the
    /// caller keeps them alive and unchanged until the step that reads them.
    func bindBlob(_ bytes: UnsafeRawPointer, count: Int, at index: Int32) throws(MetaError) {
        try check(sqlite3_bind_blob64(stmt, index, bytes, UInt64(count), nil))
    }

    /// Turns a bind's result code other than SQLITE_OK into this statement's error.
    func check(_ rc: Int32) throws(MetaError) {
        guard rc == SQLITE_OK else { throw .sqlite(code: rc, message: String(cString: sqlite3_errmsg(db)), context: sql) }
    }

    /// Advances to the next row: true if there is one.
    func step() throws(MetaError) -> Bool {
        let rc = sqlite3_step(stmt)
        switch rc {
        case SQLITE_ROW: return true
        case SQLITE_DONE: return false
        default:
            let message = String(cString: sqlite3_errmsg(db))
            sqlite3_reset(stmt)
            throw .sqlite(code: rc, message: message, context: sql)
        }
    }

    func int(_ column: Int32) -> Int64 { sqlite3_column_int64(stmt, column) }
    func isNull(_ column: Int32) -> Bool { sqlite3_column_type(stmt, column) == SQLITE_NULL }
    func blob(_ column: Int32) -> [UInt8] {
        let count = Int(sqlite3_column_bytes(stmt, column))
        guard count > 0, let base = sqlite3_column_blob(stmt, column) else { return [] }
        return Array(UnsafeRawBufferPointer(start: base, count: count))
    }
    func text(_ column: Int32) -> String {
        guard let c = sqlite3_column_text(stmt, column) else { return "" }
        return String(cString: c)
    }
}
