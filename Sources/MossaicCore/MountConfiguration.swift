import Logging

/// The mount options as ONE value: the CLI parses `-o` into it, and every layer reads its
/// fields from it — the loader, the filesystem, the chunk store, the blob cache, the staging
/// area, replication and the FUSE session — instead of copying them into structs of its own.
/// Each default is written once, on its stored property here.
///
/// Adding an option = its declaration here (the stored property with its default, and its
/// row in `declarations`: name, parser with range, one line of help) + its use (where a
/// subsystem reads the field) + the man page (man/mossaicfs.8; the README's option table
/// follows it). The `-o` parser and the option table of `mount --help` are generated from
/// `declarations`; a subsystem unit-tested with a small configuration of its own derives it
/// from this value (`BlobCache.Configuration`, `ChunkStore.Configuration`).
public struct MountConfiguration: Sendable, Equatable {
    // Options, in the order of `declarations` (and of `mount --help`).
    public var cacheDirectory: String?
    public var readOnly = false
    public var allowOther = false
    /// Permission checks by the kernel (`default_permissions`) instead of by mossaicfs.
    public var defaultPermissions = false
    /// POSIX ACLs (`acl`): keep the mode and ACLs in step, inherit default ACLs, apply the
    /// umask (MossaicFilesystem+ACL.swift). The kernel checks permissions then.
    public var posixACL = false
    /// SELinux labels (`selinux`): `security.selinux` is stored like any other `security.*`
    /// attribute. Without it that one name is not supported (EOPNOTSUPP), answered before any
    /// metadata read (MossaicFilesystem+Xattrs.swift).
    public var selinuxLabels = false
    public var diskCacheBytes = 10 << 30
    public var memoryCacheBytes = 16 << 20
    /// Buffered write memory of all open files together; writers wait beyond it (`MemoryLimiter`).
    public var writeMemoryBytes = 256 << 20
    /// Free space the disk cache leaves on its filesystem.
    public var cacheFreeBytes = 1 << 30
    /// Keep the chunks of packs (large writes) in the disk cache as well.
    public var cacheLargeWrites = false
    /// FUSE worker threads.
    public var maxThreads = 16
    /// Threads hashing and storing chunks in parallel.
    public var uploadThreads = 8
    /// Chunks fetched ahead of a sequential reader, at most (0: no read-ahead).
    public var readAheadChunks = 8
    /// New chunks stored together as one pack object, at most (1: every chunk its own
    /// object). Fewer, larger requests: S3-style stores pay per request.
    public var packChunks = 4
    /// The size `df` shows (statfs); 0: none set, a nominal 1 PiB (object stores have no size).
    public var capacityBytes = 0
    /// Seconds a chunk no file references any more stays before the mount's reclaim sweep
    /// deletes it (`ChunkSweeper`; snapshots that still need it keep it longer).
    public var sweepGrace = 600.0
    public var attributeTimeout = 1.0
    public var entryTimeout = 1.0
    /// Write-back mode: commits stage chunks in cache_dir/staging, uploaded in the background.
    public var writeback = false
    public var stagingBytes = 1 << 30
    /// Seconds within which a commit at close(2) becomes durable against power loss. 0: every
    /// close is fsynced before it returns.
    public var syncInterval = 1.0
    public var fsname: String?
    /// Mount over a non-empty directory or an existing mount.
    public var nonempty = false
    /// nil for the default (`LogDestination.resolve`).
    public var log: LogDestination?
    /// nil for the default (info; debug with `debug`).
    public var logLevel: Logger.Level?
    public var debug = false
    /// Prometheus text endpoint on a loopback address (HOST:PORT).
    public var metricsEndpoint: String?
    // Metadata snapshots and the writer lease.
    public var metaInterval = 10.0
    public var metaKeep = 30
    /// Snapshots older than this (seconds since their manifest was created) are pruned.
    public var metaKeepAge = 7 * 86_400.0
    /// Bytes the older snapshots may hold that HEAD does not (`SnapshotRetention`).
    public var metaKeepSize = RetentionSize.percent(50)
    public var leaseTime = 60.0
    /// Metadata in PostgreSQL: seconds between a read-write mount's session heartbeats, and
    /// how old its last heartbeat may grow before other hosts take it for dead.
    public var sessionHeartbeat = 12.0
    public var sessionExpiry = 300.0
    public var discardLocal = false
    public var forceLease = false
    public var pollInterval = 10.0
    /// PostgreSQL filesystems: a dump of the metadata into the store's backups/ this often
    /// (seconds; 0: never), the newest `backupKeep` kept.
    public var backupInterval = 3600.0
    public var backupKeep = 24
    public var snapshot: String?
    // Encrypted filesystems (`FilesystemKey`): where the master key comes from.
    public var keyFile: String?
    public var passphraseFile: String?

    // Set by the parser outside `declarations`.
    /// `noatime`, which also goes to the kernel: no access times updated on read.
    public var noatime = false
    /// Options handed to libfuse and the kernel as they are.
    public var passThrough: [String] = []
    /// Options of the S3 store (endpoint=, region=, …), for s3:// sources (`S3Configuration`).
    public var store: [String: String] = [:]

    // Tuning without an option (tests lower them).
    /// A file's buffered writes are committed early when they exceed this, bounding memory
    /// per open file (one transaction, as at close; a sequential writer's last few pages wait
    /// for the next commit, see `FileWriter.snapshot(deferringTail:)`). 12 MiB: with 4-chunk
    /// packs, uploads of two packs are in flight while the next fills.
    public var maxDirtyBytesPerFile = 12 << 20
    /// Pages one file may have in uploads in flight before its writer waits.
    public var uploadWindow = 8

    public init() {}

    /// The kernel checks permissions: asked for, or implied by `acl`.
    public var kernelPermissions: Bool { defaultPermissions || posixACL }

    /// Upper bounds of the ranges: a day for durations (a longer lease keeps a dead writer's
    /// filesystem locked that long; a longer interval is no longer periodic) but an hour for
    /// sync_interval (closes that stay undurable longer are write-back, which has its own
    /// option) and ten years for meta_keep_age (an age, not an interval: "keep by count only"
    /// is a large age; 10 years in nanoseconds is far from overflow), 1 PiB for disk sizes and 1 TiB for memory: far above any real machine and far
    /// below Int overflow. Every number has a range: a value past what the code below it can
    /// hold (a lease of 10^11 s overflowed nanoseconds and killed the daemon) or past any
    /// sensible setting is refused by the parser, naming the option and its range.
    private static let day = 86_400.0
    private static let sizeLimit = 1 << 50
    private static let memoryLimit = 1 << 40

    /// Every `-o` option of mossaicfs itself (not libfuse's, not the S3 store's), in the order
    /// `mount --help` lists them.
    public static let declarations: [MountOption] = [
        MountOption("cache_dir", .absolutePath(\.cacheDirectory), value: "PATH",
                    "local metadata and cache (default /var/cache/mossaicfs/<fs-uuid>)"),
        MountOption("ro", .flag(\.readOnly),
                    "read-only mount of the newest metadata snapshot (no lease); follows the store's newest snapshot"),
        MountOption("allow_other", .flag(\.allowOther), "let users other than the mounting one access the mount"),
        MountOption("default_permissions", .flag(\.defaultPermissions),
                    "the kernel checks permissions (default: mossaicfs checks them itself)"),
        MountOption("acl", .flag(\.posixACL),
                    "POSIX ACLs (setfacl/getfacl), enforced by the kernel; implies default_permissions"),
        MountOption("selinux", .flag(\.selinuxLabels),
                    "store security.selinux labels (default: that attribute is not supported, so ls -l asks once per mount, not once per file)"),
        MountOption("cache_size", .size(\.diskCacheBytes, 0...sizeLimit), "disk cache bound for remote stores (default {default})"),
        MountOption("mem_cache_size", .size(\.memoryCacheBytes, 0...memoryLimit), "memory cache bound (default {default})"),
        MountOption("mem_buffer_size", .size(\.writeMemoryBytes, (16 << 20)...memoryLimit),
                    "write buffers of all open files together (default {default}, from {min}); writers wait for commits beyond it, never fail"),
        MountOption("cache_free", .size(\.cacheFreeBytes, 0...sizeLimit),
                    "free space the disk cache leaves on its filesystem (default {default}); it always leaves a reserve for meta.db too (5 %, 8M..1G of the filesystem), also with 0; a full cache disk never fails writes"),
        MountOption("cache_large_writes", .flag(\.cacheLargeWrites),
                    "keep large writes (packs) in the disk cache too (default: only what is read and chunks stored alone)"),
        MountOption("threads", .count(\.maxThreads, 1...256), "FUSE worker threads (default {default})"),
        MountOption("upload_threads", .count(\.uploadThreads, 1...128), "chunks hashed and stored in parallel (default {default})"),
        MountOption("read_ahead", .count(\.readAheadChunks, 0...64, unit: "chunks"),
                    "chunks fetched ahead of a sequential reader (default {default}, 0: off)"),
        MountOption("pack_chunks", .count(\.packChunks, 1...16, unit: "chunks"),
                    "at most N new chunks stored together as one object (default {default}; 1: every chunk its own object)"),
        MountOption("capacity", .size(\.capacityBytes, (1 << 20)...(1 << 60)),
                    "the size df shows; used is the file data the filesystem holds, free the rest (default: 1 PiB, the store's size being unknown)"),
        MountOption("sweep_grace", .seconds(\.sweepGrace, 1...(30 * day)),
                    "the space of deleted data returns S seconds after its last reference went (default {default}), once no retained metadata snapshot needs it"),
        MountOption("attr_timeout", .seconds(\.attributeTimeout, 0...day), "kernel cache lifetime of attributes (default {default})"),
        MountOption("entry_timeout", .seconds(\.entryTimeout, 0...day), "kernel cache lifetime of names (default {default})"),
        MountOption("writeback", .flag(\.writeback),
                    "close/fsync stage chunks in cache_dir/staging; background threads upload them (survives crashes and store outages)"),
        MountOption("staging_size", .size(\.stagingBytes, FormatConstants.chunkSize...sizeLimit),
                    "most bytes write-back staging holds (default {default})"),
        MountOption("sync_interval", .seconds(\.syncInterval, 0...3600),
                    "a close(2) is durable against power loss within S seconds (default {default}; 0: fsync at every close). fsync(2) is always at once"),
        MountOption("fsname", .text(\.fsname), value: "NAME", "the source shown in /proc/mounts (default SOURCE)"),
        MountOption("nonempty", .flag(\.nonempty),
                    "mount over a non-empty directory or an existing mount (refused otherwise: the mount would hide what is there)"),
        MountOption("log", .logDestination(\.log), value: "FILE|stderr|syslog",
                    "where the daemon logs (default: stderr with -f; else syslog where /dev/log exists, else cache_dir/mossaicfs.log); file and stderr lines start with an ISO-8601 time and the level"),
        MountOption("log_level", .logLevel(\.logLevel), value: "LEVEL",
                    "trace, debug, info (default), notice, warning, error, critical"),
        MountOption("debug", .flag(\.debug), "log every FUSE request (and log_level=debug)"),
        MountOption("metrics", .text(\.metricsEndpoint), value: "HOST:PORT",
                    "Prometheus metrics at http://HOST:PORT/metrics (loopback only)"),

        MountOption("meta_interval", .seconds(\.metaInterval, 0.1...day), section: .metadata,
                    "snapshot the metadata into the store every S seconds while it changes (default {default}; also at unmount and `mossaicfs snapshot`)"),
        MountOption("meta_keep", .count(\.metaKeep, 1...100_000, unit: "snapshots"), section: .metadata,
                    "snapshots kept in the store, at most (default {default}); the newest is always kept"),
        MountOption("meta_keep_age", .duration(\.metaKeepAge, 0...(3650 * day)), section: .metadata,
                    "snapshots older than this are pruned, the newest never (default {default}; a number with s, m, h or d)"),
        MountOption("meta_keep_size", .sizeOrPercent(\.metaKeepSize, 0...sizeLimit, percent: 0...10_000), section: .metadata,
                    "older snapshots are kept while the pieces they hold and the newest does not add up to at most SIZE, or N% of the newest's size (default {default})"),
        MountOption("lease_time", .seconds(\.leaseTime, 3...day, why: "it is renewed every third"), section: .metadata,
                    "the writer lease lasts S seconds ({min} to {max}), renewed every S/3 (default {default})"),
        MountOption("session_heartbeat", .seconds(\.sessionHeartbeat, 0.1...3600), section: .metadata,
                    "metadata in PostgreSQL: a read-write mount's session heartbeat every S seconds (default {default})"),
        MountOption("session_expiry", .seconds(\.sessionExpiry, 1...day), section: .metadata,
                    "metadata in PostgreSQL: a session whose heartbeat is older than S seconds is dead, and other hosts delete its locks and open files (default {default}; at least twice session_heartbeat)"),
        MountOption("discard_local", .flag(\.discardLocal), section: .metadata,
                    "replace local metadata that differs from the store's newest snapshot (after another machine wrote) instead of refusing"),
        MountOption("force_lease", .flag(\.forceLease), section: .metadata,
                    "take the writer lease from a live holder on another host (known dead): waits until its lease would have expired"),
        MountOption("poll_interval", .seconds(\.pollInterval, 0.1...day), section: .metadata,
                    "ro: check for a newer snapshot every S seconds (default {default})"),
        MountOption("snapshot", .text(\.snapshot), value: "ID", section: .metadata,
                    "ro: show snapshot ID (see `mossaicfs snapshots`), do not follow"),

        MountOption("backup_interval", .duration(\.backupInterval, 0...(30 * day)), section: .metadata,
                    "PostgreSQL filesystems: one of the read-write mounts writes a dump of the metadata into the store's backups/ this often (default {default}; 0: never; a number with s, m, h or d), for mossaicfs load --from-backup"),
        MountOption("backup_keep", .count(\.backupKeep, 1...100_000, unit: "backups"), section: .metadata,
                    "PostgreSQL filesystems: backups kept in the store, the newest ones (default {default})"),

        MountOption("key_file", .absolutePath(\.keyFile), value: "PATH", section: .encryption,
                    "the key of a filesystem formatted with --encrypt --key-file (mode 0600); a missing or wrong key fails before anything is read"),
        MountOption("passphrase_file", .absolutePath(\.passphraseFile), value: "PATH", section: .encryption,
                    "the passphrase of a filesystem formatted with --encrypt and a passphrase (mode 0600; or MOSSAICFS_PASSPHRASE, or asked on the terminal)"),
    ]
}
