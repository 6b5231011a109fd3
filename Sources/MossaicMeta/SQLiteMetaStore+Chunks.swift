import MossaicCore

/// Chunk lists and chunk refcounts.
extension SQLiteMetaStore {
    /// The chunk references of `ino` with index in `indexes`, in index order, with their patches.
    public func chunkRefs(_ ino: InodeNumber, indexes: ClosedRange<UInt64>) throws(MetaError) -> [ChunkRef] {
        let bounds: [SQLValue] = [.int(Int64(ino.rawValue)), .int(Int64(indexes.lowerBound)), .int(Int64(min(indexes.upperBound, UInt64(Int64.max))))]
        return try read(snapshot: true) { (c) throws(MetaError) in
            var refs = try c.query("""
                SELECT f.idx, f.hash, f.length, \(ChunkLocation.selected("c.")), c.length FROM file_chunks f
                LEFT JOIN chunks c ON c.hash = f.hash WHERE f.ino = ? AND f.idx BETWEEN ? AND ? ORDER BY f.idx
                """, bounds) { s in
                ChunkRef(index: ChunkIndex(UInt64(s.int(0))), hash: ChunkHash(bytes: s.blob(1)), length: Int(s.int(2)),
                         location: .read(s, from: 3), chunkLength: Int(s.int(7)))
            }
            try Self.attachPatches(c, to: &refs, bounds)
            return refs
        }
    }

    /// Fills in the patches of `refs` (the pages of `bounds`: ino, first and last index).
    /// Most files have none: one indexed probe answers that.
    private static func attachPatches(_ c: SQLiteConnection, to refs: inout [ChunkRef], _ bounds: [SQLValue]) throws(MetaError) {
        guard !refs.isEmpty else { return }
        let patches = try c.query("SELECT idx, offset, length, data FROM chunk_patches WHERE ino = ? AND idx BETWEEN ? AND ? ORDER BY idx, seq",
                                  bounds) { s in (UInt64(s.int(0)), ChunkPatch(offset: Int(s.int(1)), length: Int(s.int(2)), data: s.blob(3))) }
        attach(patches, to: &refs)
    }

    /// Puts each `(page index, patch)` of `patches` (in order) on the reference of that page.
    static func attach(_ patches: [(UInt64, ChunkPatch)], to refs: inout [ChunkRef]) {
        guard !patches.isEmpty else { return }
        var position: [UInt64: Int] = [:]
        for (i, ref) in refs.enumerated() { position[ref.index.rawValue] = i }
        for (index, patch) in patches { if let i = position[index] { refs[i].patches.append(patch) } }
    }

    /// Points the row of stored chunk `hash` at `location`, where it takes `storedLength`
    /// bytes (fsck putting a chunk back as its own object after its pack was lost or damaged).
    public func relocateChunk(_ hash: ChunkHash, to location: ChunkLocation, storedLength: Int) throws(MetaError) {
        try write(durable: true, counted: true) { (c) throws(MetaError) in
            let (pack, offset, codec) = location.columns
            try c.run("UPDATE chunks SET pack = ?, pack_offset = ?, codec = ?, stored_length = ? WHERE hash = ? AND state = ?",
                      [pack, offset, codec, .int(Int64(storedLength)), .blob(hash.bytes), .int(ChunkState.stored.rawValue)])
        }
    }

    /// What the metadata knows about the chunk `hash`, or nil if nothing.
    public func chunkInfo(_ hash: ChunkHash) throws(MetaError) -> ChunkInfo? {
        try read { (c) throws(MetaError) in
            try c.queryOne("SELECT length, refcount, state FROM chunks WHERE hash = ?", [.blob(hash.bytes)]) { s in
                ChunkInfo(length: Int(s.int(0)), refcount: s.int(1), state: ChunkState(rawValue: s.int(2)) ?? .stored)
            }
        }
    }

    /// The bytes of an inline chunk, or nil if it is not inline.
    public func inlineData(_ hash: ChunkHash) throws(MetaError) -> [UInt8]? {
        try read { (c) throws(MetaError) in
            try c.queryOne("SELECT data FROM chunks WHERE hash = ? AND state = ?", [.blob(hash.bytes), .int(ChunkState.inline.rawValue)]) { $0.blob(0) }
        }
    }

    /// Publishes a file's new content in ONE transaction: new chunk rows, the changed chunk
    /// references with their refcounts, and size/mtime/ctime. The caller has stored every
    /// non-inline chunk in `newChunks` before calling, so the metadata never references a
    /// chunk the store lacks. `durable`: synchronous=FULL (fsync), else NORMAL.
    public func commit(_ commit: FileCommit, durable: Bool) throws(MetaError) -> FileAttributes {
        try write(durable: durable) { (c) throws(MetaError) in
            let key = SQLValue.int(Int64(commit.ino.rawValue))
            var attrs = try Self.attributes(c, commit.ino)
            guard attrs.kind == .regular else { throw .invalidArgument }
            for chunk in commit.newChunks {
                // A row that exists keeps its location: its object is there (another commit
                // stored the same bytes first), and this commit's copy is only garbage.
                let (pack, offset, codec) = chunk.location.columns
                try c.run("""
                    INSERT INTO chunks(hash, length, refcount, state, data, pack, pack_offset, codec, stored_length)
                    VALUES(?, ?, 0, ?, ?, ?, ?, ?, ?) ON CONFLICT(hash) DO NOTHING
                    """, [.blob(chunk.hash.bytes), .int(Int64(chunk.length)), .int(chunk.state.rawValue),
                          chunk.inlineData.map { .blob($0) } ?? .null, pack, offset, codec, .int(Int64(chunk.storedLength))])
            }
            var released: [[UInt8]] = []
            var allocatedDelta: Int64 = 0, reservedDelta: Int64 = 0
            let reservations = try Self.hasAllocations(c, commit.ino)
            for (index, ref) in commit.chunks {
                let idx = SQLValue.int(Int64(index.rawValue))
                var oldLength: Int64 = 0
                if let (old, length) = try c.queryOne("SELECT hash, length FROM file_chunks WHERE ino = ? AND idx = ?", [key, idx],
                                                      row: { ($0.blob(0), $0.int(1)) }) {
                    try c.run("UPDATE chunks SET refcount = refcount - 1 WHERE hash = ?", [.blob(old)])
                    released.append(old)
                    oldLength = length
                    // Patches exist only over a reference: a page that had none has none.
                    try c.run("DELETE FROM chunk_patches WHERE ino = ? AND idx = ?", [key, idx])
                }
                allocatedDelta += Int64(Self.roundUp(UInt64(ref?.length ?? 0))) - Int64(Self.roundUp(UInt64(oldLength)))
                if reservations {
                    reservedDelta += try Self.reservedDelta(c, commit.ino, index: index.rawValue, old: UInt64(oldLength), new: UInt64(ref?.length ?? 0))
                }
                if let ref {
                    try c.run("INSERT INTO file_chunks(ino, idx, hash, length) VALUES(?, ?, ?, ?) ON CONFLICT(ino, idx) DO UPDATE SET hash = excluded.hash, length = excluded.length",
                              [key, idx, .blob(ref.hash.bytes), .int(Int64(ref.length))])
                    try c.run("UPDATE chunks SET refcount = refcount + 1 WHERE hash = ?", [.blob(ref.hash.bytes)])
                    guard c.changes == 1 else { throw .incompatible("commit references unknown chunk \(ref.hash)") }
                    // A shared page (copy_file_range) takes its source's patches along.
                    try Self.insertPatches(c, key, idx, ref.patches, from: 0)
                } else {
                    try c.run("DELETE FROM file_chunks WHERE ino = ? AND idx = ?", [key, idx])
                }
            }
            for page in commit.patches {
                let (oldLength, newLength) = try Self.appendPatches(c, key, page)
                allocatedDelta += Int64(Self.roundUp(UInt64(newLength))) - Int64(Self.roundUp(UInt64(oldLength)))
                if reservations {
                    reservedDelta += try Self.reservedDelta(c, commit.ino, index: page.index.rawValue, old: UInt64(oldLength), new: UInt64(newLength))
                }
            }
            try c.run("UPDATE inodes SET allocated = allocated + ?, reserved = reserved + ? WHERE ino = ?", [.int(allocatedDelta), .int(reservedDelta), key])
            if commit.size < attrs.size { try Self.cutChunks(c, commit.ino, to: commit.size) }
            attrs.size = commit.size
            attrs.mtime = commit.mtime
            attrs.ctime = commit.ctime
            try c.run("UPDATE inodes SET size = ?, mtime_ns = ?, ctime_ns = ? WHERE ino = ?",
                      [.int(Int64(commit.size)), .int(commit.mtime.nanoseconds), .int(commit.ctime.nanoseconds), key])
            for hash in released { try Self.dropIfUnreferencedInline(c, hash) }
            return attrs
        }
    }

    /// The chunk a page with patches and no bytes of its own refers to: length 0, inline.
    static let emptyChunk = ChunkHash.of([])

    /// Appends `page`'s patches after the ones the page has, if the page is still `page.base`
    /// (else `.staleBase`, and the caller's transaction rolls back). A hole gets the empty
    /// chunk as its base. Returns the page's reference length before and after.
    private static func appendPatches(_ c: SQLiteConnection, _ key: SQLValue, _ page: PagePatches) throws(MetaError) -> (Int, Int) {
        let idx = SQLValue.int(Int64(page.index.rawValue))
        let current = try c.queryOne("SELECT hash, length FROM file_chunks WHERE ino = ? AND idx = ?", [key, idx]) {
            (ChunkHash(bytes: $0.blob(0)), Int($0.int(1)))
        }
        let count = try c.queryOne("SELECT count(*), coalesce(max(seq) + 1, 0) FROM chunk_patches WHERE ino = ? AND idx = ?", [key, idx]) {
            (Int($0.int(0)), $0.int(1))
        } ?? (0, 0)
        guard current?.0 == page.base?.hash, current?.1 == page.base?.length, count.0 == page.base?.patches.count ?? 0 else {
            throw .staleBase
        }
        if current == nil {
            try c.run("INSERT INTO chunks(hash, length, refcount, state, data, stored_length) VALUES(?, 0, 1, ?, x'', 0) ON CONFLICT(hash) DO UPDATE SET refcount = refcount + 1",
                      [.blob(emptyChunk.bytes), .int(ChunkState.inline.rawValue)])
            try c.run("INSERT INTO file_chunks(ino, idx, hash, length) VALUES(?, ?, ?, ?)",
                      [key, idx, .blob(emptyChunk.bytes), .int(Int64(page.length))])
        } else {
            try c.run("UPDATE file_chunks SET length = ? WHERE ino = ? AND idx = ?", [.int(Int64(page.length)), key, idx])
        }
        try insertPatches(c, key, idx, page.patches, from: count.1)
        return (current?.1 ?? 0, page.length)
    }

    private static func insertPatches(_ c: SQLiteConnection, _ key: SQLValue, _ idx: SQLValue, _ patches: [ChunkPatch], from seq: Int64) throws(MetaError) {
        for (n, patch) in patches.enumerated() {
            try c.run("INSERT INTO chunk_patches(ino, idx, seq, offset, length, data) VALUES(?, ?, ?, ?, ?, ?)",
                      [key, idx, .int(seq + Int64(n)), .int(Int64(patch.offset)), .int(Int64(patch.length)), .blob(patch.data)])
        }
    }

    /// The bytes a `file_chunks` row counts in `inodes.allocated`: its length in whole 4 KiB
    /// blocks, as ext4 would hold those bytes.
    static let blockBytes = "(length + 4095) / 4096 * 4096"

    /// Drops chunk references past `size` and shortens the one `size` falls in. Chunks are not
    /// rewritten: a reference uses a prefix of its chunk.
    static func cutChunks(_ c: SQLiteConnection, _ ino: InodeNumber, to size: UInt64) throws(MetaError) {
        let chunkSize = UInt64(FormatConstants.chunkSize)
        let key = SQLValue.int(Int64(ino.rawValue))
        let firstGone = Int64((size + chunkSize - 1) / chunkSize)
        // The bytes the cut references held leave the file's allocation.
        var freed = try c.queryOne("SELECT coalesce(sum(\(blockBytes)), 0) FROM file_chunks WHERE ino = ? AND idx >= ?", [key, .int(firstGone)]) { $0.int(0) } ?? 0
        if size % chunkSize != 0 {
            let kept = Int64(size % chunkSize)
            freed += try c.queryOne("SELECT max(\(blockBytes) - (min(length, ?) + 4095) / 4096 * 4096, 0) FROM file_chunks WHERE ino = ? AND idx = ?",
                                    [.int(kept), key, .int(Int64(size / chunkSize))]) { $0.int(0) } ?? 0
        }
        try c.run("UPDATE inodes SET allocated = max(allocated - ?, 0) WHERE ino = ?", [.int(freed), key])
        try c.run("""
            UPDATE chunks SET refcount = refcount - (SELECT count(*) FROM file_chunks f WHERE f.ino = ? AND f.idx >= ? AND f.hash = chunks.hash)
            WHERE hash IN (SELECT hash FROM file_chunks WHERE ino = ? AND idx >= ?)
            """, [key, .int(firstGone), key, .int(firstGone)])
        try c.run("""
            DELETE FROM chunks WHERE refcount = 0 AND state = ? AND hash IN (SELECT hash FROM file_chunks WHERE ino = ? AND idx >= ?)
            """, [.int(ChunkState.inline.rawValue), key, .int(firstGone)])
        try c.run("DELETE FROM file_chunks WHERE ino = ? AND idx >= ?", [key, .int(firstGone)])
        try c.run("DELETE FROM chunk_patches WHERE ino = ? AND idx >= ?", [key, .int(firstGone)])
        if size % chunkSize != 0 {
            let last = Int64(size / chunkSize)
            try c.run("UPDATE file_chunks SET length = min(length, ?) WHERE ino = ? AND idx = ?",
                      [.int(Int64(size % chunkSize)), key, .int(last)])
            // Patches wholly past the cut can never be read again (a later extension is laid
            // over with its own bytes or zeros); ones across it stay, cut by the length.
            try c.run("DELETE FROM chunk_patches WHERE ino = ? AND idx = ? AND offset >= ?", [key, .int(last), .int(Int64(size % chunkSize))])
        }
        try cutAllocations(c, ino, to: size)
    }

    /// Inline chunks live only in their row: with no reference left they are garbage at once.
    /// Stored chunks keep their row at refcount 0 until garbage collection deletes the object.
    /// Only chunks whose references a transaction released are checked: never a table scan.
    static func dropIfUnreferencedInline(_ c: SQLiteConnection, _ hash: [UInt8]) throws(MetaError) {
        try c.run("DELETE FROM chunks WHERE hash = ? AND refcount = 0 AND state = ?", [.blob(hash), .int(ChunkState.inline.rawValue)])
    }

    /// Stored chunks no file references (garbage-collection candidates).
    public func unreferencedStoredChunks() throws(MetaError) -> [ChunkHash] {
        try read { (c) throws(MetaError) in
            try c.query("SELECT hash FROM chunks WHERE refcount = 0 AND state = ?", [.int(ChunkState.stored.rawValue)]) { ChunkHash(bytes: $0.blob(0)) }
        }
    }
}
