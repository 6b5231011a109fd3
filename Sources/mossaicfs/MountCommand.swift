#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Logging
import MossaicCore
import MossaicFS
import MossaicFUSE
import MossaicMount
import MossaicObjectStore

/// `mossaicfs mount SOURCE MOUNTPOINT [-o opts] [-f]`, also reached as
/// `mossaicfs SOURCE MOUNTPOINT -o opts` (the mount-helper form mount.fuse3 runs).
///
/// Without `-f` it returns only when the mount is live (exit 0), or prints why it is not
/// (exit 1); the daemon keeps running in the background until the filesystem is unmounted.
struct MountCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mount",
        abstract: "Mount the filesystem in SOURCE on MOUNTPOINT.",
        // Written out: the generated one is wider than 80 columns, and ArgumentParser does not
        // wrap usage lines. Options below are pre-wrapped at 79 columns (see MossaicCommand).
        usage: "mossaicfs mount <source> <mountpoint> [-o <options> ...] [-f] [-d]",
        discussion: """
        On a machine without the filesystem's metadata (an empty cache_dir) mount restores it from \
        the store's newest snapshot first, showing progress on a terminal. A filesystem \
        formatted with --meta postgres://… connects to that database instead (libpq reads the \
        password and what the URL leaves out from PGPASSWORD, PGPASSFILE, ~/.pgpass and PG*): \
        no local metadata, no snapshots, no lease; several hosts may mount it read-write.

        Options (-o, comma-separated; see mossaicfs(8)):
        \(MountOptions.helpTable(.mount))

        Metadata snapshots and the single-writer lease:
        \(MountOptions.helpTable(.metadata))

        Encrypted filesystems (format --encrypt):
        \(MountOptions.helpTable(.encryption))

        S3 sources (s3://bucket/prefix):
          endpoint=URL          S3 endpoint (default AWS_ENDPOINT_URL_S3,
                                AWS_ENDPOINT_URL, AWS)
          region=NAME           region (default AWS_REGION, AWS_DEFAULT_REGION,
                                us-east-1)
          credentials=FILE      access key in AWS shared-credentials format (no secrets
                                in fstab)
          profile=NAME          profile in the credentials file (default: default)
          addressing=path|virtual   request style (default: virtual for AWS, path
                                otherwise)
          ca_file=FILE          CA certificates for TLS verification (default
                                AWS_CA_BUNDLE)
          max_connections=N     parallel requests (default 16)
          retries=N             attempts per request, with backoff (default 8)
          timeout=S             the longest one request may take, retries included
                                (default 60): close/fsync fail with EIO after about
                                that on a stalled store
          list_page_size=N      keys per listing request (default 1000)
          upload_checksum=crc32c|sha256   how S3 checks a pack on upload: signed
                                CRC-32C header (default) or a SHA-256 signature per
                                chunk

        libfuse's and the kernel's generic options (auto_unmount, allow_root, noatime, nosuid, \
        nodev, noexec, max_read=, subtype=, …) are passed through; fstab-only options (defaults, \
        _netdev, nofail, noauto, user, x-*, comment=) are ignored. An unknown option is an error, \
        and so is a number outside its range (see mossaicfs(8)); the error names the range.
        """)

    @Argument(help: "The filesystem: a local directory or s3://bucket/prefix, formatted with `mossaicfs format`.")
    var source: String

    @Argument(help: "An existing directory to mount on.")
    var mountpoint: String

    @Option(name: .customShort("o"), help: ArgumentHelp("Mount options, comma-separated.", valueName: "options"))
    var options: [String] = []

    @Flag(name: [.customShort("f"), .long], help: "Stay in the foreground; log to stderr.")
    var foreground = false

    @Flag(name: .customShort("d"), help: "Debug: stay in the foreground and log every request.")
    var debugForeground = false

    // Flags mount.fuse3 and mount(8) may pass: accepted and ignored (-s single-threaded,
    // -n no mtab, -v verbose).
    @Flag(name: .customShort("s"), help: .hidden) var singleThreaded = false
    @Flag(name: .customShort("n"), help: .hidden) var noMtab = false
    @Flag(name: .customShort("v"), help: .hidden) var verbose = false
    /// mount(8) passes the type (-t fuse.mossaicfs) and a namespace (-N) to mount helpers.
    @Option(name: .customShort("t"), help: .hidden) var type: String?
    @Option(name: .customShort("N"), help: .hidden) var namespace: String?

    /// Internal: the descriptor to report readiness on (set by `mount` for its daemon, and by
    /// tests and supervisors that start the daemon in the foreground themselves).
    @Option(name: .long, help: .hidden) var readyFd: Int32?

    /// Internal: started by `mount` in the background: log to syslog.
    @Flag(name: .long, help: .hidden) var daemon = false

    func run() throws {
        if !foreground && !debugForeground {
            // The daemon gets the explicit form, whichever form this process was called by.
            let arguments = ["mount", source, mountpoint] + options.flatMap { ["-o", $0] } + ["--daemon"]
            throw ExitCode(Daemon.spawnAndWait(arguments: arguments))
        }
        // glibc's malloc, tuned for chunk-sized buffers (docs/BENCHMARKS.md, session 6):
        // - ONE arena: glibc would give each of ~30 threads its own, each keeping freed memory;
        //   one heap keeps the footprint near what is in use (two gave a higher peak RSS).
        // - mmap threshold 2 MiB: 1 MiB chunk buffers come from that heap and are reused. Mapped
        //   afresh each time (threshold 256 KiB, until session 5) every buffer cost 256 page
        //   faults: a quarter of the daemon's CPU on reads and writes (perf). Larger buffers (a
        //   pack joined into one body for a store that takes it whole) are still mapped and
        //   unmapped, so their memory goes back at once.
        MallocControl.set(.arenaMax, 1)
        MallocControl.set(.mmapThreshold, 2 << 20)
        let parsed: MountConfiguration
        do {
            parsed = try MountOptions.parse(options)
        } catch {
            fail("\(error)")
        }
        let logLevel = parsed.logLevel ?? (parsed.debug || debugForeground ? .debug : .info)
        let logSink: LogSink
        let logDestination = LogDestination.resolve(option: parsed.log, foreground: !daemon,
                                                    syslogAvailable: PosixFiles.exists(LogDestination.syslogSocket))
        do {
            logSink = try LogSink(logDestination)
        } catch {
            fail("\(error)")
        }
        LoggingSystem.bootstrap { label in
            var handler = DaemonLogHandler(label: label, sink: logSink)
            handler.logLevel = logLevel
            return handler
        }
        let logger = Logger(label: "mossaicfs")

        let mountpointPath = StoreFactory.canonicalPath(mountpoint)
        var st = stat()
        guard stat(mountpointPath, &st) == 0 else { fail("mountpoint \(mountpointPath): \(String(cString: strerror(errno)))") }
        guard st.st_mode & S_IFMT == S_IFDIR else { fail("mountpoint \(mountpointPath) is not a directory") }
        if !parsed.nonempty { checkVacant(mountpointPath) }

        let metrics = Metrics()
        // Long tasks (the metadata restore now, the unmount flush at the end) are shown on the
        // terminal of whoever waits: the foreground daemon's own, or, for a background daemon,
        // that of `mount`, which prints the lines the daemon sends up the readiness pipe.
        let bar = ProgressBar(unit: .bytes, terminal: !daemon && isatty(2) == 1)
        let restoreProgress: @Sendable (ProgressEvent) -> Void
        if daemon, let readyFd {
            restoreProgress = { event in Console.write(readyFd, event.line) }
        } else {
            restoreProgress = { event in bar.show(event) }
        }
        let opened: FilesystemLoader.Opened
        let store: InstrumentedObjectStore
        do {
            let base = try StoreFactory.open(source, options: parsed.store, create: false, logger: logger)
            store = InstrumentedObjectStore(base, metrics: metrics)
            // The key is checked before the cache_dir is even opened: a missing or wrong one
            // fails the mount having read nothing but the superblock.
            let superblock = try Superblock.load(from: store)
            let unlocked = try StoreFactory.unlock(store, superblock: superblock, options: parsed)
            if logSink.waitsForCacheDirectory {
                let cacheDirectory = parsed.cacheDirectory ?? CacheDirectory.defaultRoot + "/" + superblock.uuid
                try logSink.openCacheDirectoryFile(cacheDirectory)
            }
            var settings = FilesystemLoader.Settings(options: parsed)
            // Logged, and told to whoever waits for the mount: the `mount` that started this
            // daemon, or the terminal of a foreground one (unless the log is that terminal).
            settings.waitingForPreviousDaemon = { [readyFd, daemon] pid in
                let message = Console.waitingForPreviousDaemonMessage(pid)
                logger.notice("\(message)")
                if daemon { Daemon.tell(fd: readyFd, message) } else if logDestination != .stderr { Console.error(message) }
            }
            settings.progress = restoreProgress
            opened = try FilesystemLoader.open(store: unlocked, settings: settings, logger: logger, metrics: metrics)
            if let s3 = base as? S3ObjectStore {
                metrics.addCollector { m in
                    m.set("mossaicfs_store_retries_total", "Requests the S3 store retried.", type: "counter", Double(s3.retryCount))
                }
            }
        } catch let error as ObjectStoreError {
            fail(error.description)
        } catch {
            fail("\(error)")
        }
        bar.finish()
        let filesystem = opened.filesystem
        filesystem.activity.observe { bar.show($0) }
        filesystem.attach(uploadsInFlight: { store.uploadsInFlight })
        Self.collectCacheMetrics(filesystem, store, into: metrics)

        // Sockets are bound before mounting, so a taken metrics port fails the mount cleanly.
        let control: SocketServer
        let exporter: SocketServer?
        do {
            control = try SocketServer.unix(path: opened.cacheDirectory.path + "/control.sock") { line, peer, send in
                guard let (request, arguments) = ControlRequest.parse(line) else { return "unknown request\n" }
                // Without the peer's credentials there is no one for `control` to admit.
                guard let peer else { return "error: \(FSError.notPermitted)\n" }
                do { return try filesystem.control(request, arguments: arguments, caller: peer, send: send) + "\n" }
                catch { return "error: \(error)\n" }
            }
            exporter = try parsed.metricsEndpoint.map { endpoint throws(OptionError) in
                try SocketServer.tcpLoopback(endpoint) { request, _ in
                    guard request.hasPrefix("GET /metrics") else { return "HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n" }
                    let body = metrics.exposition()
                    return "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: \(body.utf8.count)\r\n\r\n" + body
                }
            }
        } catch {
            opened.stopBackground(finalSnapshot: true)  // gives the writer lease back
            fail("\(error)")
        }

        let sourceName = source.hasPrefix("s3://") ? source : StoreFactory.absolutePath(source)
        let configuration = FUSESession.Configuration(
            mountpoint: mountpointPath, fuseOptions: parsed.fuseOptions(source: sourceName), options: parsed)
        var registration: String?
        var sessionError: FUSEError?
        do {
            try FUSESession.run(filesystem, configuration, logger: logger) {
                opened.startBackground()
                control.start()
                exporter?.start()
                registration = MountRegistry.register(mountpoint: mountpointPath, cacheDirectory: opened.cacheDirectory.path)
                if let device = MountTable.mount(at: mountpointPath)?.device {
                    opened.cacheDirectory.recordMounted(device: device, mountpoint: mountpointPath)
                }
                MountRegistry.raiseReadahead(mountpoint: mountpointPath)
                Daemon.report(fd: readyFd, Daemon.readyMessage)
            }
        } catch {
            sessionError = error
        }
        exporter?.stop()
        if let registration { unlink(registration) }
        // Unmounted (or never mounted), and FUSESession.run has committed every open file:
        // publish the final metadata snapshot and release the writer lease. A final snapshot
        // that fails is an exit status 1 (and logged): the store lags behind this cache_dir.
        // The control socket answers until then: a command following `progress` sees the
        // flush to its end, and its connection closes when this process exits.
        if opened.replicator != nil { filesystem.activity.report(ProgressEvent("storing the metadata snapshot", done: 0, total: 0)) }
        let snapshotFailure = opened.stopBackground(finalSnapshot: true)
        // The daemon's last word in the lock file, for `mossaicfs umount` waiting on it.
        opened.cacheDirectory.recordFinished(failure: sessionError.map { "\($0)" } ?? snapshotFailure.map { "final metadata snapshot: \($0)" })
        filesystem.activity.finish()
        bar.finish()
        control.stop()
        unlink(opened.cacheDirectory.path + "/control.sock")
        withExtendedLifetime(opened.cacheDirectory) {}
        if let sessionError { fail("\(sessionError)") }
        if snapshotFailure != nil { Foundation_exit(1) }
    }

    /// Cache figures kept by the blob cache, and uploads in flight, as metrics.
    private static func collectCacheMetrics(_ filesystem: MossaicFilesystem, _ store: InstrumentedObjectStore, into metrics: Metrics) {
        metrics.addCollector { m in
            let c = filesystem.cacheStatus()
            m.set("mossaicfs_cache_hits_total", "Chunk reads served by a cache.", type: "counter", labels: [("level", "memory")], Double(c.memoryHits))
            m.set("mossaicfs_cache_hits_total", "Chunk reads served by a cache.", type: "counter", labels: [("level", "disk")], Double(c.diskHits))
            m.set("mossaicfs_cache_misses_total", "Chunk reads that went to the store.", type: "counter", Double(c.misses))
            m.set("mossaicfs_cache_bytes", "Bytes held by each cache.", labels: [("level", "memory")], Double(c.memoryBytes))
            m.set("mossaicfs_cache_bytes", "Bytes held by each cache.", labels: [("level", "disk")], Double(c.diskBytes))
            m.set("mossaicfs_corrupt_chunks_total", "Chunks from the store whose bytes did not match their hash.", type: "counter", Double(c.corruptChunks))
            m.set("mossaicfs_uploads_in_flight", "Chunk uploads in progress (the upload queue).", Double(store.uploadsInFlight))
            if let staged = filesystem.stagedChunks {
                m.set("mossaicfs_staged_chunks", "Write-back chunks staged locally, not yet in the store.", Double(staged.chunks))
                m.set("mossaicfs_staged_bytes", "Bytes of the write-back chunks staged locally.", Double(staged.bytes))
            }
        }
    }

    /// Refuses a mountpoint that is a mount already, or a directory that holds something:
    /// mounting there hides what is underneath (or stacks a second filesystem on a path whose
    /// users expect the first), which is rarely what was meant. `nonempty` allows both. An
    /// autofs mount is the exception: systemd's automount (x-systemd.automount) mounts the
    /// filesystem over it on first access, and listing it would trigger that very automount.
    private func checkVacant(_ path: String) {
        if let existing = MountTable.mount(at: path) {
            if existing.type == "autofs" { return }
            fail("\(path) is already a mount point (\(existing.type) from \(existing.source)); unmount it first, or add -o nonempty to mount over it")
        }
        if let entries = try? PosixFiles.listDirectory(path), !entries.isEmpty {
            fail("mountpoint \(path) is not empty: the mount would hide what it holds; use an empty directory, or add -o nonempty to mount over it")
        }
    }

    /// Reports a failure in one line (to the terminal and to a waiting `mount`) and exits 1.
    private func fail(_ message: String) -> Never {
        Console.error(message)
        Daemon.report(fd: readyFd, message)
        Foundation_exit(1)
    }
}

/// exit(3) without ambiguity between Glibc and ArgumentParser's names.
func Foundation_exit(_ code: Int32) -> Never { Glibc.exit(code) }
