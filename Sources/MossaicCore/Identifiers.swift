/// The number of an inode, as the kernel sees it. `1` is the root (FUSE_ROOT_ID); numbers are
/// allocated monotonically and never reused, so a (number, generation) pair never changes meaning.
public struct InodeNumber: RawRepresentable, Hashable, Comparable, Sendable, CustomStringConvertible {
    public let rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
    public init(_ value: UInt64) { self.rawValue = value }
    public static let root = InodeNumber(1)
    public static func < (a: InodeNumber, b: InodeNumber) -> Bool { a.rawValue < b.rawValue }
    public var description: String { "ino \(rawValue)" }
}

/// A file or directory handle handed to the kernel at open/opendir/create.
public struct HandleID: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
    public var description: String { "fh \(rawValue)" }
}

/// Index of a chunk within a file: chunk `i` covers bytes `[i·chunkSize, (i+1)·chunkSize)`.
public struct ChunkIndex: RawRepresentable, Hashable, Comparable, Sendable {
    public let rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
    public init(_ value: UInt64) { self.rawValue = value }
    public static func < (a: ChunkIndex, b: ChunkIndex) -> Bool { a.rawValue < b.rawValue }
}
