import MossaicCore

// Values of the MetaStore API that belong to no one engine.

/// What a new inode starts as.
public struct NewNode: Sendable {
    public var kind: FileKind
    public var permissions: UInt32
    public var uid: UInt32
    public var gid: UInt32
    public var rdev: UInt64
    public var symlinkTarget: [UInt8]?
    /// Extended attributes it is born with (inherited ACLs), in the same transaction.
    public var xattrs: [[UInt8]: [UInt8]]
    public init(kind: FileKind, permissions: UInt32, uid: UInt32, gid: UInt32, rdev: UInt64 = 0, symlinkTarget: [UInt8]? = nil,
                xattrs: [[UInt8]: [UInt8]] = [:]) {
        self.kind = kind; self.permissions = permissions; self.uid = uid; self.gid = gid; self.rdev = rdev; self.symlinkTarget = symlinkTarget
        self.xattrs = xattrs
    }
}

/// What an unlink or a replacing rename did to the inode it dropped a name of.
public struct Unlinked: Sendable, Equatable {
    public var ino: InodeNumber
    /// True when that was the last name: the inode is now an orphan, to be purged once no
    /// kernel reference and no open file remains.
    public var orphaned: Bool
    public init(ino: InodeNumber, orphaned: Bool) { self.ino = ino; self.orphaned = orphaned }
}

/// `createAndReplace`: XATTR_CREATE|XATTR_REPLACE, which fails either way (EEXIST or
/// ENODATA), as on ext4.
public enum XattrMode: Sendable { case any, create, replace, createAndReplace }

/// Which times an allocation change sets to `now` (a growth of the size sets both).
public enum AllocationTimes: Sendable { case none, ctime, both }

/// One inconsistency in the metadata, as `fsck` reports it.
public struct MetaProblem: Sendable, Equatable, CustomStringConvertible {
    public enum Kind: String, Sendable {
        case refcount = "wrong chunk refcount"
        case danglingReference = "reference to an unknown chunk"
        case referenceTooLong = "reference longer than its chunk"
        case strayPatch = "patch of a page without a chunk reference"
        case referencePastEnd = "chunk reference past the end of the file"
        case linkCount = "wrong link count"
        case danglingEntry = "directory entry naming no inode"
        case unreachable = "inode with links but no name"
        case unlistedOrphan = "unlinked inode not queued for removal"
        case directoryParent = "directory with a wrong parent"
        case allocation = "wrong allocated size"
        case reservation = "wrong reserved size"
        case usage = "wrong usage totals"
    }
    public var kind: Kind
    public var detail: String
    public var description: String { "\(kind.rawValue): \(detail)" }
}

/// What one file or directory tree holds, for `mossaicfs info` and `mossaicfs warmup`.
public struct TreeUsage: Sendable, Equatable, Codable {
    /// Regular files, directories and other inodes in the tree (hard links counted once).
    public var files: UInt64 = 0
    public var directories: UInt64 = 0
    public var others: UInt64 = 0
    /// The regular files' sizes added up.
    public var size: UInt64 = 0
    /// Chunk references of the files, and the distinct chunks they name.
    public var chunkReferences: UInt64 = 0
    public var chunks: UInt64 = 0
    /// The bytes of the distinct chunks: what the tree takes in the store (and the metadata,
    /// for chunks small enough to be inline).
    public var storedBytes: UInt64 = 0
    public var inlineBytes: UInt64 = 0
    /// Chunk bytes the tree names that are shared: with files outside it, or named more than
    /// once inside it. The chunk bytes referenced minus those only it holds, once each.
    public var deduplicatedBytes: UInt64 = 0
    /// Stored bytes that no file outside the tree references: what deleting it would free.
    public var exclusiveBytes: UInt64 = 0
    public init() {}
}

/// A stored chunk and where its bytes are, as a chunk row says: the unit `gc` and `fsck` reason
/// about, since one object (a pack) may hold several chunks.
public struct LocatedChunk: Sendable, Hashable {
    public var hash: ChunkHash
    public var location: ChunkLocation
    public init(hash: ChunkHash, location: ChunkLocation) {
        self.hash = hash; self.location = location
    }

    /// The key of the object that holds the chunk's bytes (`chunks/…` or `packs/…`).
    public var key: String { location.key(of: hash) }
}

extension FileAttributes {
    /// The attributes after setattr `changes` at `now`, as every engine applies them: a size
    /// change is for regular files only and, unless given, sets mtime; ctime is `now`.
    func applying(_ changes: AttributeChanges, now: Timestamp) throws(MetaError) -> FileAttributes {
        var attrs = self
        if let p = changes.permissions { attrs.permissions = p & 0o7777 }
        if let u = changes.uid { attrs.uid = u }
        if let g = changes.gid { attrs.gid = g }
        if let a = changes.atime { attrs.atime = a }
        if let m = changes.mtime { attrs.mtime = m }
        if let size = changes.size {
            guard kind != .directory else { throw .isDirectory }
            guard kind == .regular else { throw .invalidArgument }
            attrs.size = size
            if changes.mtime == nil { attrs.mtime = now }
        }
        attrs.ctime = now
        return attrs
    }

    /// The size chunk references must be cut to for `changes`, if any: also at the same size,
    /// as ext4, a truncation frees what fallocate reserved past the end.
    func truncation(by changes: AttributeChanges) -> UInt64? {
        guard let size = changes.size, size <= self.size else { return nil }
        return size
    }
}
