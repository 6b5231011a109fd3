/// A filesystem's compression, fixed when it is formatted (`format --compress`) and recorded in
/// its superblock (`"compression": "zstd:3"`). One spelling for both: what the user typed is
/// what the superblock says, and `mount` reads it back with the same parser.
public enum Compression: Sendable, Equatable, CustomStringConvertible {
    /// Chunks are stored as they are.
    case none
    /// Each chunk that zstd at `level` shrinks enough is stored as one zstd frame.
    case zstd(level: Int)

    /// zstd's own default, a good trade for 1 MiB chunks (about 3x on text at hundreds of MB/s).
    public static let defaultZstdLevel = 3
    /// Levels accepted: 1 (fastest) to 19 (smallest); zstd's "ultra" levels need windows far
    /// larger than a chunk and would only cost time.
    public static let zstdLevels = 1...19

    /// Parses `none`, `zstd` or `zstd:LEVEL`; the error is one line for the CLI.
    public init(parsing text: String) throws(CompressionError) {
        if text == "none" { self = .none; return }
        if text == "zstd" { self = .zstd(level: Self.defaultZstdLevel); return }
        guard text.hasPrefix("zstd:") else { throw .unknown(text) }
        guard let level = Int(text.dropFirst("zstd:".count)), Self.zstdLevels.contains(level) else { throw .badLevel(text) }
        self = .zstd(level: level)
    }

    public var description: String {
        switch self {
        case .none: "none"
        case .zstd(let level): "zstd:\(level)"
        }
    }
}

public enum CompressionError: Error, Equatable, Sendable, CustomStringConvertible {
    case unknown(String)
    case badLevel(String)

    public var description: String {
        switch self {
        case .unknown(let text): "unknown compression '\(text)': expected none, zstd or zstd:LEVEL"
        case .badLevel(let text):
            "invalid compression '\(text)': the zstd level must be a number from \(Compression.zstdLevels.lowerBound) to \(Compression.zstdLevels.upperBound)"
        }
    }
}
