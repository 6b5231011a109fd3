import Logging
import MossaicCore
import MossaicObjectStore

/// `mossaicfs snapshots SOURCE --set-head ID`: points a store's missing (or unreadable)
/// `meta/HEAD` at an existing snapshot, the way back from a deleted HEAD that mounts refuse
/// (`MountReconciliation.Headless`).
///
/// It never moves a readable HEAD: that would roll the filesystem back under its writer's
/// feet (a read-only mount with `snapshot=ID` looks at an older snapshot without that). It
/// holds the writer lease while it works, so no read-write mount is live meanwhile.
public enum HeadRepair {
    /// Writes HEAD naming `name` (an id or a generation) and returns its manifest.
    public static func setHead(store: any ObjectStore, fsUUID: String, to name: String, leaseDuration: Double,
                               logger: Logger) throws(ReplicationError) -> SnapshotManifest {
        let catalog = SnapshotCatalog(store: store)
        let manifest = try catalog.resolve(name)
        guard manifest.fsUUID == fsUUID else {
            throw .wrongFilesystem("metadata snapshot \(manifest.id) belongs to filesystem \(manifest.fsUUID), not \(fsUUID)")
        }
        let lease = try WriterLease.acquire(store: store, cacheDirectory: "(mossaicfs snapshots --set-head)", duration: leaseDuration,
                                            force: false, claimant: .command("snapshots --set-head"), logger: logger)
        defer { try? lease.release() }
        let condition: PutCondition
        if let info = try ReplicationError.wrap({ () throws(ObjectStoreError) in try store.head(MetadataLayout.head) }) {
            do throws(ReplicationError) {
                if let head = try catalog.head() {
                    throw .local("\(store.displayName)/\(MetadataLayout.head) exists and names snapshot \(head.pointer.snapshot); "
                        + "it is only ever set where it is missing or unreadable (look at an older snapshot with mount -o ro,snapshot=ID)")
                }
            } catch .damaged {
                // Unreadable: replaced, exactly the version looked at.
            }
            condition = .ifMatch(info.etag)
        } else {
            condition = .ifNoneMatch
        }
        let pointer = HeadPointer(snapshot: manifest.id, generation: manifest.generation)
        do {
            _ = try store.put(MetadataLayout.head, pointer.encoded(), condition: condition)
        } catch .preconditionFailed {
            throw .local("\(store.displayName)/\(MetadataLayout.head) changed meanwhile; look again with mossaicfs snapshots SOURCE")
        } catch {
            throw .store(error)
        }
        logger.notice("metadata HEAD set", metadata: ["snapshot": "\(manifest.id)", "generation": "\(manifest.generation)"])
        return manifest
    }
}
