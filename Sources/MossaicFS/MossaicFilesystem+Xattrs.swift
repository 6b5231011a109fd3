import MossaicCore
import MossaicMeta

/// Extended attributes. Values up to 64 KiB (XATTR_SIZE_MAX), names up to 255 bytes.
extension MossaicFilesystem {
    /// setxattr(2)'s flags: XATTR_CREATE, XATTR_REPLACE, both, or neither.
    public enum XattrSetMode: Sendable {
        case any, create, replace, createAndReplace

        var meta: XattrMode {
            switch self {
            case .any: .any
            case .create: .create
            case .replace: .replace
            case .createAndReplace: .createAndReplace
            }
        }
    }

    /// Names this mount does not support, answered EOPNOTSUPP before anything else (no
    /// metadata read), whatever else is wrong:
    /// - POSIX ACLs (`system.posix_acl_*`) without `-o acl`, as on ext4 mounted noacl, rather
    ///   than stored and ignored;
    /// - `security.selinux` without `-o selinux`. `ls -l` asks for it of every entry (one
    ///   request each: the kernel caches no xattr answer); EOPNOTSUPP is the answer `ls`
    ///   remembers for the whole device, ENODATA is not. Where SELinux runs, the kernel
    ///   answers that name from its own label and never asks here. (ENOSYS would stop the
    ///   kernel asking too, but for every name, `user.*` included.) GlusterFS does the same
    ///   (`--selinux`).
    private func checkNameSupported(_ name: [UInt8]) throws(FSError) {
        if !options.posixACL && name.starts(with: Self.aclPrefix) { throw .notSupported }
        if !options.selinuxLabels && name == Self.selinuxName { throw .notSupported }
    }

    /// Who may read or change an attribute. `user.*` follows the file's read/write bits;
    /// `trusted.*` and `security.*` are checked by the kernel (capabilities); the POSIX ACLs
    /// (`system.posix_acl_*`, only reaching us with `-o acl`) may be set by the owner.
    private func checkXattr(_ ino: InodeNumber, name: [UInt8], write: Bool, caller: Caller) throws(FSError) {
        // A namespace with nothing after it is EINVAL, one ext4 has no handler for EOPNOTSUPP:
        // the kernel's answers for ext4, which it leaves to FUSE filesystems.
        if Self.prefixedNamespaces.contains(name) { throw .invalidArgument }
        guard Self.prefixedNamespaces.contains(where: { name.starts(with: $0) }) || Self.aclNames.contains(name) else { throw .notSupported }
        guard permissions.enabled else { return }
        let attrs = try getattr(ino)
        if name.starts(with: Array("user.".utf8)) {
            // In a sticky directory only the owner (or root) may write them. The kernel checks
            // this itself, but on its copy of the mode, which lacks the sticky bit here.
            if write, attrs.kind == .directory, attrs.permissions & 0o1000 != 0 { try permissions.checkOwner(attrs, caller) }
            try permissions.check(attrs, caller, write ? .write : .read)
        } else if write && name.starts(with: Array("system.".utf8)) {
            try permissions.checkOwner(attrs, caller)
        }
    }

    private static let prefixedNamespaces: Set<[UInt8]> = [Array("user.".utf8), Array("trusted.".utf8), Array("security.".utf8)]
    private static let trusted = Array("trusted.".utf8)
    private static let aclPrefix = Array("system.posix_acl_".utf8)
    private static let selinuxName = Array("security.selinux".utf8)
    private static let aclNames: Set<[UInt8]> = [Array("system.posix_acl_access".utf8), Array("system.posix_acl_default".utf8)]

    public func setxattr(_ ino: InodeNumber, name: [UInt8], value: [UInt8], mode: XattrSetMode, caller: Caller = .root) throws(FSError) {
        try checkNameSupported(name)
        try checkWritable()
        try checkXattr(ino, name: name, write: true, caller: caller)
        guard !name.isEmpty, name.count <= 255 else { throw .rangeTooSmall }
        guard value.count <= 65536 else { throw .noSpace }
        if options.posixACL && name == PosixACL.accessName { return try setAccessACL(ino, value: value, caller: caller) }
        try meta { () throws(MetaError) in try metadata.setXattr(ino, name: name, value: value, mode: mode.meta, now: .now()) }
    }

    public func getxattr(_ ino: InodeNumber, name: [UInt8], caller: Caller = .root) throws(FSError) -> [UInt8] {
        try checkNameSupported(name)
        try checkXattr(ino, name: name, write: false, caller: caller)
        return try meta { () throws(MetaError) in try metadata.xattr(ino, name: name) }
    }

    /// Names, each followed by a NUL, as listxattr(2) returns them. `trusted.*` only to root
    /// (CAP_SYS_ADMIN), as ext4 lists them; the kernel passes our list on unfiltered. A name
    /// this mount does not support (a label stored by a mount with `-o selinux`) is not listed.
    public func listxattr(_ ino: InodeNumber, caller: Caller = .root) throws(FSError) -> [UInt8] {
        let names = try meta { () throws(MetaError) in try metadata.xattrNames(ino) }
        var out: [UInt8] = []
        for n in names where (caller.isRoot || !n.starts(with: Self.trusted)) && (options.selinuxLabels || n != Self.selinuxName) {
            out += n; out.append(0)
        }
        return out
    }

    public func removexattr(_ ino: InodeNumber, name: [UInt8], caller: Caller = .root) throws(FSError) {
        try checkNameSupported(name)
        try checkWritable()
        try checkXattr(ino, name: name, write: true, caller: caller)
        try meta { () throws(MetaError) in try metadata.removeXattr(ino, name: name, now: .now()) }
    }
}
