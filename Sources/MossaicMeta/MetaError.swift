import MossaicCore

/// Errors of the metadata layer: namespace conditions found inside a transaction, and SQLite
/// or PostgreSQL failures. The filesystem layer maps them to `FSError`.
public enum MetaError: Error, Equatable, Sendable, CustomStringConvertible {
    case notFound
    case exists
    case notDirectory
    case isDirectory
    case notEmpty
    case invalidArgument
    case noAttribute
    case tooManyLinks
    /// SQLite said no: result code, its message, and what was being done.
    case sqlite(code: Int32, message: String, context: String)
    /// PostgreSQL said no (or could not be reached): SQLSTATE, its message, what was being done.
    case postgres(state: String, message: String, context: String)
    /// The database is not one this build understands (newer schema, damaged).
    case incompatible(String)
    /// A commit's patches were made against a page that changed since (`PagePatches.base`):
    /// nothing was committed; the caller rebuilds the page from what it is now.
    case staleBase
    /// This store's session (PostgresMetaStore+Sessions) was deleted by another host that took
    /// it for dead: the locks and open files it held are gone, so it writes nothing any more.
    case sessionLost
    /// A commit named chunks that a reclaim sweep of another mount (PostgreSQL) took meanwhile:
    /// a row it relied on is gone, or the object a new row would name was deleted after — as
    /// far as the metadata can tell — it was stored. Nothing was committed. The caller stores
    /// the commit's chunks again and retries with `FileCommit.storedAfterSweep = through`;
    /// `pending`: the sweep is still deleting objects, so it waits a moment first.
    case sweptChunks(through: Int64, pending: Bool)

    public var description: String {
        switch self {
        case .notFound: "not found"
        case .exists: "exists"
        case .notDirectory: "not a directory"
        case .isDirectory: "is a directory"
        case .notEmpty: "directory not empty"
        case .invalidArgument: "invalid argument"
        case .noAttribute: "no such attribute"
        case .tooManyLinks: "too many links"
        case .sqlite(let code, let message, let context): "SQLite error \(code) (\(message)) during \(context)"
        case .postgres(let state, let message, let context): "PostgreSQL error \(state) (\(message)) during \(context)"
        case .incompatible(let why): why
        case .staleBase: "a page changed under a commit's patches"
        case .sweptChunks(let through, let pending):
            "a commit named chunks a reclaim sweep took (\(pending ? "still deleting" : "swept through \(through)"))"
        case .sessionLost: "this mount's session was ended by another host, which took it for dead (heartbeat older than its session_expiry): metadata writes are refused; remount"
        }
    }
}
