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
    public struct Options: Sendable {
        public var readOnly: Bool
        /// A file's buffered writes are committed early when they exceed this, bounding memory
        /// per open file (the commit is the same as at close: durable, one transaction).
        public var maxDirtyBytesPerFile: Int
        public init(readOnly: Bool = false, maxDirtyBytesPerFile: Int = 64 << 20) {
            self.readOnly = readOnly; self.maxDirtyBytesPerFile = maxDirtyBytesPerFile
        }
    }

    let metadata: SQLiteMetaStore
    let cache: BlobCache
    public let superblock: Superblock
    let options: Options
    let logger: Logger
    let inodes = InodeTable()
    let handles = HandleTable()
    /// Files with open handles, by inode.
    let openFiles = Mutex<[InodeNumber: OpenFile]>([:])
    /// Metadata snapshots of a read-write mount, for `snapshotMetadata()`; set once by the
    /// loader (see MossaicFilesystem+Snapshots.swift).
    let replicator = Mutex<MetadataReplicator?>(nil)

    public init(metadata: SQLiteMetaStore, cache: BlobCache, superblock: Superblock, options: Options, logger: Logger) {
        self.metadata = metadata
        self.cache = cache
        self.superblock = superblock
        self.options = options
        self.logger = logger
    }

    /// Prepares a freshly opened filesystem: the root exists, and inodes orphaned by a previous
    /// run (unlinked while open, then unmounted or crashed) are purged — no kernel can hold a
    /// reference to them any more.
    public func start(rootUID: UInt32 = 0, rootGID: UInt32 = 0) throws(FSError) {
        guard !options.readOnly else { return }
        _ = try meta { () throws(MetaError) in
            try metadata.createRootIfMissing(permissions: 0o755, uid: rootUID, gid: rootGID, now: .now())
        }
        try purgeAllOrphans()
    }

    /// Commits every dirty open file and purges orphans: called when the kernel has gone
    /// (unmount), before the daemon exits. Returns the errors of files that could not be
    /// committed, which the daemon reports.
    @discardableResult
    public func shutdown() -> [(InodeNumber, FSError)] {
        var failures: [(InodeNumber, FSError)] = []
        let files = openFiles.withLock { Array($0.values) }
        for file in files {
            do { try commit(file) } catch { failures.append((file.ino, error)) }
        }
        if !options.readOnly {
            do { try purgeAllOrphans() } catch { logger.error("cannot purge orphans at shutdown: \(error)") }
            do { try metadata.checkpoint() } catch { logger.warning("WAL checkpoint failed: \(error)") }
        }
        return failures
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

    func checkWritable() throws(FSError) {
        if options.readOnly { throw .readOnly }
    }

    static func checkName(_ name: [UInt8]) throws(FSError) {
        guard name.count <= FormatConstants.maxNameLength else { throw .nameTooLong }
        guard !name.isEmpty, name != [0x2e], name != [0x2e, 0x2e], !name.contains(0x2f) else { throw .invalidArgument }
    }

    /// Where the chunks live, for messages.
    public var storeName: String { cache.store.displayName }

    // MARK: Attributes

    /// The attributes of `ino`, with the size and mtime of buffered writes laid over them.
    public func getattr(_ ino: InodeNumber) throws(FSError) -> FileAttributes {
        var attrs = try meta { () throws(MetaError) in try metadata.attributes(of: ino) }
        if attrs.kind == .regular, let file = openFiles.withLock({ $0[ino] }) { file.overlay(&attrs) }
        return attrs
    }

    /// setattr: chmod, chown, truncate and utimens. Buffered writes of the file are committed
    /// first, so the change applies to the file as written.
    public func setattr(_ ino: InodeNumber, _ changes: AttributeChanges) throws(FSError) -> FileAttributes {
        try checkWritable()
        let file = openFiles.withLock { $0[ino] }
        if let file { try commit(file) }
        let attrs = try meta { () throws(MetaError) in try metadata.setAttributes(of: ino, changes, now: .now()) }
        if let size = changes.size, let file { file.truncated(to: size) }
        return attrs
    }

    // MARK: Lookups

    /// The inode `name` names in `parent`; the kernel now holds a reference to it.
    public func lookup(parent: InodeNumber, name: [UInt8]) throws(FSError) -> FileAttributes {
        guard name.count <= FormatConstants.maxNameLength else { throw .nameTooLong }
        var attrs = try meta { () throws(MetaError) in try metadata.lookup(parent: parent, name: name) }
        if attrs.kind == .regular, let file = openFiles.withLock({ $0[attrs.ino] }) { file.overlay(&attrs) }
        inodes.remember(attrs.ino)
        return attrs
    }

    /// The kernel dropped `count` references to `ino`.
    public func forget(_ ino: InodeNumber, count: UInt64) {
        guard inodes.forget(ino, count: count) else { return }
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

    /// statfs. Object storage has no fixed size: the filesystem reports 1 PiB, less what its
    /// chunks use, as `df` needs some total; inodes likewise.
    public func statfs() throws(FSError) -> Statistics {
        let usage = try meta { () throws(MetaError) in try metadata.usage() }
        let blockSize: UInt64 = 4096
        let total: UInt64 = (1 << 50) / blockSize
        let used = min(total, (usage.storedBytes + blockSize - 1) / blockSize)
        let totalInodes: UInt64 = 1 << 32
        return Statistics(blockSize: blockSize, totalBlocks: total, freeBlocks: total - used,
                          totalInodes: totalInodes, freeInodes: totalInodes - min(totalInodes, usage.inodes),
                          maxNameLength: UInt64(FormatConstants.maxNameLength))
    }
}
