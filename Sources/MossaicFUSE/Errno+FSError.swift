#if canImport(Glibc)
import Glibc
#endif
import MossaicCore

extension FSError {
    /// THE errno table: the only place where a filesystem error becomes an errno. Exhaustive on
    /// purpose (no `default:`), so a new error case does not compile until it has its errno.
    var errno: Int32 {
        switch self {
        case .notFound: ENOENT
        case .exists: EEXIST
        case .notDirectory: ENOTDIR
        case .isDirectory: EISDIR
        case .notEmpty: ENOTEMPTY
        case .nameTooLong: ENAMETOOLONG
        case .invalidArgument: EINVAL
        case .permissionDenied: EACCES
        case .notPermitted: EPERM
        case .readOnly: EROFS
        case .badHandle: EBADF
        case .noAttribute: ENODATA
        case .rangeTooSmall: ERANGE
        case .notSupported: EOPNOTSUPP
        case .tooManyLinks: EMLINK
        case .fileTooLarge: EFBIG
        case .noSpace: ENOSPC
        case .crossDevice: EXDEV
        case .unknownRequest: ENOTTY
        case .noSuchAddress: ENXIO
        case .interrupted: EINTR
        case .wouldBlock: EAGAIN
        case .sessionLost: EROFS
        case .stale: ESTALE
        case .io: EIO
        }
    }
}
