#if canImport(Glibc)
import Glibc
#endif
internal import CFuse
import Logging
import MossaicCore
import MossaicFS
import Synchronization

/// The state libfuse's callbacks reach through `fuse_req_userdata`: the filesystem, the logger
/// and the cache timeouts handed to the kernel. Every reply to the kernel is sent from the
/// helpers here, so each request is answered exactly once.
/// A request, to read its caller's supplementary groups lazily. Valid only while the callback
/// that received it runs — a `Caller` never outlives its request. @unchecked: a C handle.
struct RequestReference: @unchecked Sendable {
    let req: fuse_req_t?

    func groups() -> [UInt32] {
        var list = [gid_t](repeating: 0, count: 64)
        var n = fuse_req_getgroups(req, Int32(list.count), &list)
        if n > Int32(list.count) {
            list = [gid_t](repeating: 0, count: Int(n))
            n = fuse_req_getgroups(req, Int32(list.count), &list)
        }
        return n > 0 ? Array(list.prefix(Int(n))) : []
    }
}

/// The session, for notifications to the kernel. @unchecked: a C handle, set once the session
/// exists and cleared before it is destroyed; libfuse allows notifications from any thread.
struct SessionReference: @unchecked Sendable {
    let session: OpaquePointer
}

final class FUSEBridge: Sendable {
    let filesystem: MossaicFilesystem
    let logger: Logger
    /// How long the kernel may trust an entry or attributes without asking again. With SQLite
    /// all changes go through this mount (single writer), so the kernel's own invalidation keeps
    /// them right; with PostgreSQL other hosts' changes show after these timeouts, and a file's
    /// at its next open (close-to-open: `invalidateAttributes`).
    let entryTimeout: Double
    let attributeTimeout: Double
    /// Ask the kernel for POSIX ACL support (`-o acl`).
    let posixACL: Bool
    let session = Mutex<SessionReference?>(nil)

    init(filesystem: MossaicFilesystem, logger: Logger, entryTimeout: Double, attributeTimeout: Double, posixACL: Bool) {
        self.filesystem = filesystem
        self.logger = logger
        self.entryTimeout = entryTimeout
        self.attributeTimeout = attributeTimeout
        self.posixACL = posixACL
    }

    static func from(_ req: fuse_req_t?) -> FUSEBridge {
        Unmanaged<FUSEBridge>.fromOpaque(fuse_req_userdata(req)!).takeUnretainedValue()
    }

    static func caller(_ req: fuse_req_t?) -> Caller {
        guard let ctx = fuse_req_ctx(req) else { return .root }
        let request = RequestReference(req: req)
        return Caller(uid: ctx.pointee.uid, gid: ctx.pointee.gid, pid: UInt32(bitPattern: ctx.pointee.pid), umask: ctx.pointee.umask,
                      supplementaryGroups: { request.groups() })
    }

    static func name(_ p: UnsafePointer<CChar>?) -> [UInt8] {
        guard let p else { return [] }
        return Array(UnsafeRawBufferPointer(start: p, count: strlen(p)))
    }

    /// `cacheable`: the kernel may keep the name (`MossaicFilesystem.namesCacheable`); if not,
    /// every walk through it comes back to lookup.
    func entry(_ attrs: FileAttributes, cacheable: Bool) -> fuse_entry_param {
        var e = fuse_entry_param()
        e.ino = fuse_ino_t(attrs.ino.rawValue)
        e.generation = attrs.generation
        e.attr = attrs.stat
        e.attr_timeout = attributeTimeout
        e.entry_timeout = cacheable ? entryTimeout : 0
        return e
    }

    /// Makes the kernel drop `stale` names from its cache. Only after the reply to the request
    /// that made them stale (`MossaicFilesystem.StaleNames`).
    func forgetNames(_ stale: MossaicFilesystem.StaleNames) {
        guard !stale.names.isEmpty, let se = session.withLock({ $0 })?.session else { return }
        for name in stale.names {
            let cString = name.map { CChar(bitPattern: $0) } + [0]
            // ENOENT (the kernel had not cached it) is the expected outcome for many.
            _ = fuse_lowlevel_notify_inval_entry(se, fuse_ino_t(stale.directory.rawValue), cString, name.count)
        }
    }

    /// Makes the kernel ask for `ino`'s attributes again before it trusts its cached size (its
    /// pages are not touched: offset -1). Sent before the reply to the open that found the file
    /// changed, so the caller's first read already sees the new size; no kernel lock an open
    /// holds is one this notification takes.
    func invalidateAttributes(_ ino: fuse_ino_t) {
        guard let se = session.withLock({ $0 })?.session else { return }
        _ = fuse_lowlevel_notify_inval_inode(se, ino, -1, 0)
    }

    // MARK: Replies (each request is answered by exactly one of these)

    /// Logs a failure once and answers it with the errno from the one table. Expected outcomes
    /// (ENOENT on lookup, EEXIST, ...) are debug-level; I/O errors are errors.
    func fail(_ req: fuse_req_t?, _ error: FSError, _ op: StaticString, _ ino: UInt64) {
        if case .io = error {
            logger.error("\(op) failed", metadata: ["ino": "\(ino)", "errno": "\(error.errno)", "error": "\(error)"])
        } else {
            logger.debug("\(op): \(error)", metadata: ["ino": "\(ino)"])
        }
        fuse_reply_err(req, error.errno)
    }

    /// An entry reply for a name in directory `parent`.
    func replyEntry(_ req: fuse_req_t?, _ attrs: FileAttributes, parent: fuse_ino_t) {
        var e = entry(attrs, cacheable: filesystem.namesCacheable(in: InodeNumber(parent)))
        if fuse_reply_entry(req, &e) != 0 {
            // The kernel did not take the reference (request interrupted): undo it.
            filesystem.forget(attrs.ino, count: 1)
        }
    }

    func replyAttr(_ req: fuse_req_t?, _ attrs: FileAttributes) {
        var st = attrs.stat
        fuse_reply_attr(req, &st, attributeTimeout)
    }

    func replyOK(_ req: fuse_req_t?) { fuse_reply_err(req, 0) }

    /// Runs `body` with an `Interruption` that libfuse trips when the kernel forwards an
    /// INTERRUPT for `req` (its caller got a signal). Reply only after this returns: the
    /// callback is unregistered on the way out, and libfuse runs it under the request's lock,
    /// which unregistering takes too — so afterwards none runs, and the reference handed to C
    /// can be dropped; a reply frees the request, after which it must not be touched.
    static func interruptible<T>(_ req: fuse_req_t?, _ body: (Interruption) throws(FSError) -> T) throws(FSError) -> T {
        let interruption = Interruption()
        let context = Unmanaged.passRetained(interruption)
        fuse_req_interrupt_func(req, { _, data in
            guard let data else { return }
            Unmanaged<Interruption>.fromOpaque(data).takeUnretainedValue().interrupt()
        }, context.toOpaque())
        defer {
            fuse_req_interrupt_func(req, nil, nil)
            context.release()
        }
        return try body(interruption)
    }

    /// The kind (nil: F_UNLCK) and inclusive byte range of an fcntl lock request, as libfuse
    /// hands it over: `l_start` from the file's start, `l_len` 0 for "to the end" (OFFSET_MAX).
    static func lockRequest(_ lock: flock) throws(FSError) -> (LockKind?, ClosedRange<UInt64>) {
        let kind: LockKind?
        switch Int32(lock.l_type) {
        case F_RDLCK: kind = .shared
        case F_WRLCK: kind = .exclusive
        case F_UNLCK: kind = nil
        default: throw .invalidArgument
        }
        guard lock.l_start >= 0, lock.l_len >= 0 else { throw .invalidArgument }
        let start = UInt64(lock.l_start)
        let end = lock.l_len == 0 ? UInt64(Int64.max) : start + UInt64(lock.l_len) - 1
        guard end >= start else { throw .invalidArgument }
        return (kind, start...end)
    }

    /// Replies to a read with `pieces` in order, straight from their buffers: one iovec each,
    /// so the bytes are copied once, by the kernel, and never gathered into a reply buffer.
    static func replyData(_ req: fuse_req_t?, _ pieces: [ArraySlice<UInt8>]) {
        if pieces.count <= 1 {
            (pieces.first ?? []).withUnsafeBytes { raw in
                _ = fuse_reply_buf(req, raw.baseAddress?.assumingMemoryBound(to: CChar.self), raw.count)
            }
            return
        }
        var vectors = [iovec](repeating: iovec(), count: pieces.count)
        // Each piece's address is valid only inside its withUnsafeBytes: nest them, reply innermost.
        func pin(_ i: Int) {
            guard i < pieces.count else {
                vectors.withUnsafeBufferPointer { v in _ = fuse_reply_iov(req, v.baseAddress, Int32(v.count)) }
                return
            }
            pieces[i].withUnsafeBytes { raw in
                vectors[i] = iovec(iov_base: UnsafeMutableRawPointer(mutating: raw.baseAddress), iov_len: raw.count)
                pin(i + 1)
            }
        }
        pin(0)
    }

    /// Answers that are errnos to the kernel but the normal outcome of asking, not failures:
    /// a lookup of a name that does not exist (every shell, `make` and compiler probes paths),
    /// a getxattr of an attribute the file does not have (`ls`, `cp -a` and SELinux ask for
    /// security.* and system.posix_acl_* on every file), and an ioctl this filesystem does not
    /// serve (isatty(3) is an ioctl: Python's open() asks it of every file), and a lock another
    /// owner holds, to F_SETLK or LOCK_NB (a try-lock's "no"). Counting them would
    /// bury real errors in `mossaicfs_fuse_errors_total`. (ERANGE of a too-small getxattr or
    /// listxattr buffer is a reply, not a thrown error, and so is never counted either.)
    static func isNegativeAnswer(_ error: FSError, _ op: StaticString) -> Bool {
        switch (error, "\(op)") {
        case (.notFound, "lookup"), (.noAttribute, "getxattr"), (.unknownRequest, "ioctl"), (.wouldBlock, "setlk"), (.wouldBlock, "flock"): true
        default: false
        }
    }

    /// Runs `body`, answering its error if it throws. `body` sends the success reply itself.
    /// Every op is counted and timed (`mossaicfs_fuse_ops_total`, `…_duration_seconds`), and
    /// its failures counted by errno (negative answers aside: `isNegativeAnswer`).
    func serve(_ req: fuse_req_t?, _ op: StaticString, _ ino: UInt64, _ body: () throws(FSError) -> Void) {
        let started = Timestamp.monotonicNow()
        let name = "\(op)"
        do {
            try body()
        } catch {
            // Counted before the answer: once the caller has its error, a scrape must show it.
            if !Self.isNegativeAnswer(error, op) {
                filesystem.metrics.increment("mossaicfs_fuse_errors_total", "FUSE operations answered with an error.",
                                             labels: [("op", name), ("errno", "\(error.errno)")])
            }
            fail(req, error, op, ino)
        }
        filesystem.metrics.observe("mossaicfs_fuse_op_duration_seconds", "FUSE operation latency by operation.",
                                   labels: [("op", name)], seconds: Timestamp.monotonicNow().secondsSince(started))
    }
}
