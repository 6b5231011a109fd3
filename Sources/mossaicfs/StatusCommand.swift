#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Foundation
import MossaicCore
import MossaicFS
import MossaicMeta
import MossaicMount
import MossaicObjectStore
import MossaicReplication

/// `mossaicfs status MOUNTPOINT|SOURCE [--json]`: what a filesystem holds and how its daemon is
/// doing. For a mountpoint the figures come live from the daemon (its control socket); for an
/// unmounted SOURCE from its metadata in cache_dir.
struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show a filesystem's store, usage, compression savings, dedup ratio, cache and pending work.",
        discussion: "TARGET is a mountpoint (live figures from its daemon, which answers only the user who mounted it and root) or a SOURCE (from its metadata; -o cache_dir= if not the default).")

    @Argument(help: "A mossaicfs mountpoint, or a SOURCE (local directory or s3://bucket/prefix).")
    var target: String

    @Flag(name: .long, help: "Print JSON instead of a table.")
    var json = false

    @Flag(name: .long, help: "Print sizes in the table as exact numbers of bytes (for scripts), not 1.5 GiB. JSON always has exact numbers.")
    var bytes = false

    @Option(name: .customShort("o"), help: ArgumentHelp("cache_dir= and store options, comma-separated.", valueName: "options"))
    var options: [String] = []

    func run() throws {
        do {
            let status = try collect()
            Console.out(json ? status.json : Self.table(status, exactBytes: bytes))
        } catch {
            Console.error("\(error)")
            throw ExitCode.failure
        }
    }

    private func collect() throws -> FilesystemStatus {
        let path = StoreFactory.absolutePath(target)
        if !target.hasPrefix("s3://"), let (_, type) = MountRegistry.mount(at: path), type == "fuse.mossaicfs" {
            guard let cacheDirectory = MountRegistry.cacheDirectory(of: path) else {
                throw OptionError("\(path) is a mossaicfs mount, but its daemon did not register in \(MountRegistry.directory)")
            }
            return try Self.ask(cacheDirectory, target: path)
        }
        let parsed = try MountOptions.parse(options)
        let (store, superblock) = try StoreFactory.openFilesystem(target, options: parsed, writes: false)
        let cacheDirectory = parsed.cacheDirectory ?? CacheDirectory.defaultRoot + "/" + superblock.uuid
        if let live = try? Self.ask(cacheDirectory, target: store.displayName) { return live }
        if let url = superblock.postgres {
            // The database is the metadata: no snapshot, no lease.
            let metadata = try FilesystemLoader.openPostgres(url, superblock: superblock, store: store, readOnly: true)
            var status = try FilesystemStatus.offline(store: store.displayName, uuid: superblock.uuid, metadata: metadata)
            status.sessions = try metadata.sessions()
            return status
        }
        let database = cacheDirectory + "/meta.db"
        guard PosixFiles.exists(database) else {
            throw OptionError("no metadata at \(database): this machine has not mounted \(store.displayName) with that cache_dir")
        }
        let metadata = try SQLiteMetaStore(path: database, readOnly: true)
        var status = try FilesystemStatus.offline(store: store.displayName, uuid: superblock.uuid, metadata: metadata)
        // The store's newest snapshot and its lease (a writer may be mounted on another host).
        let catalog = SnapshotCatalog(store: store)
        let newest = try catalog.head().map { try catalog.manifest($0.pointer.snapshot) }
        status.fillReplication(newest: newest, lease: try catalog.lease())
        return status
    }

    /// Asks the daemon using `cacheDirectory` over its control socket; `target` names it to the user.
    static func ask(_ cacheDirectory: String, target: String) throws -> FilesystemStatus {
        let reply = try ControlClient.request(.status, socket: cacheDirectory + "/control.sock", target: target)
        guard let status = try? JSONDecoder().decode(FilesystemStatus.self, from: Data(reply.utf8)) else {
            throw OptionError("the daemon's answer is not a status: \(reply.prefix(200))")
        }
        return status
    }

    static func table(_ s: FilesystemStatus, exactBytes: Bool) -> String {
        let u = s.usage
        func bytes(_ n: UInt64) -> String { ByteSize.printed(n, exact: exactBytes) }
        var rows: [(String, String)] = [
            ("store", s.store),
            ("filesystem", s.filesystemUUID),
            ("state", s.mounted ? (s.readOnly ? "mounted read-only" : "mounted read-write") : "not mounted"),
            ("files", "\(u.files) files, \(u.directories) directories, \(u.inodes) inodes"),
            ("logical bytes", bytes(u.logicalBytes)),
            ("stored bytes", "\(bytes(u.storedBytes)) as objects, \(bytes(u.inlineBytes)) inline, \(u.chunks) chunks"),
            // What the objects would take uncompressed, and the difference compression makes.
            ("compression", u.compressionSavedBytes > 0
                ? "\(bytes(u.compressionSavedBytes)) saved (objects hold \(bytes(u.uncompressedBytes)) of chunks in \(bytes(u.storedBytes)))"
                : "nothing saved"),
            // The figure df shows as used (statfs), so that the two agree.
            ("used", "\(bytes(u.usedBytes)), of which \(bytes(u.releasedBytes)) deleted and not yet reclaimed"),
            ("dedup ratio", s.dedupRatio.map { String(format: "%.2f", $0) } ?? "-"),
        ]
        if let c = s.cache {
            let rate = c.hitRate.map { String(format: "%.1f%%", $0 * 100) } ?? "-"
            rows.append(("cache", "memory \(bytes(UInt64(c.memoryBytes))), disk \(bytes(UInt64(c.diskBytes))); hit rate \(rate) (\(c.memoryHits + c.diskHits) hits, \(c.misses) misses)"))
            if c.corruptChunks > 0 { rows.append(("corrupt chunks", "\(c.corruptChunks) read from the store did not match their hash")) }
        }
        if s.mounted {
            rows.append(("open files", "\(s.openFiles) (\(bytes(UInt64(s.dirtyBytes))) buffered)"))
            rows.append(("pending uploads", "\(s.pendingUploads)"))
            rows.append(("write-back staged", "\(s.stagedChunks) chunks (\(bytes(UInt64(s.stagedBytes))))"))
        }
        if let sessions = s.sessions {
            // Metadata in PostgreSQL: every host's mount, no snapshots and no lease.
            rows.append(("sessions", sessions.isEmpty ? "none (no host has it mounted read-write)" : "\(sessions.count)"))
            for session in sessions {
                var line = String(format: "heartbeat %.1f s ago, %d open files, mounted %.0f s ago", session.heartbeatAgeSeconds,
                                  session.openFiles, session.mountedSecondsAgo) + ", mossaicfs \(session.version)"
                if !session.alive { line += String(format: " — DEAD (no heartbeat for %.0f s)", session.expirySeconds) }
                if session.id == s.session { line += " (this mount)" }
                rows.append(("  \(session.host) pid \(session.pid)", line))
            }
        } else {
            rows.append(("last snapshot", s.lastSnapshotAgeSeconds.map { String(format: "%.0f s ago", $0) } ?? "none"))
            rows.append(("lease holder", s.leaseHolder ?? "none"))
        }
        let width = rows.map(\.0.count).max() ?? 0
        return rows.map { $0.0.padding(toLength: width + 2, withPad: " ", startingAt: 0) + $0.1 }.joined(separator: "\n")
    }
}
