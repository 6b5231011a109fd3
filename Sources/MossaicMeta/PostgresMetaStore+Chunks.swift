import MossaicCore

/// Chunk lists and chunks. A chunk's reference count is the number of `file_chunks` rows
/// naming it (PostgresSchema says why there is no counter); inline chunks go with their last
/// reference, stored ones stay for the mounted reclaim sweep (PostgresMetaStore+Sweep) or
/// `mossaicfs gc`.
extension PostgresMetaStore {
    public func chunkRefs(_ ino: InodeNumber, indexes: ClosedRange<UInt64>) throws(MetaError) -> [ChunkRef] {
        let bounds: [SQLValue] = [.int(Int64(ino.rawValue)), .int(Int64(indexes.lowerBound)), .int(Int64(min(indexes.upperBound, UInt64(Int64.max))))]
        return try read(snapshot: true) { (c) throws(MetaError) in
            var refs = try c.query("""
                SELECT f.idx, f.hash, f.length, \(ChunkLocation.selected("c.")), c.length FROM file_chunks f
                LEFT JOIN chunks c ON c.hash = f.hash WHERE f.ino = $1 AND f.idx BETWEEN $2 AND $3 ORDER BY f.idx
                """, bounds) { s in
                ChunkRef(index: ChunkIndex(UInt64(s.int(0))), hash: ChunkHash(bytes: s.blob(1)), length: Int(s.int(2)),
                         location: .read(s, from: 3), chunkLength: Int(s.int(7)))
            }
            guard !refs.isEmpty else { return refs }
            let patches = try c.query("""
                SELECT idx, "offset", length, data FROM chunk_patches WHERE ino = $1 AND idx BETWEEN $2 AND $3 ORDER BY idx, seq
                """, bounds) { s in (UInt64(s.int(0)), ChunkPatch(offset: Int(s.int(1)), length: Int(s.int(2)), data: s.blob(3))) }
            SQLiteMetaStore.attach(patches, to: &refs)
            return refs
        }
    }

    public func relocateChunk(_ hash: ChunkHash, to location: ChunkLocation, storedLength: Int) throws(MetaError) {
        try write(durable: true) { (c) throws(MetaError) in
            let (pack, offset, codec) = location.columns
            try c.update("UPDATE chunks SET pack = $1, pack_offset = $2, codec = $3, stored_length = $4 WHERE hash = $5 AND state = $6",
                         [pack, offset, codec, .int(Int64(storedLength)), .blob(hash.bytes), .int(ChunkState.stored.rawValue)])
        }
    }

    public func chunkInfo(_ hash: ChunkHash) throws(MetaError) -> ChunkInfo? {
        try read { (c) throws(MetaError) in
            try c.queryOne("""
                SELECT c.length, (SELECT count(*) FROM file_chunks f WHERE f.hash = c.hash), c.state FROM chunks c WHERE c.hash = $1
                """, [.blob(hash.bytes)]) { s in
                ChunkInfo(length: Int(s.int(0)), refcount: s.int(1), state: ChunkState(rawValue: s.int(2)) ?? .stored)
            }
        }
    }

    public func inlineData(_ hash: ChunkHash) throws(MetaError) -> [UInt8]? {
        try read { (c) throws(MetaError) in
            try c.queryOne("SELECT data FROM chunks WHERE hash = $1 AND state = $2", [.blob(hash.bytes), .int(ChunkState.inline.rawValue)]) { $0.blob(0) }
        }
    }

    /// Publishes a file's new content in one transaction, as the SQLite engine's `commit`
    /// does (its comment has the rules); the file's row is locked first. A stored chunk's row
    /// goes in through `SweptCheck` (what the reclaim sweep of any host may have taken); a
    /// chunk it took throws `.sweptChunks`, with nothing committed.
    public func commit(_ commit: FileCommit, durable: Bool) throws(MetaError) -> FileAttributes {
        try write(durable: durable) { (c) throws(MetaError) in
            try Self.lock(c, [commit.ino])
            let key = SQLValue.int(Int64(commit.ino.rawValue))
            var attrs = try Self.attributes(c, commit.ino)
            guard attrs.kind == .regular else { throw .invalidArgument }
            var sweep = SweptCheck()
            for chunk in commit.newChunks {
                let (pack, offset, codec) = chunk.location.columns
                let row: [SQLValue] = [.blob(chunk.hash.bytes), .int(Int64(chunk.length)), .int(chunk.state.rawValue),
                                       chunk.inlineData.map { .blob($0) } ?? .null, pack, offset, codec, .int(Int64(chunk.storedLength))]
                guard chunk.state == .stored else {
                    try c.update("\(Self.insertChunk) ON CONFLICT(hash) DO NOTHING", row)
                    continue
                }
                try sweep.insert(c, row, key: chunk.location.key(of: chunk.hash), storedAfter: commit.storedAfterSweep)
            }
            var released: [[UInt8]] = []
            var allocatedDelta: Int64 = 0, reservedDelta: Int64 = 0
            let reservations = try Self.hasAllocations(c, commit.ino)
            for (index, ref) in commit.chunks {
                let idx = SQLValue.int(Int64(index.rawValue))
                var oldLength: Int64 = 0
                if let (old, length) = try c.queryOne("SELECT hash, length FROM file_chunks WHERE ino = $1 AND idx = $2", [key, idx],
                                                      row: { ($0.blob(0), $0.int(1)) }) {
                    released.append(old)
                    oldLength = length
                    try c.update("DELETE FROM chunk_patches WHERE ino = $1 AND idx = $2", [key, idx])
                }
                allocatedDelta += Int64(SQLiteMetaStore.roundUp(UInt64(ref?.length ?? 0))) - Int64(SQLiteMetaStore.roundUp(UInt64(oldLength)))
                if reservations {
                    reservedDelta += try Self.reservedDelta(c, commit.ino, index: index.rawValue, old: UInt64(oldLength), new: UInt64(ref?.length ?? 0))
                }
                if let ref {
                    // A row this host found (dedup) and a reclaim sweep deleted since: stored again by the caller.
                    guard try c.queryOne("SELECT 1 FROM chunks WHERE hash = $1", [.blob(ref.hash.bytes)], row: { _ in true }) != nil else {
                        sweep.vanished = true
                        continue
                    }
                    try c.update("""
                        INSERT INTO file_chunks(ino, idx, hash, length) VALUES($1, $2, $3, $4)
                        ON CONFLICT(ino, idx) DO UPDATE SET hash = excluded.hash, length = excluded.length
                        """, [key, idx, .blob(ref.hash.bytes), .int(Int64(ref.length))])
                    try Self.insertPatches(c, key, idx, ref.patches, from: 0)
                } else {
                    try c.update("DELETE FROM file_chunks WHERE ino = $1 AND idx = $2", [key, idx])
                }
            }
            for page in commit.patches {
                let (oldLength, newLength) = try Self.appendPatches(c, key, page)
                allocatedDelta += Int64(SQLiteMetaStore.roundUp(UInt64(newLength))) - Int64(SQLiteMetaStore.roundUp(UInt64(oldLength)))
                if reservations {
                    reservedDelta += try Self.reservedDelta(c, commit.ino, index: page.index.rawValue, old: UInt64(oldLength), new: UInt64(newLength))
                }
            }
            try c.update("UPDATE inodes SET allocated = allocated + $1, reserved = reserved + $2 WHERE ino = $3",
                         [.int(allocatedDelta), .int(reservedDelta), key])
            if commit.size < attrs.size { try Self.cutChunks(c, commit.ino, to: commit.size) }
            attrs.size = commit.size
            attrs.mtime = commit.mtime
            attrs.ctime = commit.ctime
            try c.update("UPDATE inodes SET size = $1, mtime_ns = $2, ctime_ns = $3 WHERE ino = $4",
                         [.int(Int64(commit.size)), .int(commit.mtime.nanoseconds), .int(commit.ctime.nanoseconds), key])
            try Self.dropUnreferencedInline(c, released)
            try sweep.settle(c)
            // Read back: the allocation counts are the row's.
            return try Self.attributes(c, commit.ino)
        }
    }

    /// Appends `page`'s patches if the page is still `page.base` (else `.staleBase`), as the
    /// SQLite engine's `appendPatches`. Returns the page's reference length before and after.
    private static func appendPatches(_ c: PostgresConnection, _ key: SQLValue, _ page: PagePatches) throws(MetaError) -> (Int, Int) {
        let idx = SQLValue.int(Int64(page.index.rawValue))
        let current = try c.queryOne("SELECT hash, length FROM file_chunks WHERE ino = $1 AND idx = $2", [key, idx]) {
            (ChunkHash(bytes: $0.blob(0)), Int($0.int(1)))
        }
        let count = try c.queryOne("SELECT count(*), coalesce(max(seq) + 1, 0) FROM chunk_patches WHERE ino = $1 AND idx = $2", [key, idx]) {
            (Int($0.int(0)), $0.int(1))
        } ?? (0, 0)
        guard current?.0 == page.base?.hash, current?.1 == page.base?.length, count.0 == page.base?.patches.count ?? 0 else {
            throw .staleBase
        }
        if current == nil {
            try c.update("INSERT INTO chunks(hash, length, state, data, stored_length) VALUES($1, 0, $2, ''::bytea, 0) ON CONFLICT(hash) DO NOTHING",
                         [.blob(SQLiteMetaStore.emptyChunk.bytes), .int(ChunkState.inline.rawValue)])
            try c.update("INSERT INTO file_chunks(ino, idx, hash, length) VALUES($1, $2, $3, $4)",
                         [key, idx, .blob(SQLiteMetaStore.emptyChunk.bytes), .int(Int64(page.length))])
        } else {
            try c.update("UPDATE file_chunks SET length = $1 WHERE ino = $2 AND idx = $3", [.int(Int64(page.length)), key, idx])
        }
        try insertPatches(c, key, idx, page.patches, from: count.1)
        return (current?.1 ?? 0, page.length)
    }

    private static func insertPatches(_ c: PostgresConnection, _ key: SQLValue, _ idx: SQLValue, _ patches: [ChunkPatch], from seq: Int64) throws(MetaError) {
        for (n, patch) in patches.enumerated() {
            try c.update("""
                INSERT INTO chunk_patches(ino, idx, seq, "offset", length, data) VALUES($1, $2, $3, $4, $5, $6)
                """, [key, idx, .int(seq + Int64(n)), .int(Int64(patch.offset)), .int(Int64(patch.length)), .blob(patch.data)])
        }
    }

    /// Drops chunk references past `size` and shortens the one `size` falls in, as the SQLite
    /// engine's `cutChunks`.
    static func cutChunks(_ c: PostgresConnection, _ ino: InodeNumber, to size: UInt64) throws(MetaError) {
        let chunkSize = UInt64(FormatConstants.chunkSize)
        let key = SQLValue.int(Int64(ino.rawValue))
        let firstGone = SQLValue.int(Int64((size + chunkSize - 1) / chunkSize))
        let blockBytes = SQLiteMetaStore.blockBytes
        var freed = try c.queryOne("SELECT coalesce(sum(\(blockBytes)), 0)::bigint FROM file_chunks WHERE ino = $1 AND idx >= $2",
                                   [key, firstGone]) { $0.int(0) } ?? 0
        let last = SQLValue.int(Int64(size / chunkSize)), kept = SQLValue.int(Int64(size % chunkSize))
        if size % chunkSize != 0 {
            freed += try c.queryOne("SELECT greatest(\(blockBytes) - (least(length, $1) + 4095) / 4096 * 4096, 0) FROM file_chunks WHERE ino = $2 AND idx = $3",
                                    [kept, key, last]) { $0.int(0) } ?? 0
        }
        try c.update("UPDATE inodes SET allocated = greatest(allocated - $1, 0) WHERE ino = $2", [.int(freed), key])
        let released = try c.query("DELETE FROM file_chunks WHERE ino = $1 AND idx >= $2 RETURNING hash", [key, firstGone]) { $0.blob(0) }
        try c.update("DELETE FROM chunk_patches WHERE ino = $1 AND idx >= $2", [key, firstGone])
        if size % chunkSize != 0 {
            try c.update("UPDATE file_chunks SET length = least(length, $1) WHERE ino = $2 AND idx = $3", [kept, key, last])
            try c.update("DELETE FROM chunk_patches WHERE ino = $1 AND idx = $2 AND \"offset\" >= $3", [key, last, kept])
        }
        try dropUnreferencedInline(c, released)
        try cutAllocations(c, ino, to: size)
    }

    /// A chunk row from `commit`'s eight values ($1–$8), for `commit` and `SweptCheck`.
    static let insertChunk = """
        INSERT INTO chunks(hash, length, state, data, pack, pack_offset, codec, stored_length) VALUES($1, $2, $3, $4, $5, $6, $7, $8)
        """

    /// Deletes the inline chunks among `hashes` that no reference names any more. Stored
    /// chunks keep their rows for the reclaim sweep (or `mossaicfs gc`).
    static func dropUnreferencedInline(_ c: PostgresConnection, _ hashes: [[UInt8]]) throws(MetaError) {
        for hash in Set(hashes) {
            try c.update("""
                DELETE FROM chunks c WHERE c.hash = $1 AND c.state = $2 AND NOT EXISTS (SELECT 1 FROM file_chunks f WHERE f.hash = c.hash)
                """, [.blob(hash), .int(ChunkState.inline.rawValue)])
        }
    }

    public func unreferencedStoredChunks() throws(MetaError) -> [ChunkHash] {
        try read { (c) throws(MetaError) in
            try c.query("""
                SELECT hash FROM chunks c WHERE state = $1 AND NOT EXISTS (SELECT 1 FROM file_chunks f WHERE f.hash = c.hash) ORDER BY hash
                """, [.int(ChunkState.stored.rawValue)]) { ChunkHash(bytes: $0.blob(0)) }
        }
    }
}
