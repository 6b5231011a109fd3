#if canImport(Glibc)
import Glibc
#endif
import Logging
import MossaicCore
import MossaicMeta
import MossaicObjectStore
import Synchronization

/// The background side of a read-only mount that follows the store: every `interval` seconds
/// it asks for `meta/HEAD`'s ETag (one HEAD request); when HEAD moved, it assembles the new
/// snapshot next to the current one (reusing the current file's identical pieces), and swaps
/// the metadata connection (`SQLiteMetaStore.replaceDatabase`): FUSE operations in flight see
/// the old database or the new one. The kernel notices within attr_timeout/entry_timeout
/// (names are never cached negatively, so new files appear at the next lookup).
public final class HeadFollower: Sendable {
    public struct Current: Sendable {
        public var manifest: SnapshotManifest?
        public var path: String
        public var headETag: String?
        public init(manifest: SnapshotManifest?, path: String, headETag: String?) {
            self.manifest = manifest; self.path = path; self.headETag = headETag
        }
    }

    let store: any ObjectStore
    let metadata: SQLiteMetaStore
    let directory: String
    let fsUUID: String
    let logger: Logger
    private let current: Mutex<Current>
    private let failing = Mutex(false)
    private let worker: Mutex<PeriodicWorker?> = Mutex(nil)
    let interval: Double

    /// `directory`: where snapshot files live (cache_dir/snapshots).
    public init(store: any ObjectStore, metadata: SQLiteMetaStore, directory: String, current: Current, fsUUID: String,
                interval: Double, logger: Logger) {
        self.store = store; self.metadata = metadata; self.directory = directory; self.fsUUID = fsUUID
        self.interval = interval; self.logger = logger
        self.current = Mutex(current)
    }

    public var currentSnapshot: String? { current.withLock { $0.manifest?.id } }

    public func start() {
        let w = PeriodicWorker(name: "mossaicfs-follow", interval: interval) { [weak self] in
            guard let self else { return }
            do {
                _ = try poll()
                if failing.withLock({ (f) -> Bool in defer { f = false }; return f }) { logger.notice("following the store's snapshots again") }
            } catch {
                let first = failing.withLock { (f) -> Bool in defer { f = true }; return !f }
                if first { logger.warning("cannot follow the store's newest snapshot (retrying)", metadata: ["error": "\(error)"]) }
            }
        }
        worker.withLock { $0 = w }
        w.start()
    }

    public func stop() {
        worker.withLock { $0 }?.stop()
    }

    /// Checks HEAD once and switches to a newer snapshot. Returns the new snapshot's id if it
    /// switched. Called by the thread; public for tests.
    @discardableResult
    public func poll() throws(ReplicationError) -> String? {
        let now = current.withLock { $0 }
        guard let info = try ReplicationError.wrap({ () throws(ObjectStoreError) in try store.head(MetadataLayout.head) }),
              info.etag != now.headETag else { return nil }
        let catalog = SnapshotCatalog(store: store)
        guard let head = try catalog.head() else { return nil }
        if head.pointer.snapshot == now.manifest?.id {
            current.withLock { $0.headETag = head.etag }
            return nil
        }
        let manifest = try catalog.manifest(head.pointer.snapshot)
        guard manifest.fsUUID == fsUUID else { throw .wrongFilesystem("snapshot \(manifest.id) belongs to filesystem \(manifest.fsUUID)") }
        if let old = now.manifest, manifest.generation < old.generation { return nil }
        let path = directory + "/" + manifest.id + ".db"
        try SnapshotDownloader.download(manifest, from: store, to: path, reusing: now.manifest.map { (now.path, $0) })
        do {
            try SQLiteMetaStore.prepareSnapshotFile(path)
            try metadata.replaceDatabase(with: path)
        } catch {
            SQLiteMetaStore.removeDatabaseFiles(path)
            throw .metadata(error)
        }
        current.withLock { $0 = Current(manifest: manifest, path: path, headETag: head.etag) }
        if now.path != path { SQLiteMetaStore.removeDatabaseFiles(now.path) }
        logger.info("now showing metadata snapshot", metadata: ["snapshot": "\(manifest.id)", "created": "\(manifest.created)"])
        return manifest.id
    }
}
