import MossaicCore
import MossaicMeta

/// Extended attributes. Values up to 64 KiB (XATTR_SIZE_MAX), names up to 255 bytes.
extension MossaicFilesystem {
    public enum XattrSetMode: Sendable { case any, create, replace }

    public func setxattr(_ ino: InodeNumber, name: [UInt8], value: [UInt8], mode: XattrSetMode) throws(FSError) {
        try checkWritable()
        guard !name.isEmpty, name.count <= 255 else { throw .rangeTooSmall }
        guard value.count <= 65536 else { throw .noSpace }
        let m: SQLiteMetaStore.XattrMode = switch mode { case .any: .any; case .create: .create; case .replace: .replace }
        try meta { () throws(MetaError) in try metadata.setXattr(ino, name: name, value: value, mode: m, now: .now()) }
    }

    public func getxattr(_ ino: InodeNumber, name: [UInt8]) throws(FSError) -> [UInt8] {
        try meta { () throws(MetaError) in try metadata.xattr(ino, name: name) }
    }

    /// Names, each followed by a NUL, as listxattr(2) returns them.
    public func listxattr(_ ino: InodeNumber) throws(FSError) -> [UInt8] {
        let names = try meta { () throws(MetaError) in try metadata.xattrNames(ino) }
        var out: [UInt8] = []
        for n in names { out += n; out.append(0) }
        return out
    }

    public func removexattr(_ ino: InodeNumber, name: [UInt8]) throws(FSError) {
        try checkWritable()
        try meta { () throws(MetaError) in try metadata.removeXattr(ino, name: name, now: .now()) }
    }
}
