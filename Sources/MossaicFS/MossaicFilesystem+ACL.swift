import MossaicCore
import MossaicMeta

/// POSIX ACLs with `-o acl` (`Options.posixACL`). The kernel enforces them and stores them
/// through setxattr, and leaves three things to the filesystem, done here with PosixACL's rules:
/// the mode follows a new access ACL, a chmod rewrites the access ACL, and a new inode inherits
/// its directory's default ACL — which replaces the umask, so the kernel hands the umask over
/// (FUSE_CAP_DONT_MASK) and it is applied here when there is no default ACL.
extension MossaicFilesystem {
    /// setxattr of an access ACL: the mode it implies is set in the same transaction, and a
    /// minimal ACL is only a mode, not stored. As Linux, setgid goes unless the caller is in the
    /// file's group (or root).
    func setAccessACL(_ ino: InodeNumber, value: [UInt8], caller: Caller) throws(FSError) {
        guard let acl = PosixACL(xattr: value) else { throw .invalidArgument }
        let attrs = try getattr(ino)
        var permissions = attrs.permissions & ~0o777 | acl.modeBits
        if !caller.isRoot && !caller.isMember(of: attrs.gid) { permissions &= ~0o2000 }
        _ = try meta { () throws(MetaError) in
            try metadata.setAttributes(of: ino, AttributeChanges(permissions: permissions), now: .now(),
                                       xattrs: [PosixACL.accessName: acl.isMinimal ? nil : value])
        }
    }

    /// The access ACL of `ino` rewritten for a chmod to `permissions`, if it has one.
    func accessACL(of ino: InodeNumber, afterChmodTo permissions: UInt32) throws(FSError) -> [[UInt8]: [UInt8]?] {
        guard options.posixACL, let acl = try storedACL(ino, PosixACL.accessName) else { return [:] }
        return [PosixACL.accessName: acl.withMode(permissions).xattr]
    }

    /// A new inode's permissions and ACLs: from the directory's default ACL if it has one (a
    /// new directory keeps that as its own default), else the requested mode less the umask.
    func initialPermissions(parent: InodeNumber, kind: FileKind, permissions: UInt32,
                            caller: Caller) throws(FSError) -> (permissions: UInt32, xattrs: [[UInt8]: [UInt8]]) {
        guard options.posixACL else { return (permissions, [:]) }
        guard let inheritable = try storedACL(parent, PosixACL.defaultName) else { return (permissions & ~(caller.umask & 0o777), [:]) }
        let (access, mode) = inheritable.inherited(requested: permissions)
        var xattrs: [[UInt8]: [UInt8]] = [:]
        if let access { xattrs[PosixACL.accessName] = access.xattr }
        if kind == .directory { xattrs[PosixACL.defaultName] = inheritable.xattr }
        return (mode, xattrs)
    }

    private func storedACL(_ ino: InodeNumber, _ name: [UInt8]) throws(FSError) -> PosixACL? {
        do {
            return PosixACL(xattr: try metadata.xattr(ino, name: name))
        } catch .noAttribute {
            return nil
        } catch {
            throw error.fsError
        }
    }
}
