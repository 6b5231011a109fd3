import MossaicMeta

/// What a read-write mount does with its local metadata, given the store's HEAD.
///
/// Generations order snapshots (each is its parent's + 1); the local database records the
/// snapshot it was last equal to (`ReplicationState`) and whether it changed since.
///
/// | local meta.db                                   | decision                                  |
/// |-------------------------------------------------|-------------------------------------------|
/// | none, no HEAD                                   | a new, empty filesystem                   |
/// | none, HEAD                                      | restore HEAD                              |
/// | at HEAD, unchanged                              | use it                                    |
/// | at HEAD, changed (crash before the snapshot)    | use it, snapshot it before going live     |
/// | pending snapshot that HEAD names                | it was published: as "at HEAD"            |
/// | older generation than HEAD, or same generation  | refuse (another machine wrote since), or  |
/// |   but another snapshot (diverged)               |   with discard_local restore HEAD         |
/// | newer generation than HEAD (HEAD rolled back),  | use it (it wins) and snapshot it first    |
/// |   or no HEAD at all                             |                                           |
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

    public static func decide(local: ReplicationState?, head: HeadPointer?, headManifest: SnapshotManifest?,
                              discardLocal: Bool, cacheDirectory: String) -> Decision {
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
