#if canImport(Glibc)
import Glibc
#endif
internal import CFuse
import MossaicCore
import MossaicFS

/// The libfuse low-level operations table: a 1:1 translation of each request onto the
/// `MossaicFilesystem` method of the same name. No filesystem logic here — argument copying,
/// the reply, and nothing else.
///
/// These closures must live outside main.swift: top-level code there is main-actor isolated,
/// and a callback defined there traps when libfuse calls it on a worker thread.
enum FUSEOperations {
    static func make() -> fuse_lowlevel_ops {
        var ops = fuse_lowlevel_ops()

        ops.`init` = { userdata, conn in
            guard let conn, let userdata else { return }
            let b = Unmanaged<FUSEBridge>.fromOpaque(userdata).takeUnretainedValue()
            // 1 MiB writes: one request per chunk-sized page instead of eight. (Read-ahead can
            // only be lowered here; the daemon raises it through sysfs after mounting.)
            conn.pointee.max_write = 1 << 20
            // Left off, by measurement (docs/BENCHMARKS.md, session 4): FUSE_CAP_WRITEBACK_CACHE
            // made every local-store workload slower (256 MiB write 400-496 vs 495-613 MB/s,
            // +15 % daemon CPU; bench/local-ab.sh), and splicing replies gains nothing at 1 MiB
            // requests (libfuse's passthrough_ll, bench/fuse-splice.sh), so reads reply from memory.
            // File handles that outlive the kernel's caches (NFS/Samba re-export,
            // open_by_handle_at): the kernel may then look up "." and ".." by inode number
            // (MossaicFilesystem+Export.swift).
            if conn.pointee.capable & UInt32(FUSE_CAP_EXPORT_SUPPORT) != 0 { conn.pointee.want |= UInt32(FUSE_CAP_EXPORT_SUPPORT) }
            if conn.pointee.capable & UInt32(FUSE_CAP_READDIRPLUS) != 0 { conn.pointee.want |= UInt32(FUSE_CAP_READDIRPLUS) }
            // Always readdirplus, never the kernel's "auto" guess: attributes come with the
            // listing at no extra cost here, and ls -l/find then need no lookup per entry.
            conn.pointee.want &= ~UInt32(FUSE_CAP_READDIRPLUS_AUTO)
            // flock and fcntl locks: sent here (getlk/setlk/flock below) only on a mount whose
            // locks must exclude across hosts (PostgreSQL, read-write). Otherwise — SQLite,
            // where this mount is the filesystem's only writer — the kernel keeps them, as it
            // does for a local filesystem: as exclusive, and no round trip per lock. libfuse
            // asks for both capabilities because the ops exist; they are withdrawn here.
            let lockCapabilities = UInt32(FUSE_CAP_POSIX_LOCKS) | UInt32(FUSE_CAP_FLOCK_LOCKS)
            if b.filesystem.locksAcrossHosts {
                conn.pointee.want |= conn.pointee.capable & lockCapabilities
            } else {
                conn.pointee.want &= ~lockCapabilities
            }
            // POSIX ACLs: the kernel enforces them (and with them default_permissions) and
            // stores them through setxattr as system.posix_acl_*. A default ACL replaces the
            // umask, so the kernel must leave the umask to us (DONT_MASK; MossaicFilesystem+ACL).
            if b.posixACL && conn.pointee.capable & UInt32(FUSE_CAP_POSIX_ACL) != 0 {
                conn.pointee.want |= UInt32(FUSE_CAP_POSIX_ACL)
                if conn.pointee.capable & UInt32(FUSE_CAP_DONT_MASK) != 0 { conn.pointee.want |= UInt32(FUSE_CAP_DONT_MASK) }
            }
        }

        ops.lookup = { req, parent, name in
            let b = FUSEBridge.from(req)
            b.serve(req, "lookup", parent) { () throws(FSError) in
                b.replyEntry(req, try b.filesystem.lookup(parent: InodeNumber(parent), name: FUSEBridge.name(name), caller: FUSEBridge.caller(req)),
                             parent: parent)
            }
        }

        ops.forget = { req, ino, nlookup in
            FUSEBridge.from(req).filesystem.forget(InodeNumber(ino), count: nlookup)
            fuse_reply_none(req)
        }

        ops.forget_multi = { req, count, forgets in
            let fs = FUSEBridge.from(req).filesystem
            if let forgets {
                for i in 0..<count { fs.forget(InodeNumber(forgets[i].ino), count: forgets[i].nlookup) }
            }
            fuse_reply_none(req)
        }

        ops.getattr = { req, ino, _ in
            let b = FUSEBridge.from(req)
            b.serve(req, "getattr", ino) { () throws(FSError) in b.replyAttr(req, try b.filesystem.getattr(InodeNumber(ino))) }
        }

        ops.setattr = { req, ino, attr, toSet, fi in
            let b = FUSEBridge.from(req)
            b.serve(req, "setattr", ino) { () throws(FSError) in
                guard let attr else { throw .invalidArgument }
                let set = UInt32(bitPattern: toSet)
                var request = MossaicFilesystem.SetAttributes()
                if set & UInt32(FUSE_SET_ATTR_MODE) != 0 { request.permissions = attr.pointee.st_mode & 0o7777 }
                if set & UInt32(FUSE_SET_ATTR_UID) != 0 { request.uid = attr.pointee.st_uid }
                if set & UInt32(FUSE_SET_ATTR_GID) != 0 { request.gid = attr.pointee.st_gid }
                if set & UInt32(FUSE_SET_ATTR_SIZE) != 0 {
                    guard attr.pointee.st_size >= 0 else { throw .invalidArgument }
                    request.size = UInt64(attr.pointee.st_size)
                }
                if set & UInt32(FUSE_SET_ATTR_ATIME_NOW) != 0 { request.atime = .now }
                else if set & UInt32(FUSE_SET_ATTR_ATIME) != 0 { request.atime = .at(Timestamp(attr.pointee.st_atim)) }
                if set & UInt32(FUSE_SET_ATTR_MTIME_NOW) != 0 { request.mtime = .now }
                else if set & UInt32(FUSE_SET_ATTR_MTIME) != 0 { request.mtime = .at(Timestamp(attr.pointee.st_mtim)) }
                let handle = fi.map { HandleID(rawValue: $0.pointee.fh) }
                let (attributes, stale) = try b.filesystem.setattr(InodeNumber(ino), request, handle: handle, caller: FUSEBridge.caller(req))
                b.replyAttr(req, attributes)
                b.forgetNames(stale)
            }
        }

        ops.readlink = { req, ino in
            let b = FUSEBridge.from(req)
            b.serve(req, "readlink", ino) { () throws(FSError) in
                let target = try b.filesystem.readlink(InodeNumber(ino))
                let cString = target.map { CChar(bitPattern: $0) } + [0]
                fuse_reply_readlink(req, cString)
            }
        }

        ops.mknod = { req, parent, name, mode, rdev in
            let b = FUSEBridge.from(req)
            b.serve(req, "mknod", parent) { () throws(FSError) in
                guard let kind = FileKind(mode: mode) else { throw .invalidArgument }
                b.replyEntry(req, try b.filesystem.mknod(parent: InodeNumber(parent), name: FUSEBridge.name(name), kind: kind,
                                                        permissions: mode & 0o7777, rdev: UInt64(rdev), caller: FUSEBridge.caller(req)), parent: parent)
            }
        }

        ops.mkdir = { req, parent, name, mode in
            let b = FUSEBridge.from(req)
            b.serve(req, "mkdir", parent) { () throws(FSError) in
                b.replyEntry(req, try b.filesystem.mkdir(parent: InodeNumber(parent), name: FUSEBridge.name(name),
                                                        permissions: mode & 0o7777, caller: FUSEBridge.caller(req)), parent: parent)
            }
        }

        ops.unlink = { req, parent, name in
            let b = FUSEBridge.from(req)
            b.serve(req, "unlink", parent) { () throws(FSError) in
                try b.filesystem.unlink(parent: InodeNumber(parent), name: FUSEBridge.name(name), caller: FUSEBridge.caller(req))
                b.replyOK(req)
            }
        }

        ops.rmdir = { req, parent, name in
            let b = FUSEBridge.from(req)
            b.serve(req, "rmdir", parent) { () throws(FSError) in
                try b.filesystem.rmdir(parent: InodeNumber(parent), name: FUSEBridge.name(name), caller: FUSEBridge.caller(req))
                b.replyOK(req)
            }
        }

        ops.symlink = { req, link, parent, name in
            let b = FUSEBridge.from(req)
            b.serve(req, "symlink", parent) { () throws(FSError) in
                b.replyEntry(req, try b.filesystem.symlink(target: FUSEBridge.name(link), parent: InodeNumber(parent),
                                                          name: FUSEBridge.name(name), caller: FUSEBridge.caller(req)), parent: parent)
            }
        }

        ops.rename = { req, parent, name, newParent, newName, flags in
            let b = FUSEBridge.from(req)
            b.serve(req, "rename", parent) { () throws(FSError) in
                let stale = try b.filesystem.rename(parent: InodeNumber(parent), name: FUSEBridge.name(name), newParent: InodeNumber(newParent),
                                                    newName: FUSEBridge.name(newName), flags: MossaicFilesystem.RenameFlags(rawValue: flags),
                                                    caller: FUSEBridge.caller(req))
                b.replyOK(req)
                b.forgetNames(stale)
            }
        }

        ops.link = { req, ino, newParent, newName in
            let b = FUSEBridge.from(req)
            b.serve(req, "link", ino) { () throws(FSError) in
                b.replyEntry(req, try b.filesystem.link(InodeNumber(ino), newParent: InodeNumber(newParent), newName: FUSEBridge.name(newName),
                                                       caller: FUSEBridge.caller(req)), parent: newParent)
            }
        }

        ops.open = { req, ino, fi in
            let b = FUSEBridge.from(req)
            b.serve(req, "open", ino) { () throws(FSError) in
                guard let fi else { throw .invalidArgument }
                let access = fi.pointee.flags & O_ACCMODE
                // __FMODE_EXEC, which Glibc does not define: the kernel's flag for execve's open.
                let fmodeExec: Int32 = 0x20
                let mode = MossaicFilesystem.OpenMode(readable: access != O_WRONLY, writable: access != O_RDONLY,
                                                      truncate: fi.pointee.flags & O_TRUNC != 0, execute: fi.pointee.flags & fmodeExec != 0)
                let (handle, keepCache) = try b.filesystem.openKeepingCache(InodeNumber(ino), mode: mode, caller: FUSEBridge.caller(req))
                fi.pointee.fh = handle.rawValue
                fi.pointee.keep_cache = keepCache ? 1 : 0
                // Without keep_cache the kernel drops the file's pages at this open, but not the
                // size it cached: another host's commit may have changed it, and reads stop there.
                if !keepCache && b.filesystem.sharedAcrossHosts { b.invalidateAttributes(ino) }
                if fuse_reply_open(req, fi) != 0 { try? b.filesystem.release(InodeNumber(ino), handle: handle) }
            }
        }

        ops.create = { req, parent, name, mode, fi in
            let b = FUSEBridge.from(req)
            b.serve(req, "create", parent) { () throws(FSError) in
                guard let fi else { throw .invalidArgument }
                let (attrs, handle) = try b.filesystem.create(parent: InodeNumber(parent), name: FUSEBridge.name(name),
                                                              permissions: mode & 0o7777, caller: FUSEBridge.caller(req))
                fi.pointee.fh = handle.rawValue
                var e = b.entry(attrs, cacheable: b.filesystem.namesCacheable(in: InodeNumber(parent)))
                if fuse_reply_create(req, &e, fi) != 0 {
                    try? b.filesystem.release(attrs.ino, handle: handle)
                    b.filesystem.forget(attrs.ino, count: 1)
                }
            }
        }

        ops.read = { req, ino, size, off, fi in
            let b = FUSEBridge.from(req)
            b.serve(req, "read", ino) { () throws(FSError) in
                guard let fi, off >= 0 else { throw .invalidArgument }
                let pieces = try b.filesystem.readPieces(InodeNumber(ino), handle: HandleID(rawValue: fi.pointee.fh), offset: UInt64(off), size: size)
                FUSEBridge.replyData(req, pieces)
            }
        }

        ops.write = { req, ino, buf, size, off, fi in
            let b = FUSEBridge.from(req)
            b.serve(req, "write", ino) { () throws(FSError) in
                guard let fi, off >= 0 else { throw .invalidArgument }
                let n = try FUSEBridge.interruptible(req) { (interruption) throws(FSError) in
                    try b.filesystem.write(InodeNumber(ino), handle: HandleID(rawValue: fi.pointee.fh), offset: UInt64(off),
                                           data: UnsafeRawBufferPointer(start: buf, count: size), interruption: interruption)
                }
                fuse_reply_write(req, n)
            }
        }

        ops.flush = { req, ino, fi in
            let b = FUSEBridge.from(req)
            b.serve(req, "flush", ino) { () throws(FSError) in
                guard let fi else { throw .invalidArgument }
                // The owner's fcntl locks go after its data is committed (a host that takes the
                // lock next reads it), even if the commit failed, and before close(2) returns.
                do throws(FSError) {
                    try FUSEBridge.interruptible(req) { (interruption) throws(FSError) in
                        try b.filesystem.flush(InodeNumber(ino), handle: HandleID(rawValue: fi.pointee.fh), interruption: interruption)
                    }
                } catch {
                    b.filesystem.closed(InodeNumber(ino), owner: fi.pointee.lock_owner)
                    throw error
                }
                b.filesystem.closed(InodeNumber(ino), owner: fi.pointee.lock_owner)
                b.replyOK(req)
            }
        }

        ops.fsync = { req, ino, _, fi in
            let b = FUSEBridge.from(req)
            b.serve(req, "fsync", ino) { () throws(FSError) in
                guard let fi else { throw .invalidArgument }
                try FUSEBridge.interruptible(req) { (interruption) throws(FSError) in
                    try b.filesystem.fsync(InodeNumber(ino), handle: HandleID(rawValue: fi.pointee.fh), interruption: interruption)
                }
                b.replyOK(req)
            }
        }

        ops.release = { req, ino, fi in
            let b = FUSEBridge.from(req)
            b.serve(req, "release", ino) { () throws(FSError) in
                guard let fi else { throw .invalidArgument }
                // Locks first: the process that closed is gone from the caller's view already
                // (the kernel sends this after close(2) returned). Its data was committed at flush.
                b.filesystem.released(InodeNumber(ino), handle: HandleID(rawValue: fi.pointee.fh))
                try b.filesystem.release(InodeNumber(ino), handle: HandleID(rawValue: fi.pointee.fh))
                b.replyOK(req)
            }
        }

        ops.getlk = { req, ino, fi, lock in
            let b = FUSEBridge.from(req)
            b.serve(req, "getlk", ino) { () throws(FSError) in
                guard let fi, let lock else { throw .invalidArgument }
                let (kind, range) = try FUSEBridge.lockRequest(lock.pointee)
                var reply = lock.pointee
                reply.l_type = Int16(F_UNLCK)
                if let kind, let holder = try b.filesystem.getlk(InodeNumber(ino), kind, range, owner: fi.pointee.lock_owner) {
                    reply.l_type = Int16(holder.kind == .exclusive ? F_WRLCK : F_RDLCK)
                    reply.l_whence = Int16(SEEK_SET)
                    reply.l_start = off_t(holder.range.lowerBound)
                    // libfuse turns length 0 back into "to the end" (OFFSET_MAX).
                    reply.l_len = holder.range.upperBound >= UInt64(Int64.max) ? 0 : off_t(holder.range.upperBound - holder.range.lowerBound + 1)
                    reply.l_pid = pid_t(bitPattern: holder.pid)
                }
                fuse_reply_lock(req, &reply)
            }
        }

        ops.setlk = { req, ino, fi, lock, sleep in
            let b = FUSEBridge.from(req)
            b.serve(req, "setlk", ino) { () throws(FSError) in
                guard let fi, let lock else { throw .invalidArgument }
                let (kind, range) = try FUSEBridge.lockRequest(lock.pointee)
                try FUSEBridge.interruptible(req) { (interruption) throws(FSError) in
                    try b.filesystem.setlk(InodeNumber(ino), handle: HandleID(rawValue: fi.pointee.fh), kind, range, owner: fi.pointee.lock_owner,
                                           pid: UInt32(bitPattern: lock.pointee.l_pid), wait: sleep != 0, interruption: interruption)
                }
                b.replyOK(req)
            }
        }

        ops.flock = { req, ino, fi, op in
            let b = FUSEBridge.from(req)
            b.serve(req, "flock", ino) { () throws(FSError) in
                guard let fi else { throw .invalidArgument }
                let kind: LockKind?
                switch op & ~LOCK_NB {
                case LOCK_SH: kind = .shared
                case LOCK_EX: kind = .exclusive
                case LOCK_UN: kind = nil
                default: throw .invalidArgument
                }
                try FUSEBridge.interruptible(req) { (interruption) throws(FSError) in
                    try b.filesystem.flock(InodeNumber(ino), handle: HandleID(rawValue: fi.pointee.fh), kind, owner: fi.pointee.lock_owner,
                                           wait: op & LOCK_NB == 0,
                                           interruption: interruption)
                }
                b.replyOK(req)
            }
        }

        ops.opendir = { req, ino, fi in
            let b = FUSEBridge.from(req)
            b.serve(req, "opendir", ino) { () throws(FSError) in
                guard let fi else { throw .invalidArgument }
                let handle = try b.filesystem.opendir(InodeNumber(ino), caller: FUSEBridge.caller(req))
                fi.pointee.fh = handle.rawValue
                if fuse_reply_open(req, fi) != 0 { b.filesystem.releasedir(handle) }
            }
        }

        ops.readdir = { req, ino, size, off, fi in
            FUSEDirectoryReply.readdir(req, ino, size, off, fi, plus: false)
        }

        ops.readdirplus = { req, ino, size, off, fi in
            FUSEDirectoryReply.readdir(req, ino, size, off, fi, plus: true)
        }

        ops.releasedir = { req, _, fi in
            let b = FUSEBridge.from(req)
            if let fi { b.filesystem.releasedir(HandleID(rawValue: fi.pointee.fh)) }
            b.replyOK(req)
        }

        ops.fsyncdir = { req, ino, _, _ in
            let b = FUSEBridge.from(req)
            b.serve(req, "fsyncdir", ino) { () throws(FSError) in
                try b.filesystem.sync()
                b.replyOK(req)
            }
        }

        ops.statfs = { req, ino in
            let b = FUSEBridge.from(req)
            b.serve(req, "statfs", ino) { () throws(FSError) in
                let s = try b.filesystem.statfs()
                var st = statvfs()
                st.f_bsize = UInt(s.blockSize)
                st.f_frsize = UInt(s.blockSize)
                st.f_blocks = fsblkcnt_t(s.totalBlocks)
                st.f_bfree = fsblkcnt_t(s.freeBlocks)
                st.f_bavail = fsblkcnt_t(s.freeBlocks)
                st.f_files = fsfilcnt_t(s.totalInodes)
                st.f_ffree = fsfilcnt_t(s.freeInodes)
                st.f_favail = fsfilcnt_t(s.freeInodes)
                st.f_namemax = UInt(s.maxNameLength)
                fuse_reply_statfs(req, &st)
            }
        }

        ops.setxattr = { req, ino, name, value, size, flags in
            let b = FUSEBridge.from(req)
            b.serve(req, "setxattr", ino) { () throws(FSError) in
                let mode: MossaicFilesystem.XattrSetMode = switch (flags & Int32(XATTR_CREATE) != 0, flags & Int32(XATTR_REPLACE) != 0) {
                case (true, true): .createAndReplace
                case (true, false): .create
                case (false, true): .replace
                case (false, false): .any
                }
                let bytes = size == 0 ? [] : Array(UnsafeRawBufferPointer(start: value, count: size))
                try b.filesystem.setxattr(InodeNumber(ino), name: FUSEBridge.name(name), value: bytes, mode: mode, caller: FUSEBridge.caller(req))
                b.replyOK(req)
            }
        }

        ops.getxattr = { req, ino, name, size in
            let b = FUSEBridge.from(req)
            b.serve(req, "getxattr", ino) { () throws(FSError) in
                FUSEDirectoryReply.replySized(req, try b.filesystem.getxattr(InodeNumber(ino), name: FUSEBridge.name(name), caller: FUSEBridge.caller(req)), size)
            }
        }

        ops.listxattr = { req, ino, size in
            let b = FUSEBridge.from(req)
            b.serve(req, "listxattr", ino) { () throws(FSError) in
                FUSEDirectoryReply.replySized(req, try b.filesystem.listxattr(InodeNumber(ino), caller: FUSEBridge.caller(req)), size)
            }
        }

        ops.removexattr = { req, ino, name in
            let b = FUSEBridge.from(req)
            b.serve(req, "removexattr", ino) { () throws(FSError) in
                try b.filesystem.removexattr(InodeNumber(ino), name: FUSEBridge.name(name), caller: FUSEBridge.caller(req))
                b.replyOK(req)
            }
        }

        ops.fallocate = { req, ino, mode, offset, length, fi in
            let b = FUSEBridge.from(req)
            b.serve(req, "fallocate", ino) { () throws(FSError) in
                guard let fi, offset >= 0, length >= 0 else { throw .invalidArgument }
                // FALLOC_FL_KEEP_SIZE 0x01, PUNCH_HOLE 0x02 (the kernel lets it through only
                // with KEEP_SIZE), ZERO_RANGE 0x10. COLLAPSE_RANGE, INSERT_RANGE, UNSHARE_RANGE
                // and anything newer are EOPNOTSUPP (man page).
                let which: MossaicFilesystem.FallocateMode
                switch mode {
                case 0x00, 0x01: which = .allocate(keepSize: mode == 0x01)
                case 0x03: which = .punchHole
                case 0x10, 0x11: which = .zeroRange(keepSize: mode == 0x11)
                default: throw .notSupported
                }
                try b.filesystem.fallocate(InodeNumber(ino), handle: HandleID(rawValue: fi.pointee.fh), mode: which,
                                           offset: UInt64(offset), length: UInt64(length))
                b.replyOK(req)
            }
        }

        ops.lseek = { req, ino, off, whence, fi in
            let b = FUSEBridge.from(req)
            b.serve(req, "lseek", ino) { () throws(FSError) in
                guard let fi else { throw .invalidArgument }
                guard off >= 0 else { throw .noSuchAddress }  // as Linux: ENXIO, not EINVAL
                // The kernel handles SEEK_SET/CUR/END itself and asks only for SEEK_DATA (3) and
                // SEEK_HOLE (4), whose constants Glibc hides behind _GNU_SOURCE.
                let seekData: Int32 = 3, seekHole: Int32 = 4
                guard whence == seekData || whence == seekHole else { throw .invalidArgument }
                let position = try b.filesystem.lseek(InodeNumber(ino), handle: HandleID(rawValue: fi.pointee.fh),
                                                      offset: UInt64(off), data: whence == seekData)
                fuse_reply_lseek(req, off_t(position))
            }
        }

        ops.copy_file_range = { req, inIno, inOff, inFi, outIno, outOff, outFi, len, flags in
            let b = FUSEBridge.from(req)
            b.serve(req, "copy_file_range", inIno) { () throws(FSError) in
                guard let inFi, let outFi, inOff >= 0, outOff >= 0, flags == 0 else { throw .invalidArgument }
                let n = try b.filesystem.copyFileRange(from: InodeNumber(inIno), handle: HandleID(rawValue: inFi.pointee.fh), offset: UInt64(inOff),
                                                       to: InodeNumber(outIno), handle: HandleID(rawValue: outFi.pointee.fh), offset: UInt64(outOff),
                                                       length: UInt64(len))
                fuse_reply_write(req, Int(n))
            }
        }

        ops.access = { req, ino, mask in
            let b = FUSEBridge.from(req)
            b.serve(req, "access", ino) { () throws(FSError) in
                try b.filesystem.access(InodeNumber(ino), AccessMask(rawValue: UInt32(mask) & 7), caller: FUSEBridge.caller(req))
                b.replyOK(req)
            }
        }

        // Control requests of the `mossaicfs` command (ControlRequest): only "snapshot now"
        // comes by ioctl. Anything else is ENOTTY, as before this op existed (lsattr and the
        // like); who may ask is decided by `control`, for every request.
        ops.ioctl = { req, ino, cmd, _, _, _, _, _, outSize in
            let b = FUSEBridge.from(req)
            b.serve(req, "ioctl", ino) { () throws(FSError) in
                guard cmd == ControlRequest.snapshotIoctl, outSize >= ControlRequest.replySize else { throw .unknownRequest }
                var reply = [UInt8](repeating: 0, count: ControlRequest.replySize)
                let id = Array(try b.filesystem.control(.snapshot, caller: FUSEBridge.caller(req)).utf8.prefix(ControlRequest.replySize - 1))
                reply.replaceSubrange(0..<id.count, with: id)
                reply.withUnsafeBytes { _ = fuse_reply_ioctl(req, 0, $0.baseAddress, $0.count) }
            }
        }

        return ops
    }
}
