#if canImport(Glibc)
import Glibc
#endif
internal import CFuse
import Logging
import MossaicCore
import MossaicFS

/// Errors of mounting and serving; one line each.
public enum FUSEError: Error, Equatable, Sendable, CustomStringConvertible {
    case invalidOptions(String)
    case mountFailed(String)
    case loopFailed(Int32)

    public var description: String {
        switch self {
        case .invalidOptions(let why): "invalid FUSE options: \(why)"
        case .mountFailed(let why): why
        case .loopFailed(let code): "FUSE session ended with error \(code)"
        }
    }
}

/// Mounts a `MossaicFilesystem` at a mountpoint and serves it with libfuse's multi-threaded
/// low-level loop until it is unmounted (umount, fusermount3 -u) or the daemon gets
/// SIGTERM/SIGINT/SIGHUP.
///
/// Lifecycle as an unwind ladder (libfuse's passthrough_ll.c): session → signal handlers →
/// mount → loop → unmount → remove handlers → destroy, each undone by a `defer` in reverse.
public enum FUSESession {
    public struct Configuration: Sendable {
        public var mountpoint: String
        /// Options for libfuse and the kernel (`-o` form, without the `-o`): fsname, subtype,
        /// allow_other, default_permissions, ro, and libfuse's generic options.
        public var fuseOptions: [String]
        /// The mount options the session reads: `debug`, `threads`, the kernel cache
        /// lifetimes and `acl`.
        public var options: MountConfiguration
        public init(mountpoint: String, fuseOptions: [String], options: MountConfiguration) {
            self.mountpoint = mountpoint; self.fuseOptions = fuseOptions; self.options = options
        }
    }

    /// Mounts, calls `mounted` once the kernel mount exists, and serves until unmounted.
    /// Then commits what is pending (`filesystem.shutdown()`) before returning.
    public static func run(_ filesystem: MossaicFilesystem, _ configuration: Configuration, logger: Logger,
                           mounted: () -> Void) throws(FUSEError) {
        FUSELog.install(logger)
        let bridge = FUSEBridge(filesystem: filesystem, logger: logger,
                                entryTimeout: configuration.options.entryTimeout,
                                attributeTimeout: configuration.options.attributeTimeout, posixACL: configuration.options.posixACL)
        let userdata = Unmanaged.passRetained(bridge)
        defer { userdata.release() }

        // argv for fuse_session_new. The strings are ours (strdup) and freed after destroy.
        var argv: [UnsafeMutablePointer<CChar>?] = [strdup("mossaicfs")]
        if configuration.options.debug { argv.append(strdup("-d")) }
        if !configuration.fuseOptions.isEmpty {
            argv.append(strdup("-o"))
            argv.append(strdup(configuration.fuseOptions.joined(separator: ",")))
        }
        defer { for p in argv { free(p) } }

        var ops = FUSEOperations.make()
        let session: OpaquePointer? = argv.withUnsafeMutableBufferPointer { buf in
            var args = fuse_args(argc: Int32(buf.count), argv: buf.baseAddress, allocated: 0)
            return fuse_session_new(&args, &ops, MemoryLayout<fuse_lowlevel_ops>.size, userdata.toOpaque())
        }
        guard let session else {
            throw .invalidOptions(FUSELog.lastMessage() ?? configuration.fuseOptions.joined(separator: ","))
        }
        defer { fuse_session_destroy(session) }
        bridge.session.withLock { $0 = SessionReference(session: session) }
        defer { bridge.session.withLock { $0 = nil } }

        guard fuse_set_signal_handlers(session) == 0 else { throw .mountFailed("cannot install signal handlers") }
        defer { fuse_remove_signal_handlers(session) }

        guard fuse_session_mount(session, configuration.mountpoint) == 0 else {
            throw .mountFailed("cannot mount on \(configuration.mountpoint): \(FUSELog.lastMessage() ?? "fuse_session_mount failed")")
        }
        var unmounted = false
        defer { if !unmounted { fuse_session_unmount(session) } }
        // The device is read through FUSETmpfile, which serves O_TMPFILE (libfuse 3.14 cannot).
        var io = FUSETmpfile.io()
        guard fuse_session_custom_io(session, &io, fuse_session_fd(session)) == 0 else {
            throw .mountFailed("cannot set up the FUSE device's reads: \(FUSELog.lastMessage() ?? "fuse_session_custom_io failed")")
        }

        logger.info("mounted", metadata: ["mountpoint": "\(configuration.mountpoint)", "store": "\(filesystem.storeName)"])
        mounted()

        let loopConfig = fuse_loop_cfg_create()
        fuse_loop_cfg_set_max_threads(loopConfig, UInt32(configuration.options.maxThreads))
        fuse_loop_cfg_set_clone_fd(loopConfig, 1)
        let rc = fuse_session_loop_mt(session, loopConfig)
        fuse_loop_cfg_destroy(loopConfig)

        // The kernel is gone (or leaving): commit whatever open files still buffer, then
        // detach the mount if a signal, not umount, ended the loop.
        let failures = filesystem.shutdown()
        for (ino, error) in failures {
            logger.error("could not commit at unmount", metadata: ["ino": "\(ino.rawValue)", "error": "\(error)"])
        }
        fuse_session_unmount(session)
        unmounted = true
        logger.info("unmounted", metadata: ["mountpoint": "\(configuration.mountpoint)"])
        // A signal ends the loop with its number (SIGTERM → 15): an orderly stop, not an error.
        if rc < 0 { throw .loopFailed(rc) }
    }
}
