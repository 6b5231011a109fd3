import MossaicCore

/// What the mounted daemon's reclaim sweep (MossaicFS/ChunkSweeper.swift) asks of the
/// metadata. The columns it reads are kept by schema 4's triggers (Schema.swift).
///
/// The rule, in the metadata's terms: a stored chunk at refcount 0 may leave when
/// - its release is contained in a published snapshot (`free_gen` set by `settle`), so no
///   snapshot cut from now on references it;
/// - no snapshot of this filesystem's lineage still in the store has a generation strictly
///   between `created_gen` and `free_gen` — the only ones that can reference it;
/// - it was released longer ago than the grace;
/// - and nobody in this process is about to reference it (the caller's spared sets).
/// A chunk in a pack leaves only with every other chunk of that pack: the pack is deleted
/// whole or not at all.
extension SQLiteMetaStore {
    /// The length is the stored one: what deleting the chunk's bytes frees in the store.
    private static let releasedColumns = "hash, \(ChunkLocation.selected()), coalesce(created_gen, 0), free_gen, released_ms"

    private static func released(_ s: Statement) -> ReleasedChunk {
        ReleasedChunk(chunk: LocatedChunk.read(s, from: 0), length: Int(s.int(3)), createdGeneration: s.int(5),
                      freeGeneration: s.int(6), released: Timestamp(nanoseconds: s.int(7) * 1_000_000))
    }

    /// Marks the releases a published snapshot contains with that snapshot's generation
    /// (`free_gen`): the database's last published snapshot holds every change up to its
    /// `snapshot_change_seq`, and a release recorded `released_seq` = the `change_seq` before
    /// its own transaction's. Bookkeeping, not a filesystem change (not counted): a restored
    /// copy without it is settled again, later, which only delays reclaiming. Returns how many
    /// rows it marked.
    @discardableResult
    public func settleReleasedChunks() throws(MetaError) -> Int {
        // `released_ms IS NOT NULL` lets both statements walk the partial index of released
        // rows. Looked for first on a reader: most rounds have nothing to settle, and a write
        // transaction, even an empty one, would leave the syncer an fsync to do.
        let unsettled = "released_ms IS NOT NULL AND free_gen IS NULL AND released_seq < ? AND refcount <= 0 AND state = ?"
        let stored = SQLValue.int(ChunkState.stored.rawValue)
        let pending = try read(snapshot: true) { (c) throws(MetaError) -> Bool in
            let state = try Self.replicationState(c)
            guard state.snapshotID != nil else { return false }
            return try c.queryOne("SELECT 1 FROM chunks WHERE \(unsettled) LIMIT 1", [.int(state.snapshotChangeSequence), stored]) { _ in true } != nil
        }
        guard pending else { return 0 }
        return try write(counted: false) { (c) throws(MetaError) in
            let state = try Self.replicationState(c)
            try c.run("UPDATE chunks SET free_gen = ? WHERE \(unsettled)",
                      [.int(state.generation), .int(state.snapshotChangeSequence), stored])
            return c.changes
        }
    }

    /// Settled releases older than `releasedBefore`, oldest first, at most `limit`. Chunks of
    /// a pack that still holds a chunk not (yet) free are left out: they cannot go, and would
    /// otherwise fill every batch ahead of those that can.
    public func releasedChunks(before releasedBefore: Timestamp, limit: Int) throws(MetaError) -> [ReleasedChunk] {
        try read { (c) throws(MetaError) in
            try c.query("""
                SELECT \(Self.releasedColumns) FROM chunks
                WHERE released_ms <= ? AND free_gen IS NOT NULL AND refcount <= 0 AND state = ?
                  AND (pack IS NULL OR NOT EXISTS (SELECT 1 FROM chunks o WHERE o.pack = chunks.pack AND o.free_gen IS NULL))
                ORDER BY released_ms LIMIT ?
                """, [.int(releasedBefore.nanoseconds / 1_000_000), .int(ChunkState.stored.rawValue), .int(Int64(limit))],
                row: Self.released)
        }
    }

    /// Deletes the rows of `candidates` (from `releasedChunks`, already judged free by the
    /// caller) that are still exactly as they were read, in ONE durable transaction: a commit
    /// that referenced one of them meanwhile cleared its release, and it stays. `spared`
    /// (chunks and object keys a writer of this process relies on, read by the caller under the
    /// lock that keeps new ones from starting) stay too. A pack goes only with all of its
    /// rows. Returns what went.
    public func sweepReleasedChunks(_ candidates: [ReleasedChunk], sparedHashes: Set<ChunkHash>,
                                    sparedKeys: Set<String>) throws(MetaError) -> ChunkSweep {
        guard !candidates.isEmpty else { return ChunkSweep() }
        let stored = SQLValue.int(ChunkState.stored.rawValue)
        return try write(durable: true) { (c) throws(MetaError) in
            var sweep = ChunkSweep()
            var byHash: [ChunkHash: ReleasedChunk] = [:]
            for r in candidates where !sparedHashes.contains(r.chunk.hash) && !sparedKeys.contains(r.chunk.key) { byHash[r.chunk.hash] = r }
            // The row as it is now, unchanged since it was judged.
            func unchanged(_ r: ReleasedChunk) throws(MetaError) -> Bool {
                try c.queryOne("SELECT \(Self.releasedColumns) FROM chunks WHERE hash = ? AND refcount <= 0 AND state = ? AND free_gen IS NOT NULL",
                               [.blob(r.chunk.hash.bytes), stored], row: Self.released) == r
            }
            var packs: [ChunkHash: [ReleasedChunk]] = [:]
            for r in byHash.values {
                if let pack = r.chunk.location.pack { packs[pack, default: []].append(r); continue }
                guard try unchanged(r) else { continue }
                try c.run("DELETE FROM chunks WHERE hash = ?", [.blob(r.chunk.hash.bytes)])
                sweep.chunks.append(r)
                sweep.objects.append((r.chunk.key, UInt64(r.length)))
            }
            for (pack, members) in packs {
                let rows = try c.query("SELECT hash FROM chunks WHERE pack = ?", [.blob(pack.bytes)]) { ChunkHash(bytes: $0.blob(0)) }
                guard Set(rows) == Set(members.map(\.chunk.hash)) else { continue }
                var whole = true
                for r in members { if try !unchanged(r) { whole = false; break } }
                guard whole else { continue }
                try c.run("DELETE FROM chunks WHERE pack = ?", [.blob(pack.bytes)])
                sweep.chunks += members
                sweep.objects.append((pack.packKey, members.reduce(0) { $0 + UInt64($1.length) }))
            }
            // The transaction's own bump comes after this body: +1 if it deleted anything.
            sweep.changeSequence = try Self.replicationState(c).changeSequence + (sweep.chunks.isEmpty ? 0 : 1)
            return sweep
        }
    }
}
