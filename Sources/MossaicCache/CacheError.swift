import MossaicCore
import MossaicObjectStore

/// Errors of the blob cache.
public enum CacheError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The store returned bytes that do not decode to the chunk, or whose plaintext's SHA-256
    /// is not the chunk's name: never handed out.
    case corrupt(hash: ChunkHash, damage: ChunkDamage)
    case store(ObjectStoreError)
    /// A write-back chunk could not be written to the staging directory.
    case staging(SystemError)

    public var description: String {
        switch self {
        case .corrupt(let hash, let damage): "chunk \(hash) is corrupt in the store (\(damage))"
        case .store(let e): e.description
        case .staging(let e): "write-back staging: \(e)"
        }
    }
}
