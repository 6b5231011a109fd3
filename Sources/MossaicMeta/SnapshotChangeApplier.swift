import MossaicCore

/// Turns a snapshot's base copy into the snapshot's own database at restore: applies its
/// changesets in order (`ChunkChangeStaging.apply`), restores the inode counter, and labels
/// the file as the snapshot (`snapshot_*` rows), in one transaction. Changesets are handed
/// over one at a time, so a long chain is never all in memory.
///
/// The file must be scratch until `finish` returned and the caller fsynced and renamed it
/// into place (`SnapshotDownloader`): nothing else opens it, and a failure or a crash before
/// that discards it and the restore starts over — so its transaction runs without journal,
/// syncs or the default page cache (`SQLiteConnection.prepareScratchTransaction`). Changes to
/// `chunks` wait in scratch tables beside it and apply at `finish`, sorted by hash
/// (`ChunkChangeStaging`: random inserts into that table were most of a large restore's time).
///
/// Not `Sendable`: one restore, on one thread.
public final class SnapshotChangeApplier {
    private let connection: SQLiteConnection
    private let chunkChanges: ChunkChangeStaging
    private var open = true

    /// Opens the base copy at `path` (a single-file database) and begins the transaction.
    public init(path: String) throws(MetaError) {
        connection = try SQLiteConnection(path: path, readOnly: false)
        // A changeset holds every row as the live database had it, trigger-made values
        // included (the reclaim sweep's `released_*`): triggers firing again here would stamp
        // them anew, and the next changeset's update of such a row would no longer apply.
        try connection.disableTriggers()
        try connection.prepareScratchTransaction()
        chunkChanges = try ChunkChangeStaging(connection: connection)
        do throws(MetaError) { try connection.execute("BEGIN IMMEDIATE") } catch {
            chunkChanges.discard()
            throw error
        }
    }

    /// Ends an unfinished transaction. Without a journal SQLite cannot undo what was applied:
    /// the file is left partly changed, and the caller discards it.
    deinit {
        if open { try? connection.execute("ROLLBACK") }
        chunkChanges.discard()
    }

    public func apply(_ changeset: [UInt8]) throws(MetaError) {
        try chunkChanges.apply(changeset)
    }

    /// Sets the inode counter, labels the database as snapshot `id` of `generation` holding
    /// the changes up to `changeSequence`, and commits.
    public func finish(inodeSequence: Int64, generation: Int64, id: String, changeSequence: Int64) throws(MetaError) {
        let c = connection
        try chunkChanges.applyStaged()
        try c.run("UPDATE sqlite_sequence SET seq = max(seq, ?) WHERE name = 'inodes'", [.int(inodeSequence)])
        if c.changes == 0 && inodeSequence > 0 {
            try c.run("INSERT INTO sqlite_sequence(name, seq) VALUES('inodes', ?)", [.int(inodeSequence)])
        }
        try SQLiteMetaStore.recordSnapshot(c, generation: generation, id: id, changeSequence: changeSequence)
        try c.execute("COMMIT")
        open = false
        chunkChanges.discard()
    }
}
