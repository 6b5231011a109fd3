/// What kind of object an inode is. Raw values are the S_IFMT bits, which is also how the kind
/// is stored in the metadata.
public enum FileKind: UInt32, Sendable, CaseIterable {
    case regular = 0o100000
    case directory = 0o040000
    case symlink = 0o120000
    case fifo = 0o010000
    case socket = 0o140000
    case characterDevice = 0o020000
    case blockDevice = 0o060000

    public init?(mode: UInt32) { self.init(rawValue: mode & 0o170000) }
}

/// A point in time as nanoseconds since the Unix epoch (64-bit: years far past 2038 and
/// before 1970 are representable).
public struct Timestamp: Hashable, Comparable, Sendable {
    public var nanoseconds: Int64
    public init(nanoseconds: Int64) { self.nanoseconds = nanoseconds }
    /// Times outside what 64-bit nanoseconds hold (before 1678, after 2262) are clamped to
    /// the nearest representable one, as ext4 clamps to its own range.
    public init(seconds: Int64, nanoseconds: Int64) {
        let (product, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { self.nanoseconds = seconds < 0 ? Int64.min : Int64.max; return }
        let (sum, overflow2) = product.addingReportingOverflow(nanoseconds)
        self.nanoseconds = overflow2 ? (seconds < 0 ? Int64.min : Int64.max) : sum
    }
    public var seconds: Int64 { nanoseconds >= 0 ? nanoseconds / 1_000_000_000 : (nanoseconds - 999_999_999) / 1_000_000_000 }
    public var subsecondNanoseconds: Int64 { nanoseconds - seconds * 1_000_000_000 }
    public static func < (a: Timestamp, b: Timestamp) -> Bool { a.nanoseconds < b.nanoseconds }
}

/// The attributes of one inode, as the filesystem reports them to `stat`.
public struct FileAttributes: Equatable, Sendable {
    public var ino: InodeNumber
    public var kind: FileKind
    /// Permission bits only (including setuid, setgid, sticky); the kind is separate.
    public var permissions: UInt32
    public var uid: UInt32
    public var gid: UInt32
    public var size: UInt64
    public var nlink: UInt32
    public var rdev: UInt64
    public var atime: Timestamp
    public var mtime: Timestamp
    public var ctime: Timestamp
    public var generation: UInt64
    /// Bytes the file's chunks hold (holes and trailing zeros take none).
    public var allocatedBytes: UInt64
    /// Bytes fallocate reserved that no chunk's data covers (SQLiteMetaStore+Allocations).
    public var reservedBytes: UInt64

    public init(ino: InodeNumber, kind: FileKind, permissions: UInt32, uid: UInt32, gid: UInt32, size: UInt64,
                nlink: UInt32, rdev: UInt64, atime: Timestamp, mtime: Timestamp, ctime: Timestamp, generation: UInt64,
                allocatedBytes: UInt64 = 0, reservedBytes: UInt64 = 0) {
        self.allocatedBytes = allocatedBytes
        self.reservedBytes = reservedBytes
        self.ino = ino; self.kind = kind; self.permissions = permissions & 0o7777; self.uid = uid; self.gid = gid
        self.size = size; self.nlink = nlink; self.rdev = rdev; self.atime = atime; self.mtime = mtime
        self.ctime = ctime; self.generation = generation
    }

    /// `st_mode`: kind bits plus permission bits.
    public var mode: UInt32 { kind.rawValue | permissions }
    /// `st_blocks`, in 512-byte units: the bytes the chunks hold, in 4 KiB blocks as ext4
    /// counts them, so `du` and `cp --sparse` see holes, plus what fallocate reserved beyond
    /// them (a multiple of 4 KiB). Directories and symlinks count one block, as on ext4.
    public var blocks512: UInt64 {
        kind == .regular ? ((allocatedBytes + 4095) / 4096 * 4096 + reservedBytes) / 512 : 8
    }
}

/// The identity of the process making a request, from the kernel's request context.
public struct Caller: Sendable {
    public var uid: UInt32
    public var gid: UInt32
    public var pid: UInt32
    public var umask: UInt32
    /// The supplementary groups, fetched only when a permission check needs them (it reads
    /// /proc/PID/status, which is not free).
    public var supplementaryGroups: @Sendable () -> [UInt32]

    public init(uid: UInt32, gid: UInt32, pid: UInt32 = 0, umask: UInt32 = 0o022,
                supplementaryGroups: @escaping @Sendable () -> [UInt32] = { [] }) {
        self.uid = uid; self.gid = gid; self.pid = pid; self.umask = umask; self.supplementaryGroups = supplementaryGroups
    }
    public static let root = Caller(uid: 0, gid: 0)

    public var isRoot: Bool { uid == 0 }

    /// True if the caller belongs to `group` (primary or supplementary).
    public func isMember(of group: UInt32) -> Bool {
        gid == group || supplementaryGroups().contains(group)
    }
}
