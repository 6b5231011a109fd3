internal import CLibPQ
import Glibc

/// One libpq connection to PostgreSQL and its prepared statements.
///
/// Used by one thread at a time: `PostgresConnectionPool` hands it out to one transaction and
/// takes it back after. `@unchecked Sendable` only because it wraps a C handle the pool confines.
///
/// Parameters and results travel in binary form: integers as 8-byte big-endian `bigint`
/// (every integer column is `bigint`, and aggregates are cast to it), names and data as raw
/// `bytea`, so no value is ever escaped or parsed as text.
final class PostgresConnection: @unchecked Sendable {
    private let conn: OpaquePointer
    /// Statement names by SQL text and parameter types: each statement is parsed and planned
    /// once per connection (PQprepare), then only executed.
    private var statements: [String: String] = [:]

    /// Connects with a libpq connection string or `postgres://` URL. A password is never part
    /// of it: libpq reads it from `PGPASSWORD`, `PGPASSFILE` or ~/.pgpass itself.
    init(conninfo: String) throws(MetaError) {
        // The defaults first, the URL (expanded from `dbname`) after: libpq keeps the last value
        // of a keyword, so whatever the URL sets wins.
        let settings = Self.networkDefaults + [("dbname", conninfo)]
        let keywords = settings.map { strdup($0.0) }
        let values = settings.map { strdup($0.1) }
        defer { (keywords + values).forEach { free($0) } }
        let connection = (keywords + [nil]).withUnsafeBufferPointer { k in
            (values + [nil]).withUnsafeBufferPointer { v in
                k.withMemoryRebound(to: UnsafePointer<CChar>?.self) { k in
                    v.withMemoryRebound(to: UnsafePointer<CChar>?.self) { v in PQconnectdbParams(k.baseAddress, v.baseAddress, 1) }
                }
            }
        }
        guard let conn = connection else { throw .postgres(state: "", message: "out of memory", context: "connect") }
        guard PQstatus(conn) == CONNECTION_OK else {
            let message = Self.trimmed(PQerrorMessage(conn))
            PQfinish(conn)
            throw .postgres(state: "08001", message: message, context: "connect")
        }
        // NOTICEs (an IF NOT EXISTS that found the table) are not errors: not printed.
        PQsetNoticeProcessor(conn, { _, _ in }, nil)
        self.conn = conn
    }

    deinit { PQfinish(conn) }

    /// How long a host waits for a server it cannot reach, unless the URL (or `PGCONNECT_TIMEOUT`)
    /// says otherwise. libpq's own defaults wait forever: a connect with no timeout, and a query
    /// sent into a network that silently stopped answering (a cut cable, a firewall dropping
    /// packets, a failed-over address) waits the kernel's TCP retransmission time, some 15
    /// minutes, with the file operation — and the process that made it — hanging all along.
    /// With these a dead path is noticed within about 30 seconds: the connection is then lost,
    /// and the engine's one retry loop reconnects or reports the failure (EIO). An idle
    /// connection is probed after 10 s without traffic, so a pooled connection that died in
    /// silence is found before a transaction is sent on it.
    static var networkDefaults: [(String, String)] {
        var defaults = [("keepalives", "1"), ("keepalives_idle", "10"), ("keepalives_interval", "5"),
                        ("keepalives_count", "4"), ("tcp_user_timeout", "30000")]
        if getenv("PGCONNECT_TIMEOUT") == nil { defaults.append(("connect_timeout", "10")) }
        return defaults
    }

    /// False once the server or the network dropped the connection: the pool then opens a new one.
    var isUsable: Bool { PQstatus(conn) == CONNECTION_OK }

    /// Runs SQL without parameters or results (transaction control, schema).
    func execute(_ sql: String) throws(MetaError) {
        let result = PQexec(conn, sql)
        defer { PQclear(result) }
        try check(result, sql)
    }

    /// Runs SQL of one or more statements without parameters (the simple query protocol: one
    /// round trip for all of them) and returns the first column of the last statement's first
    /// row, as text; nil if it returned no row or NULL.
    func executeReturningText(_ sql: String) throws(MetaError) -> String? {
        let result = PQexec(conn, sql)
        defer { PQclear(result) }
        try check(result, sql)
        guard PQntuples(result) > 0, PQgetisnull(result, 0, 0) == 0 else { return nil }
        return String(cString: PQgetvalue(result, 0, 0))
    }

    /// Every row of `sql` with `parameters`, each read by `row`.
    func query<T>(_ sql: String, _ parameters: [SQLValue] = [], row: (PostgresRow) -> T) throws(MetaError) -> [T] {
        let result = try run(sql, parameters)
        defer { PQclear(result) }
        return (0..<PQntuples(result)).map { row(PostgresRow(result: result, row: $0)) }
    }

    /// The first row of `sql`, if any.
    func queryOne<T>(_ sql: String, _ parameters: [SQLValue] = [], row: (PostgresRow) -> T) throws(MetaError) -> T? {
        let result = try run(sql, parameters)
        defer { PQclear(result) }
        return PQntuples(result) > 0 ? row(PostgresRow(result: result, row: 0)) : nil
    }

    /// Runs a statement that returns no rows; returns how many rows it changed.
    @discardableResult
    func update(_ sql: String, _ parameters: [SQLValue] = []) throws(MetaError) -> Int {
        let result = try run(sql, parameters)
        defer { PQclear(result) }
        return Int(String(cString: PQcmdTuples(result))) ?? 0
    }

    /// Executes the prepared form of `sql` (preparing it first on this connection if needed).
    private func run(_ sql: String, _ parameters: [SQLValue]) throws(MetaError) -> OpaquePointer? {
        let types = parameters.map(\.postgresType)
        let key = types.map(String.init).joined(separator: ",") + ";" + sql
        let name: String
        if let known = statements[key] {
            name = known
        } else {
            name = "s\(statements.count)"
            let prepared = PQprepare(conn, name, sql, Int32(types.count), types)
            defer { PQclear(prepared) }
            try check(prepared, sql)
            statements[key] = name
        }
        // One buffer holds every value; a NULL is a nil pointer, an empty value a pointer to
        // the buffer's spare last byte (libpq reads a nil pointer as NULL even for length 0).
        var buffer: [UInt8] = []
        var spans: [(offset: Int, count: Int)?] = []
        for p in parameters {
            guard let bytes = p.postgresBinary else { spans.append(nil); continue }
            spans.append((buffer.count, bytes.count))
            buffer += bytes
        }
        buffer.append(0)
        let lengths = spans.map { Int32($0?.count ?? 0) }
        let formats = [Int32](repeating: 1, count: parameters.count)
        let result = buffer.withUnsafeBufferPointer { raw in
            raw.baseAddress!.withMemoryRebound(to: CChar.self, capacity: raw.count) { base in
                let values: [UnsafePointer<CChar>?] = spans.map { span in span.map { base + $0.offset } }
                return PQexecPrepared(conn, name, Int32(parameters.count), values, lengths, formats, 1)
            }
        }
        do {
            try check(result, sql)
        } catch {
            PQclear(result)
            throw error
        }
        return result
    }

    /// Throws the server's error (its SQLSTATE, for the retry loop) if `result` is not a success.
    private func check(_ result: OpaquePointer?, _ sql: String) throws(MetaError) {
        let status = PQresultStatus(result)
        guard status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK else { return }
        let state = result.flatMap { PQresultErrorField($0, Int32(UInt8(ascii: "C"))) }.map { String(cString: $0) }
        // No SQLSTATE: the connection itself failed (server gone); 08006 is libpq's own code for it.
        throw .postgres(state: state ?? "08006", message: Self.trimmed(PQerrorMessage(conn)), context: sql)
    }

    private static func trimmed(_ message: UnsafePointer<CChar>?) -> String {
        message.map { String(cString: $0) }.map { String($0.reversed().drop(while: \.isNewline).reversed()) } ?? ""
    }
}

/// One row of a binary-format result, valid while its connection's call is running.
struct PostgresRow: ResultRow {
    let result: OpaquePointer?
    let row: Int32

    func isNull(_ column: Int32) -> Bool { PQgetisnull(result, row, column) != 0 }

    /// A `bigint` (or `integer`, `smallint`) column; NULL reads as 0.
    func int(_ column: Int32) -> Int64 {
        let bytes = raw(column)
        precondition(bytes.count <= 8 && bytes.count != 1, "column \(column) is not an integer (cast it to bigint in the SQL)")
        let unsigned = bytes.reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        let shift = UInt64(64 - 8 * bytes.count)
        return bytes.isEmpty ? 0 : Int64(bitPattern: unsigned << shift) >> shift
    }

    func blob(_ column: Int32) -> [UInt8] { Array(raw(column)) }
    func text(_ column: Int32) -> String { String(decoding: raw(column), as: UTF8.self) }

    private func raw(_ column: Int32) -> UnsafeRawBufferPointer {
        let count = Int(PQgetlength(result, row, column))
        guard count > 0, let base = PQgetvalue(result, row, column) else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        return UnsafeRawBufferPointer(start: base, count: count)
    }
}

extension SQLValue {
    /// The parameter's type (OID): bigint, bytea, text; 0 lets the server infer a NULL's.
    var postgresType: UInt32 {
        switch self {
        case .int: 20
        case .blob: 17
        case .text: 25
        case .null: 0
        }
    }

    /// The value in PostgreSQL's binary format; nil for NULL.
    var postgresBinary: [UInt8]? {
        switch self {
        case .int(let v): withUnsafeBytes(of: v.bigEndian) { Array($0) }
        case .blob(let bytes): bytes
        case .text(let s): Array(s.utf8)
        case .null: nil
        }
    }
}
