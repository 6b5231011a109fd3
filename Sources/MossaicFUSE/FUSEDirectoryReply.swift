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
            // The entries that fit, and the reply's size: the buffer is as large as they are,
            // not as the kernel's (1 MiB per READDIRPLUS here: max_pages follows max_write).
            // Allocating and zeroing the kernel's size for every reply cost page faults on each
            // — 61 % of the daemon's time in `find` over 10⁶ files, whose directories hold 100
            // names (issue 21).
            var names: [(name: [CChar], size: Int)] = []
            var total = 0
            for entry in entries {
                let name = entry.name.map { CChar(bitPattern: $0) } + [0]
                // With no buffer, libfuse returns the entry's padded size.
                let needed = plus ? fuse_add_direntry_plus(req, nil, 0, name, nil, 0) : fuse_add_direntry(req, nil, 0, name, nil, 0)
                if total + needed > size { break }
                total += needed
                names.append((name, needed))
            }
            let buffer = [CChar](unsafeUninitializedCapacity: total) { buf, initialized in
                var used = 0
                for (entry, name) in zip(entries, names) {
                    // libfuse writes every byte of the entry, its name's padding included.
                    let at = buf.baseAddress! + used
                    if plus {
                        var e = entry.isDotOrDotDot ? fuse_entry_param() : b.entry(entry.attributes, cacheable: cacheable)
                        if entry.isDotOrDotDot {
                            // No lookup reference for . and ..: only the type and number matter.
                            e.attr = entry.attributes.stat
                        }
                        _ = fuse_add_direntry_plus(req, at, name.size, name.name, &e, off_t(entry.nextOffset))
                        // Counted only once the entry is in the reply: the kernel takes a reference.
                        if !entry.isDotOrDotDot { b.filesystem.remember(entry.attributes.ino) }
                    } else {
                        var st = entry.attributes.stat
                        _ = fuse_add_direntry(req, at, name.size, name.name, &st, off_t(entry.nextOffset))
                    }
                    used += name.size
                }
                initialized = used
            }
            fuse_reply_buf(req, buffer, buffer.count)
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
