#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import MossaicCore
import MossaicFS
import MossaicMount

/// `mossaicfs umount MOUNTPOINT`: unmounts, then returns once the daemon has stored everything
/// it held and exited — unlike umount(2), which returns as soon as the kernel lets go, while the
/// daemon still uploads and publishes its final metadata snapshot. Also reached as
/// `umount.fuse.mossaicfs MOUNTPOINT [-nlfvr] [-t TYPE] [-N NS]`, the helper umount(8) runs for
/// a fuse.mossaicfs mount when it is installed (the package installs it), so a plain `umount`
/// waits too.
///
/// It learns the daemon from the mount's registration (/run/mossaicfs, MountRegistry) and waits
/// on its cache_dir's lock, which the daemon holds until it exits; the daemon writes there
/// whether it stored everything (CacheDirectory.Holder.finished).
struct UmountCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "umount",
        abstract: "Unmount MOUNTPOINT; return once its daemon has stored everything and exited.",
        discussion: """
        Exit status 0 when the daemon stored everything; 1 when MOUNTPOINT is not a mossaicfs \
        mount, is busy, or the daemon could not store everything (the next mount with the same \
        cache_dir stores the rest). A wait longer than a second is said in one line. With -l the \
        mount is detached at once and the daemon finishes when the last open file is closed; \
        umount does not wait for it then. umount(8) runs this for fuse.mossaicfs mounts through \
        the helper umount.fuse.mossaicfs.
        """)

    @Argument(help: "The mountpoint of a mossaicfs mount.")
    var mountpoint: String

    @Flag(name: [.customShort("l"), .long], help: "Detach now (lazy unmount); do not wait for the daemon.")
    var lazy = false

    @Flag(name: [.customShort("f"), .long], help: "Force the unmount (MNT_FORCE): requests in flight fail.")
    var force = false

    // What umount(8) passes to a helper: accepted and ignored (-n no mtab, -v verbose, -r
    // remount read-only on failure), the type and a namespace.
    @Flag(name: .customShort("n"), help: .hidden) var noMtab = false
    @Flag(name: .customShort("v"), help: .hidden) var verbose = false
    @Flag(name: .customShort("r"), help: .hidden) var readOnlyOnFailure = false
    @Option(name: .customShort("t"), help: .hidden) var type: String?
    @Option(name: .customShort("N"), help: .hidden) var namespace: String?

    func run() throws {
        let path = StoreFactory.canonicalPath(mountpoint)
        guard let mount = MountTable.mount(at: path) else { throw failure("\(path) is not mounted") }
        guard mount.type == "fuse.mossaicfs" else { throw failure("\(path) is a \(mount.type) mount, not mossaicfs") }
        // Opened before unmounting: the registration goes when the daemon sees the unmount.
        let daemon = DaemonLock(mount: mount)
        let exit = daemon.flatMap { pid_t($0.pid) }.flatMap { ProcessExitWatch(pid: $0) }
        // On a terminal, what the daemon stores after the unmount (staged chunks, the final
        // metadata snapshot) is shown with rate and ETA: its control socket streams progress
        // lines until the daemon exits.
        let followers = WorkerPool(threads: 1, name: "mossaicfs-progress")
        defer { followers.stop() }
        if !lazy, isatty(2) == 1, let daemon {
            let socket = daemon.cacheDirectory + "/control.sock"
            followers.run {
                let bar = ProgressBar(unit: .bytes)
                _ = try? ControlClient.request(.progress, socket: socket, target: path) { bar.show($0) }
                bar.finish()
            }
        }
        try unmount(path)
        guard !lazy else { return }
        guard let daemon else {
            Console.error("unmounted \(path), but its daemon did not register in \(MountRegistry.directory), so there is no telling when it has stored everything")
            return
        }
        defer { close(daemon.fd) }
        let outcome: CacheDirectory.LockOutcome
        do {
            outcome = try CacheDirectory.lock(daemon.fd, path: daemon.path, exclusive: false, timeout: CacheDirectory.finishingWait, tellAfter: 1) {
                Console.error("waiting for the daemon (pid \($0.pid)) to finish storing what it holds …")
            }
        } catch {
            throw failure("unmounted \(path), but cannot wait for its daemon: \(error)")
        }
        switch outcome {
        case .acquired:
            let holder = CacheDirectory.Holder(CacheDirectory.readAll(daemon.fd))
            flock(daemon.fd, LOCK_UN)
            // The lock goes when the daemon closes its descriptors, a moment before it has exited.
            if let exit, !exit.wait(seconds: CacheDirectory.finishingWait) {
                throw failure("unmounted \(path); its daemon (pid \(daemon.pid)) has let go of its cache_dir but not exited within \(Int(CacheDirectory.finishingWait)) s")
            }
            // Another process took the lock since: the daemon had finished; what it wrote is gone.
            guard holder.pid == daemon.pid else { return }
            switch holder.finished {
            case "ok":
                return
            case let failed?:
                throw failure("unmounted \(path), but its daemon (pid \(daemon.pid)) could not store everything (\(failed)); the next mount with cache_dir \(daemon.cacheDirectory) stores the rest")
            case nil:
                throw failure("unmounted \(path), but its daemon (pid \(daemon.pid)) exited before it finished storing; the next mount with cache_dir \(daemon.cacheDirectory) stores the rest")
            }
        case .inUse:
            return  // a new mount, fsck or gc holds it: the daemon is gone
        case .timedOut:
            throw failure("unmounted \(path), but its daemon (pid \(daemon.pid)) is still storing after \(Int(CacheDirectory.finishingWait)) s; it goes on in the background (see its log)")
        }
    }

    /// umount2(2) as root; fusermount3 -u for the user who mounted it.
    private func unmount(_ path: String) throws {
        if geteuid() == 0 {
            let flags = (lazy ? Int32(MNT_DETACH) : 0) | (force ? Int32(MNT_FORCE) : 0)
            guard umount2(path, flags) == 0 else {
                let why = errno
                if why == EBUSY {
                    throw failure("\(path) is busy: a process has a file or its working directory there (see fuser -vm \(path)); close them, or detach it with -l")
                }
                throw failure("cannot unmount \(path): \(String(cString: strerror(why)))")
            }
            return
        }
        let status = Self.runProgram(["fusermount3", "-u"] + (lazy ? ["-z"] : []) + [path])
        // fusermount3 said why on stderr.
        guard status == 0 else { throw ExitCode.failure }
    }

    /// Runs a program found in PATH with this process's stdio; returns its exit status.
    private static func runProgram(_ argv: [String]) -> Int32 {
        var cArgs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
        defer { for p in cArgs { free(p) } }
        var pid: pid_t = 0
        let rc = posix_spawnp(&pid, argv[0], nil, nil, &cArgs, environ)
        guard rc == 0 else {
            Console.error("cannot run \(argv[0]): \(String(cString: strerror(rc)))")
            return 127
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        return status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    }

    private func failure(_ message: String) -> ExitCode {
        Console.error(message)
        return ExitCode.failure
    }
}

/// The lock file of the daemon serving a mount, open for waiting on.
private struct DaemonLock {
    let cacheDirectory: String
    let path: String
    let fd: Int32
    let pid: String

    /// Nil when the mount has no registration, or its cache_dir's lock names another mount.
    init?(mount: MountTable.Entry) {
        guard let cacheDirectory = MountRegistry.cacheDirectory(of: mount.mountpoint) else { return nil }
        let path = CacheDirectory.lockPath(of: cacheDirectory)
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        let holder = CacheDirectory.Holder(CacheDirectory.readAll(fd))
        guard holder.device == mount.device else { close(fd); return nil }
        self.cacheDirectory = cacheDirectory; self.path = path; self.fd = fd; self.pid = holder.pid
    }
}
