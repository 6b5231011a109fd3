/// The metadata schema and its migrations. `PRAGMA user_version` holds the version; a database
/// newer than this build is refused rather than misread.
enum Schema {
    static let version: Int64 = 7

    /// Version 1. Names are BLOBs: Linux file names are bytes, not text. `file_chunks.length` is
    /// how many bytes of the chunk the file uses — the rest of its 1 MiB span reads as zeros, so
    /// truncation never rewrites a chunk. A missing `file_chunks` row inside `size` is a hole.
    /// `inodes.allocated` is the sum of the file's reference lengths (the bytes its chunks
    /// store), each rounded up to 4 KiB since version 3, kept by every transaction that changes
    /// references: `st_blocks`, without a sum over the chunk list at every stat.
    /// `chunks.state`: 1 inline (bytes in `data`), 2 stored (an object in the store).
    /// Rows of stored chunks stay at refcount 0 until garbage collection, so rewriting bytes
    /// that were freed needs no upload; inline rows go with their last reference.
    static let v1 = """
    CREATE TABLE settings(key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
    CREATE TABLE inodes(
        ino INTEGER PRIMARY KEY AUTOINCREMENT,
        kind INTEGER NOT NULL,
        mode INTEGER NOT NULL,
        uid INTEGER NOT NULL,
        gid INTEGER NOT NULL,
        size INTEGER NOT NULL DEFAULT 0,
        nlink INTEGER NOT NULL,
        rdev INTEGER NOT NULL DEFAULT 0,
        atime_ns INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        ctime_ns INTEGER NOT NULL,
        generation INTEGER NOT NULL DEFAULT 0,
        allocated INTEGER NOT NULL DEFAULT 0,
        parent INTEGER
    );
    CREATE TABLE dentries(
        parent INTEGER NOT NULL,
        name BLOB NOT NULL,
        ino INTEGER NOT NULL,
        PRIMARY KEY(parent, name)
    ) WITHOUT ROWID;
    CREATE TABLE file_chunks(
        ino INTEGER NOT NULL,
        idx INTEGER NOT NULL,
        hash BLOB NOT NULL,
        length INTEGER NOT NULL,
        PRIMARY KEY(ino, idx)
    ) WITHOUT ROWID;
    CREATE TABLE chunks(
        hash BLOB PRIMARY KEY,
        length INTEGER NOT NULL,
        refcount INTEGER NOT NULL,
        state INTEGER NOT NULL,
        data BLOB
    ) WITHOUT ROWID;
    CREATE INDEX chunks_unreferenced ON chunks(refcount) WHERE refcount = 0;
    CREATE TABLE symlinks(ino INTEGER PRIMARY KEY, target BLOB NOT NULL);
    CREATE TABLE xattrs(
        ino INTEGER NOT NULL,
        name BLOB NOT NULL,
        value BLOB NOT NULL,
        PRIMARY KEY(ino, name)
    ) WITHOUT ROWID;
    CREATE TABLE orphans(ino INTEGER PRIMARY KEY);
    """

    /// Version 2: packs. A stored chunk with `pack` set lives at `pack_offset` in the object
    /// `packs/xx/<pack>` (several chunks stored by one PUT); with `pack` NULL it is its own
    /// object `chunks/xx/<hash>`, as every chunk of version 1 is — so a version-1 database is
    /// already a valid version-2 one and the migration only adds columns.
    static let v2 = """
    ALTER TABLE chunks ADD COLUMN pack BLOB;
    ALTER TABLE chunks ADD COLUMN pack_offset INTEGER;
    CREATE INDEX chunks_pack ON chunks(pack) WHERE pack IS NOT NULL;
    """

    /// Version 3: fallocate's reservations (SQLiteMetaStore+Allocations.swift). `allocations`
    /// holds the 4 KiB-aligned byte ranges fallocate reserved in a file, `inodes.reserved`
    /// how many of those bytes no chunk's data covers; `st_blocks` counts both. A version-2
    /// database has no reservation, which these defaults say. `inodes.allocated` now counts
    /// each reference in whole 4 KiB blocks, as the data would take on ext4 (32768: S_IFREG,
    /// `FileKind.regular`).
    static let v3 = """
    CREATE TABLE allocations(
        ino INTEGER NOT NULL,
        start INTEGER NOT NULL,
        end INTEGER NOT NULL,
        PRIMARY KEY(ino, start)
    ) WITHOUT ROWID;
    ALTER TABLE inodes ADD COLUMN reserved INTEGER NOT NULL DEFAULT 0;
    UPDATE inodes SET allocated = (SELECT coalesce(sum((length + 4095) / 4096 * 4096), 0) FROM file_chunks f WHERE f.ino = inodes.ino)
    WHERE kind = 32768;
    """

    /// Version 4: when a stored chunk stopped being referenced, for the mounted daemon's
    /// reclaim sweep (SQLiteMetaStore+Sweep.swift says the rule). Kept by triggers, so every
    /// statement that moves a refcount (commit, truncate, purge, fsck's repair) records it:
    /// - `created_gen`: the generation of the last metadata snapshot published before the row
    ///   was inserted (`snapshot_generation`): no snapshot of that generation or older can
    ///   reference the chunk;
    /// - `released_seq`, `released_ms`: `change_seq` and the wall-clock time (ms) when its
    ///   refcount dropped to 0; cleared when a commit references it again;
    /// - `free_gen`: set by the sweep once a published snapshot contains the release (its
    ///   generation): no snapshot of that generation or newer references the chunk.
    /// Inline rows need none of it (they go with their last reference). Stored chunks already
    /// at refcount 0 count as released now, by a snapshot older than every existing one
    /// (`created_gen` 0), so nothing a retained snapshot references is ever taken for free.
    static let v4 = """
    ALTER TABLE chunks ADD COLUMN created_gen INTEGER;
    ALTER TABLE chunks ADD COLUMN released_seq INTEGER;
    ALTER TABLE chunks ADD COLUMN released_ms INTEGER;
    ALTER TABLE chunks ADD COLUMN free_gen INTEGER;
    CREATE INDEX chunks_released ON chunks(released_ms) WHERE released_ms IS NOT NULL;
    UPDATE chunks SET created_gen = 0,
        released_seq = coalesce((SELECT CAST(value AS INTEGER) FROM settings WHERE key = 'change_seq'), 0),
        released_ms = \(nowMilliseconds)
    WHERE refcount <= 0 AND state = 2;
    CREATE TRIGGER chunks_created AFTER INSERT ON chunks WHEN NEW.state = 2 BEGIN
        UPDATE chunks SET created_gen = coalesce((SELECT CAST(value AS INTEGER) FROM settings WHERE key = 'snapshot_generation'), 0)
        WHERE hash = NEW.hash;
    END;
    CREATE TRIGGER chunks_released AFTER UPDATE OF refcount ON chunks
    WHEN NEW.refcount <= 0 AND OLD.refcount > 0 AND NEW.state = 2 BEGIN
        UPDATE chunks SET released_seq = coalesce((SELECT CAST(value AS INTEGER) FROM settings WHERE key = 'change_seq'), 0),
            released_ms = \(nowMilliseconds), free_gen = NULL
        WHERE hash = NEW.hash;
    END;
    CREATE TRIGGER chunks_revived AFTER UPDATE OF refcount ON chunks
    WHEN NEW.refcount > 0 AND OLD.refcount <= 0 AND OLD.released_ms IS NOT NULL BEGIN
        UPDATE chunks SET released_seq = NULL, released_ms = NULL, free_gen = NULL WHERE hash = NEW.hash;
    END;
    """

    /// The wall clock in milliseconds since 1970, in SQL (julianday counts days since noon,
    /// 24 November 4714 BC; 2440587.5 is 1970-01-01T00:00Z).
    static let nowMilliseconds = "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)"

    /// Version 5: patches, the small-write path (issue 20). A commit that changes a few bytes
    /// of a page (a database's 4 KiB pages, a log's appends) keeps the page's chunk and lays
    /// the written bytes over it as rows here, instead of storing a whole new chunk. Page
    /// `idx` of `ino` reads as its `file_chunks` chunk, then each patch in `seq` order (bytes
    /// `offset..<offset+length` of the page: `data`, then zeros up to `length`), all cut at
    /// `file_chunks.length` — which may now pass the chunk's own length. A page with patches
    /// and no chunk of its own has the empty chunk (length 0) as its base. The bytes live in
    /// the metadata like an inline chunk's; a commit folds a page whose patches pass their
    /// bounds back into one chunk (compaction), and a page's patches go with its reference.
    static let v5 = """
    CREATE TABLE chunk_patches(
        ino INTEGER NOT NULL,
        idx INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        offset INTEGER NOT NULL,
        length INTEGER NOT NULL,
        data BLOB NOT NULL,
        PRIMARY KEY(ino, idx, seq)
    ) WITHOUT ROWID;
    """

    /// Version 6: chunk transforms (`format --compress`, ARCHITECTURE.md §10). `codec` says how
    /// a stored chunk's bytes were made from it (`ChunkCodec`: 0 as they are, 1 one zstd
    /// frame), `stored_length` how many bytes it takes where it is kept: its object's size, or
    /// its range in its pack (which `length`, the plaintext's, gave before). Every earlier chunk
    /// is stored as it is, which the defaults and the copy of `length` say.
    static let v6 = """
    ALTER TABLE chunks ADD COLUMN codec INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE chunks ADD COLUMN stored_length INTEGER;
    UPDATE chunks SET stored_length = length;
    """

    /// What one chunk row adds to the bytes the filesystem holds (`UsageDetails.usedBytes`):
    /// a stored chunk its object's bytes, referenced or released and not reclaimed yet; an
    /// inline chunk its bytes while a file references it.
    static func heldBytes(_ row: String) -> String {
        "(CASE WHEN \(row).state = 2 THEN coalesce(\(row).stored_length, 0) WHEN \(row).state = 1 AND \(row).refcount > 0 THEN \(row).length ELSE 0 END)"
    }
    /// `usage`'s row computed from the tables, for the migration and for fsck.
    static let usageFromTables = """
        SELECT (SELECT count(*) FROM inodes),
               (SELECT coalesce(sum(\(heldBytes("chunks"))), 0) FROM chunks) + (SELECT coalesce(sum(length(data)), 0) FROM chunk_patches)
        """

    /// Version 7: `usage`, one row with the inode count and the bytes the filesystem holds,
    /// kept by triggers in the transaction of every change — so statfs (`df`, and monitoring
    /// agents that call it every few seconds) reads one row instead of aggregating every inode
    /// and chunk (0.41 s warm, 3.6 s cold at 10⁶ files). One writer per SQLite filesystem, so
    /// the row is never contended; it travels in snapshots and changesets as any row does, and
    /// `fsck` compares it with the tables (`--repair` recounts it). The chunk triggers fire only
    /// when a row's share changes: a commit inserts its chunks at refcount 0 and counts their
    /// references after, and a reference more to a chunk already held changes nothing.
    static let v7 = """
    CREATE TABLE usage(id INTEGER PRIMARY KEY CHECK (id = 0), inodes INTEGER NOT NULL, bytes INTEGER NOT NULL);
    INSERT INTO usage(id, inodes, bytes) SELECT 0, t.* FROM (\(usageFromTables)) AS t;
    CREATE TRIGGER usage_inode_added AFTER INSERT ON inodes BEGIN UPDATE usage SET inodes = inodes + 1; END;
    CREATE TRIGGER usage_inode_removed AFTER DELETE ON inodes BEGIN UPDATE usage SET inodes = inodes - 1; END;
    CREATE TRIGGER usage_chunk_added AFTER INSERT ON chunks WHEN \(heldBytes("NEW")) != 0 BEGIN
        UPDATE usage SET bytes = bytes + \(heldBytes("NEW"));
    END;
    CREATE TRIGGER usage_chunk_removed AFTER DELETE ON chunks WHEN \(heldBytes("OLD")) != 0 BEGIN
        UPDATE usage SET bytes = bytes - \(heldBytes("OLD"));
    END;
    CREATE TRIGGER usage_chunk_changed AFTER UPDATE OF state, refcount, length, stored_length ON chunks
    WHEN \(heldBytes("OLD")) != \(heldBytes("NEW")) BEGIN
        UPDATE usage SET bytes = bytes - \(heldBytes("OLD")) + \(heldBytes("NEW"));
    END;
    CREATE TRIGGER usage_patch_added AFTER INSERT ON chunk_patches BEGIN UPDATE usage SET bytes = bytes + length(NEW.data); END;
    CREATE TRIGGER usage_patch_removed AFTER DELETE ON chunk_patches BEGIN UPDATE usage SET bytes = bytes - length(OLD.data); END;
    CREATE TRIGGER usage_patch_changed AFTER UPDATE OF data ON chunk_patches BEGIN
        UPDATE usage SET bytes = bytes - length(OLD.data) + length(NEW.data);
    END;
    """
}
