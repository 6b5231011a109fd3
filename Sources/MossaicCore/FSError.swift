/// Errors of the filesystem API (`MossaicFS`). The FUSE bridge turns each case into an errno in
/// exactly one exhaustive table; no layer below it knows about errno.
public enum FSError: Error, Equatable, Sendable, CustomStringConvertible {
    case notFound
    case exists
    case notDirectory
    case isDirectory
    case notEmpty
    case nameTooLong
    case invalidArgument
    case permissionDenied
    case notPermitted
    case readOnly
    case badHandle
    case noAttribute
    case rangeTooSmall
    case notSupported
    case tooManyLinks
    case fileTooLarge
    case noSpace
    case crossDevice
    /// An ioctl request this filesystem does not know.
    case unknownRequest
    /// lseek SEEK_DATA/SEEK_HOLE past the end, or no data after the offset.
    case noSuchAddress
    /// The caller gave up waiting (a FUSE interrupt); nothing was reported done.
    case interrupted
    /// A lock another owner holds conflicts, and the caller asked not to wait (F_SETLK, LOCK_NB).
    case wouldBlock
    /// This mount's session on a metadata engine for many hosts was ended by another host,
    /// which took it for dead (a network cut, a suspended machine): its locks and open files
    /// are gone, so it changes nothing any more (EROFS). Remounting starts a new session.
    case sessionLost
    /// An inode the kernel named by its number is gone: another host removed its last name and
    /// closed it after this host's kernel looked it up (ESTALE, as NFS says it). Linux then
    /// walks the path once more with fresh lookups (open, stat, unlink, rename: `retry_estale`),
    /// which find what the name holds now — where ENOENT would tell a caller whose path
    /// names a file all along that it does not exist.
    case stale
    /// A failure of the object store, the cache or the metadata database; the text says which
    /// and is logged once by the bridge.
    case io(String)

    public var description: String {
        switch self {
        case .notFound: "no such file or directory"
        case .exists: "file exists"
        case .notDirectory: "not a directory"
        case .isDirectory: "is a directory"
        case .notEmpty: "directory not empty"
        case .nameTooLong: "name too long"
        case .invalidArgument: "invalid argument"
        case .permissionDenied: "permission denied"
        case .notPermitted: "operation not permitted"
        case .readOnly: "read-only filesystem"
        case .badHandle: "bad file handle"
        case .noAttribute: "no such attribute"
        case .rangeTooSmall: "buffer too small"
        case .notSupported: "operation not supported"
        case .tooManyLinks: "too many links"
        case .fileTooLarge: "file too large"
        case .noSpace: "no space left"
        case .crossDevice: "cross-device link"
        case .unknownRequest: "inappropriate ioctl"
        case .noSuchAddress: "no such device or address"
        case .interrupted: "interrupted"
        case .wouldBlock: "resource temporarily unavailable"
        case .sessionLost: "read-only filesystem: this mount's session was ended by another host (remount)"
        case .stale: "stale file handle: removed by another host"
        case .io(let why): "I/O error: \(why)"
        }
    }
}
