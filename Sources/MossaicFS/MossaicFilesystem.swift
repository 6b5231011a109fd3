#if canImport(Glibc)
import Glibc
#endif
import Logging
import MossaicCache
import MossaicCore
import MossaicMeta
import MossaicObjectStore
import MossaicReplication
import Synchronization

/// The filesystem as a plain Swift API: no libfuse type appears here, so all of it runs under
/// `swift test` without a kernel. Methods are named after the FUSE operation they serve, and
/// the bridge in `MossaicFUSE` is a 1:1 translation onto them.
///
/// Threading: every method may be called from any thread at once. Methods block (on SQLite,
/// the disk and the object store) and never wait on Swift concurrency.
public final class MossaicFilesystem: Sendable {
    let metadata: any MetaStore
    /// Chunk identity, placement and reads (ChunkStore.swift).
    let chunks: ChunkStore
    /// The bound on buffered write memory (MemoryLimiter.swift).
    let writeMemory: MemoryLimiter
    public let superblock: Superblock
    /// The mount options (`MountConfiguration`): every option the filesystem heeds is read
    /// from here.
    let options: MountConfiguration
    /// The uid that mounted the filesystem, which the daemon runs as (fusermount3 mounts for
    /// the user who runs it): with root, the only one whose `control` requests are served.
    let owner: UInt32 = getuid()
    let logger: Logger
    public let metrics: Metrics
    /// Progress of long tasks (the unmount flush) for whoever waits on them (`ProgressBoard`).
    public let activity = ProgressBoard()
    let inodes = InodeTable()
    let handles = HandleTable()
    let permissions: Permissions
    /// Files with open handles, by inode.
    let openFiles = Mutex<[InodeNumber: OpenFile]>([:])
    /// Attributes of recently opened files' data at their last open, to tell the kernel its
    /// cached pages are still good (keep_cache) when nothing changed since.
    let openedVersions = OpenedVersions()
    let syncer: BackgroundSyncer
    /// Access times set by reads but not yet written (Linux's lazytime): written in one
    /// transaction per sync interval, laid over the stored attributes meanwhile.
    let pendingAccessTimes = Mutex<[InodeNumber: Timestamp]>([:])
    /// Metadata snapshots of a read-write mount, for `snapshotMetadata()`; set once by the
    /// loader (see MossaicFilesystem+Snapshots.swift).
    let replicator = Mutex<MetadataReplicator?>(nil)
    /// Set when this mount lost the writer lease or another writer moved HEAD: its changes
    /// could no longer reach the store, so it refuses them (EROFS) from then on.
    let fenced = Atomic<Bool>(false)
    /// Uploads to the store in flight, for `status`: counted by the daemon's store wrapper,
    /// which the filesystem does not see; set once at mount (MossaicFilesystem+Control.swift).
    let uploadsInFlight = Mutex<@Sendable () -> Int>({ 0 })
    /// The reclaim sweep of a read-write mount and its thread, set once by the loader
    /// (MossaicFilesystem+Sweep.swift).
    let reclaim = Mutex<(sweeper: ChunkSweeper, worker: PeriodicWorker)?>(nil)

    /// Where locks that exclude across hosts are kept: a read-write mount of an engine for many
    /// hosts (PostgreSQL). Nil otherwise, and the kernel keeps this host's locks itself.
    let lockTable: (any FileLockTable)?
    /// Other hosts change the filesystem under this mount (its metadata engine is for many
    /// hosts): what the kernel cached of a file must be revalidated at each open.
    public let sharedAcrossHosts: Bool
    /// Lock owners by handle, and releases under way (MossaicFilesystem+Locks).
    let handleLocks = ConditionBox(HandleLocks())
    /// This mount's session among the hosts (a read-write mount of an engine for many hosts),
    /// and the thread of its heartbeat (started by `start`, stopped by `shutdown`).
    let sessionTable: (any SessionTable)?
    let heartbeat = Mutex<PeriodicWorker?>(nil)
    /// Names each opening of a file on this mount (`MetaStore.opened`).
    let openTokens = Atomic<UInt64>(0)

    public init(metadata: any MetaStore, cache: BlobCache, superblock: Superblock, options: MountConfiguration, logger: Logger,
                metrics: Metrics = Metrics()) {
        self.metrics = metrics
        self.metadata = metadata
        self.lockTable = options.readOnly ? nil : metadata as? any FileLockTable
        self.sharedAcrossHosts = metadata is any FileLockTable
        self.sessionTable = options.readOnly ? nil : metadata as? any SessionTable
        self.chunks = ChunkStore(metadata: metadata, cache: cache, configuration: ChunkStore.Configuration(
            options, inlineMax: superblock.inlineMax), logger: logger)
        self.writeMemory = MemoryLimiter(limit: options.writeMemoryBytes)
        self.superblock = superblock
        self.options = options
        self.logger = logger
        self.permissions = Permissions(enabled: !options.kernelPermissions)
        self.syncer = BackgroundSyncer(metadata: metadata, interval: options.syncInterval, logger: logger)
    }

    /// Prepares a freshly opened filesystem: the root exists, and inodes orphaned by a previous
    /// run (unlinked while open, then unmounted or crashed) are purged — no kernel can hold a
    /// reference to them any more.
    public func start(rootUID: UInt32 = 0, rootGID: UInt32 = 0) throws(FSError) {
        guard !options.readOnly else { return }
        _ = try meta { () throws(MetaError) in
            try metadata.createRootIfMissing(permissions: 0o755, uid: rootUID, gid: rootGID, now: .now())
        }
        try startSession()
        try purgeAllOrphans()
        syncer.start { [weak self] in self?.writeAccessTimes() }
    }

    /// Commits every dirty open file and purges orphans: called when the kernel has gone
    /// (unmount), before the daemon exits. Returns the errors of files that could not be
    /// committed, which the daemon reports.
    @discardableResult
    public func shutdown() -> [(InodeNumber, FSError)] {
        var failures: [(InodeNumber, FSError)] = []
        let files = openFiles.withLock { Array($0.values) }
        for file in files {
            do { try commit(file, durable: true) } catch { failures.append((file.ino, error)) }
        }
        if !options.readOnly {
            drainStagedChunks()
            syncer.stop()
            heartbeat.withLock { $0 }?.stop()
            writeAccessTimes()
            // A lost session (MossaicFilesystem+Sessions) writes nothing: the other hosts already
            // deleted its rows and reclaimed what it alone kept.
            if sessionTable?.sessionLost != true {
                do { try purgeAllOrphans() } catch { logger.error("cannot purge orphans at shutdown: \(error)") }
                do { try lockTable?.releaseSessionLocks() } catch { logger.error("cannot release this mount's locks at shutdown: \(error)") }
                endSession()
                do { try metadata.sync() } catch { logger.error("cannot sync metadata at shutdown: \(error)") }
            }
            do { try metadata.checkpoint() } catch { logger.warning("WAL checkpoint failed: \(error)") }
        }
        return failures
    }

    /// Unmount in write-back mode: waits until every staged chunk is in the store, saying how
    /// much is left while it does. Interrupted (the daemon killed), the rest stays staged and
    /// the next mount uploads it first.
    private func drainStagedChunks() {
        guard let staging = chunks.staging else { return }
        let total = staging.pending.bytes
        var logged: Timestamp?
        let left = staging.drain(every: 0.5) { chunks, bytes in
            activity.report(ProgressEvent("uploading staged chunks", done: max(0, total - bytes), total: total, unit: .bytes))
            let now = Timestamp.monotonicNow()
            if let last = logged, now.secondsSince(last) < 5 { return }
            logged = now
            logger.notice("write-back: uploading staged chunks before exit", metadata: [
                "chunks_left": "\(chunks)", "bytes_left": "\(bytes)"])
        }
        if total > 0, left.chunks == 0 {
            activity.report(ProgressEvent("uploading staged chunks", done: total, total: total, unit: .bytes))
        }
        staging.stop()
        if left.chunks > 0 {
            logger.warning("write-back: staged chunks left for the next mount", metadata: ["chunks": "\(left.chunks)"])
        }
    }

    private func purgeAllOrphans() throws(FSError) {
        for ino in try meta({ () throws(MetaError) in try metadata.orphans() }) {
            try purge(ino)
        }
    }

    func purge(_ ino: InodeNumber) throws(FSError) {
        try meta { () throws(MetaError) in try metadata.purgeOrphan(ino) }
        inodes.purged(ino)
    }

    /// Throws unless this mount may change the filesystem now: EROFS for a read-only or fenced
    /// mount; EIO while its writer lease could not be renewed for so long that another
    /// machine may soon take it over (`WriterLease.fenceReason`) — a change acknowledged then
    /// could be lost to the next writer. Renewal working again lifts the latter.
    func checkWritable() throws(FSError) {
        if options.readOnly || fenced.load(ordering: .relaxed) { throw .readOnly }
        if sessionTable?.sessionLost == true { throw .sessionLost }
        guard let lease = replicator.withLock({ $0?.lease }), lease.fenceReason() != nil else { return }
        if lease.lostReason == nil { lease.renewIfLapsed() }
        // Lost for good (taken over): read-only from now on, as when the lease thread finds out.
        if let lost = lease.lostReason {
            fence("writer lease lost: \(lost)")
            throw .readOnly
        }
        if let why = lease.fenceReason() { throw .io(why) }
    }

    static func checkName(_ name: [UInt8]) throws(FSError) {
        guard name.count <= FormatConstants.maxNameLength else { throw .nameTooLong }
        guard !name.isEmpty, name != [0x2e], name != [0x2e, 0x2e], !name.contains(0x2f) else { throw .invalidArgument }
    }

    /// Where the chunks live, for messages.
    public var storeName: String { chunks.store.displayName }

    // MARK: Attributes

    /// The attributes of `ino`, with the size and mtime of buffered writes laid over them.
    public func getattr(_ ino: InodeNumber) throws(FSError) -> FileAttributes {
        var attrs = try addressed(ino) { () throws(MetaError) in try metadata.attributes(of: ino) }
        overlay(&attrs)
        return attrs
    }

    /// Runs a metadata call about inode `ino`, which the kernel named by its number: its
    /// `notFound` means the inode is gone (`FSError.stale`), not that a name is missing. On
    /// one host that cannot happen (an inode the kernel holds is kept until it forgets it);
    /// on an engine for many hosts another host may reclaim it in between — a replaced or
    /// unlinked file no host has open — and the kernel's fresh walk then finds what the
    /// name holds now.
    func addressed<T>(_ ino: InodeNumber, _ body: () throws(MetaError) -> T) throws(FSError) -> T {
        do { return try body() } catch .notFound { throw .stale } catch { throw error.fsError }
    }

    /// What a setattr asks for, as chmod(2), chown(2), truncate(2) and utimensat(2) ask it.
    /// The rules of who may, and what a change implies (setuid/setgid kills, setgid cleared
    /// by a chmod), are `setattr`'s.
    public struct SetAttributes: Sendable {
        /// A new access or modification time: one the caller gives, or the current time
        /// (UTIME_NOW, or utimensat without times), read when the change is made.
        public enum Time: Sendable, Equatable {
            case now
            case at(Timestamp)
        }
        public var permissions: UInt32?
        public var uid: UInt32?
        public var gid: UInt32?
        public var size: UInt64?
        public var atime: Time?
        public var mtime: Time?
        public init(permissions: UInt32? = nil, uid: UInt32? = nil, gid: UInt32? = nil, size: UInt64? = nil,
                    atime: Time? = nil, mtime: Time? = nil) {
            self.permissions = permissions; self.uid = uid; self.gid = gid; self.size = size; self.atime = atime; self.mtime = mtime
        }
    }

    /// setattr: chmod, chown, truncate and utimens. Buffered writes of the file are committed
    /// first, so the change applies to the file as written. `handle` is set for ftruncate and
    /// futimens on an open descriptor, whose open already checked access. Returns the new
    /// attributes, and the names the kernel must drop once it has them: a chmod of a directory
    /// that ends everyone's search permission (MossaicFilesystem+NameCaching).
    @discardableResult
    public func setattr(_ ino: InodeNumber, _ request: SetAttributes, handle: HandleID? = nil,
                        caller: Caller = .root) throws(FSError) -> (attributes: FileAttributes, staleNames: StaleNames) {
        let now = Timestamp.now()
        try checkWritable()
        let time = { (t: SetAttributes.Time?) -> Timestamp? in
            switch t {
            case .now: now
            case .at(let given): given
            case nil: nil
            }
        }
        // Both times set to now (utimensat without times, or both UTIME_NOW) need only write
        // permission; any other combination (UTIME_NOW with UTIME_OMIT too) is explicit.
        var changes = AttributeChanges(permissions: request.permissions, uid: request.uid, gid: request.gid, size: request.size,
                                       atime: time(request.atime), mtime: time(request.mtime),
                                       timesAreNow: request.atime == .now && request.mtime == .now)
        let current = try getattr(ino)
        let file = openFiles.withLock { $0[ino] }
        let modeIsKill = PrivilegeKill.interpret(&changes, attrs: current, caller: caller, kernelHidesSticky: permissions.enabled,
                                                 isOpen: file != nil)
        if permissions.enabled { try checkSetattr(current, &changes, modeIsKill: modeIsKill, handle: handle, caller: caller) }
        if let file { try commit(file) }
        // A pending access time from a read must not overwrite one set now (or be lost).
        let pendingAtime = pendingAccessTimes.withLock { $0.removeValue(forKey: ino) }
        if changes.atime == nil, pendingAtime != nil { changes.atime = pendingAtime }
        let acl = try changes.permissions.map { (p) throws(FSError) in try accessACL(of: ino, afterChmodTo: p) } ?? [:]
        let attrs = try meta { () throws(MetaError) in try metadata.setAttributes(of: ino, changes, now: .now(), xattrs: acl) }
        if changes.size != nil { chunkListChanged(ino) }
        if let size = changes.size, let file { file.writer.truncated(to: size) }
        let stale = request.permissions == nil ? StaleNames(directory: ino, names: []) : namesToForget(in: ino, before: current)
        return (attrs, stale)
    }

    /// chmod/chown/truncate/utimes rules of Linux without capabilities but root's.
    private func checkSetattr(_ attrs: FileAttributes, _ changes: inout AttributeChanges, modeIsKill: Bool, handle: HandleID?,
                              caller: Caller) throws(FSError) {
        if let uid = changes.uid, !caller.isRoot, !(caller.uid == attrs.uid && uid == attrs.uid) { throw .notPermitted }
        if let gid = changes.gid, !caller.isRoot, !(caller.uid == attrs.uid && (gid == attrs.gid || caller.isMember(of: gid))) {
            throw .notPermitted
        }
        // A kill of setuid/setgid (PrivilegeKill) is allowed to whoever made the change behind it.
        if let mode = changes.permissions, !modeIsKill {
            try permissions.checkOwner(attrs, caller)
            if !caller.isRoot && !caller.isMember(of: changes.gid ?? attrs.gid) { changes.permissions = mode & ~0o2000 }
        }
        if changes.size != nil, handle == nil { try permissions.check(attrs, caller, .write) }
        // Times that come with a size are the truncation's own (ftruncate, O_TRUNC).
        if changes.atime != nil || changes.mtime != nil, changes.size == nil {
            if changes.timesAreNow {
                if caller.uid != attrs.uid { try permissions.check(attrs, caller, .write) }
            } else {
                try permissions.checkOwner(attrs, caller)
            }
        }
    }

    /// Relatime, Linux's default: a read updates the access time if it is not newer than the
    /// last modification or change, or is more than a day old. `noatime` turns this off. The
    /// new time is kept in memory and written with the next background sync (lazytime), so a
    /// read never waits for a metadata write.
    func accessed(_ ino: InodeNumber) {
        guard !options.noatime, !options.readOnly else { return }
        guard let attrs = try? getattr(ino) else { return }
        let now = Timestamp.now()
        let day: Int64 = 86_400 * 1_000_000_000
        guard attrs.atime <= attrs.mtime || attrs.atime <= attrs.ctime || now.nanoseconds - attrs.atime.nanoseconds > day else { return }
        pendingAccessTimes.withLock { $0[ino] = now }
        if options.syncInterval <= 0 { writeAccessTimes() }
    }

    func writeAccessTimes() {
        let batch = pendingAccessTimes.withLock { p -> [(InodeNumber, Timestamp)] in
            defer { p.removeAll() }
            return p.map { ($0.key, $0.value) }
        }
        do { try metadata.touchAccessTimes(batch) } catch MetaError.sessionLost {} catch { logger.warning("cannot write access times: \(error)") }
    }

    /// Lays buffered writes (size, mtime) and a pending access time over stored attributes.
    func overlay(_ attrs: inout FileAttributes) {
        if let atime = pendingAccessTimes.withLock({ $0[attrs.ino] }) { attrs.atime = atime }
        if attrs.kind == .regular, let file = openFiles.withLock({ $0[attrs.ino] }) { file.writer.overlay(&attrs) }
    }

    /// access(2).
    public func access(_ ino: InodeNumber, _ want: AccessMask, caller: Caller) throws(FSError) {
        let attrs = try getattr(ino)
        try Permissions(enabled: true).check(attrs, caller, want)
    }

    // MARK: Lookups

    /// The inode `name` names in `parent`; the kernel now holds a reference to it.
    public func lookup(parent: InodeNumber, name: [UInt8], caller: Caller = .root) throws(FSError) -> FileAttributes {
        guard name.count <= FormatConstants.maxNameLength else { throw .nameTooLong }
        if name == [0x2e] || name == [0x2e, 0x2e] { return try lookupByHandle(parent, parentOf: name.count == 2) }
        // One metadata read: the directory (for the search permission) and the entry together.
        let (directory, entry) = try meta { () throws(MetaError) in try metadata.resolve(parent: parent, name: name) }
        if permissions.enabled { try permissions.check(directory, caller, .execute) }
        guard var attrs = entry else { throw .notFound }
        overlay(&attrs)
        inodes.remember(attrs.ino)
        return attrs
    }

    /// The kernel dropped `count` references to `ino`.
    public func forget(_ ino: InodeNumber, count: UInt64) {
        let forgotten = inodes.forget(ino, count: count)
        guard forgotten.released else { return }
        // The kernel evicted the inode and its cached pages: there is nothing for keep_cache to
        // keep, and no state stays behind per file ever opened.
        openedVersions.forget(ino)
        guard forgotten.purgeable else { return }
        // A read-only mount has no orphans of its own and its database is never written.
        guard !options.readOnly, openFiles.withLock({ $0[ino] == nil }) else { return }
        do { try purge(ino) } catch { logger.error("cannot purge unlinked inode", metadata: ["ino": "\(ino.rawValue)", "error": "\(error)"]) }
    }

    /// Records a reference the bridge handed to the kernel outside `lookup` (readdirplus).
    public func remember(_ ino: InodeNumber) { inodes.remember(ino) }

    // MARK: Filesystem

    public struct Statistics: Sendable {
        public var blockSize: UInt64
        public var totalBlocks: UInt64
        public var freeBlocks: UInt64
        public var totalInodes: UInt64
        public var freeInodes: UInt64
        public var maxNameLength: UInt64
    }

    /// statfs. Used is the file data the filesystem holds — referenced chunks, in the store
    /// and inline, and released ones whose space is not reclaimed yet (`UsageDetails.usedBytes`,
    /// the figure `status` shows as used). The size is `capacity=` if set; else, object storage
    /// having no fixed size, a nominal 1 PiB, as `df` needs some total. Free is what the size
    /// leaves, never below 0. Inodes: a nominal 2^32. One row on SQLite (Schema.v7).
    public func statfs() throws(FSError) -> Statistics {
        let usage = try meta { () throws(MetaError) in try metadata.usage() }
        let blockSize: UInt64 = 4096
        let total: UInt64 = (options.capacityBytes > 0 ? UInt64(options.capacityBytes) : 1 << 50) / blockSize
        let used = (usage.usedBytes + blockSize - 1) / blockSize
        let totalInodes: UInt64 = 1 << 32
        return Statistics(blockSize: blockSize, totalBlocks: total, freeBlocks: total - min(total, used),
                          totalInodes: totalInodes, freeInodes: totalInodes - min(totalInodes, usage.inodes),
                          maxNameLength: UInt64(FormatConstants.maxNameLength))
    }
}

extension MountConfiguration {
    /// Every close(2) is fsynced before it returns (`sync_interval=0`).
    var durableClose: Bool { syncInterval <= 0 }
}
