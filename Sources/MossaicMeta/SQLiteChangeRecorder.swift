internal import CSQLite

/// Every row change made through one connection since it was started, as SQLite's session
/// extension records them (https://sqlite.org/sessionintro.html): the heart of incremental
/// metadata snapshots. What ships is a patchset (a changeset without old values): per table
/// and primary key, the row's final values (an insert), its key alone (a removal), or the
/// new values of the columns an update changed — a row changed a thousand times between two
/// snapshots is in it once, and removing a row costs its key, not its bytes (a changeset's
/// old values made `rm -rf` of 20,000 small files ship their 80 MiB again). The old values
/// would only let a restore detect a chain applied to the wrong base; pieces are checked
/// against their names and the base is the chain's own, so nothing is lost by leaving them. So a snapshot ships what
/// changed, not the database pages those rows happen to share with others (a chunk row keyed by
/// a random hash touches a random page; every page-based scheme re-ships those pages).
///
/// Tables without a primary key are not recorded; of ours that is only `sqlite_sequence`
/// (AUTOINCREMENT's counter), which the snapshot carries separately.
///
/// `@unchecked Sendable`: it wraps a C handle tied to the writer connection, used only under
/// that connection's lock (it lives in the `SQLiteConnection`).
final class SQLiteChangeRecorder: @unchecked Sendable {
    private let session: OpaquePointer

    /// Starts recording on `connection` (every table of `main`, present and future).
    init(on connection: SQLiteConnection) throws(MetaError) {
        var session: OpaquePointer?
        var rc = sqlite3session_create(connection.handle, "main", &session)
        guard rc == SQLITE_OK, let session else {
            throw .sqlite(code: rc, message: "cannot start a session", context: "change recording on \(connection.path)")
        }
        rc = sqlite3session_attach(session, nil)
        guard rc == SQLITE_OK else {
            sqlite3session_delete(session)
            throw .sqlite(code: rc, message: "cannot attach the session's tables", context: "change recording on \(connection.path)")
        }
        self.session = session
    }

    deinit { sqlite3session_delete(session) }

    /// Bytes the recording holds in memory (old values of changed rows).
    var memoryUsed: Int64 { Int64(sqlite3session_memory_used(session)) }

    /// The changes recorded so far, as a patchset. Call between transactions.
    func patchset() throws(MetaError) -> [UInt8] {
        var size: Int32 = 0
        var bytes: UnsafeMutableRawPointer?
        let rc = sqlite3session_patchset(session, &size, &bytes)
        defer { sqlite3_free(bytes) }
        guard rc == SQLITE_OK else { throw .sqlite(code: rc, message: "cannot build the changeset", context: "change recording") }
        guard let bytes, size > 0 else { return [] }
        return Array(UnsafeRawBufferPointer(start: bytes, count: Int(size)))
    }

    /// One patchset (or changeset) with the effect of `first` then `second` (a row inserted
    /// by one and updated by the other is one insert).
    static func combine(_ first: [UInt8], _ second: [UInt8]) throws(MetaError) -> [UInt8] {
        if first.isEmpty { return second }
        if second.isEmpty { return first }
        var group: OpaquePointer?
        var rc = sqlite3changegroup_new(&group)
        guard rc == SQLITE_OK, let group else { throw .sqlite(code: rc, message: "out of memory", context: "combining changesets") }
        defer { sqlite3changegroup_delete(group) }
        for part in [first, second] {
            rc = part.withUnsafeBytes { sqlite3changegroup_add(group, Int32($0.count), UnsafeMutableRawPointer(mutating: $0.baseAddress)) }
            guard rc == SQLITE_OK else { throw .sqlite(code: rc, message: "invalid changeset", context: "combining changesets") }
        }
        var size: Int32 = 0
        var bytes: UnsafeMutableRawPointer?
        rc = sqlite3changegroup_output(group, &size, &bytes)
        defer { sqlite3_free(bytes) }
        guard rc == SQLITE_OK else { throw .sqlite(code: rc, message: "cannot combine changesets", context: "combining changesets") }
        guard let bytes, size > 0 else { return [] }
        return Array(UnsafeRawBufferPointer(start: bytes, count: Int(size)))
    }

    /// Applies `changeset` to the database of `connection` (inside the caller's transaction).
    ///
    /// The target is the database of the snapshot the changeset was recorded from, so a
    /// conflict means the chain is broken — except in `settings`, where the snapshot's own
    /// bookkeeping rows (which snapshot this is, whether one is pending) legitimately differ
    /// from what the live database had: there the changeset's values win, and a row it
    /// updates or deletes that the copy lacks is skipped. Anywhere else a conflict aborts and
    /// the restore fails (`.incompatible`) rather than produce a database that is not the
    /// filesystem's.
    static func apply(_ changeset: [UInt8], to connection: SQLiteConnection) throws(MetaError) {
        let rc = changeset.withUnsafeBytes { raw in
            sqlite3changeset_apply(connection.handle, Int32(raw.count), UnsafeMutableRawPointer(mutating: raw.baseAddress), nil, { _, conflict, iterator in
                var table: UnsafePointer<CChar>?
                var columns: Int32 = 0, operation: Int32 = 0, indirect: Int32 = 0
                sqlite3changeset_op(iterator, &table, &columns, &operation, &indirect)
                let inSettings = table.map { String(cString: $0) == "settings" } ?? false
                guard inSettings else { return SQLITE_CHANGESET_ABORT }
                switch conflict {
                case SQLITE_CHANGESET_DATA, SQLITE_CHANGESET_CONFLICT: return SQLITE_CHANGESET_REPLACE
                case SQLITE_CHANGESET_NOTFOUND: return SQLITE_CHANGESET_OMIT
                default: return SQLITE_CHANGESET_ABORT
                }
            }, nil)
        }
        guard rc == SQLITE_OK else {
            throw .incompatible("\(connection.path): a metadata snapshot's changes do not apply to its base (SQLite error \(rc)); the snapshot is damaged")
        }
    }
}
