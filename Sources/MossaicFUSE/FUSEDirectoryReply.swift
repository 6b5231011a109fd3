#if canImport(Glibc)
import Glibc
#endif
internal import CFuse
import MossaicCore
import MossaicFS

/// Replies that fill a caller-sized buffer: directory listings and xattr values.
enum FUSEDirectoryReply {
    /// readdir and readdirplus: packs entries from `off` until the kernel's buffer is full. For
    /// readdirplus every entry that fits (except `.` and `..`) hands the kernel a reference,
    /// which is counted only once it is in the buffer.
    static func readdir(_ req: fuse_req_t?, _ ino: fuse_ino_t, _ size: Int, _ off: off_t, _ fi: UnsafeMutablePointer<fuse_file_info>?, plus: Bool) {
        let b = FUSEBridge.from(req)
        b.serve(req, plus ? "readdirplus" : "readdir", ino) { () throws(FSError) in
            guard let fi, off >= 0 else { throw .invalidArgument }
            // As many entries as the buffer could hold at the smallest size one takes (its
            // header and a name padded to 8 bytes): one page read per reply, never the directory.
            let smallest = plus ? MemoryLayout<fuse_direntplus>.size + 8 : MemoryLayout<fuse_dirent>.size + 8
            let entries = try b.filesystem.readdir(InodeNumber(ino), handle: HandleID(rawValue: fi.pointee.fh), offset: UInt64(off),
                                                   limit: size / smallest + 1)
            let cacheable = plus && b.filesystem.namesCacheable(in: InodeNumber(ino))
            var buffer = [CChar](repeating: 0, count: size)
            var used = 0
            buffer.withUnsafeMutableBufferPointer { buf in
                for entry in entries {
                    let name = entry.name.map { CChar(bitPattern: $0) } + [0]
                    let remaining = size - used
                    let needed: Int
                    if plus {
                        var e = entry.isDotOrDotDot ? fuse_entry_param() : b.entry(entry.attributes, cacheable: cacheable)
                        if entry.isDotOrDotDot {
                            // No lookup reference for . and ..: only the type and number matter.
                            e.attr = entry.attributes.stat
                        }
                        needed = fuse_add_direntry_plus(req, buf.baseAddress! + used, remaining, name, &e, off_t(entry.nextOffset))
                        if needed <= remaining && !entry.isDotOrDotDot { b.filesystem.remember(entry.attributes.ino) }
                    } else {
                        var st = entry.attributes.stat
                        needed = fuse_add_direntry(req, buf.baseAddress! + used, remaining, name, &st, off_t(entry.nextOffset))
                    }
                    if needed > remaining { break }
                    used += needed
                }
            }
            fuse_reply_buf(req, buffer, used)
        }
    }

    /// getxattr/listxattr: size 0 asks for the length; a smaller buffer is ERANGE.
    static func replySized(_ req: fuse_req_t?, _ value: [UInt8], _ size: Int) {
        if size == 0 {
            fuse_reply_xattr(req, value.count)
        } else if value.count > size {
            fuse_reply_err(req, ERANGE)
        } else {
            value.withUnsafeBytes { raw in _ = fuse_reply_buf(req, raw.baseAddress?.assumingMemoryBound(to: CChar.self), raw.count) }
        }
    }
}
