import MossaicCore

/// The reclaim sweep of a PostgreSQL filesystem, run by mounted hosts (MossaicMount's
/// SharedChunkSweeper drives it; schema 9's columns and tables). A mark-and-sweep: no
/// per-chunk count that every commit would update.
///
/// - Mark (`markUnreferencedChunks`): a stored chunk row no `file_chunks` row names gets
///   `unreferenced_since` (the server's clock) and `unreferenced_xmax`; one named again loses
///   them.
/// - Sweep (`sweepUnreferencedChunks`), one batch per transaction: the rows marked at least the
///   grace ago whose marking transactions all commits then running have outlived are locked
///   `FOR UPDATE SKIP LOCKED`, checked again for references, and a pack's rows only all
///   together; they are deleted and each object they held gets a pending tombstone
///   (`swept_objects`), in one durable transaction. Then the caller deletes the objects and
///   `finishSweep` marks the tombstones done.
///
/// Why no host can end up naming a deleted object:
/// - A commit referencing an existing row share-locks it through the foreign key (or
///   `SweptCheck`'s `seen`): it either waits for the sweep's transaction and then fails and
///   runs again without the row, or holds the lock first and the sweep skips the row.
/// - A commit inserting a row for an object with a tombstone must have stored the object after
///   the tombstone was done (`FileCommit.storedAfterSweep`), else it throws `.sweptChunks`
///   and the caller stores its chunks again: a host's memory of objects it stored
///   (`ChunkStore`'s placements, uploads of pages still open) may predate a deletion.
/// - Rows go before objects, and a crash between leaves a pending tombstone the next round
///   finishes: never a row whose object is gone.
/// - A retained backup names the objects of the rows it holds; the caller's `named` keeps
///   them, and a backup whose dump may still be running (claimed, not yet complete) stops
///   every batch (`backupSettled`).
/// Objects no row ever named (uploads whose commit never came) are not this sweep's: `gc`.
extension PostgresMetaStore {
    /// One sweeper at a time among all the hosts (a transaction-level advisory lock per round
    /// step), so that tombstone numbers follow commit order.
    static let sweepLock: Int64 = 0x6d6f_7373_6169_6302

    /// Marks the stored chunks nothing references and unmarks those referenced again. Nil if
    /// another host is sweeping (it marks). READ COMMITTED: the marks are hints the sweep checks
    /// again under row locks, so a commit racing this statement costs at most a mark.
    public func markUnreferencedChunks() throws(MetaError) -> (marked: Int, cleared: Int)? {
        try write(isolation: .readCommitted) { (c) throws(MetaError) -> (marked: Int, cleared: Int)? in
            guard try Self.trySweepLock(c) else { return nil }
            let cleared = try c.update("""
                UPDATE chunks c SET unreferenced_since = NULL, unreferenced_xmax = NULL
                WHERE c.unreferenced_since IS NOT NULL AND EXISTS (SELECT 1 FROM file_chunks f WHERE f.hash = c.hash)
                """)
            // `pg_snapshot_xmax`: every transaction with a smaller id had started when this
            // statement looked; the row is not swept while one of them still runs.
            let marked = try c.update("""
                UPDATE chunks c SET unreferenced_since = now(), unreferenced_xmax = pg_snapshot_xmax(pg_current_snapshot())::text::bigint
                WHERE c.state = $1 AND c.unreferenced_since IS NULL AND NOT EXISTS (SELECT 1 FROM file_chunks f WHERE f.hash = c.hash)
                """, [.int(ChunkState.stored.rawValue)])
            try Self.foldUsageCounts(c)
            return (marked, cleared)
        }
    }

    private static func trySweepLock(_ c: PostgresConnection) throws(MetaError) -> Bool {
        try c.queryOne("SELECT pg_try_advisory_xact_lock($1)::int", [.int(sweepLock)]) { $0.int(0) == 1 } ?? false
    }

    /// One batch of the sweep (the protocol above): at most `limit` rows marked at least
    /// `grace` seconds ago. `backupSettled(claim)`: whether the backup claimed at `claim` (the
    /// claiming host's clock in ns, `MetadataDump.backupSetting`; 0: none ever) is complete —
    /// the claim's row is share-locked, so no backup is claimed until this transaction ended,
    /// and a later one dumps without these rows. `named(key)`: a retained backup names the
    /// object. `after`: the previous batch's `cursor` in this round. Nil if another host is
    /// sweeping.
    public func sweepUnreferencedChunks(grace: Double, limit: Int, after: SweepCursor?, backupSettled: (Int64) -> Bool,
                                        named: (String) -> Bool) throws(MetaError) -> SharedChunkSweep? {
        let stored = SQLValue.int(ChunkState.stored.rawValue)
        return try write(durable: true, isolation: .readCommitted) { (c) throws(MetaError) -> SharedChunkSweep? in
            guard try Self.trySweepLock(c) else { return nil }
            var sweep = SharedChunkSweep()
            let setting = SQLValue.text(MetadataDump.backupSetting)
            try c.update("INSERT INTO settings(key, value) VALUES($1, '0') ON CONFLICT(key) DO NOTHING", [setting])
            let claim = try c.queryOne("SELECT value FROM settings WHERE key = $1 FOR SHARE", [setting]) { Int64($0.text(0)) ?? 0 } ?? 0
            guard backupSettled(claim) else {
                sweep.waitingForBackup = true
                return sweep
            }
            // Eligible: marked the grace ago, by a statement every transaction then running has
            // outlived; in a pack, only with every other row of the pack eligible too (else the
            // pack stays whole, and its rows would fill every batch). `after`: where the last
            // batch of this round stopped, so rows kept (backups) do not fill the next one.
            let eligible = { (alias: String) in """
                \(alias)state = $1 AND \(alias)unreferenced_since <= now() - $2::bigint * interval '1 millisecond'
                AND \(alias)unreferenced_xmax <= pg_snapshot_xmin(pg_current_snapshot())::text::bigint
                """ }
            let columns = "hash, length, \(ChunkLocation.selected()), unreferenced_since::text"
            let located = { (s: PostgresRow) in
                (chunk: LocatedChunk(hash: ChunkHash(bytes: s.blob(0)), location: .read(s, from: 2)), length: s.int(1), since: s.text(6))
            }
            var rows = try c.query("""
                SELECT \(columns) FROM chunks
                WHERE \(eligible(""))
                  AND (pack IS NULL OR NOT EXISTS (SELECT 1 FROM chunks o WHERE o.pack = chunks.pack AND NOT (\(eligible("o.")))))
                  AND (unreferenced_since, hash) > ($4::text::timestamptz, $5)
                ORDER BY unreferenced_since, hash LIMIT $3 FOR UPDATE SKIP LOCKED
                """, [stored, .int(Int64(grace * 1000)), .int(Int64(limit)), .text(after?.since ?? "-infinity"), .blob(after?.hash.bytes ?? [])],
                row: located)
            if let last = rows.last { sweep.cursor = SweepCursor(since: last.since, hash: last.chunk.hash) }
            // The other rows of their packs, which the limit may have cut off: a pack goes whole.
            let cut = Set(rows.compactMap(\.chunk.location.pack)), have = Set(rows.map(\.chunk.hash))
            if !cut.isEmpty {
                rows += try c.query("""
                    SELECT \(columns) FROM chunks
                    WHERE pack = ANY(SELECT decode(h, 'hex') FROM unnest(string_to_array($3, ',')) h) AND \(eligible(""))
                    FOR UPDATE SKIP LOCKED
                    """, [stored, .int(Int64(grace * 1000)), .text(cut.map(\.hex).joined(separator: ","))], row: located)
                    .filter { !have.contains($0.chunk.hash) }
            }
            sweep.examined = rows.count
            guard !rows.isEmpty else { return sweep }
            // Again, in a statement of its own (READ COMMITTED: a new snapshot) now that the rows
            // are locked: a reference committed before the lock is seen; a later one waits.
            let referenced = Set(try c.query("""
                SELECT DISTINCT hash FROM file_chunks WHERE hash = ANY(SELECT decode(h, 'hex') FROM unnest(string_to_array($1, ',')) h)
                """, [.text(rows.map(\.chunk.hash.hex).joined(separator: ","))]) { ChunkHash(bytes: $0.blob(0)) })
            let free = rows.filter { !referenced.contains($0.chunk.hash) }
            let freeHashes = Set(free.map(\.chunk.hash))
            // A pack goes whole: every row naming it must be among the free locked ones.
            let packs = Set(free.compactMap(\.chunk.location.pack))
            var packRows: [ChunkHash: [ChunkHash]] = [:]
            if !packs.isEmpty {
                for (hash, pack) in try c.query("""
                    SELECT hash, pack FROM chunks WHERE pack = ANY(SELECT decode(h, 'hex') FROM unnest(string_to_array($1, ',')) h)
                    """, [.text(packs.map(\.hex).joined(separator: ","))], row: { (ChunkHash(bytes: $0.blob(0)), ChunkHash(bytes: $0.blob(1))) }) {
                    packRows[pack, default: []].append(hash)
                }
            }
            var taken: [ChunkHash] = []
            var objects: [String: UInt64] = [:]
            for row in free {
                let key = row.chunk.key
                if let pack = row.chunk.location.pack, !(packRows[pack] ?? []).allSatisfy(freeHashes.contains) { continue }
                if named(key) { sweep.keptForBackups += 1; continue }
                taken.append(row.chunk.hash)
                objects[key, default: 0] += UInt64(row.length)
            }
            guard !taken.isEmpty else { return sweep }
            sweep.seq = try c.queryOne("SELECT nextval('swept_seq')") { $0.int(0) } ?? 0
            try c.update("DELETE FROM chunks WHERE hash = ANY(SELECT decode(h, 'hex') FROM unnest(string_to_array($1, ',')) h)",
                         [.text(taken.map(\.hex).joined(separator: ","))])
            try c.update("""
                INSERT INTO swept_objects(key, seq, pending) SELECT k, $2, true FROM unnest(string_to_array($1, ',')) k
                ON CONFLICT(key) DO UPDATE SET seq = excluded.seq, pending = true
                """, [.text(objects.keys.joined(separator: ",")), .int(sweep.seq)])
            sweep.chunks = taken.count
            sweep.objects = objects.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
            return sweep
        }
    }

    /// The objects of tombstones `keys` of batch `seq` are deleted: their tombstones are done
    /// (a newer batch's tombstone of the same key stays pending).
    public func finishSweep(seq: Int64, keys: [String]) throws(MetaError) {
        guard !keys.isEmpty else { return }
        try write(durable: true) { (c) throws(MetaError) in
            _ = try c.update("UPDATE swept_objects SET pending = false WHERE seq = $1 AND key = ANY(string_to_array($2, ','))",
                         [.int(seq), .text(keys.joined(separator: ","))])
        }
    }

    /// Pending tombstones, oldest first: objects a sweeper that stopped (crashed, its delete
    /// failed) did not finish deleting. Deleting one again is harmless.
    public func pendingSweptObjects(limit: Int) throws(MetaError) -> [(key: String, seq: Int64)] {
        try read { (c) throws(MetaError) in
            try c.query("SELECT key, seq FROM swept_objects WHERE pending ORDER BY seq LIMIT $1", [.int(Int64(limit))]) { ($0.text(0), $0.int(1)) }
        }
    }
}
