import MossaicCore
import MossaicObjectStore

/// Errors of the blob cache.
public enum CacheError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The store returned bytes whose SHA-256 is not the chunk's name: never handed out.
    case corrupt(hash: ChunkHash, actual: ChunkHash)
    /// An encrypted filesystem's chunk whose GCM tag did not check: changed in the store, or
    /// not sealed under this filesystem's key. Never handed out, like a corrupt one.
    case unauthentic(hash: ChunkHash)
    case store(ObjectStoreError)
    /// A write-back chunk could not be written to the staging directory.
    case staging(SystemError)

    public var description: String {
        switch self {
        case .corrupt(let hash, let actual): "chunk \(hash) is corrupt in the store (its bytes hash to \(actual))"
        case .unauthentic(let hash): "chunk \(hash) is corrupt in the store (it does not authenticate under the filesystem's key)"
        case .store(let e): e.description
        case .staging(let e): "write-back staging: \(e)"
        }
    }
}
