#if canImport(Glibc)
import Glibc
#endif
internal import CFuse
import Logging
import MossaicCore
import MossaicFS

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

final class FUSEBridge: Sendable {
    let filesystem: MossaicFilesystem
    let logger: Logger
    /// How long the kernel may trust an entry or attributes without asking again. All changes
    /// go through this mount (single writer), so the kernel's own invalidation keeps them right.
    let entryTimeout: Double
    let attributeTimeout: Double
    /// Ask the kernel for POSIX ACL support (`-o acl`).
    let posixACL: Bool

    init(filesystem: MossaicFilesystem, logger: Logger, entryTimeout: Double, attributeTimeout: Double, posixACL: Bool) {
        self.filesystem = filesystem
        self.logger = logger
        self.entryTimeout = entryTimeout
        self.attributeTimeout = attributeTimeout
        self.posixACL = posixACL
    }

    /// POSIX ACLs live in `system.posix_acl_*` attributes; without `-o acl` they are not
    /// supported (EOPNOTSUPP, as on ext4 mounted noacl), rather than stored and ignored.
    func checkACLName(_ name: UnsafePointer<CChar>?) throws(FSError) {
        guard !posixACL, let name else { return }
        if Self.name(name).starts(with: Array("system.posix_acl_".utf8)) { throw .notSupported }
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

    func entry(_ attrs: FileAttributes) -> fuse_entry_param {
        var e = fuse_entry_param()
        e.ino = fuse_ino_t(attrs.ino.rawValue)
        e.generation = attrs.generation
        e.attr = attrs.stat
        e.attr_timeout = attributeTimeout
        e.entry_timeout = entryTimeout
        return e
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

    func replyEntry(_ req: fuse_req_t?, _ attrs: FileAttributes) {
        var e = entry(attrs)
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

    /// Runs `body`, answering its error if it throws. `body` sends the success reply itself.
    /// Every op is counted and timed (`mossaicfs_fuse_ops_total`, `…_duration_seconds`), and
    /// its failures counted by errno.
    func serve(_ req: fuse_req_t?, _ op: StaticString, _ ino: UInt64, _ body: () throws(FSError) -> Void) {
        let started = Timestamp.monotonicNow()
        let name = "\(op)"
        do {
            try body()
        } catch {
            fail(req, error, op, ino)
            filesystem.metrics.increment("mossaicfs_fuse_errors_total", "FUSE operations answered with an error.",
                                         labels: [("op", name), ("errno", "\(error.errno)")])
        }
        filesystem.metrics.observe("mossaicfs_fuse_op_duration_seconds", "FUSE operation latency by operation.",
                                   labels: [("op", name)], seconds: Timestamp.monotonicNow().secondsSince(started))
    }
}
