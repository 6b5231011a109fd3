import MossaicMeta

/// What a read-write mount does with its local metadata, given the store's HEAD.
///
/// Generations order snapshots (each is its parent's + 1); the local database records the
/// snapshot it was last equal to (`ReplicationState`) and whether it changed since.
///
/// | local meta.db                                   | decision                                  |
/// |-------------------------------------------------|-------------------------------------------|
/// | none, no HEAD, nothing else in the store        | a new, empty filesystem                   |
/// | none, no HEAD, but snapshots or file data       | refuse: HEAD is missing, not the data     |
/// | none, HEAD                                      | restore HEAD                              |
/// | at HEAD, unchanged                              | use it                                    |
/// | at HEAD, changed (crash before the snapshot)    | use it, snapshot it before going live     |
/// | pending snapshot that HEAD names                | it was published: as "at HEAD"            |
/// | older generation than HEAD, or same generation  | refuse (another machine wrote since), or  |
/// |   but another snapshot (diverged)               |   with discard_local restore HEAD         |
/// | newer generation than HEAD (HEAD rolled back),  | use it (it wins) and snapshot it first    |
/// |   or no HEAD and no newer snapshot in the store |                                           |
/// | no HEAD, but a newer (or diverged) snapshot     | refuse (HEAD is missing, not the data)    |
///
/// A store without HEAD is taken for a new filesystem only if it holds nothing else: a
/// deleted HEAD (an operator's mistake, a lifecycle rule, a partial bucket copy) must never
/// turn into an empty filesystem whose snapshots then prune the real ones and whose `gc`
/// deletes every data object. `Headless` says what such a store holds.
///
/// `discard_local` replaces local metadata with HEAD whenever they differ (a changed or
/// diverged local database), not only when it is older.
public enum MountReconciliation {
    public enum Decision: Equatable, Sendable {
        case fresh
        case restore
        /// Use the local metadata. `publishPending`: record this pending snapshot as published
        /// first (HEAD names it). `snapshotFirst`: take a snapshot before the mount goes live.
        case useLocal(publishPending: PendingSnapshot?, snapshotFirst: Bool, warning: String?)
        case replaceLocal
        case refuse(String)
    }

    /// What a store without `meta/HEAD` holds (looked at only then).
    public struct Headless: Equatable, Sendable {
        /// The store's name and the way the user reaches it, for the message.
        public var store: String
        /// The newest manifest in `meta/snapshots/`, if any.
        public var newestSnapshot: SnapshotManifest?
        /// Whether `chunks/` or `packs/` hold any object.
        public var hasFileData: Bool
        public init(store: String, newestSnapshot: SnapshotManifest?, hasFileData: Bool) {
            self.store = store; self.newestSnapshot = newestSnapshot; self.hasFileData = hasFileData
        }

        /// Why such a store must not be mounted with `local` (nil: it may), one line.
        func refusal(local: ReplicationState?) -> String? {
            let missing = "\(store)/\(MetadataLayout.head) is missing"
            guard let newest = newestSnapshot else {
                guard local == nil, hasFileData else { return nil }
                return "\(missing), and so is every metadata snapshot, but the store holds file data: its metadata is lost, "
                    + "not empty; refusing to mount it as an empty filesystem. Mount with the cache_dir= that holds this "
                    + "filesystem's meta.db, or, if the metadata is lost for good, start over with mossaicfs format --force"
            }
            let generation = local.map { $0.pending?.generation ?? $0.generation } ?? -1
            let sameSnapshot = local.map { $0.snapshotID == newest.id || $0.pending?.id == newest.id } ?? false
            guard newest.generation > generation || (newest.generation == generation && !sameSnapshot) else { return nil }
            let was = local.map { _ in ", and the local metadata is at generation \(generation), older" } ?? ""
            return "\(missing), but the store holds metadata snapshots (the newest: \(newest.id), generation \(newest.generation), "
                + "taken \(newest.created) on \(newest.host))\(was); refusing to mount without HEAD. List them with "
                + "mossaicfs snapshots SOURCE and point HEAD at one with mossaicfs snapshots SOURCE --set-head ID"
        }
    }

    /// `headless`: what the store holds when `head` is nil (nil: nothing at all).
    public static func decide(local: ReplicationState?, head: HeadPointer?, headManifest: SnapshotManifest?,
                              headless: Headless? = nil, discardLocal: Bool, cacheDirectory: String) -> Decision {
        if head == nil, let why = headless?.refusal(local: local) { return .refuse(why) }
        guard var local else { return head == nil ? .fresh : .restore }
        guard let head else {
            let warning = local.generation > 0
                ? "the store has no metadata snapshot although \(cacheDirectory) was at generation \(local.generation); publishing the local metadata"
                : nil
            return .useLocal(publishPending: nil, snapshotFirst: true, warning: warning)
        }
        var promote: PendingSnapshot?
        if let pending = local.pending, pending.id == head.snapshot {
            promote = pending
            local.generation = pending.generation
            local.snapshotID = pending.id
            local.snapshotChangeSequence = pending.changeSequence
        }
        if local.snapshotID == head.snapshot {
            if discardLocal && local.isDirty { return .replaceLocal }
            return .useLocal(publishPending: promote, snapshotFirst: local.isDirty, warning: nil)
        }
        if head.generation >= local.generation {
            if discardLocal { return .replaceLocal }
            let by = headManifest.map { ", taken \($0.created) on \($0.host)" } ?? ""
            let at = local.snapshotID.map { "snapshot \($0) (generation \(local.generation))" } ?? "no snapshot"
            let changes = local.isDirty ? ", plus changes never snapshotted" : ""
            return .refuse("""
                the local metadata in \(cacheDirectory) is older than the store's: it is at \(at)\(changes), the store at \
                \(head.snapshot) (generation \(head.generation)\(by)); another machine wrote since. Mount with -o discard_local \
                to replace it with the store's\(local.isDirty ? " (losing those changes)" : ""), or use another cache_dir=
                """)
        }
        if discardLocal { return .replaceLocal }
        return .useLocal(publishPending: nil, snapshotFirst: true,
                         warning: "the local metadata (generation \(local.generation)) is newer than the store's HEAD \(head.snapshot) (generation \(head.generation)); publishing the local metadata")
    }
}
