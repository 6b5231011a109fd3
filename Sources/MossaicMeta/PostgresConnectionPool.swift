import Dispatch
import Synchronization

/// The connections of one `PostgresMetaStore`: up to `size` at once, each used by one
/// transaction (or one read) at a time, opened when first needed and kept while usable.
///
/// Why a bounded pool and not one connection per thread: every connection is a server process
/// (a few MiB and a slot of `max_connections`) on a server many hosts share; the FUSE threads
/// of one daemon wait for a free one instead.
final class PostgresConnectionPool: Sendable {
    let conninfo: String
    /// Statements run once on each new connection (session settings).
    private let setup: [String]
    private let idle = Mutex<[PostgresConnection]>([])
    /// Counts connections in use against `size`.
    private let slots: DispatchSemaphore

    init(conninfo: String, setup: [String], size: Int) {
        self.conninfo = conninfo
        self.setup = setup
        slots = DispatchSemaphore(value: max(1, size))
    }

    /// Runs `body` on a connection of its own. A connection the server dropped is not reused.
    func withConnection<T>(_ body: (PostgresConnection) throws(MetaError) -> T) throws(MetaError) -> T {
        slots.wait()
        defer { slots.signal() }
        let connection = try takeConnection()
        defer { if connection.isUsable { idle.withLock { $0.append(connection) } } }
        return try body(connection)
    }

    /// `withConnection` for a body with untyped errors (a dump, whose sink may fail).
    func withAnyConnection<T>(_ body: (PostgresConnection) throws -> T) throws -> T {
        slots.wait()
        defer { slots.signal() }
        let connection = try takeConnection()
        defer { if connection.isUsable { idle.withLock { $0.append(connection) } } }
        return try body(connection)
    }

    /// An idle connection, or a new one set up; the caller holds a slot.
    private func takeConnection() throws(MetaError) -> PostgresConnection {
        if let reused = idle.withLock({ $0.popLast() }) { return reused }
        let connection = try PostgresConnection(conninfo: conninfo)
        for sql in setup { try connection.execute(sql) }
        return connection
    }
}
