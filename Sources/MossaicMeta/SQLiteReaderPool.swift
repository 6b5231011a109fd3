import Synchronization

/// A few read-only connections to the database beside its one writer, so that reads (lookup,
/// getattr, readdir, chunk maps) never wait behind a write transaction — above all a durable
/// commit's fsync, which takes milliseconds on a disk where a lookup takes microseconds.
///
/// WAL mode is what makes this safe: a read sees the database as of its first statement, every
/// transaction committed before that included, and neither blocks the writer nor is blocked by
/// it. A read that runs several statements and needs them to agree asks for a snapshot (one
/// read transaction around them).
///
/// Why a fixed handful and not one per FUSE thread: each connection keeps its own page cache
/// and prepared statements, and on the machines this runs on reads are CPU-bound well before
/// four run at once.
final class SQLiteReaderPool: Sendable {
    /// One connection in a `Mutex`: a connection is used by one thread at a time.
    private final class Slot: Sendable {
        let connection: Mutex<SQLiteConnection>
        init(_ connection: SQLiteConnection) { self.connection = Mutex(connection) }
    }

    static let defaultSize = 4

    private let slots: [Slot]
    /// Where the next read starts looking for a free connection, so readers spread out.
    private let next = Atomic<Int>(0)

    /// Opens `size` connections to the database at `path`, which must exist with its schema in
    /// place. They are opened read-write (a read-only open of a WAL database needs its -shm file
    /// to exist already) and made `query_only`, so none of them can ever change a row.
    init(path: String, readOnly: Bool, size: Int = SQLiteReaderPool.defaultSize) throws(MetaError) {
        var slots: [Slot] = []
        for _ in 0..<max(1, size) {
            let c = try SQLiteConnection(path: path, readOnly: readOnly)
            try c.execute("PRAGMA query_only = ON")
            slots.append(Slot(c))
        }
        self.slots = slots
    }

    /// Runs `body` on a free connection, or waits for one if all are busy. `snapshot`: in one
    /// read transaction, so that its statements see the same committed state.
    func read<T: Sendable>(snapshot: Bool, _ body: (SQLiteConnection) throws(MetaError) -> T) throws(MetaError) -> T {
        let start = next.add(1, ordering: .relaxed).oldValue
        for offset in 0..<slots.count {
            let slot = slots[(start &+ offset) % slots.count]
            if let result = try slot.connection.withLockIfAvailable({ (c) throws(MetaError) -> T in try Self.run(c, snapshot, body) }) {
                return result
            }
        }
        return try slots[start % slots.count].connection.withLock { (c) throws(MetaError) -> T in try Self.run(c, snapshot, body) }
    }

    /// One read on `c`: in a read transaction if `snapshot`, and with no statement left active.
    static func run<T>(_ c: SQLiteConnection, _ snapshot: Bool, _ body: (SQLiteConnection) throws(MetaError) -> T) throws(MetaError) -> T {
        if snapshot { try c.execute("BEGIN") }
        defer {
            // A statement left mid-result would keep its read transaction open and pin this
            // connection to an old state of the database: every read ends with none active.
            c.resetActiveStatements()
            if snapshot { try? c.execute("COMMIT") }
        }
        return try body(c)
    }
}
