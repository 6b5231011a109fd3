import Foundation
#if canImport(Glibc)
import Glibc
#endif
import MossaicCore
import MossaicMeta
import MossaicObjectStore

/// Reading the snapshots of a store: HEAD, manifests, and the chunks they keep alive (which
/// of them retention keeps: `SnapshotRetention`). Read-only: safe from any machine, with or without the lease.
public struct SnapshotCatalog: Sendable {
    public let store: any ObjectStore

    public init(store: any ObjectStore) { self.store = store }

    /// HEAD and its ETag, or nil if no snapshot was ever published.
    public func head() throws(ReplicationError) -> PublishedHead? {
        // HEAD first, then the body: if it changes in between, the ETag is older than the body
        // and a conditional replacement based on it fails, which is the safe direction.
        guard let info = try ReplicationError.wrap({ () throws(ObjectStoreError) in try store.head(MetadataLayout.head) }) else { return nil }
        let bytes: [UInt8]
        do { bytes = try store.get(MetadataLayout.head) } catch .notFound { return nil } catch { throw .store(error) }
        return PublishedHead(pointer: try HeadPointer.decode(bytes), etag: info.etag)
    }

    /// The writer lease as it is in the store, or nil if nobody holds one.
    public func lease() throws(ReplicationError) -> LeaseRecord? {
        let bytes: [UInt8]
        do { bytes = try store.get(MetadataLayout.lease) } catch .notFound { return nil } catch { throw .store(error) }
        guard let record = try? JSONDecoder().decode(LeaseRecord.self, from: Data(bytes)) else {
            throw .damaged("\(MetadataLayout.lease) is not a valid lease record")
        }
        return record
    }

    public func manifest(_ id: String) throws(ReplicationError) -> SnapshotManifest {
        let key = MetadataLayout.manifest(id)
        let bytes: [UInt8]
        do { bytes = try store.get(key) } catch .notFound { throw .noSuchSnapshot(id) } catch { throw .store(error) }
        let m = try SnapshotManifest.decode(bytes, key: key)
        guard m.id == id else { throw .damaged("\(key) describes snapshot \(m.id)") }
        return m
    }

    /// Ids of every manifest in the store, in generation order.
    public func snapshotIDs() throws(ReplicationError) -> [String] {
        let objects = try ReplicationError.wrap { () throws(ObjectStoreError) in try store.list(prefix: MetadataLayout.snapshotsPrefix) }
        return objects.compactMap { MetadataLayout.snapshotID(manifestKey: $0.key) }.sorted()
    }

    /// Every readable manifest, oldest first (a manifest deleted by pruning while listing is
    /// skipped).
    public func manifests() throws(ReplicationError) -> [SnapshotManifest] {
        var out: [SnapshotManifest] = []
        for id in try snapshotIDs() {
            do { out.append(try manifest(id)) } catch .noSuchSnapshot { continue }
        }
        return out.sorted { ($0.generation, $0.id) < ($1.generation, $1.id) }
    }

    /// The snapshot a user named: a full id, or a generation number.
    public func resolve(_ name: String) throws(ReplicationError) -> SnapshotManifest {
        if SnapshotID.generation(of: name) != nil { return try manifest(name) }
        guard let generation = Int64(name), generation > 0 else { throw .noSuchSnapshot(name) }
        let matches = try snapshotIDs().filter { SnapshotID.generation(of: $0) == generation }
        guard !matches.isEmpty else { throw .noSuchSnapshot(name) }
        // Two manifests of one generation exist only if two writers raced; HEAD's chain wins.
        if matches.count > 1, let head = try head() {
            for manifest in try SnapshotRetention.everything.chain(from: head.pointer.snapshot, in: self, now: .now())
            where matches.contains(manifest.id) {
                return manifest
            }
        }
        return try manifest(matches[0])
    }

    /// Every stored file chunk that any of `snapshots` references, with the location that
    /// snapshot gives it (its own `chunks/` object or a range of a `packs/` object). The garbage
    /// collector must keep the objects holding all of them, besides what the live metadata
    /// references: a chunk whose refcount dropped to 0 after the oldest retained snapshot was
    /// taken is still referenced by that snapshot, and restoring it must find the chunk where
    /// the snapshot's row says it is. Each snapshot's
    /// database is assembled in `workDirectory` and removed afterwards. `progress(done, total)`
    /// is told after each snapshot.
    public func referencedFileChunks(of snapshots: [SnapshotManifest], workDirectory: String,
                                     progress: (Int, Int) -> Void = { _, _ in }) throws(ReplicationError) -> Set<LocatedChunk> {
        var result: Set<LocatedChunk> = []
        var previous: (path: String, manifest: SnapshotManifest)?
        defer { if let previous { SQLiteMetaStore.removeDatabaseFiles(previous.path) } }
        for (done, snapshot) in snapshots.enumerated() {
            let path = workDirectory + "/gc-\(snapshot.id).db"
            // Consecutive snapshots share most pieces: copy them from the previous file.
            _ = try SnapshotDownloader.download(snapshot, from: store, to: path, reusing: previous)
            if let previous { SQLiteMetaStore.removeDatabaseFiles(previous.path) }
            previous = (path, snapshot)
            result.formUnion(try ReplicationError.wrapMeta { () throws(MetaError) in
                try SQLiteMetaStore.referencedStoredChunks(inDatabase: path)
            })
            progress(done + 1, snapshots.count)
        }
        return result
    }
}
