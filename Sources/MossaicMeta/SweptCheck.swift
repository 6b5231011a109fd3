/// What one commit's transaction (PostgreSQL) learns about the reclaim sweep of the mounted
/// hosts (PostgresMetaStore+Sweep has the protocol): whether a chunk row it relied on is gone,
/// or a new row of it would name an object the sweep deleted after it was stored.
struct SweptCheck {
    /// A chunk a reference names has no row (it had one when the caller looked: dedup).
    var vanished = false
    /// A new row would name an object with a tombstone the commit may not pass.
    var blocked = false
    /// One of those tombstones is still pending: its object is being deleted right now.
    var pending = false
    /// Tombstones of objects this commit's new rows name, stored after their deletion: they go
    /// with the commit (the rows protect the objects from now on).
    var superseded: [String] = []

    /// Inserts a stored chunk's row (`row`: the eight values of `commit`'s INSERT) unless it
    /// is there, and judges the object `key` it names.
    ///
    /// `seen` share-locks the rows, as this transaction's snapshot sees them, of the chunk and
    /// of every chunk kept in the same object: one a sweep deleted since the snapshot fails the
    /// statement (40001: the transaction runs again and sees the tombstone); one a sweep holds
    /// is waited for; once share-locked here, no sweep takes it (`FOR UPDATE SKIP LOCKED`)
    /// before this transaction ends. A row it cannot see was inserted after its snapshot, and
    /// no sweep takes such a row while this transaction runs (`unreferenced_xmax`). So a
    /// tombstone this snapshot cannot see is of an object no row of ours names.
    mutating func insert(_ c: PostgresConnection, _ row: [SQLValue], key: String, storedAfter: Int64) throws(MetaError) {
        let found = try c.queryOne("""
            WITH seen AS (SELECT 1 FROM chunks WHERE hash = $1 OR pack = $5 FOR KEY SHARE),
                 added AS (\(PostgresMetaStore.insertChunk) ON CONFLICT(hash) DO NOTHING RETURNING 1)
            SELECT (SELECT count(*) FROM seen), (SELECT count(*) FROM added), t.seq, t.pending::int
            FROM (SELECT 1) AS one LEFT JOIN swept_objects t ON t.key = $9
            """, row + [.text(key)]) { s in
            (added: s.int(1) > 0, tombstone: s.isNull(2) ? nil : (seq: s.int(2), pending: s.int(3) != 0))
        }
        // An existing row stays (share-locked): the object it names is there until it goes.
        guard let found, found.added, let tombstone = found.tombstone else { return }
        if tombstone.pending || tombstone.seq > storedAfter {
            blocked = true
            pending = pending || tombstone.pending
        } else {
            superseded.append(key)
        }
    }

    /// At the end of the commit's transaction: throws `.sweptChunks` (rolling it back) if the
    /// sweep took something, else drops the superseded tombstones.
    ///
    /// `through` is the highest tombstone number below every pending one: every deletion up to
    /// it was done when this snapshot was taken (the sweep numbers its batches in commit order,
    /// one batch at a time: `sweepLock`), so what the caller stores from now on is newer.
    func settle(_ c: PostgresConnection) throws(MetaError) {
        guard !vanished && !blocked else {
            // A vanished row's object may be among those still being deleted: wait for them too.
            let (through, deleting) = try c.queryOne("""
                SELECT coalesce((SELECT min(seq) - 1 FROM swept_objects WHERE pending), (SELECT max(seq) FROM swept_objects), 0),
                       EXISTS (SELECT 1 FROM swept_objects WHERE pending)::int
                """) { ($0.int(0), $0.int(1) != 0) } ?? (0, false)
            throw .sweptChunks(through: through, pending: pending || vanished && deleting)
        }
        for key in superseded {
            try c.update("DELETE FROM swept_objects WHERE key = $1 AND NOT pending", [.text(key)])
        }
    }
}
