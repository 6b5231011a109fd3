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
/// - statfs's totals are not one row (SQLite's `usage`, which every host's transactions would
///   queue on) but one row per server connection, `usage_counts` (version 10).
/// - Integers are `bigint` (binary results are read as 8 bytes), names and data `bytea`
///   (compared byte-wise, as SQLite compares BLOBs); `offset` and `end` are quoted keywords.
enum PostgresSchema {
    static let version: Int64 = 10

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

    /// What version 10 added: statfs's totals (`df`, and monitoring agents that call it every
    /// few seconds) without aggregating every inode and chunk at each call (linear in the
    /// files: at 10⁶, a scan of two big tables per `df`).
    ///
    /// A single counter row, as SQLite's `usage`, would be the hot row this engine avoids: every
    /// create on every host would queue on its lock until commit. So each server connection
    /// keeps its own row (`pid`: `pg_backend_pid()`; 0: totals folded in), which only that
    /// connection's transactions write — never contended, never a deadlock — and statfs sums
    /// the rows, one per connection. Triggers keep them in the transaction of every change (so
    /// they cover every path: mounts, load, fsck --repair, gc, the sweep); statement-level for
    /// inserts and deletes (one upsert per statement, also for the multi-row ones of a load or a
    /// sweep batch), row-level for the updates that change a row's share. The sweep's mark step
    /// folds the rows of connections that have ended into row 0 (`foldUsageCounts`), so the
    /// table stays as small as the connections open. `fsck` compares the sum with the tables;
    /// `--repair` recounts.
    ///
    /// What it costs: a trigger that fires adds about 25–35 µs to its transaction (an UPDATE of
    /// the connection's row; its first change of all, an INSERT), so a small file's create and
    /// commit cost 5–7 % more than without counters (bench/pg-create.py: 5,000 creates on one
    /// host, 628 → 585, 603 → 557 and 576 → 550 per second in three runs); statfs then takes
    /// 0.3 ms instead of 5–6 ms at 5,000 files, and stays there at any size.
    ///
    /// Bytes held, as SQLite's `Schema.heldBytes` counts them: a stored chunk its object's
    /// bytes (referenced, or released and not yet swept: the space is still taken), an inline
    /// chunk its bytes, a patch its data. One difference: SQLite counts an inline chunk while a
    /// reference names it; here every inline row counts, because inline rows go with their
    /// last reference in the same transaction (`dropUnreferencedInline`).
    static let usage = """
    CREATE TABLE usage_counts(
        pid bigint PRIMARY KEY,
        inodes bigint NOT NULL,
        bytes bigint NOT NULL
    );
    CREATE FUNCTION mossaicfs_chunk_bytes(state bigint, length bigint, stored_length bigint) RETURNS bigint
        LANGUAGE sql IMMUTABLE AS $$ SELECT CASE state WHEN 2 THEN stored_length WHEN 1 THEN length ELSE 0 END $$;
    CREATE FUNCTION mossaicfs_usage_add(d_inodes bigint, d_bytes bigint) RETURNS void LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE usage_counts SET inodes = inodes + d_inodes, bytes = bytes + d_bytes WHERE pid = pg_backend_pid();
        IF NOT FOUND THEN
            INSERT INTO usage_counts AS u(pid, inodes, bytes) VALUES(pg_backend_pid(), d_inodes, d_bytes)
            ON CONFLICT(pid) DO UPDATE SET inodes = u.inodes + excluded.inodes, bytes = u.bytes + excluded.bytes;
        END IF;
    END $$;
    CREATE FUNCTION mossaicfs_usage_changed() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        d_inodes bigint := 0;
        d_bytes bigint := 0;
    BEGIN
        IF TG_LEVEL = 'ROW' THEN
            IF TG_TABLE_NAME = 'chunks' THEN
                d_bytes := mossaicfs_chunk_bytes(NEW.state, NEW.length, NEW.stored_length)
                         - mossaicfs_chunk_bytes(OLD.state, OLD.length, OLD.stored_length);
            ELSE
                d_bytes := length(NEW.data) - length(OLD.data);
            END IF;
        ELSIF TG_OP = 'INSERT' THEN
            IF TG_TABLE_NAME = 'inodes' THEN
                SELECT count(*) INTO d_inodes FROM added;
            ELSIF TG_TABLE_NAME = 'chunks' THEN
                SELECT coalesce(sum(mossaicfs_chunk_bytes(a.state, a.length, a.stored_length)), 0) INTO d_bytes FROM added a;
            ELSE
                SELECT coalesce(sum(length(a.data)), 0) INTO d_bytes FROM added a;
            END IF;
        ELSE
            IF TG_TABLE_NAME = 'inodes' THEN
                SELECT -count(*) INTO d_inodes FROM removed;
            ELSIF TG_TABLE_NAME = 'chunks' THEN
                SELECT -coalesce(sum(mossaicfs_chunk_bytes(r.state, r.length, r.stored_length)), 0) INTO d_bytes FROM removed r;
            ELSE
                SELECT -coalesce(sum(length(r.data)), 0) INTO d_bytes FROM removed r;
            END IF;
        END IF;
        IF d_inodes <> 0 OR d_bytes <> 0 THEN
            PERFORM mossaicfs_usage_add(d_inodes, d_bytes);
        END IF;
        RETURN NULL;
    END $$;
    CREATE TRIGGER usage_inodes_added AFTER INSERT ON inodes REFERENCING NEW TABLE AS added
        FOR EACH STATEMENT EXECUTE FUNCTION mossaicfs_usage_changed();
    CREATE TRIGGER usage_inodes_removed AFTER DELETE ON inodes REFERENCING OLD TABLE AS removed
        FOR EACH STATEMENT EXECUTE FUNCTION mossaicfs_usage_changed();
    CREATE TRIGGER usage_chunks_added AFTER INSERT ON chunks REFERENCING NEW TABLE AS added
        FOR EACH STATEMENT EXECUTE FUNCTION mossaicfs_usage_changed();
    CREATE TRIGGER usage_chunks_removed AFTER DELETE ON chunks REFERENCING OLD TABLE AS removed
        FOR EACH STATEMENT EXECUTE FUNCTION mossaicfs_usage_changed();
    CREATE TRIGGER usage_chunk_changed AFTER UPDATE OF state, length, stored_length ON chunks FOR EACH ROW
        WHEN (mossaicfs_chunk_bytes(OLD.state, OLD.length, OLD.stored_length) <> mossaicfs_chunk_bytes(NEW.state, NEW.length, NEW.stored_length))
        EXECUTE FUNCTION mossaicfs_usage_changed();
    CREATE TRIGGER usage_patches_added AFTER INSERT ON chunk_patches REFERENCING NEW TABLE AS added
        FOR EACH STATEMENT EXECUTE FUNCTION mossaicfs_usage_changed();
    CREATE TRIGGER usage_patches_removed AFTER DELETE ON chunk_patches REFERENCING OLD TABLE AS removed
        FOR EACH STATEMENT EXECUTE FUNCTION mossaicfs_usage_changed();
    CREATE TRIGGER usage_patch_changed AFTER UPDATE OF data ON chunk_patches FOR EACH ROW
        WHEN (length(OLD.data) <> length(NEW.data))
        EXECUTE FUNCTION mossaicfs_usage_changed();
    """ + recountUsage

    /// The totals counted from the tables: inodes, bytes held (`usage` says what counts).
    static let countedUsage = """
        (SELECT count(*) FROM inodes)::bigint,
        ((SELECT coalesce(sum(mossaicfs_chunk_bytes(state, length, stored_length)), 0) FROM chunks)
         + (SELECT coalesce(sum(length(data)), 0) FROM chunk_patches))::bigint
        """

    /// Replaces every connection's row by one row 0 counted from the tables (the migration,
    /// `fsck --repair`). Correct beside hosts writing at once: a row that changed since this
    /// transaction's snapshot fails the delete with a serialization error (retried), and a row
    /// a newer connection inserted meanwhile is not seen, not deleted, and not counted.
    static let recountUsage = """
    DELETE FROM usage_counts;
    INSERT INTO usage_counts(pid, inodes, bytes) SELECT 0, \(countedUsage);
    """

    /// The steps from each version to the next, from 6 (the first PostgreSQL schema).
    static let steps: [Int64: String] = [6: locks, 7: sessions, 8: sweep, 9: usageUpgrade]

    /// Version 10 on a database in use: writes to the counted tables wait until the commit, so
    /// that the count the step starts from misses no change made before its triggers existed.
    static let usageUpgrade = "LOCK TABLE inodes, chunks, chunk_patches IN SHARE ROW EXCLUSIVE MODE;\n" + usage

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
    """ + locks + sessions + sweep + usage

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
