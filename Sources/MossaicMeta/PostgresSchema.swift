/// The PostgreSQL engine's schema: the logical schema of `Schema` (SQLite) version 6, and from
/// version 7 on what only many hosts need (lock tables; sessions from 8), so the two version numbers part there:
/// a later change of the shared schema is a step of each, numbered each in its own line.
/// The version is the `schema_version` setting.
///
/// Differences from SQLite, each for many hosts writing at once:
/// - No `chunks.refcount`: a count updated by every commit that references a popular chunk
///   would be one row every host's transactions queue on. The count is the number of
///   `file_chunks` rows naming the chunk (`file_chunks_hash` index); the foreign key from
///   `file_chunks` to `chunks` is what stops an inline chunk from being deleted by one
///   transaction while another references it (the server checks both under its own locks,
///   and one of the two fails with a serialization or foreign-key error and is retried).
/// - No snapshot bookkeeping (schema 4's `created_gen`, `released_*`, `free_gen`, triggers):
///   a PostgreSQL filesystem's metadata lives in the server, not in snapshots in the bucket.
///   The mounted reclaim sweep marks and sweeps instead (version 9's columns and tables,
///   PostgresMetaStore+Sweep).
/// - Integers are `bigint` (binary results are read as 8 bytes), names and data `bytea`
///   (compared byte-wise, as SQLite compares BLOBs); `offset` and `end` are quoted keywords.
enum PostgresSchema {
    static let version: Int64 = 9

    /// The tables version 7 added: fcntl byte-range locks and flock locks of every host, one
    /// row per lock (`PostgresMetaStore+Locks`), each carrying its mount's session.
    static let locks = """
    CREATE TABLE plocks(
        ino bigint NOT NULL,
        session text NOT NULL,
        owner bigint NOT NULL,
        start bigint NOT NULL,
        "end" bigint NOT NULL,
        kind bigint NOT NULL,
        pid bigint NOT NULL,
        PRIMARY KEY(ino, session, owner, start)
    );
    CREATE INDEX plocks_session ON plocks(session);
    CREATE TABLE flocks(
        ino bigint NOT NULL,
        session text NOT NULL,
        owner bigint NOT NULL,
        kind bigint NOT NULL,
        PRIMARY KEY(ino, session, owner)
    );
    CREATE INDEX flocks_session ON flocks(session);
    """

    /// The tables version 8 added: the mounts (`sessions`, one row per read-write mount, its
    /// heartbeat kept fresh by the mount: PostgresMetaStore+Sessions) and the files each has
    /// open (`open_files`), so that a file unlinked on one host stays while another has it open.
    ///
    /// `open_files` has one row per (session, inode), not one per open handle: a mount writes
    /// the row when it opens a file it had no handle on yet, and deletes it at the last close
    /// of that file on this mount — an open of a file already open here, and every close but
    /// the last, cost no round trip. The first open costs one autocommit INSERT (one round
    /// trip, no BEGIN/COMMIT; its foreign-key check share-locks the inode row in that same
    /// statement, which is what orders it against a reclaim of the inode on another host).
    /// `token` tells one opening on this mount from the next (a close racing a new open of the
    /// same file: the close deletes only its own row).
    /// `expiry_ms` is the session's own promise: dead once its heartbeat is older than that.
    static let sessions = """
    CREATE TABLE sessions(
        id text PRIMARY KEY,
        host text NOT NULL,
        pid bigint NOT NULL,
        version text NOT NULL,
        mounted_at timestamptz NOT NULL DEFAULT now(),
        heartbeat timestamptz NOT NULL DEFAULT now(),
        expiry_ms bigint NOT NULL
    );
    CREATE TABLE open_files(
        session text NOT NULL,
        ino bigint NOT NULL REFERENCES inodes(ino),
        token bigint NOT NULL,
        PRIMARY KEY(session, ino)
    );
    CREATE INDEX open_files_ino ON open_files(ino);
    """

    /// What version 9 added for the reclaim sweep of mounted hosts (PostgresMetaStore+Sweep
    /// says the protocol):
    /// - `chunks.unreferenced_since`: when a sweep round first found the stored chunk
    ///   unreferenced (the server's clock; NULL while referenced), the start of its grace;
    ///   `unreferenced_xmax`: the first transaction id not yet assigned at that moment — the row
    ///   goes only once every transaction then running has ended (a commit whose snapshot
    ///   predates the row could otherwise miss what the sweep did to it).
    /// - `swept_objects`: a tombstone per object key the sweep deleted (or is deleting, while
    ///   `pending`), numbered by `swept_seq`: a commit that would insert a chunk row naming such
    ///   an object again must have stored it after the deletion (`FileCommit.storedAfterSweep`).
    static let sweep = """
    ALTER TABLE chunks ADD COLUMN unreferenced_since timestamptz;
    ALTER TABLE chunks ADD COLUMN unreferenced_xmax bigint;
    CREATE INDEX chunks_unreferenced ON chunks(unreferenced_since) WHERE unreferenced_since IS NOT NULL;
    CREATE TABLE swept_objects(
        key text PRIMARY KEY,
        seq bigint NOT NULL,
        pending boolean NOT NULL
    );
    CREATE INDEX swept_objects_seq ON swept_objects(seq);
    CREATE INDEX swept_objects_pending ON swept_objects(seq) WHERE pending;
    CREATE SEQUENCE swept_seq;
    """

    /// The steps from each version to the next, from 6 (the first PostgreSQL schema).
    static let steps: [Int64: String] = [6: locks, 7: sessions, 8: sweep]

    /// The whole schema at `version`.
    static let current = """
    CREATE TABLE settings(key text PRIMARY KEY, value text NOT NULL);
    CREATE TABLE inodes(
        ino bigint GENERATED BY DEFAULT AS IDENTITY (START WITH 2) PRIMARY KEY,
        kind bigint NOT NULL,
        mode bigint NOT NULL,
        uid bigint NOT NULL,
        gid bigint NOT NULL,
        size bigint NOT NULL DEFAULT 0,
        nlink bigint NOT NULL,
        rdev bigint NOT NULL DEFAULT 0,
        atime_ns bigint NOT NULL,
        mtime_ns bigint NOT NULL,
        ctime_ns bigint NOT NULL,
        generation bigint NOT NULL DEFAULT 0,
        allocated bigint NOT NULL DEFAULT 0,
        reserved bigint NOT NULL DEFAULT 0,
        parent bigint
    );
    CREATE TABLE dentries(
        parent bigint NOT NULL,
        name bytea NOT NULL,
        ino bigint NOT NULL,
        PRIMARY KEY(parent, name)
    );
    CREATE TABLE chunks(
        hash bytea PRIMARY KEY,
        length bigint NOT NULL,
        state bigint NOT NULL,
        data bytea,
        pack bytea,
        pack_offset bigint,
        codec bigint NOT NULL DEFAULT 0,
        stored_length bigint NOT NULL
    );
    CREATE INDEX chunks_pack ON chunks(pack) WHERE pack IS NOT NULL;
    CREATE TABLE file_chunks(
        ino bigint NOT NULL,
        idx bigint NOT NULL,
        hash bytea NOT NULL REFERENCES chunks(hash),
        length bigint NOT NULL,
        PRIMARY KEY(ino, idx)
    );
    CREATE INDEX file_chunks_hash ON file_chunks(hash);
    CREATE TABLE symlinks(ino bigint PRIMARY KEY, target bytea NOT NULL);
    CREATE TABLE xattrs(
        ino bigint NOT NULL,
        name bytea NOT NULL,
        value bytea NOT NULL,
        PRIMARY KEY(ino, name)
    );
    CREATE TABLE orphans(ino bigint PRIMARY KEY);
    CREATE TABLE allocations(
        ino bigint NOT NULL,
        start bigint NOT NULL,
        "end" bigint NOT NULL,
        PRIMARY KEY(ino, start)
    );
    CREATE TABLE chunk_patches(
        ino bigint NOT NULL,
        idx bigint NOT NULL,
        seq bigint NOT NULL,
        "offset" bigint NOT NULL,
        length bigint NOT NULL,
        data bytea NOT NULL,
        PRIMARY KEY(ino, idx, seq)
    );
    """ + locks + sessions + sweep

    /// Serializes schema creation and upgrades of hosts starting at once (a transaction-level
    /// advisory lock: released at its commit or rollback).
    static let migrationLock: Int64 = 0x6d6f_7373_6169_6301

    /// Creates the schema in an empty database, or checks an existing one: a database newer
    /// than this build is refused rather than misread.
    static func migrate(_ c: PostgresConnection) throws(MetaError) {
        try c.execute("BEGIN")
        do throws(MetaError) {
            try c.update("SELECT pg_advisory_xact_lock($1)", [.int(migrationLock)])
            let exists = try c.queryOne("SELECT 1 FROM pg_catalog.pg_tables WHERE schemaname = current_schema() AND tablename = 'settings'") { _ in true }
            var version: Int64 = 0
            if exists != nil {
                version = try c.queryOne("SELECT value FROM settings WHERE key = 'schema_version'") { Int64($0.text(0)) ?? -1 } ?? 0
            }
            if version > Self.version || version < 0 {
                throw .incompatible("the database has metadata schema \(version); this mossaicfs understands up to \(Self.version) (upgrade mossaicfs)")
            }
            if version == 0 {
                try c.execute(current)
                try c.update("INSERT INTO settings(key, value) VALUES('schema_version', $1)", [.text(String(Self.version))])
            } else if version < Self.version {
                for step in version..<Self.version {
                    guard let sql = steps[step] else { throw .incompatible("the database has metadata schema \(version), which this mossaicfs cannot upgrade") }
                    try c.execute(sql)
                }
                try c.update("UPDATE settings SET value = $1 WHERE key = 'schema_version'", [.text(String(Self.version))])
            }
            try c.execute("COMMIT")
        } catch {
            try? c.execute("ROLLBACK")
            throw error
        }
    }
}
