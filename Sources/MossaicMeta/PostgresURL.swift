internal import CLibPQ

/// Where a PostgreSQL filesystem's metadata lives: a `postgres://[user@]host[:port]/db[?params]`
/// URL as `format --meta` takes it and the superblock keeps it, checked by libpq's own parser
/// (`PQconninfoParse`), so what is accepted here is exactly what `PostgresConnection` connects to.
///
/// Never a password: a URL is on a command line (`ps` shows it to every user) and in the
/// superblock (every reader of the store sees it). libpq finds the password itself, in
/// `PGPASSWORD`, the file `PGPASSFILE` names, the URL's `passfile=` parameter or ~/.pgpass; and
/// fills what the URL leaves out (host, port, user) from `PGHOST`, `PGPORT`, `PGUSER` and the
/// other `PG*` variables. The database must be named: a filesystem must not follow `PGDATABASE`
/// to another one.
public struct PostgresURL: Sendable, Equatable, CustomStringConvertible {
    public let string: String
    /// The database the URL names.
    public let database: String

    public var description: String { string }

    /// Why a URL is refused, in one line.
    public struct Invalid: Error, Equatable, Sendable, CustomStringConvertible {
        public let description: String
    }

    public init(parsing string: String) throws(Invalid) {
        guard string.hasPrefix("postgres://") || string.hasPrefix("postgresql://") else {
            throw Invalid(description: "'\(string)' is not a postgres:// URL (postgres://[user@]host[:port]/database[?parameters])")
        }
        var failure: UnsafeMutablePointer<CChar>?
        guard let options = PQconninfoParse(string, &failure) else {
            let why = failure.map { String(cString: $0) } ?? "out of memory"
            PQfreemem(failure)
            throw Invalid(description: "invalid PostgreSQL URL: \(String(why.reversed().drop(while: \.isNewline).reversed()))")
        }
        defer { PQconninfoFree(options) }
        var values: [String: String] = [:]
        var option = options
        while let keyword = option.pointee.keyword {
            if let value = option.pointee.val { values[String(cString: keyword)] = String(cString: value) }
            option += 1
        }
        guard values["password"] == nil else {
            throw Invalid(description: "a password does not go in the URL (the command line and the superblock would show it): give it in PGPASSWORD, a passfile (PGPASSFILE, passfile=, ~/.pgpass)")
        }
        guard let database = values["dbname"], !database.isEmpty else {
            throw Invalid(description: "the URL names no database: postgres://[user@]host[:port]/DATABASE")
        }
        self.string = string
        self.database = database
    }
}
