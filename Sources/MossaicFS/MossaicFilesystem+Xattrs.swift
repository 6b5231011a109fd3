import MossaicCore
import MossaicMeta

/// Extended attributes. Values up to 64 KiB (XATTR_SIZE_MAX), names up to 255 bytes.
extension MossaicFilesystem {
    public enum XattrSetMode: Sendable { case any, create, replace }

    /// Who may read or change an attribute. `user.*` follows the file's read/write bits;
    /// `trusted.*` and `security.*` are checked by the kernel (capabilities); the POSIX ACLs
    /// (`system.posix_acl_*`, only reaching us with `-o acl`) may be set by the owner.
    private func checkXattr(_ ino: InodeNumber, name: [UInt8], write: Bool, caller: Caller) throws(FSError) {
        guard permissions.enabled else { return }
        let attrs = try getattr(ino)
        if name.starts(with: Array("user.".utf8)) {
            try permissions.check(attrs, caller, write ? .write : .read)
        } else if write && name.starts(with: Array("system.".utf8)) {
            try permissions.checkOwner(attrs, caller)
        }
    }

    public func setxattr(_ ino: InodeNumber, name: [UInt8], value: [UInt8], mode: XattrSetMode, caller: Caller = .root) throws(FSError) {
        try checkWritable()
        try checkXattr(ino, name: name, write: true, caller: caller)
        guard !name.isEmpty, name.count <= 255 else { throw .rangeTooSmall }
        guard value.count <= 65536 else { throw .noSpace }
        let m: SQLiteMetaStore.XattrMode = switch mode { case .any: .any; case .create: .create; case .replace: .replace }
        try meta { () throws(MetaError) in try metadata.setXattr(ino, name: name, value: value, mode: m, now: .now()) }
    }

    public func getxattr(_ ino: InodeNumber, name: [UInt8], caller: Caller = .root) throws(FSError) -> [UInt8] {
        try checkXattr(ino, name: name, write: false, caller: caller)
        return try meta { () throws(MetaError) in try metadata.xattr(ino, name: name) }
    }

    /// Names, each followed by a NUL, as listxattr(2) returns them.
    public func listxattr(_ ino: InodeNumber) throws(FSError) -> [UInt8] {
        let names = try meta { () throws(MetaError) in try metadata.xattrNames(ino) }
        var out: [UInt8] = []
        for n in names { out += n; out.append(0) }
        return out
    }

    public func removexattr(_ ino: InodeNumber, name: [UInt8], caller: Caller = .root) throws(FSError) {
        try checkWritable()
        try checkXattr(ino, name: name, write: true, caller: caller)
        try meta { () throws(MetaError) in try metadata.removeXattr(ino, name: name, now: .now()) }
    }
}
