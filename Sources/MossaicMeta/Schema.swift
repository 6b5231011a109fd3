/// The metadata schema and its migrations. `PRAGMA user_version` holds the version; a database
/// newer than this build is refused rather than misread.
enum Schema {
    static let version: Int64 = 3

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
}
