/// How a stored chunk's bytes were made from its plaintext: recorded per chunk (its row's
/// `codec` column, its staged file's name), because a filesystem with compression still stores
/// a chunk that does not shrink as it is.
public enum ChunkCodec: Int64, Sendable, Hashable, Codable, CaseIterable {
    /// The stored bytes are the plaintext.
    case none = 0
    /// The stored bytes are one zstd frame of the plaintext.
    case zstd = 1

    /// The suffix of a staged file holding a chunk in this form (`<hash>.zst`): the file
    /// carries its codec, so uploading it after a crash needs no metadata.
    public var fileSuffix: String {
        switch self {
        case .none: ""
        case .zstd: ".zst"
        }
    }
}

/// Why stored bytes did not give back their chunk: never handed out, always an I/O error.
public enum ChunkDamage: Error, Equatable, Sendable, CustomStringConvertible {
    /// The (decoded) bytes hash to `actual`, not to the chunk's name.
    case mismatch(actual: ChunkHash)
    /// The stored bytes are not what their codec makes (a damaged or cut zstd frame).
    case undecodable(String)
    /// An encrypted filesystem's chunk whose GCM tag did not check: changed in the store, or
    /// not sealed under this filesystem's key.
    case unauthentic

    public var description: String {
        switch self {
        case .mismatch(let actual): "its bytes hash to \(actual)"
        case .undecodable(let reason): "its bytes do not decode: \(reason)"
        case .unauthentic: "it does not authenticate under the filesystem's key"
        }
    }
}
