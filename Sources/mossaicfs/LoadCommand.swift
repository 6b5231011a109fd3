#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import MossaicCore
import MossaicFS
import MossaicMeta
import MossaicMount
import MossaicObjectStore
import MossaicReplication

/// `mossaicfs load DUMP --into SOURCE [--meta postgres://…]`: a dump into a new, empty engine,
/// then the superblock points the filesystem at it — the restore path and the migration path
/// SQLite ⇄ PostgreSQL.
///
/// The order makes every stop safe: the target is checked empty before the dump is read; the
/// rows go in in one transaction that commits only after the trailer's counts matched (a
/// truncated or damaged dump leaves nothing, or an empty schema, behind); the superblock is
/// rewritten last, so until then the filesystem still mounts its old engine.
struct LoadCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "load",
        abstract: "Load a dump into a new, empty metadata engine and make SOURCE use it (restore; SQLite <-> PostgreSQL).",
        usage: "mossaicfs load (<dump>|-|--from-backup) --into <source>\n[--meta postgres://…] [-o <options> ...]",
        discussion: """
        The dump must be of SOURCE's filesystem (the same uuid: the chunks it names are in \
        SOURCE). Unmount the filesystem everywhere first: changes made after the dump are not \
        in it, and mounts still open keep using the old engine. Load refuses while a mount holds \
        the filesystem's current engine: the writer lease of SQLite, a live session of \
        PostgreSQL (status lists them; a crashed host's session stops counting once it expired, \
        after its session_expiry).

        With --meta, the metadata is loaded into that PostgreSQL database (it must exist and \
        hold no filesystem: CREATE DATABASE …; its URL is kept in the superblock, as format \
        --meta keeps it, never with a password). Without it, into SQLite: a new meta.db in this \
        machine's cache_dir (-o cache_dir=, else the default one), which the next read-write \
        mount here publishes to the store as the newest metadata snapshot — mount here first. \
        Either way SOURCE's superblock then names the new engine, and `mossaicfs mount SOURCE` \
        uses it. Refused, with nothing changed: a dump that is not one or is of another \
        filesystem, a database that holds metadata, a cache_dir that holds a meta.db, an SQLite \
        filesystem whose metadata is live in its store's snapshots or that is mounted.

        --from-backup loads the newest complete backup that mounts of a PostgreSQL filesystem \
        write into its store (backups/, see backup_interval in mossaicfs(8)): the bucket alone \
        restores the tree, into a new database or into SQLite. Its small files' bytes are kept \
        once for all backups (backups/data/): they are fetched first, each checked against its \
        SHA-256, held in an unlinked file in $TMPDIR (as much as the backup's inline data), and \
        only then loaded; a data object missing or damaged stops the restore with nothing loaded.

        Migration, SQLite to PostgreSQL:
          mossaicfs umount /mnt/data
          mossaicfs dump /srv/mossaic --output meta.jsonl
          mossaicfs load meta.jsonl --into /srv/mossaic --meta postgres://db/fs

        And back: the same with a dump of the PostgreSQL filesystem, without --meta.
        """)

    @Argument(help: "The dump: a file written by mossaicfs dump, or - for standard input.")
    var dump: String?

    @Option(name: .long, help: ArgumentHelp("The filesystem the dump restores: a local directory or s3://bucket/prefix.", valueName: "source"))
    var into: String

    @Option(name: .long, help: ArgumentHelp("Load into this PostgreSQL database (new and empty) instead of SQLite.", valueName: "postgres://…"))
    var meta: String?

    @Flag(name: .long, help: "Load the newest backup in the store's backups/ instead of a dump file.")
    var fromBackup = false

    @Option(name: .customShort("o"), help: ArgumentHelp("cache_dir= and store options, comma-separated.", valueName: "options"))
    var options: [String] = []

    func validate() throws {
        if fromBackup == (dump != nil) { throw ValidationError("give a dump file (or - for standard input) or --from-backup, one of them") }
    }

    func run() throws {
        do {
            let parsed = try MountOptions.parse(options)
            let (store, superblock) = try StoreFactory.openFilesystem(into, options: parsed, writes: true)
            let target = try Target(meta: meta, store: store, superblock: superblock, options: parsed)
            let (reader, origin) = try openDump(store: store, superblock: superblock)
            let header = try reader.header()
            guard header.fsUUID == superblock.uuid else {
                throw OptionError("\(origin) is a dump of filesystem \(header.fsUUID), but \(store.displayName) is filesystem \(superblock.uuid): load a dump into the store it was taken from")
            }
            let summary = try target.load(reader, header: header)
            var updated = superblock
            switch target {
            case .postgres(let url):
                updated.meta = url.string
                updated.formatVersion = Superblock.externalMetadataFormatVersion
            case .sqlite:
                updated.meta = nil
                updated.formatVersion = superblock.compression == .none && superblock.encryption == nil ? 1 : Superblock.transformedFormatVersion
            }
            do { _ = try store.put(Superblock.key, updated.encoded(), condition: .none) } catch {
                throw OptionError("loaded, but the superblock could not be rewritten, so \(store.displayName) still uses its former metadata: \(error)")
            }
            let engine: String
            switch target {
            case .postgres(let url): engine = "PostgreSQL database \(url.database)"
            case .sqlite(let cacheDirectory, _):
                engine = "SQLite \(cacheDirectory.metadataPath) (mount it from this cache_dir first: that publishes it to the store)"
            }
            Console.out("loaded \(DumpCommand.describe(summary)) from \(origin) (dumped \(header.created) from \(header.engine)) into \(engine); \(store.displayName) now uses it")
        } catch {
            Console.error("\(error)")
            throw ExitCode.failure
        }
    }

    /// The dump's reader and how to name it.
    private func openDump(store: any ObjectStore, superblock: Superblock) throws -> (DumpReader, String) {
        if fromBackup {
            guard let id = try BackupCatalog.complete(in: store).last else {
                throw OptionError("\(store.displayName) holds no complete backup (\(BackupCatalog.prefix)…/manifest.json): mounts of a PostgreSQL filesystem write them, see backup_interval")
            }
            let manifest = try BackupCatalog.manifest(id, in: store)
            Console.error("loading backup \(id) (\(manifest.records) records, taken \(manifest.created))")
            // Its small files' bytes are fetched and checked before anything is loaded, and
            // wait in an unlinked file in $TMPDIR meanwhile (BackupCatalog.restoreReader).
            let spool = getenv("TMPDIR").map { String(cString: $0) }.flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
            let reader = try BackupCatalog.restoreReader(id, manifest: manifest, in: store, spoolDirectory: spool) { fetched in
                if fetched.objects > 0 {
                    Console.error("fetched \(fetched.chunks) small files' chunks (\(fetched.bytes) bytes) from \(fetched.objects) objects in \(BackupCatalog.dataPrefix), each checked against its SHA-256")
                }
            }
            return (reader, "backup \(BackupCatalog.prefix)\(id)")
        }
        let name = dump ?? "-"
        let fd: Int32
        if name == "-" {
            fd = 0
        } else {
            fd = open(name, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { throw OptionError("\(name): \(String(cString: strerror(errno)))") }
        }
        let reader = DumpReader {
            var block = [UInt8](repeating: 0, count: 1 << 20)
            while true {
                let n = block.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                if n < 0 && errno == EINTR { continue }
                guard n >= 0 else { throw OptionError("\(name): \(String(cString: strerror(errno)))") }
                if n == 0 { return nil }
                block.removeLast(block.count - n)
                return block
            }
        }
        return (reader, name == "-" ? "standard input" : name)
    }

    /// The new engine, checked empty before anything is read or written.
    private enum Target {
        case postgres(PostgresURL)
        case sqlite(CacheDirectory, generation: Int64)

        init(meta: String?, store: any ObjectStore, superblock: Superblock, options: MountConfiguration) throws {
            let catalog = SnapshotCatalog(store: store)
            if superblock.postgres == nil, let lease = try catalog.lease(), lease.expiresNanoseconds > Timestamp.now().nanoseconds {
                throw OptionError("\(store.displayName) is mounted read-write on \(lease.hostname) (cache_dir \(lease.cacheDirectory)): unmount it first")
            }
            if let current = superblock.postgres { try Self.requireUnmounted(current, store: store, superblock: superblock) }
            if let meta {
                let url = try PostgresURL(parsing: meta)
                if superblock.encryption != nil {
                    throw OptionError("--meta: \(store.displayName) is encrypted, and metadata in PostgreSQL would not be (as format refuses --encrypt with --meta)")
                }
                let holding: PostgresMetaStore.Holding
                do { holding = try PostgresMetaStore.holding(url: url.string) } catch {
                    throw OptionError("cannot reach the metadata database \(url): \(FilesystemLoader.oneLine(error))")
                }
                if case .filesystem(let uuid) = holding {
                    throw OptionError("\(url) already holds the metadata of mossaicfs filesystem \(uuid): load needs a new, empty database (CREATE DATABASE …)")
                }
                self = .postgres(url)
                return
            }
            // SQLite: the store's snapshots must not be live metadata already.
            let snapshots = try catalog.snapshotIDs()
            if superblock.postgres == nil, !snapshots.isEmpty {
                throw OptionError("\(store.displayName) keeps its metadata in SQLite already (snapshots in \(MetadataLayout.snapshotsPrefix)): there is no empty engine to load into; load into a new PostgreSQL database with --meta, or mount as it is")
            }
            let path = options.cacheDirectory ?? CacheDirectory.defaultRoot + "/" + superblock.uuid
            if PosixFiles.exists(path + "/meta.db") {
                throw OptionError("\(path) already holds a meta.db: load needs a new, empty engine (give another -o cache_dir=, or move it away)")
            }
            let cacheDirectory = try CacheDirectory(path: path, claimant: .command("load"), waiting: Console.waitingForPreviousDaemon)
            // Newer than every snapshot the store holds (from before the filesystem moved to
            // PostgreSQL): the first mount publishes this one as the newest.
            let newest = snapshots.compactMap(SnapshotID.generation(of:)).max() ?? 0
            let head = try catalog.head()?.pointer.generation ?? 0
            self = .sqlite(cacheDirectory, generation: max(newest, head) + 1)
        }

        /// A PostgreSQL filesystem's mounts, as its sessions say: the PostgreSQL twin of the
        /// writer lease above. Mounts that go on after the superblock names the new engine
        /// keep writing into the former one, and those changes are lost. A database that
        /// cannot be read blocks nothing — restoring a lost database is what load is for —
        /// and is said on stderr, since then load cannot tell who has it mounted.
        private static func requireUnmounted(_ url: PostgresURL, store: any ObjectStore, superblock: Superblock) throws {
            let current: PostgresMetaStore
            do { current = try FilesystemLoader.openPostgres(url, superblock: superblock, store: store, readOnly: true) } catch {
                Console.error("note: cannot tell whether a host has \(store.displayName) mounted (\(error)): unmount it everywhere before using the loaded metadata")
                return
            }
            try FilesystemLoader.requireUnmounted(current, store: store, why: "after load they would go on writing into the former metadata, and those changes would be lost")
        }

        func load(_ reader: DumpReader, header: MetadataDump.Header) throws -> MetadataDump.Summary {
            switch self {
            case .postgres(let url): try MetadataDump.loadPostgres(reader, header: header, url: url.string)
            case .sqlite(let cacheDirectory, let generation):
                try MetadataDump.loadSQLite(reader, header: header, path: cacheDirectory.metadataPath, generation: generation)
            }
        }
    }
}
