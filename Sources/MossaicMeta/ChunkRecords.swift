import MossaicCore

/// Where a chunk's bytes are.
public enum ChunkState: Int64, Sendable {
    /// In the `chunks` row itself (small chunks): never an object.
    case inline = 1
    /// An object `chunks/xx/<hash>` in the store.
    case stored = 2
}

/// One entry of a file's chunk list: chunk `index` is the first `length` bytes of `hash`,
/// with `patches` laid over it in order (the small-write path, schema 5). Without patches
/// `length` is at most the chunk's; with them it may pass it (`chunkLength`, the chunk's own
/// length: bytes past it and not patched read as zeros).
/// `location` says where a stored chunk's bytes are (read from its chunk row); references a
/// commit builds do not need it (the commit publishes the hash, the row has the location).
public struct ChunkRef: Equatable, Sendable {
    public var index: ChunkIndex
    public var hash: ChunkHash
    public var length: Int
    public var location: ChunkLocation
    public var patches: [ChunkPatch]
    public var chunkLength: Int
    public init(index: ChunkIndex, hash: ChunkHash, length: Int, location: ChunkLocation = .object,
                patches: [ChunkPatch] = [], chunkLength: Int? = nil) {
        self.index = index; self.hash = hash; self.length = length; self.location = location
        self.patches = patches; self.chunkLength = chunkLength ?? length
    }

    /// The patch bytes the page holds in the metadata.
    public var patchBytes: Int { patches.reduce(0) { $0 + $1.data.count } }
}

/// Bytes written over a page's chunk: page bytes `offset..<offset+length` are `data` followed
/// by zeros (trailing zeros are not kept, like a chunk's).
public struct ChunkPatch: Equatable, Sendable {
    public var offset: Int
    public var length: Int
    public var data: [UInt8]
    public init(offset: Int, length: Int, data: [UInt8]) {
        self.offset = offset; self.length = length; self.data = data
    }
}

/// A commit's patches for one page, appended after the ones the page has. They were made
/// against `base` (the page's reference as read: its chunk, length and patch count, or nil
/// for a hole); if the page changed since, the commit fails with `MetaError.staleBase` and
/// the caller rebuilds the page. `length` is the page's new reference length.
public struct PagePatches: Sendable {
    public var index: ChunkIndex
    public var base: ChunkRef?
    public var length: Int
    public var patches: [ChunkPatch]
    public init(index: ChunkIndex, base: ChunkRef?, length: Int, patches: [ChunkPatch]) {
        self.index = index; self.base = base; self.length = length; self.patches = patches
    }
}

/// A chunk a commit introduces; inserted if the metadata does not know it yet.
public struct NewChunk: Sendable {
    public var hash: ChunkHash
    public var length: Int
    public var state: ChunkState
    /// The bytes, for inline chunks.
    public var inlineData: [UInt8]?
    /// Where a stored chunk was put: its own object or a range of a pack, and its codec.
    public var location: ChunkLocation
    /// The bytes it takes where it is kept: its stored form's (`ChunkTransform`), or `length`.
    public var storedLength: Int
    public init(hash: ChunkHash, length: Int, state: ChunkState, inlineData: [UInt8]?, location: ChunkLocation = .object,
                storedLength: Int? = nil) {
        self.hash = hash; self.length = length; self.state = state; self.inlineData = inlineData; self.location = location
        self.storedLength = storedLength ?? length
    }
}

extension ChunkLocation {
    /// The `pack`, `pack_offset` and `codec` columns of a chunk row.
    var columns: (pack: SQLValue, offset: SQLValue, codec: SQLValue) {
        switch placement {
        case .object: (.null, .null, .int(codec.rawValue))
        case .packed(let pack, let offset, _): (.blob(pack.bytes), .int(Int64(offset)), .int(codec.rawValue))
        }
    }

    /// The columns of a chunk row that `read` takes, in its order, of table `alias` ("c." or "").
    static func selected(_ alias: String = "") -> String {
        "\(alias)pack, \(alias)pack_offset, \(alias)stored_length, \(alias)codec"
    }

    /// A chunk row's location from its `pack`, `pack_offset`, `stored_length` and `codec`
    /// columns (`selected`), which are columns `first` to `first + 3` of the result row.
    static func read(_ s: some ResultRow, from first: Int32) -> ChunkLocation {
        let codec = ChunkCodec(rawValue: s.int(first + 3)) ?? .none
        guard !s.isNull(first) else { return ChunkLocation(.object, codec: codec) }
        let pack = s.blob(first)
        guard pack.count == 32 else { return ChunkLocation(.object, codec: codec) }
        return .packed(pack: ChunkHash(bytes: pack), offset: UInt64(s.int(first + 1)), length: Int(s.int(first + 2)), codec: codec)
    }
}

/// What the metadata knows about a chunk.
public struct ChunkInfo: Sendable, Equatable {
    public var length: Int
    public var refcount: Int64
    public var state: ChunkState
}

/// A file's new content as one commit publishes it.
public struct FileCommit: Sendable {
    public var ino: InodeNumber
    /// Chunk indexes whose content changed: a new reference, or nil for a hole (all zeros).
    public var chunks: [(ChunkIndex, ChunkRef?)]
    public var newChunks: [NewChunk]
    public var size: UInt64
    public var mtime: Timestamp
    public var ctime: Timestamp
    /// Pages changed by patches rather than a new reference (none of them in `chunks`).
    public var patches: [PagePatches]
    /// PostgreSQL's reclaim sweep: every object of `newChunks` was stored after the sweep
    /// deletions up to this tombstone number were done (`MetaError.sweptChunks`); 0 for a first
    /// attempt. SQLite ignores it.
    public var storedAfterSweep: Int64 = 0
    public init(ino: InodeNumber, chunks: [(ChunkIndex, ChunkRef?)], newChunks: [NewChunk], size: UInt64, mtime: Timestamp, ctime: Timestamp,
                patches: [PagePatches] = []) {
        self.ino = ino; self.chunks = chunks; self.newChunks = newChunks; self.size = size; self.mtime = mtime; self.ctime = ctime
        self.patches = patches
    }
}

/// A directory entry with the attributes of the inode it names.
public struct DirectoryEntry: Sendable {
    public var name: [UInt8]
    public var attributes: FileAttributes
}

/// Which attributes a setattr changes.
public struct AttributeChanges: Sendable {
    public var permissions: UInt32?
    public var uid: UInt32?
    public var gid: UInt32?
    public var size: UInt64?
    public var atime: Timestamp?
    public var mtime: Timestamp?
    /// Both times are set to "now" (utimensat without times), which write permission suffices
    /// for; any other time change needs ownership.
    public var timesAreNow: Bool
    public init(permissions: UInt32? = nil, uid: UInt32? = nil, gid: UInt32? = nil, size: UInt64? = nil,
                atime: Timestamp? = nil, mtime: Timestamp? = nil, timesAreNow: Bool = false) {
        self.permissions = permissions; self.uid = uid; self.gid = gid; self.size = size; self.atime = atime; self.mtime = mtime
        self.timesAreNow = timesAreNow
    }
    public var isEmpty: Bool { permissions == nil && uid == nil && gid == nil && size == nil && atime == nil && mtime == nil }
}

/// Flags of rename(2)'s renameat2 form.
public struct RenameFlags: OptionSet, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    /// RENAME_NOREPLACE: fail with EEXIST if the target exists.
    public static let noReplace = RenameFlags(rawValue: 1)
    /// RENAME_EXCHANGE: swap source and target atomically.
    public static let exchange = RenameFlags(rawValue: 2)
}

/// Totals for statfs: the inodes, and the bytes of file data held (`UsageDetails.usedBytes`).
public struct MetaUsage: Sendable, Equatable {
    public var inodes: UInt64
    public var usedBytes: UInt64
    public init(inodes: UInt64, usedBytes: UInt64) { self.inodes = inodes; self.usedBytes = usedBytes }
}

/// What the filesystem holds, for `status`.
public struct UsageDetails: Sendable, Codable, Equatable {
    public var files: UInt64
    public var directories: UInt64
    public var inodes: UInt64
    /// Sum of the sizes of regular files: what `du --apparent-size` would say.
    public var logicalBytes: UInt64
    /// Referenced chunks and their bytes, as objects in the store (as stored: compressed if
    /// they are) and inline in the metadata (with the bytes of small writes' patches, which
    /// live there too).
    public var chunks: UInt64
    public var storedBytes: UInt64
    public var inlineBytes: UInt64
    /// Stored chunks no file references whose bytes are still in the store: released and not
    /// yet reclaimed by the sweep (or `gc`), or kept by a retained metadata snapshot or a pack
    /// that still holds a live chunk.
    public var releasedBytes: UInt64
    /// The referenced stored chunks' bytes before compression (`storedBytes` without it).
    public var uncompressedBytes: UInt64
    /// What compression saves in the store: `uncompressedBytes - storedBytes`. A stored
    /// property, so that `status --json` shows it.
    public var compressionSavedBytes: UInt64

    public init(files: UInt64, directories: UInt64, inodes: UInt64, logicalBytes: UInt64, chunks: UInt64, storedBytes: UInt64,
                inlineBytes: UInt64, releasedBytes: UInt64, uncompressedBytes: UInt64) {
        self.files = files; self.directories = directories; self.inodes = inodes; self.logicalBytes = logicalBytes
        self.chunks = chunks; self.storedBytes = storedBytes; self.inlineBytes = inlineBytes; self.releasedBytes = releasedBytes
        self.uncompressedBytes = uncompressedBytes
        compressionSavedBytes = uncompressedBytes > storedBytes ? uncompressedBytes - storedBytes : 0
    }

    /// The bytes of file data the filesystem holds in the store and its metadata: what `df`
    /// shows as used and `status` as "used" (one figure, so the two agree).
    public var usedBytes: UInt64 { storedBytes + inlineBytes + releasedBytes }
}
