import MossaicCore
import Synchronization

/// Sessions (schema 8): one row per read-write mount in `sessions`, its heartbeat refreshed
/// every `session_heartbeat` by the mount; the files each mount has open in `open_files`.
///
/// - Alive or dead is judged by the database server's clock alone (`now()` against the row's
///   `heartbeat` and its own `expiry_ms`), never by a host's: hosts' clocks may disagree.
/// - A dead session is cleaned up by whichever live host gets there first (each heartbeat,
///   mount start, `fsck --repair`, `gc`): its rows leave every per-session table
///   (`perSessionTables`, in one transaction), then inodes unlinked while it had them open
///   and that nobody else has open are reclaimed. Rows of a session with no `sessions` row
///   (deleted while it was still writing) are dead too.
/// - A session that finds its own row gone (another host took it for dead: a network cut, a
///   suspended machine) is lost: its locks and opens are no longer recorded, so every write
///   of this store fails with `sessionLost` from then on, and `onLost` is told once. A store
///   that has not heard its heartbeat answered for half its expiry (a suspended process
///   resumes; the heartbeat thread has not run yet) checks its row before its next write.
extension PostgresMetaStore: SessionTable {
    struct SessionState {
        var registered = false
        var expiry: Duration = .seconds(300)
        var lastBeat: ContinuousClock.Instant = .now
        var onLost: (@Sendable (String) -> Void)?
    }

    /// Every table whose rows belong to a session (a column `session`): what a dead session
    /// leaves behind, and what a clean unmount deletes. A new per-session table goes here.
    static let perSessionTables = ["plocks", "flocks", "open_files"]

    public var sessionLost: Bool { lost.load(ordering: .relaxed) }

    private var registered: Bool { sessionState.withLock { $0.registered } }

    public func registerSession(host: String, pid: Int64, version: String, expiry: Double,
                                onLost: @escaping @Sendable (String) -> Void) throws(MetaError) {
        guard !readOnly else { return }
        let expiryMs = Int64(max(expiry, 0.001) * 1000)
        try autocommit { (c) throws(MetaError) in
            try c.update("""
                INSERT INTO sessions(id, host, pid, version, expiry_ms) VALUES($1, $2, $3, $4, $5)
                ON CONFLICT(id) DO UPDATE SET heartbeat = now()
                """, [.text(sessionID), .text(host), .int(pid), .text(version), .int(expiryMs)])
        }
        sessionState.withLock {
            $0.registered = true
            $0.expiry = .milliseconds(expiryMs)
            $0.lastBeat = .now
            $0.onLost = onLost
        }
        _ = try cleanDeadSessions()
    }

    public func heartbeat() throws(MetaError) -> SessionCleanup {
        guard registered else { return SessionCleanup() }
        if sessionLost { throw .sessionLost }
        try beat()
        return try cleanDeadSessions()
    }

    /// Refreshes this session's heartbeat: one autocommit UPDATE. No row: lost.
    private func beat() throws(MetaError) {
        let started = ContinuousClock.now
        let updated = try autocommit { (c) throws(MetaError) in
            try c.update("UPDATE sessions SET heartbeat = now() WHERE id = $1", [.text(sessionID)])
        }
        guard updated == 1 else {
            markLost("its row in the sessions table was deleted by another host, which took it for dead")
            throw .sessionLost
        }
        sessionState.withLock { $0.lastBeat = started }
    }

    /// Before a write: refused once lost; verified first if the heartbeat has not been
    /// answered for half the expiry (others may have deleted the session meanwhile).
    func checkSession() throws(MetaError) {
        if lost.load(ordering: .relaxed) { throw .sessionLost }
        let stale = sessionState.withLock { s in s.registered && ContinuousClock.now - s.lastBeat > s.expiry / 2 }
        if stale { try beat() }
    }

    private func markLost(_ why: String) {
        guard !lost.exchange(true, ordering: .relaxed) else { return }
        let tell = sessionState.withLock { $0.onLost }
        tell?("session \(sessionID): \(why)")
    }

    /// The sessions that are dead now: expired by their own expiry, or rows of per-session
    /// tables whose session has no row at all. Never this store's own.
    private static let deadSessions = """
        SELECT id FROM sessions WHERE heartbeat < now() - expiry_ms * interval '1 millisecond'
        \(perSessionTables.map { "UNION SELECT session FROM \($0)" }.joined(separator: "\n"))
        EXCEPT SELECT id FROM sessions WHERE heartbeat >= now() - expiry_ms * interval '1 millisecond'
        """

    public func cleanDeadSessions() throws(MetaError) -> SessionCleanup {
        guard !readOnly else { return SessionCleanup() }
        var cleanup = SessionCleanup()
        // Read first: a heartbeat that finds nobody dead costs no transaction.
        let suspects = try read { (c) throws(MetaError) in try c.query(Self.deadSessions) { $0.text(0) } }.filter { $0 != sessionID }
        if !suspects.isEmpty {
            cleanup.sessions = try write { (c) throws(MetaError) -> Int in
                // Again in the transaction: a session whose heartbeat came meanwhile is spared
                // (and a heartbeat racing this delete is a serialization failure, retried).
                let dead = try c.query(Self.deadSessions) { $0.text(0) }.filter { $0 != sessionID }
                guard !dead.isEmpty else { return 0 }
                let ids = SQLValue.text("{" + dead.map { "\"\($0)\"" }.joined(separator: ",") + "}")
                for table in Self.perSessionTables {
                    try c.update("DELETE FROM \(table) WHERE session = ANY($1::text::text[])", [ids])
                }
                try c.update("DELETE FROM sessions WHERE id = ANY($1::text::text[])", [ids])
                return dead.count
            }
        }
        cleanup.reclaimed = try reclaimOrphans()
        return cleanup
    }

    /// Purges every orphan nobody has open (`orphans()`); returns how many went.
    private func reclaimOrphans() throws(MetaError) -> Int {
        var reclaimed = 0
        for ino in try orphans() {
            if try purgeOrphanIfUnopened(ino) { reclaimed += 1 }
        }
        return reclaimed
    }

    public func endSession() throws(MetaError) -> SessionCleanup {
        guard registered else { return SessionCleanup() }
        try write { (c) throws(MetaError) in
            for table in Self.perSessionTables {
                try c.update("DELETE FROM \(table) WHERE session = $1", [.text(sessionID)])
            }
            try c.update("DELETE FROM sessions WHERE id = $1", [.text(sessionID)])
        }
        sessionState.withLock { $0.registered = false }
        return SessionCleanup(sessions: 1, reclaimed: try reclaimOrphans())
    }

    public func sessions() throws(MetaError) -> [SessionRecord] {
        try read { (c) throws(MetaError) in
            try c.query("""
                SELECT s.id, s.host, s.pid, s.version,
                       (extract(epoch FROM now() - s.mounted_at) * 1000)::bigint,
                       (extract(epoch FROM now() - s.heartbeat) * 1000)::bigint, s.expiry_ms,
                       (SELECT count(*) FROM open_files f WHERE f.session = s.id)::bigint
                FROM sessions s ORDER BY s.mounted_at, s.id
                """) { r in
                SessionRecord(id: r.text(0), host: r.text(1), pid: r.int(2), version: r.text(3),
                              mountedSecondsAgo: Double(r.int(4)) / 1000, heartbeatAgeSeconds: Double(r.int(5)) / 1000,
                              expirySeconds: Double(r.int(6)) / 1000, openFiles: Int(r.int(7)))
            }
        }
    }

    // MARK: Open files

    /// Records that this mount has `ino` open: one autocommit statement, one round trip (see
    /// `PostgresSchema.sessions` for why a row per session and inode). Nothing without a
    /// session (a read-only mount, fsck): such a store holds no file open for others to see.
    /// An inode already reclaimed is `notFound` (the open fails, as NFS's would with ESTALE).
    public func opened(_ ino: InodeNumber, token: UInt64) throws(MetaError) {
        guard !readOnly, registered else { return }
        // A lost session records nothing (writes were refused before this open got here;
        // a read goes on, unprotected, as on a read-only mount).
        do { try checkSession() } catch .sessionLost { return }
        let recorded: Int
        do {
            recorded = try autocommit { (c) throws(MetaError) in
                try c.update("""
                    INSERT INTO open_files(session, ino, token) SELECT $1, $2, $3 WHERE EXISTS (SELECT 1 FROM inodes WHERE ino = $2)
                    ON CONFLICT(session, ino) DO UPDATE SET token = excluded.token
                    """, [.text(sessionID), .int(Int64(ino.rawValue)), .int(Int64(bitPattern: token))])
            }
        } catch .postgres("23503", _, _) {
            // The inode was there for EXISTS but a reclaim deleting it committed before the
            // row's foreign key could lock it: reclaimed all the same.
            throw .notFound
        }
        if recorded == 0 { throw .notFound }
    }

    /// Deletes this mount's row for `ino` if it is still the opening `token` (a new opening
    /// may have replaced it meanwhile): one autocommit statement, which also says whether the
    /// file still has a name. Without one, the inode is reclaimed unless another host has it
    /// open — the last close anywhere reclaims it.
    public func closed(_ ino: InodeNumber, token: UInt64) throws(MetaError) {
        guard !readOnly, registered else { return }
        let nlink = try autocommit { (c) throws(MetaError) in
            try c.queryOne("""
                DELETE FROM open_files WHERE session = $1 AND ino = $2 AND token = $3
                RETURNING (SELECT nlink FROM inodes WHERE ino = $2)
                """, [.text(sessionID), .int(Int64(ino.rawValue)), .int(Int64(bitPattern: token))]) { $0.isNull(0) ? nil : $0.int(0) } ?? nil
        }
        if nlink == 0 { _ = try purgeOrphanIfUnopened(ino) }
    }

    /// One statement outside a transaction (it commits by itself), run again on a new
    /// connection if the server dropped this one: only for statements that may run twice.
    func autocommit<T>(_ body: (PostgresConnection) throws(MetaError) -> T) throws(MetaError) -> T {
        try retrying { (c, _) throws(MetaError) -> T in try body(c) }
    }
}
