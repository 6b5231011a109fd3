import MossaicCore
import MossaicObjectStore

/// Errors of the blob cache.
public enum CacheError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The store returned bytes whose SHA-256 is not the chunk's name: never handed out.
    case corrupt(hash: ChunkHash, actual: ChunkHash)
    case store(ObjectStoreError)

    public var description: String {
        switch self {
        case .corrupt(let hash, let actual): "chunk \(hash) is corrupt in the store (its bytes hash to \(actual))"
        case .store(let e): e.description
        }
    }
}
