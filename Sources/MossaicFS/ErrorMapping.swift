#if canImport(Glibc)
import Glibc
#endif
import MossaicCache
import MossaicCore
import MossaicMeta
import MossaicObjectStore

extension MetaError {
    /// The filesystem error a metadata error means to the caller.
    var fsError: FSError {
        switch self {
        case .notFound: .notFound
        case .exists: .exists
        case .notDirectory: .notDirectory
        case .isDirectory: .isDirectory
        case .notEmpty: .notEmpty
        case .invalidArgument: .invalidArgument
        case .noAttribute: .noAttribute
        case .tooManyLinks: .tooManyLinks
        case .sessionLost: .sessionLost
        case .sqlite, .postgres, .incompatible, .staleBase, .sweptChunks: .io("metadata: \(self)")
        }
    }
}

extension CacheError {
    var fsError: FSError {
        if case .staging(let e) = self, e.errno == ENOSPC { return .noSpace }
        return .io(description)
    }
}

/// Runs a metadata call, translating its error.
@inline(__always)
package func meta<T>(_ body: () throws(MetaError) -> T) throws(FSError) -> T {
    do { return try body() } catch { throw error.fsError }
}
