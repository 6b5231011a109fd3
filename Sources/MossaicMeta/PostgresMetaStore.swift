#if canImport(Glibc)
import Glibc
#endif
import MossaicCore
import Synchronization

// Developer notes — the PostgreSQL engine (issue 25, ARCHITECTURE.md §9), steps 1 and 2.
//
// State: every `MetaStore` requirement is implemented (fsck's checks and repairs included) and
// the whole conformance suite (Tests/MossaicMetaTests/MetaStoreConformance.swift) passes
// against a real server that the tests start themselves (MossaicTestSupport/PostgresTestServer,
// Tests/e2e/pgserver.py), beside PostgresMetaStoreTests (several hosts on one database).
// Reachable by users (step 2): `format --meta postgres://…` records the URL in the superblock
// (`Superblock.meta`, format version 3) and the filesystem's uuid in the database
// (PostgresMetaStore+Ownership); mount, fsck, gc and status open this engine
// (FilesystemLoader+Postgres); the POSIX suite and fsrand pass on it (`make test-postgres`).
// Locks across hosts (PostgresMetaStore+Locks, schema 7's `plocks` and `flocks`, keyed by
// `sessionID`): the FUSE bridge sends getlk/setlk/flock to them on a read-write mount of this
// engine only; blocking requests poll (MossaicFilesystem+Locks). Lock transactions are READ
// COMMITTED behind the inode's row lock — their comment says why REPEATABLE READ would let two
// hosts take one lock. Close-to-open across hosts: `epoch` stays 0 (a counter every commit
// bumps would be a hot row); an open compares the file's data version instead (OpenFile,
// OpenedVersions) and drops what is stale.
// Sessions (schema 8, PostgresMetaStore+Sessions): each read-write mount registers one, a
// heartbeat keeps it alive, a dead one's rows (locks, open files) are deleted by any live
// host, and a file unlinked while open on another host stays until its last close anywhere.
// Dump and load (MetadataDump, MetadataDump+Engines): either engine to JSON lines and back,
// `mossaicfs dump`/`load`; read-write mounts write backups of the metadata into the store
// (MossaicMount/MetadataBackup, `claimBackup`). A server restart or crash mid-workload costs
// retries, not data (`write`; Tests/e2e/test_postgres_restart.py); a network that stops
// answering is noticed within ~30 s (PostgresConnection.networkDefaults); bench/multihost.sh
// measures it beside JuiceFS. Three hosts' concurrent operations, with a host killed, the
// server restarted and a host cut off, are checked linearizable by
// Tests/e2e/test_linearizability_hosts.py.
// Reclaiming space beside live hosts (schema 9, PostgresMetaStore+Sweep, driven by
// MossaicMount's SharedChunkSweeper in every read-write mount, one host at a time): a
// mark-and-sweep of the chunk rows with a grace, row locks against a committing host, and
// tombstones of deleted objects that a commit inserting a row checks (`SweptCheck`); the SQLite
// engine's release bookkeeping (`releasedChunks`) answers none here. `mossaicfs gc` remains for
// objects no row ever named (a host crashed between upload and commit), with no host mounted
// (it refuses otherwise, GarbageCollector says why).
//
// Rules this engine keeps (what JuiceFS's PostgreSQL engine learned):
// - ONE retry loop (`retrying`): every mutation is one REPEATABLE READ transaction, retried
//   whole on serialization failures (40001) and deadlocks (40P01), with a random, growing
//   pause; a call whose connection the server dropped (a restart) runs again on a new one,
//   for up to `reconnectWindow`; if its COMMIT was already sent, `pg_xact_status` of its
//   transaction id (taken at BEGIN) tells whether it landed or must run again.
// - Every commit is synchronous (`write` says why: the server fails apart from the hosts).
// - ONE lock order: a transaction first locks the directories it changes, ascending by inode
//   number (`lock`), then the inodes it found in them, ascending; a directory rename then
//   share-locks the target's ancestors up to the root (`isWithin`). Every change to a
//   directory's entries also updates the directory's row (times, link count), so two writers
//   of one directory always meet on that row lock — a lost update or a stale "name is free"
//   is impossible, and a conflicting one is a retried serialization failure.
// - No hot rows: no chunk refcount column (PostgresSchema says why), no counter every
//   transaction bumps (`change_seq` is SQLite's snapshot mark; statfs's counters are one row
//   per server connection, `PostgresSchema.usage`), `sync()` writes no row.
// - Keyset pagination for big directories: `readDirectory(_:after:limit:)`.
// - Prepared statements: `PostgresConnection` prepares each statement once per connection.

/// The filesystem's metadata in PostgreSQL: the `MetaStore` engine for many hosts writing one
/// filesystem (see the notes above for its state). Reads and writes run on a bounded pool of
/// connections; each mutation is one transaction.
public final class PostgresMetaStore: MetaStore {
    let pool: PostgresConnectionPool
    public let readOnly: Bool
    /// The database never changes under this object. (Other hosts' commits do change files:
    /// an open revalidates what is cached of a file by its data version, not by this.)
    public var epoch: Int { 0 }
    /// Transactions committed without `durable` since the last durable one (synchronous
    /// already, unless the operator set `synchronous_commit = off`: `write` says why).
    private let unsynced = Atomic<Int>(0)
    public var hasUnsyncedChanges: Bool { unsynced.load(ordering: .relaxed) > 0 }
    /// This mount's identity among the hosts (a random UUID per store): the session its
    /// per-session rows (the lock tables) carry.
    public let sessionID: String
    /// This store's session (PostgresMetaStore+Sessions): registered, found lost, its last
    /// heartbeat, its expiry, and whom to tell when it is lost.
    let sessionState = Mutex(SessionState())
    let lost = Atomic<Bool>(false)

    static let maxAttempts = 40

    /// Connects to `url` (a `postgres://` URL or libpq connection string; the password comes
    /// from `PGPASSWORD`, `PGPASSFILE` or ~/.pgpass, never from the URL on a command line) and
    /// creates or checks the schema. `readOnly`: the server refuses every write of this store.
    public init(url: String, readOnly: Bool = false, connections: Int = 8) throws(MetaError) {
        self.readOnly = readOnly
        sessionID = Self.randomUUID()
        pool = PostgresConnectionPool(conninfo: url, setup: [Self.serverSideTimeouts] + (readOnly ? ["SET default_transaction_read_only = on"] : []),
                                      size: connections)
        if readOnly {
            try pool.withConnection { (c) throws(MetaError) in
                let version = try c.queryOne("SELECT value FROM settings WHERE key = 'schema_version'") { Int64($0.text(0)) ?? -1 }
                guard version == PostgresSchema.version else {
                    throw .incompatible("the database has metadata schema \(version ?? 0), not \(PostgresSchema.version)")
                }
            }
        } else {
            try pool.withConnection { (c) throws(MetaError) in try PostgresSchema.migrate(c) }
        }
    }

    /// What the server does about a host that went silent in the middle of a transaction (a cut
    /// network, a frozen or killed machine): its transaction holds the row locks it took — the
    /// directory it was changing, say — and every other host wanting them waits. The server only
    /// notices a dead client when it writes to it or its TCP keepalives (off by default: two
    /// hours) give up, so without these one cut host stalled the others for good (found by
    /// Tests/e2e/test_linearizability_hosts.py). A transaction of this engine never waits on
    /// its client between statements for more than moments, so after 15 s idle in one the server
    /// ends the session and releases its locks; the host, if alive, finds its connection lost
    /// and runs the transaction again on a new one (`write`). Keepalives and the send timeout
    /// find a dead client of an idle session within about 30 s (no effect over a Unix socket).
    static let serverSideTimeouts = """
        SET idle_in_transaction_session_timeout = '15s'; SET tcp_keepalives_idle = 10; \
        SET tcp_keepalives_interval = 5; SET tcp_keepalives_count = 4; SET tcp_user_timeout = 30000
        """

    /// A random (version 4) UUID in its usual text form.
    static func randomUUID() -> String {
        var bytes = (0..<16).map { _ in UInt8.random(in: 0...255) }
        bytes[6] = bytes[6] & 0x0f | 0x40
        bytes[8] = bytes[8] & 0x3f | 0x80
        let hex = bytes.map { byte in byte < 16 ? "0" + String(byte, radix: 16) : String(byte, radix: 16) }
        return [0..<4, 4..<6, 6..<8, 8..<10, 10..<16].map { hex[$0].joined() }.joined(separator: "-")
    }

    // MARK: Transactions

    /// How a transaction sees the others. REPEATABLE READ for every metadata change; READ
    /// COMMITTED only for a transaction whose first statement takes the row lock that
    /// serializes it with its rivals and that must then see what they committed meanwhile
    /// (the lock tables, PostgresMetaStore+Locks).
    enum Isolation: String {
        case repeatableRead = "REPEATABLE READ"
        case readCommitted = "READ COMMITTED"
    }

    /// Runs `body` as one transaction, retried whole while the server reports a serialization
    /// failure or a deadlock, or the connection was lost before COMMIT was sent (the retry
    /// loop of the whole engine, `retrying`).
    ///
    /// Durability: every COMMIT returns once the server has written its WAL record, whatever
    /// `durable` says (the server's default `synchronous_commit = on`), because the server
    /// fails apart from this host: an asynchronous commit that a server crash loses would
    /// take back a rename or a create this host already answered — while its kernel and its
    /// applications go on as if it happened (test_postgres_restart.py). An operator who
    /// accepts that for speed may set `synchronous_commit = off` for the database or role;
    /// `durable` then still flushes (`SET LOCAL synchronous_commit = on`: an fsync's commit
    /// flushes the WAL up to it, and every earlier commit with it).
    ///
    /// A lost connection after COMMIT was sent (a restart, a failover, the network) leaves the
    /// outcome unknown: the transaction's id, taken at BEGIN in the same round trip, is then
    /// looked up on a new connection (`pg_xact_status`): committed, `body`'s result stands;
    /// not committed, the transaction runs again.
    func write<T: Sendable>(durable: Bool = false, isolation: Isolation = .repeatableRead,
                            _ body: (PostgresConnection) throws(MetaError) -> T) throws(MetaError) -> T {
        try checkSession()
        let started = ContinuousClock.now
        while true {
            var xid: String?
            var computed: T?
            do throws(MetaError) {
                let result = try retrying { (c, committing) throws(MetaError) -> T in
                    xid = nil
                    computed = nil
                    xid = try c.executeReturningText(Self.begin(isolation, durable: durable))
                    let result = try body(c)
                    computed = result
                    committing = true
                    try c.execute("COMMIT")
                    return result
                }
                if durable { unsynced.store(0, ordering: .relaxed) } else { unsynced.add(1, ordering: .relaxed) }
                return result
            } catch {
                guard error.isConnectionLoss, let xid, let computed else { throw error }
                switch try outcome(ofTransaction: xid, since: started, lost: error) {
                case .committed:
                    if durable { unsynced.store(0, ordering: .relaxed) } else { unsynced.add(1, ordering: .relaxed) }
                    return computed
                case .notCommitted:
                    continue
                }
            }
        }
    }

    /// BEGIN and the transaction's id (assigned now: its COMMIT can then be looked up if the
    /// connection is lost while it is under way), in one round trip.
    static func begin(_ isolation: Isolation = .repeatableRead, durable: Bool = false) -> String {
        "BEGIN ISOLATION LEVEL \(isolation.rawValue); \(durable ? "SET LOCAL synchronous_commit = on; " : "")SELECT pg_current_xact_id()::text"
    }

    enum CommitOutcome { case committed, notCommitted }

    /// Whether transaction `xid`, whose COMMIT was sent on a connection that was then lost,
    /// committed: asked on a new connection until the server answers (for `reconnectWindow`
    /// from `started`). "in progress" — the old session is still finishing — is asked again.
    /// An id "in the future" (22023) is one a server crash forgot with everything it did.
    func outcome(ofTransaction xid: String, since started: ContinuousClock.Instant,
                         lost: MetaError) throws(MetaError) -> CommitOutcome {
        var attempts = 0
        while true {
            attempts += 1
            let status: String?
            do throws(MetaError) {
                status = try read { (c) throws(MetaError) in
                    try c.queryOne("SELECT pg_xact_status($1::text::xid8)", [.text(xid)]) { $0.isNull(0) ? nil : $0.text(0) } ?? nil
                }
            } catch {
                if case .postgres("22023", _, _) = error { return .notCommitted }
                throw error
            }
            switch status {
            case "committed": return .committed
            case "aborted": return .notCommitted
            case "in progress" where ContinuousClock.now - started < Self.reconnectWindow:
                Self.pause(attempts)
            default:
                throw lost   // unknown (the id was truncated away) or still running: say so, as before
            }
        }
    }

    /// Runs `body` for reads only, retried on a new connection if the server dropped the one it
    /// ran on. `snapshot`: its statements in one REPEATABLE READ read-only transaction, for a
    /// read of several statements that must agree with each other.
    func read<T: Sendable>(snapshot: Bool = false, _ body: (PostgresConnection) throws(MetaError) -> T) throws(MetaError) -> T {
        try retrying { (c, _) throws(MetaError) -> T in
            guard snapshot else { return try body(c) }
            try c.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            let result = try body(c)
            try c.execute("COMMIT")
            return result
        }
    }

    /// How long a lost server is waited for (a restart, a failover) before a call fails.
    static let reconnectWindow: Duration = .seconds(30)

    /// The one retry loop. Each attempt runs `attempt` on a pooled connection (a new one after
    /// the server dropped the last), rolling back whatever it left open if it throws. It is
    /// run again after a serialization failure or a deadlock (up to `maxAttempts`), and after a
    /// lost connection or a failed connect (for `reconnectWindow`) — but not once `attempt`
    /// set `committing` and the connection was lost: the COMMIT may have landed, and running
    /// the transaction again could apply it twice; the caller gets the error.
    func retrying<T>(_ attempt: (PostgresConnection, inout Bool) throws(MetaError) -> T) throws(MetaError) -> T {
        let started = ContinuousClock.now
        var attempts = 0
        while true {
            attempts += 1
            var committing = false
            do throws(MetaError) {
                return try pool.withConnection { (c) throws(MetaError) -> T in
                    do throws(MetaError) {
                        return try attempt(c, &committing)
                    } catch {
                        if c.isUsable { try? c.execute("ROLLBACK") }
                        throw error
                    }
                }
            } catch {
                let again = error.isTransientConflict ? attempts < Self.maxAttempts
                    : error.isConnectionLoss && !committing && ContinuousClock.now - started < Self.reconnectWindow
                guard again else { throw error }
                Self.pause(attempts)
            }
        }
    }

    /// Before retry `attempt`: a random pause up to 2^attempt ms, at most 100 ms, so the
    /// transactions that collided do not collide again in step.
    private static func pause(_ attempt: Int) {
        usleep(UInt32.random(in: 0...UInt32(min(1 << min(attempt, 7), 100))) * 1000)
    }

    /// Locks the rows of `inodes` for this transaction, ascending by number: the lock order.
    /// Missing inodes are skipped (the caller's reads find them missing).
    static func lock(_ c: PostgresConnection, _ inodes: [InodeNumber]) throws(MetaError) {
        let numbers = Set(inodes.map(\.rawValue)).sorted()
        guard !numbers.isEmpty else { return }
        if numbers.count == 1 {
            try c.update("SELECT 1 FROM inodes WHERE ino = $1 FOR UPDATE", [.int(Int64(numbers[0]))])
        } else {
            // ORDER BY under FOR UPDATE: the rows are locked in that order.
            try c.update("SELECT 1 FROM inodes WHERE ino = ANY($1::text::bigint[]) ORDER BY ino FOR UPDATE",
                         [.text("{" + numbers.map(String.init).joined(separator: ",") + "}")])
        }
    }

    // MARK: Durability and settings

    /// Makes every change so far durable: a synchronous commit of a transaction that has a
    /// transaction id (and so a commit record) flushes the WAL up to it, and with it every
    /// earlier asynchronous commit — without writing a row every host would contend on.
    public func sync() throws(MetaError) {
        try write(durable: true) { (c) throws(MetaError) in try c.update("SELECT pg_current_xact_id()") }
    }

    /// PostgreSQL has no journal of ours to fold: nothing to do.
    public func checkpoint() throws(MetaError) {}

    public func setting(_ key: String) throws(MetaError) -> String? {
        try read { (c) throws(MetaError) in try c.queryOne("SELECT value FROM settings WHERE key = $1", [.text(key)]) { $0.text(0) } }
    }

    public func setSetting(_ key: String, _ value: String) throws(MetaError) {
        try write { (c) throws(MetaError) in
            try c.update("INSERT INTO settings(key, value) VALUES($1, $2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                         [.text(key), .text(value)])
        }
    }

    @discardableResult
    public func createRootIfMissing(permissions: UInt32, uid: UInt32, gid: UInt32, now: Timestamp) throws(MetaError) -> Bool {
        try write { (c) throws(MetaError) in
            try c.update("""
                INSERT INTO inodes(ino, kind, mode, uid, gid, size, nlink, rdev, atime_ns, mtime_ns, ctime_ns, generation, parent)
                VALUES(1, $1, $2, $3, $4, 0, 2, 0, $5, $5, $5, 0, 1) ON CONFLICT(ino) DO NOTHING
                """, [.int(Int64(FileKind.directory.rawValue)), .int(Int64(permissions & 0o7777)), .int(Int64(uid)), .int(Int64(gid)),
                      .int(now.nanoseconds)]) == 1
        }
    }

    // MARK: Attributes

    static let attributeColumns = SQLiteMetaStore.attributeColumns
    static let attributeCount = SQLiteMetaStore.attributeCount

    static func attributes(_ c: PostgresConnection, _ ino: InodeNumber) throws(MetaError) -> FileAttributes {
        guard let attrs = try c.queryOne("SELECT \(attributeColumns) FROM inodes i WHERE i.ino = $1", [.int(Int64(ino.rawValue))],
                                         row: { SQLiteMetaStore.attributes($0) }) else { throw .notFound }
        return attrs
    }

    public func attributes(of ino: InodeNumber) throws(MetaError) -> FileAttributes {
        try read { (c) throws(MetaError) in try Self.attributes(c, ino) }
    }

    /// The directory and the entry in one query, as the SQLite engine does it (its comment
    /// says why): the directory's row LEFT JOINed to the entry.
    public func resolve(parent: InodeNumber, name: [UInt8]) throws(MetaError) -> (directory: FileAttributes, entry: FileAttributes?) {
        let found = try read { (c) throws(MetaError) in
            try c.queryOne("""
                SELECT \(SQLiteMetaStore.attributeColumns(of: "p")), \(SQLiteMetaStore.attributeColumns(of: "e"))
                FROM inodes p LEFT JOIN dentries d ON d.parent = p.ino AND d.name = $1 LEFT JOIN inodes e ON e.ino = d.ino
                WHERE p.ino = $2
                """, [.blob(name), .int(Int64(parent.rawValue))]) { s in
                (SQLiteMetaStore.attributes(s), s.isNull(Self.attributeCount) ? nil : SQLiteMetaStore.attributes(s, from: Self.attributeCount))
            }
        }
        guard let (directory, entry) = found else { throw .notFound }
        guard directory.kind == .directory else { throw .notDirectory }
        return (directory, entry)
    }

    public func parentDirectory(of ino: InodeNumber) throws(MetaError) -> FileAttributes {
        try read(snapshot: true) { (c) throws(MetaError) in
            _ = try Self.directory(c, ino)
            guard let parent = try c.queryOne("SELECT parent FROM inodes WHERE ino = $1", [.int(Int64(ino.rawValue))], row: { $0.int(0) })
            else { throw .notFound }
            return try Self.attributes(c, InodeNumber(UInt64(parent)))
        }
    }

    /// setattr, as the SQLite engine does it (`SQLiteMetaStore.setAttributes` documents the rules).
    public func setAttributes(of ino: InodeNumber, _ changes: AttributeChanges, now: Timestamp,
                              xattrs: [[UInt8]: [UInt8]?]) throws(MetaError) -> FileAttributes {
        try write { (c) throws(MetaError) in
            try Self.lock(c, [ino])
            let old = try Self.attributes(c, ino)
            for (name, value) in xattrs { try Self.storeXattr(c, ino, name: name, value: value) }
            let attrs = try old.applying(changes, now: now)
            if let cut = old.truncation(by: changes) { try Self.cutChunks(c, ino, to: cut) }
            try c.update("""
                UPDATE inodes SET mode = $1, uid = $2, gid = $3, size = $4, atime_ns = $5, mtime_ns = $6, ctime_ns = $7 WHERE ino = $8
                """, [.int(Int64(attrs.permissions)), .int(Int64(attrs.uid)), .int(Int64(attrs.gid)), .int(Int64(attrs.size)),
                      .int(attrs.atime.nanoseconds), .int(attrs.mtime.nanoseconds), .int(attrs.ctime.nanoseconds),
                      .int(Int64(ino.rawValue))])
            return try Self.attributes(c, ino)
        }
    }

    public func touchAccessTimes(_ times: [(InodeNumber, Timestamp)]) throws(MetaError) {
        guard !times.isEmpty else { return }
        try write { (c) throws(MetaError) in
            try Self.lock(c, times.map(\.0))
            for (ino, atime) in times {
                try c.update("UPDATE inodes SET atime_ns = $1 WHERE ino = $2", [.int(atime.nanoseconds), .int(Int64(ino.rawValue))])
            }
        }
    }

    // MARK: Directories

    public func readDirectory(_ ino: InodeNumber) throws(MetaError) -> (parent: InodeNumber, entries: [DirectoryEntry]) {
        try read(snapshot: true) { (c) throws(MetaError) in
            _ = try Self.directory(c, ino)
            let parent = try c.queryOne("SELECT parent FROM inodes WHERE ino = $1", [.int(Int64(ino.rawValue))]) { $0.int(0) } ?? 1
            let entries = try c.query("""
                SELECT d.name, \(Self.attributeColumns) FROM dentries d JOIN inodes i ON i.ino = d.ino WHERE d.parent = $1 ORDER BY d.name
                """, [.int(Int64(ino.rawValue))]) { s in DirectoryEntry(name: s.blob(0), attributes: SQLiteMetaStore.attributes(s, from: 1)) }
            return (InodeNumber(UInt64(parent)), entries)
        }
    }

    /// Keyset pagination (the protocol's comment): one range of the (parent, name) primary
    /// key per page, however deep into a big directory the page starts (no OFFSET).
    public func readDirectory(_ ino: InodeNumber, after name: [UInt8]?, limit: Int) throws(MetaError) -> [DirectoryEntry] {
        try read { (c) throws(MetaError) in
            _ = try Self.directory(c, ino)
            return try c.query("""
                SELECT d.name, \(Self.attributeColumns) FROM dentries d JOIN inodes i ON i.ino = d.ino
                WHERE d.parent = $1 AND d.name > $2 ORDER BY d.name LIMIT $3
                """, [.int(Int64(ino.rawValue)), .blob(name ?? []), .int(Int64(max(0, limit)))]) { s in
                DirectoryEntry(name: s.blob(0), attributes: SQLiteMetaStore.attributes(s, from: 1))
            }
        }
    }

    public func readSymlink(_ ino: InodeNumber) throws(MetaError) -> [UInt8] {
        try read { (c) throws(MetaError) in
            guard let target = try c.queryOne("SELECT target FROM symlinks WHERE ino = $1", [.int(Int64(ino.rawValue))], row: { $0.blob(0) })
            else { throw .invalidArgument }
            return target
        }
    }
}

extension MetaError {
    /// A conflict with a concurrent transaction that running the transaction again resolves:
    /// serialization_failure, deadlock_detected, and foreign_key_violation — which here only a
    /// race raises (a commit checks its chunks exist before referencing them): an inline chunk
    /// deleted as unreferenced by this transaction's snapshot while another host committed a
    /// reference to it. Run again, the transaction sees that reference and keeps the chunk.
    var isTransientConflict: Bool {
        if case .postgres(let state, _, _) = self { return ["40001", "40P01", "23503"].contains(state) }
        return false
    }

    /// The connection is gone or could not be made (class 08), or the server is shutting
    /// down or restarting (57P01-57P03): a new connection may succeed.
    var isConnectionLoss: Bool {
        // 25P03/57P05: the server ended a session left idle too long (`serverSideTimeouts`).
        if case .postgres(let state, _, _) = self { return state.hasPrefix("08") || ["57P01", "57P02", "57P03", "25P03", "57P05"].contains(state) }
        return false
    }
}
