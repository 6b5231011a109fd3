#if canImport(Glibc)
import Glibc
#endif
internal import CFuse
import MossaicCore
import MossaicFS

/// open(dir, O_TMPFILE) for a libfuse that predates it. The kernel sends FUSE_TMPFILE (protocol
/// 7.37) to any daemon and takes ENOSYS as "never again, EOPNOTSUPP"; libfuse 3.14 — Debian 12's,
/// which the package depends on — has no `tmpfile` operation and answers ENOSYS itself. So the
/// session reads the device through `fuse_session_custom_io`, and this read function serves
/// FUSE_TMPFILE requests as they arrive (on the worker thread that read them, replying on the
/// same descriptor, as the kernel requires with cloned descriptors) and hands libfuse every
/// other request untouched. With libfuse ≥ 3.15 this becomes its `tmpfile` operation.
///
/// The request is `fuse_in_header`, `fuse_create_in`, and the name "/" (none); the reply is
/// `fuse_entry_out` and `fuse_open_out`, as for FUSE_CREATE.
enum FUSETmpfile {
    /// FUSE_TMPFILE in linux/fuse.h.
    static let opcode = UInt32(FUSE_TMPFILE.rawValue)

    static func io() -> fuse_custom_io {
        var io = fuse_custom_io()
        io.read = { fd, buffer, size, userdata in FUSETmpfile.read(fd, buffer, size, userdata) }
        io.writev = { fd, iov, count, _ in Glibc.writev(fd, iov, count) }
        return io
    }

    /// libfuse's read of the device: returns the next request that is not FUSE_TMPFILE. errno
    /// is left as the failed read set it, which libfuse reads.
    static func read(_ fd: Int32, _ buffer: UnsafeMutableRawPointer?, _ size: Int, _ userdata: UnsafeMutableRawPointer?) -> Int {
        while true {
            let n = Glibc.read(fd, buffer, size)
            let headerSize = MemoryLayout<fuse_in_header>.size
            guard n >= headerSize, let buffer, let userdata else { return n }
            let header = buffer.loadUnaligned(as: fuse_in_header.self)
            guard header.opcode == opcode else { return n }
            let bridge = Unmanaged<FUSEBridge>.fromOpaque(userdata).takeUnretainedValue()
            serve(bridge, fd, header, UnsafeRawBufferPointer(start: buffer + headerSize, count: n - headerSize))
        }
    }

    private static func serve(_ b: FUSEBridge, _ fd: Int32, _ header: fuse_in_header, _ body: UnsafeRawBufferPointer) {
        let started = Timestamp.monotonicNow()
        do throws(FSError) {
            guard body.count >= MemoryLayout<fuse_create_in>.size else { throw .invalidArgument }
            let create = body.loadUnaligned(as: fuse_create_in.self)
            let caller = Caller(uid: header.uid, gid: header.gid, pid: header.pid, umask: create.umask,
                                supplementaryGroups: { groups(of: header.pid) })
            let access = Int32(bitPattern: create.flags) & O_ACCMODE
            let (attrs, handle) = try b.filesystem.tmpfile(parent: InodeNumber(header.nodeid), permissions: create.mode & 0o7777,
                                                           readable: access != O_WRONLY, caller: caller)
            var entry = fuse_entry_out()
            entry.nodeid = attrs.ino.rawValue
            entry.generation = attrs.generation
            (entry.attr_valid, entry.attr_valid_nsec) = split(b.attributeTimeout)
            entry.attr = fuseAttr(attrs)
            var open = fuse_open_out()
            open.fh = handle.rawValue
            if reply(fd, header.unique, error: 0, &entry, &open) != 0 {
                // The kernel did not take it (the caller was interrupted): undo the open and the reference.
                try? b.filesystem.release(attrs.ino, handle: handle)
                b.filesystem.forget(attrs.ino, count: 1)
            }
        } catch {
            b.logger.debug("tmpfile: \(error)", metadata: ["ino": "\(header.nodeid)"])
            var none = (fuse_entry_out(), fuse_open_out())
            _ = reply(fd, header.unique, error: -error.errno, &none.0, &none.1, withBody: false)
            b.filesystem.metrics.increment("mossaicfs_fuse_errors_total", "FUSE operations answered with an error.",
                                           labels: [("op", "tmpfile"), ("errno", "\(error.errno)")])
        }
        b.filesystem.metrics.observe("mossaicfs_fuse_op_duration_seconds", "FUSE operation latency by operation.",
                                     labels: [("op", "tmpfile")], seconds: Timestamp.monotonicNow().secondsSince(started))
    }

    /// Writes the reply to request `unique`; 0, or the errno of the write (ENOENT: the request
    /// is gone, interrupted).
    private static func reply(_ fd: Int32, _ unique: UInt64, error: Int32, _ entry: inout fuse_entry_out, _ open: inout fuse_open_out,
                              withBody: Bool = true) -> Int32 {
        let bodySize = withBody ? MemoryLayout<fuse_entry_out>.size + MemoryLayout<fuse_open_out>.size : 0
        var out = fuse_out_header(len: UInt32(MemoryLayout<fuse_out_header>.size + bodySize), error: error, unique: unique)
        return withUnsafeMutableBytes(of: &out) { o in
            withUnsafeMutableBytes(of: &entry) { e in
                withUnsafeMutableBytes(of: &open) { p in
                    var vectors = [iovec(iov_base: o.baseAddress, iov_len: o.count)]
                    if withBody {
                        vectors.append(iovec(iov_base: e.baseAddress, iov_len: e.count))
                        vectors.append(iovec(iov_base: p.baseAddress, iov_len: p.count))
                    }
                    return Glibc.writev(fd, vectors, Int32(vectors.count)) < 0 ? Glibc.errno : 0
                }
            }
        }
    }

    /// The attributes in the kernel's form (what libfuse's convert_stat makes of a stat).
    private static func fuseAttr(_ attrs: FileAttributes) -> fuse_attr {
        let st = attrs.stat
        var a = fuse_attr()
        a.ino = UInt64(st.st_ino); a.mode = st.st_mode; a.nlink = UInt32(st.st_nlink); a.uid = st.st_uid; a.gid = st.st_gid
        a.rdev = UInt32(truncatingIfNeeded: st.st_rdev); a.size = UInt64(st.st_size); a.blocks = UInt64(st.st_blocks)
        a.blksize = UInt32(st.st_blksize)
        a.atime = UInt64(st.st_atim.tv_sec); a.atimensec = UInt32(st.st_atim.tv_nsec)
        a.mtime = UInt64(st.st_mtim.tv_sec); a.mtimensec = UInt32(st.st_mtim.tv_nsec)
        a.ctime = UInt64(st.st_ctim.tv_sec); a.ctimensec = UInt32(st.st_ctim.tv_nsec)
        return a
    }

    private static func split(_ seconds: Double) -> (UInt64, UInt32) {
        let whole = seconds.rounded(.down)
        return (UInt64(whole), UInt32((seconds - whole) * 1e9))
    }

    /// The caller's supplementary groups, from /proc (what fuse_req_getgroups reads for the
    /// requests libfuse serves).
    private static func groups(of pid: UInt32) -> [UInt32] {
        guard let f = fopen("/proc/\(pid)/task/\(pid)/status", "r") else { return [] }
        defer { fclose(f) }
        var line: UnsafeMutablePointer<CChar>? = nil
        var capacity = 0
        defer { free(line) }
        while getline(&line, &capacity, f) > 0, let line {
            let text = String(cString: line)
            guard text.hasPrefix("Groups:") else { continue }
            return text.dropFirst("Groups:".count).split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).compactMap { UInt32($0) }
        }
        return []
    }
}
