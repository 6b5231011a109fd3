import MossaicCore

/// The filesystem's metadata: inodes, directory entries, chunk lists, chunks with reference
/// counts (small ones inline), symlinks, xattrs and fallocate reservations. What the
/// filesystem, `fsck` and `gc` ask of a metadata engine, and all they may ask: an engine is
/// anything that passes the one conformance suite (Tests/MossaicMetaTests/MetaStoreConformance).
/// `SQLiteMetaStore` is the first engine (one host); ARCHITECTURE.md §9 plans PostgreSQL.
///
/// Rules every engine keeps:
/// - Every mutation is one atomic transaction that checks its preconditions and applies all
///   its changes (a rename moves the entry, link counts and parent times together), so a crash
///   never leaves half of one.
/// - A mutation is visible to every read that starts after it returned, from any thread.
/// - Reads never wait behind another operation's durability (a commit's fsync).
/// - `commit(_:durable:)` with `durable` and `sync()` return only once they and everything
///   before them survive power loss; other mutations are atomic and safe against a crash of
///   the daemon, durable at the next durable commit or sync.
/// - Errors are `MetaError`, the same case for the same condition in every engine (the
///   filesystem maps them to errno once).
///
/// Engine-specific matters stay on the engine: SQLite's database file, its snapshots for the
/// bucket (`SQLiteMetaStore+Snapshots`) and the swap of a read-only mount's database.
public protocol MetaStore: AnyObject, Sendable {
    /// Opened without write access: every mutation throws `MetaError.readOnly`.
    var readOnly: Bool { get }
    /// Changes when the engine switched to another database under the same object (a
    /// read-only mount following newer snapshots): what a caller cached from earlier reads
    /// (open files' chunk maps) is stale then.
    var epoch: Int { get }
    /// True if some committed change is not yet durable against power loss.
    var hasUnsyncedChanges: Bool { get }

    // MARK: Durability and settings

    /// Makes every change so far durable (fsync, fsyncdir, syncfs).
    func sync() throws(MetaError)
    /// Folds the engine's journal into its main storage at a clean shutdown, so the next open
    /// and a copy of the database start from one file. An engine without one does nothing.
    func checkpoint() throws(MetaError)
    func setting(_ key: String) throws(MetaError) -> String?
    func setSetting(_ key: String, _ value: String) throws(MetaError)

    // MARK: Attributes and names

    /// Creates the root directory if there is none yet. Returns true if it did.
    @discardableResult
    func createRootIfMissing(permissions: UInt32, uid: UInt32, gid: UInt32, now: Timestamp) throws(MetaError) -> Bool
    func attributes(of ino: InodeNumber) throws(MetaError) -> FileAttributes
    /// The directory `parent` and the inode `name` names in it (nil: no such name), in one
    /// read: all a lookup needs, its permission check on the directory included. Throws
    /// `notFound` for a missing `parent`, `notDirectory` for one that is not a directory.
    func resolve(parent: InodeNumber, name: [UInt8]) throws(MetaError) -> (directory: FileAttributes, entry: FileAttributes?)
    /// The inode a file handle names; `notFound` once it has no name left.
    func inode(byHandle ino: InodeNumber) throws(MetaError) -> FileAttributes
    /// The directory holding directory `ino` (the root is its own parent).
    func parentDirectory(of ino: InodeNumber) throws(MetaError) -> FileAttributes
    /// chmod, chown, truncate (dropping the chunk references past the new size) and times,
    /// with `xattrs` set (a value) or removed (nil) in the same transaction (ACL follows mode).
    func setAttributes(of ino: InodeNumber, _ changes: AttributeChanges, now: Timestamp,
                       xattrs: [[UInt8]: [UInt8]?]) throws(MetaError) -> FileAttributes
    /// Access times gathered in memory (relatime, lazytime), written in one transaction;
    /// inodes gone meanwhile are skipped.
    func touchAccessTimes(_ times: [(InodeNumber, Timestamp)]) throws(MetaError)
    /// The directory's parent and its entries, in name order.
    func readDirectory(_ ino: InodeNumber) throws(MetaError) -> (parent: InodeNumber, entries: [DirectoryEntry])
    /// One page of directory `ino`: at most `limit` entries whose names sort after `name` (from
    /// the first when nil), in name order — byte-wise, as memcmp with a name before any longer
    /// one it is a prefix of (SQLite's BLOB and PostgreSQL's bytea order). A keyset read: one
    /// indexed range scan of `limit` rows wherever the page starts, so a listing pages through a
    /// directory of any size without holding it or rescanning it, and an entry neither added
    /// nor removed meanwhile is on exactly one page. Throws `notFound` for a missing `ino`,
    /// `notDirectory` for one that is not a directory.
    func readDirectory(_ ino: InodeNumber, after name: [UInt8]?, limit: Int) throws(MetaError) -> [DirectoryEntry]
    func readSymlink(_ ino: InodeNumber) throws(MetaError) -> [UInt8]

    // MARK: Namespace

    func create(parent: InodeNumber, name: [UInt8], _ node: NewNode, now: Timestamp) throws(MetaError) -> FileAttributes
    /// An inode with no name (O_TMPFILE), born an orphan; `link` may give it one.
    func createUnnamed(in parent: InodeNumber, _ node: NewNode, now: Timestamp) throws(MetaError) -> FileAttributes
    func link(_ ino: InodeNumber, parent: InodeNumber, name: [UInt8], now: Timestamp) throws(MetaError) -> FileAttributes
    func unlink(parent: InodeNumber, name: [UInt8], now: Timestamp) throws(MetaError) -> Unlinked
    /// Removes an empty directory; returns its inode.
    func rmdir(parent: InodeNumber, name: [UInt8], now: Timestamp) throws(MetaError) -> InodeNumber
    /// rename(2) with RENAME_NOREPLACE / RENAME_EXCHANGE; returns what a replaced target lost.
    func rename(parent: InodeNumber, name: [UInt8], newParent: InodeNumber, newName: [UInt8],
                flags: RenameFlags, now: Timestamp) throws(MetaError) -> Unlinked?
    /// Inodes with no name left, waiting for their last kernel reference and open file.
    func orphans() throws(MetaError) -> [InodeNumber]
    /// Removes an orphan with its chunk references, xattrs and reservations.
    func purgeOrphan(_ ino: InodeNumber) throws(MetaError)
    /// This mount opened `ino`, which it had no handle on (`token` names this opening: the
    /// `closed` that ends it passes it back). An engine for many hosts records it, so that
    /// an unlink on another host keeps the inode until this mount closes it; SQLite's (one
    /// host, whose own open handles keep an orphan: `orphans()`) does nothing.
    func opened(_ ino: InodeNumber, token: UInt64) throws(MetaError)
    /// The last handle of this mount on `ino`, opened as `token`, was closed. Where the
    /// engine records opens, an orphan nobody has open any more is reclaimed here, on
    /// whichever host closes it last.
    func closed(_ ino: InodeNumber, token: UInt64) throws(MetaError)

    // MARK: Chunks

    /// The file's chunk references with indexes in `indexes`, in index order.
    func chunkRefs(_ ino: InodeNumber, indexes: ClosedRange<UInt64>) throws(MetaError) -> [ChunkRef]
    /// Publishes a file's new chunk references, new chunks, size and times in one transaction.
    func commit(_ commit: FileCommit, durable: Bool) throws(MetaError) -> FileAttributes
    func chunkInfo(_ hash: ChunkHash) throws(MetaError) -> ChunkInfo?
    func inlineData(_ hash: ChunkHash) throws(MetaError) -> [UInt8]?
    /// The chunk's bytes moved to another object (fsck putting a chunk back), now taking
    /// `storedLength` bytes there in form `location.codec`.
    func relocateChunk(_ hash: ChunkHash, to location: ChunkLocation, storedLength: Int) throws(MetaError)
    func unreferencedStoredChunks() throws(MetaError) -> [ChunkHash]

    // MARK: fallocate

    /// fallocate in one transaction (see SQLiteMetaStore+Allocations for the accounting).
    func changeAllocation(_ ino: InodeNumber, reserve: Range<UInt64>?, release: Range<UInt64>?,
                          growTo size: UInt64?, touch: AllocationTimes, now: Timestamp) throws(MetaError) -> FileAttributes
    func allocations(of ino: InodeNumber) throws(MetaError) -> [Range<UInt64>]

    // MARK: Extended attributes

    func xattr(_ ino: InodeNumber, name: [UInt8]) throws(MetaError) -> [UInt8]
    func xattrNames(_ ino: InodeNumber) throws(MetaError) -> [[UInt8]]
    func setXattr(_ ino: InodeNumber, name: [UInt8], value: [UInt8], mode: XattrMode, now: Timestamp) throws(MetaError)
    func removeXattr(_ ino: InodeNumber, name: [UInt8], now: Timestamp) throws(MetaError)

    // MARK: Usage, fsck and gc

    func usage() throws(MetaError) -> MetaUsage
    func usageDetails() throws(MetaError) -> UsageDetails
    func treeUsage(_ ino: InodeNumber) throws(MetaError) -> TreeUsage
    func treeStoredChunks(_ ino: InodeNumber) throws(MetaError) -> [(hash: ChunkHash, location: ChunkLocation, length: Int)]
    func checkConsistency() throws(MetaError) -> [MetaProblem]
    /// Repairs what `checkConsistency` finds; returns how many problems it fixed.
    func repairConsistency() throws(MetaError) -> Int
    func referencedStoredChunkLengths() throws(MetaError) -> [(chunk: LocatedChunk, length: Int)]
    func knownStoredChunks() throws(MetaError) -> [LocatedChunk]
    func chunkRowsForCollection() throws(MetaError) -> (live: [LocatedChunk], unreferenced: [LocatedChunk])
    func dropUnreferencedStoredChunks(_ hashes: [ChunkHash]) throws(MetaError) -> Int

    // MARK: The mounted reclaim sweep (SQLiteMetaStore+Sweep.swift)

    func settleReleasedChunks() throws(MetaError) -> Int
    func releasedChunks(before releasedBefore: Timestamp, limit: Int) throws(MetaError) -> [ReleasedChunk]
    func sweepReleasedChunks(_ candidates: [ReleasedChunk], sparedHashes: Set<ChunkHash>,
                             sparedKeys: Set<String>) throws(MetaError) -> ChunkSweep
}

/// The common forms of the requirements (a protocol requirement takes no default arguments).
extension MetaStore {
    /// The inode `name` names in directory `parent`.
    public func lookup(parent: InodeNumber, name: [UInt8]) throws(MetaError) -> FileAttributes {
        guard let entry = try resolve(parent: parent, name: name).entry else { throw .notFound }
        return entry
    }

    /// A durable commit (close with durable_close, fsync).
    public func commit(_ commit: FileCommit) throws(MetaError) -> FileAttributes {
        try self.commit(commit, durable: true)
    }

    public func setAttributes(of ino: InodeNumber, _ changes: AttributeChanges, now: Timestamp) throws(MetaError) -> FileAttributes {
        try setAttributes(of: ino, changes, now: now, xattrs: [:])
    }

    /// One host: its own handles keep its orphans (the filesystem purges an orphan only once
    /// no handle and no kernel reference is left), nothing to record.
    public func opened(_ ino: InodeNumber, token: UInt64) throws(MetaError) {}
    public func closed(_ ino: InodeNumber, token: UInt64) throws(MetaError) {}
}

extension MetaStore {
    /// The inode a file handle names, for the kernel's `lookup(ino, ".")` when it rebuilds an
    /// inode it had dropped from its caches (NFS re-export, open_by_handle_at). An inode with
    /// no name left is as good as deleted here: an open one is still in the kernel's cache,
    /// which never asks for it, so only a handle to a deleted file gets this far.
    /// The same for every engine: one attribute read.
    public func inode(byHandle ino: InodeNumber) throws(MetaError) -> FileAttributes {
        let attrs = try attributes(of: ino)
        guard attrs.nlink > 0 else { throw .notFound }
        return attrs
    }
}
