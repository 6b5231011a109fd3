import MossaicCore

/// What an operation needs of an inode: read, write and/or execute (search, for directories).
public struct AccessMask: OptionSet, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public static let read = AccessMask(rawValue: 4)
    public static let write = AccessMask(rawValue: 2)
    public static let execute = AccessMask(rawValue: 1)
}

/// mossaicfs's own permission checks, used when the filesystem is mounted without
/// `default_permissions`. Then the kernel checks nothing but execute bits, and — as libfuse's
/// documentation puts it — the filesystem decides. The rules are the traditional Unix ones
/// ext4 applies without ACLs: owner, group (primary or supplementary) or other bits; root may
/// read and write anything and execute what has any execute bit.
struct Permissions: Sendable {
    /// False with `default_permissions`: the kernel has already checked.
    let enabled: Bool

    /// EACCES unless `caller` may access `attrs` as `want` says.
    func check(_ attrs: FileAttributes, _ caller: Caller, _ want: AccessMask) throws(FSError) {
        guard enabled, !want.isEmpty else { return }
        if caller.isRoot {
            if want.contains(.execute) && attrs.kind != .directory && attrs.permissions & 0o111 == 0 { throw .permissionDenied }
            return
        }
        let bits: UInt32
        if caller.uid == attrs.uid { bits = (attrs.permissions >> 6) & 7 }
        else if caller.isMember(of: attrs.gid) { bits = (attrs.permissions >> 3) & 7 }
        else { bits = attrs.permissions & 7 }
        guard bits & want.rawValue == want.rawValue else { throw .permissionDenied }
    }

    /// The owner of the inode, or root: chmod, utimes with explicit times, and the like.
    func checkOwner(_ attrs: FileAttributes, _ caller: Caller) throws(FSError) {
        guard enabled, !caller.isRoot, caller.uid != attrs.uid else { return }
        throw .notPermitted
    }

    /// fs.protected_hardlinks (on by default): linking to a file needs its ownership, root, or
    /// a plain file (not setuid, not setgid-executable) the caller may read and write. The
    /// kernel asks this of the permission checks that, without default_permissions, allow all.
    func checkLinkSource(_ attrs: FileAttributes, _ caller: Caller) throws(FSError) {
        guard enabled, !caller.isRoot, caller.uid != attrs.uid, Self.hardLinksProtected() else { return }
        let plain = attrs.kind == .regular && attrs.permissions & 0o4000 == 0 && attrs.permissions & 0o2010 != 0o2010
        guard plain, (try? check(attrs, caller, [.read, .write])) != nil else { throw .notPermitted }
    }

    /// Read at each link, as the kernel does: the sysctl may change while mounted.
    private static func hardLinksProtected() -> Bool {
        guard let value = try? PosixFiles.read("/proc/sys/fs/protected_hardlinks") else { return true }
        return value.first != UInt8(ascii: "0")
    }

    /// Removing or replacing `victim` in directory `dir`: write and search on the directory,
    /// and in a sticky directory only the owner of the entry or of the directory, or root.
    func checkRemoval(of victim: FileAttributes, in dir: FileAttributes, _ caller: Caller) throws(FSError) {
        guard enabled else { return }
        try check(dir, caller, [.write, .execute])
        if dir.permissions & 0o1000 != 0, !caller.isRoot, caller.uid != victim.uid, caller.uid != dir.uid {
            throw .notPermitted
        }
    }
}
