import Logging
import MossaicCore
import MossaicFS
import MossaicMeta
import MossaicObjectStore

extension FilesystemLoader {
    // MARK: PostgreSQL

    /// Mounts a filesystem whose metadata is in PostgreSQL (the superblock's `meta`). The
    /// database is the source of truth, shared by every host that mounts it: there is no local
    /// meta.db to reconcile, no metadata snapshot to publish or follow, and no writer lease
    /// (several hosts may mount read-write). The cache_dir keeps only the chunk caches and
    /// write-back staging. A read-write mount takes its turn at the reclaim sweep of the hosts
    /// (`SharedChunkSweeper`, not the SQLite engine's `ChunkSweeper`) and at writing backups of
    /// the metadata into the store (`MetadataBackup`, `backup_interval`).
    static func openShared(_ url: PostgresURL, store: any ObjectStore, superblock: Superblock, cacheDirectory: CacheDirectory,
                           settings: Settings, logger: Logger, metrics: Metrics) throws(FormatError) -> Opened {
        if settings.options.snapshot != nil {
            throw .metadata("snapshot=: a filesystem whose metadata is in PostgreSQL has no metadata snapshots in its store")
        }
        let metadata = try openPostgres(url, superblock: superblock, store: store, readOnly: settings.options.readOnly)
        let filesystem = try makeFilesystem(store: store, metadata: metadata, superblock: superblock, cacheDirectory: cacheDirectory,
                                            settings: settings, logger: logger, metrics: metrics)
        logger.info("metadata in PostgreSQL", metadata: ["database": "\(url)", "read_only": "\(settings.options.readOnly)"])
        var opened = Opened(filesystem: filesystem, cacheDirectory: cacheDirectory, replicator: nil, follower: nil)
        if !settings.options.readOnly && settings.options.backupInterval > 0 {
            opened.backup = MetadataBackup(store: store, metadata: metadata, fsUUID: superblock.uuid, compression: superblock.compression,
                                           interval: settings.options.backupInterval, keep: settings.options.backupKeep, logger: logger)
        }
        if !settings.options.readOnly {
            opened.sharedSweeper = SharedChunkSweeper(metadata: metadata, store: store, grace: settings.options.sweepGrace,
                                                      threads: settings.options.uploadThreads, logger: logger)
        }
        return opened
    }

    /// Opens the database `url` names, after checking, without creating anything in it, that
    /// it holds this filesystem's metadata: a URL that reaches another database (PGHOST or
    /// PGPORT pointing elsewhere, a database dropped and made anew) is refused in one line.
    public static func openPostgres(_ url: PostgresURL, superblock: Superblock, store: any ObjectStore,
                                    readOnly: Bool) throws(FormatError) -> PostgresMetaStore {
        let holding: PostgresMetaStore.Holding
        do { holding = try PostgresMetaStore.holding(url: url.string) } catch {
            throw .metadata("cannot reach the metadata database \(url): \(oneLine(error))")
        }
        switch holding {
        case .filesystem(let uuid) where uuid == superblock.uuid:
            break
        case .filesystem(let uuid):
            throw .metadata("\(url) holds the metadata of filesystem \(uuid), not of \(store.displayName) (\(superblock.uuid)): it reaches another database (check PGHOST, PGPORT, PGUSER and ~/.pgpass)")
        case .nothing, .unclaimed:
            throw .metadata("\(url) holds no metadata of \(store.displayName) (\(superblock.uuid)): it reaches another database (check PGHOST, PGPORT, PGUSER), or the database was dropped")
        }
        do { return try PostgresMetaStore(url: url.string, readOnly: readOnly) } catch {
            throw .metadata("cannot open the metadata database \(url): \(oneLine(error))")
        }
    }

    /// Refuses, naming the hosts, while a host other than `metadata`'s own session has the
    /// filesystem mounted read-write (a live session: its heartbeat younger than its expiry by
    /// the database server's clock). For what must not run beside writers — `load`, `fsck
    /// --repair`, `gc` — which otherwise had only the man page to stop them. Dead sessions do
    /// not count: a crashed host blocks nothing once its session expired. Read-only mounts
    /// register no session and write nothing, so they are not asked about. `why`: what the
    /// mounts would break, said after the hosts.
    ///
    /// A check, not a lock: nothing stops a mount from starting just after it (mounts of
    /// many hosts take no lease). gc, whose deletions cannot be undone, checks again right
    /// before them; a mount that starts in the middle of a load or a repair is the operator's,
    /// as it was before this check.
    public static func requireUnmounted(_ metadata: some SessionTable, store: any ObjectStore, why: String) throws(FormatError) {
        let live: [SessionRecord]
        do { live = try metadata.sessions().filter { $0.alive && $0.id != metadata.sessionID } } catch {
            throw .metadata("cannot read the sessions of \(store.displayName)'s metadata database: \(oneLine(error))")
        }
        guard !live.isEmpty else { return }
        let hosts = live.map { "\($0.host) (pid \($0.pid))" }.joined(separator: ", ")
        throw .metadata("\(store.displayName) is mounted read-write on \(hosts): unmount it on every host first (\(why))")
    }

    /// What must not run beside writers, before it starts: `requireUnmounted`, then the dead
    /// hosts' sessions go — their locks and open files, and the unlinked files only they had
    /// open — so the work sees only what live files hold.
    public static func requireUnmountedCleaningUp(_ metadata: some SessionTable, store: any ObjectStore,
                                                  why: String) throws(FormatError) -> SessionCleanup {
        try requireUnmounted(metadata, store: store, why: why)
        do { return try metadata.cleanDeadSessions() } catch {
            throw .metadata("cannot clean up the dead sessions of \(store.displayName)'s metadata database: \(oneLine(error))")
        }
    }

    /// libpq's messages may span lines (one per address tried): the CLI says one.
    public static func oneLine(_ error: MetaError) -> String {
        "\(error)".split(whereSeparator: \.isNewline).map { String($0.drop(while: \.isWhitespace)) }.joined(separator: "; ")
    }
}
