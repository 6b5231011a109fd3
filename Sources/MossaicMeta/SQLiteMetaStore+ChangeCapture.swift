import MossaicCore

/// The row changes of one incremental metadata snapshot, captured at one committed state.
public struct CapturedChanges: Sendable {
    /// A SQLite changeset (`SQLiteChangeRecorder`): every row changed since the previous
    /// capture (or since the last one whose snapshot was published, if some were not).
    public var changeset: [UInt8]
    /// `change_seq` at the capture: the snapshot holds exactly the changes up to it.
    public var changeSequence: Int64
    /// AUTOINCREMENT's counter of inode numbers (not in changesets: `sqlite_sequence` has no
    /// primary key), so a restored database never hands out a number a deleted inode had.
    public var inodeSequence: Int64
    /// Size of the live database at the capture (its pages), against which a chain of
    /// changesets is weighed.
    public var databaseBytes: Int64
}

/// Incremental snapshots: which rows changed since the last snapshot, so that a snapshot ships
/// those instead of the database file (issue 20: creating 200,000 small files re-uploaded
/// the whole database at each of 26 snapshots, 10.6 GB for a 920 MB file).
///
/// The writer connection records row changes from the moment a snapshot's state is captured
/// (a full copy's read transaction starting, or the previous changeset being taken), always
/// under the writer lock, so "the state captured" and "the changes after it" meet exactly.
/// A changeset whose snapshot was not published stays with the connection and is combined
/// with the next one, so nothing is lost when an upload fails. What this process cannot know —
/// changes made before it opened the database — means no recording: the next snapshot is then
/// a full copy, after which recording is exact again.
extension SQLiteMetaStore {
    /// Unshipped changes that hold more than this — the recording's old row values and the
    /// changeset of captures whose snapshot was not published — are dropped, and the next
    /// snapshot is a full copy: memory stays bounded when snapshots cannot be published for a
    /// long time. The default of `changeRecordingLimit`.
    public static let changeRecordingMemoryLimit: Int64 = 256 << 20

    /// Starts recording row changes if the database is exactly the state of snapshot
    /// `snapshotID` (clean since it, no snapshot pending, same schema): then the next snapshot
    /// can ship only what changes from now on. Returns whether it started. Call before the
    /// filesystem serves requests.
    public func startRecordingChanges(ifCleanAt snapshotID: String, schemaVersion: Int64) throws(MetaError) -> Bool {
        guard !readOnly else { return false }
        return try withConnection { (c) throws(MetaError) -> Bool in
            let state = try Self.replicationState(c)
            let schema = try Self.checkSchema(c)
            guard !state.isDirty, state.pending == nil, state.snapshotID == snapshotID, schema == schemaVersion else { return false }
            c.changeRecorder = try SQLiteChangeRecorder(on: c)
            c.unshippedChanges = nil
            return true
        }
    }

    /// The changes since the last published capture, or nil if they are not known (the next
    /// snapshot must be a full copy). Recording restarts at this state; the changes are kept
    /// until `changesShipped()` says their snapshot was published.
    public func captureChanges() throws(MetaError) -> CapturedChanges? {
        try withConnection { (c) throws(MetaError) -> CapturedChanges? in
            guard let recorder = c.changeRecorder else { return nil }
            let changes = try SQLiteChangeRecorder.combine(c.unshippedChanges ?? [], try recorder.patchset())
            let state = try Self.replicationState(c)
            let inodeSequence = try Self.inodeSequence(c)
            let pages = try Self.liveBytes(c)
            c.changeRecorder = try SQLiteChangeRecorder(on: c)
            c.unshippedChanges = changes
            return CapturedChanges(changeset: changes, changeSequence: state.changeSequence, inodeSequence: inodeSequence,
                                   databaseBytes: pages)
        }
    }

    /// The snapshot of the last capture is published: its changes need not ship again.
    public func changesShipped() {
        try? withConnection { (c) throws(MetaError) in c.unshippedChanges = nil }
    }

    /// After each write transaction (writer lock held): a recording grown past its bound is
    /// dropped (see `changeRecordingMemoryLimit`). The unshipped changeset counts too: while
    /// publishing fails (a store outage), each snapshot attempt moves the recording into it, so
    /// the recording alone would stay small while the changes held grow.
    func boundChangeRecording(_ c: SQLiteConnection) {
        if let recorder = c.changeRecorder,
           recorder.memoryUsed + Int64(c.unshippedChanges?.count ?? 0) > changeRecordingLimit {
            c.changeRecorder = nil
            c.unshippedChanges = nil
        }
    }

    static func inodeSequence(_ c: SQLiteConnection) throws(MetaError) -> Int64 {
        try c.queryOne("SELECT seq FROM sqlite_sequence WHERE name = 'inodes'") { $0.int(0) } ?? 0
    }

    /// Counts for a snapshot's manifest (inodes, files, their bytes), read on a reader
    /// connection right after a capture: informational (`mossaicfs snapshots`), so a commit
    /// landing in between may be counted.
    public func snapshotStatistics() throws(MetaError) -> SnapshotCopyInfo {
        try read(snapshot: true) { (c) throws(MetaError) in try Self.statistics(c) }
    }
}
