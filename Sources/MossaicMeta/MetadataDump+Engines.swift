#if canImport(Glibc)
import Glibc
#endif
import MossaicCore

/// A row already read into values (a PostgreSQL page, a test's record), for `DumpWriter`.
struct ValuesRow: ResultRow {
    let values: [SQLValue]
    func int(_ column: Int32) -> Int64 { if case .int(let v) = values[Int(column)] { v } else { 0 } }
    func isNull(_ column: Int32) -> Bool { if case .null = values[Int(column)] { true } else { false } }
    func blob(_ column: Int32) -> [UInt8] {
        switch values[Int(column)] {
        case .blob(let b): b
        case .text(let s): Array(s.utf8)
        default: []
        }
    }
    func text(_ column: Int32) -> String { String(decoding: blob(column), as: UTF8.self) }
}

extension MetadataDump {
    // MARK: SQLite

    /// Dumps the SQLite metadata at `path` in one read transaction (WAL: a snapshot, while a
    /// mounted daemon goes on writing), each table streamed by its statement. The database must
    /// be at this build's schema (a mount upgrades it).
    public static func dumpSQLite(path: String, fsUUID: String, created: String, dataReference: DumpWriter.DataReferencing? = nil,
                                  sink: @escaping ([UInt8]) throws -> Void) throws -> Summary {
        let c = try SQLiteConnection(path: path, readOnly: true)
        try SQLiteMetaStore.checkSchema(c, exact: true)
        try c.execute("BEGIN")
        defer { try? c.execute("COMMIT") }
        let next = try c.queryOne("""
            SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'inodes'), 0), coalesce((SELECT max(ino) FROM inodes), 0)) + 1
            """) { $0.int(0) } ?? 2
        let writer = try DumpWriter(header: Header(fsUUID: fsUUID, engine: "sqlite", schema: Schema.version, created: created,
                                                   nextInode: next), dataReference: dataReference, sink: sink)
        for table in Table.all {
            let s = try c.statement("SELECT \(table.columnList) FROM \(table.sql) ORDER BY \(table.keyList)")
            while try s.step() {
                if table.type == "setting", engineSettings.contains(s.text(0)) { continue }
                try writer.write(table, s)
            }
        }
        return try writer.finish()
    }

    /// Loads `reader` (its header read) into a new SQLite database at `path`, which must not
    /// exist; on any failure nothing is left at `path`. The database records `generation` as
    /// its snapshot generation, changed since: its first read-write mount publishes it as a
    /// snapshot newer than any the store holds (`MountReconciliation`).
    ///
    /// The rows go into a scratch file beside `path` (`path.load`), fsynced and renamed into
    /// place once complete, so that — as at a restore from the store (`SnapshotChangeApplier`)
    /// — its one transaction needs no journal and no syncs, and gets a large page cache. In a
    /// WAL transaction with the default 2 MiB of pages, a dump of 10⁶ small files (rows landing
    /// at random places of the `chunks` B-tree, which holds their data) spilled and re-read the
    /// WAL for every insert: 525 GB read in 12 minutes, unfinished. A crash leaves only the
    /// scratch file, which the next load replaces.
    public static func loadSQLite(_ reader: DumpReader, header: Header, path: String, generation: Int64) throws -> Summary {
        guard !PosixFiles.exists(path) else { throw DumpError.target("\(path) exists: load needs a new, empty engine") }
        let scratch = path + ".load"
        SQLiteMetaStore.removeDatabaseFiles(scratch)
        do {
            do { _ = try SQLiteMetaStore(path: scratch) }  // the schema; closed again at once
            let summary: Summary
            do {
                let target = try SQLiteTarget(path: scratch, generation: generation)
                summary = try load(reader, header: header, into: target)
            }  // the target's connection is closed here, back in WAL mode
            try PosixFiles.syncFile(scratch)
            guard rename(scratch, path) == 0 else { throw DumpError.io(SystemError("rename", path: path).description) }
            try? PosixFiles.syncDirectory(of: path)
            return summary
        } catch {
            SQLiteMetaStore.removeDatabaseFiles(scratch)
            throw error
        }
    }

    final class SQLiteTarget: DumpTarget {
        let c: SQLiteConnection
        let generation: Int64

        init(path: String, generation: Int64) throws {
            c = try SQLiteConnection(path: path, readOnly: false)
            self.generation = generation
            try c.prepareScratchTransaction()
            try c.execute("BEGIN IMMEDIATE")
        }

        func insert(_ table: Table, _ values: [SQLValue]) throws {
            // SQLite keeps a refcount per chunk (`finish` counts them).
            let extra = table.sql == "chunks" ? ", \"refcount\"" : ""
            let marks = Array(repeating: "?", count: table.columns.count).joined(separator: ", ") + (table.sql == "chunks" ? ", 0" : "")
            let verb = table.sql == "settings" ? "INSERT OR REPLACE" : "INSERT"
            try c.run("\(verb) INTO \(table.sql)(\(table.columnList)\(extra)) VALUES(\(marks))", values)
        }

        func finish(_ header: Header) throws {
            // One grouped pass: file_chunks has no index on hash, so a correlated count per
            // chunk scanned all of file_chunks once per chunk (10⁶ chunks × 2·10⁶ rows).
            try c.run("""
                UPDATE chunks SET refcount = r.n FROM (SELECT hash, count(*) AS n FROM file_chunks GROUP BY hash) AS r
                WHERE chunks.hash = r.hash
                """)
            // Stored chunks nothing references count as released now, by a snapshot older than
            // every existing one, as schema 4's migration says (Schema.v4).
            try c.run("""
                UPDATE chunks SET created_gen = 0, released_seq = 0, released_ms = \(Schema.nowMilliseconds), free_gen = NULL
                WHERE refcount = 0 AND state = 2
                """)
            let settings: [(String, String)] = [("fs_uuid", header.fsUUID), ("change_seq", "1"),
                                                ("snapshot_generation", String(generation)), ("snapshot_change_seq", "0")]
            for (key, value) in settings {
                try c.run("INSERT OR REPLACE INTO settings(key, value) VALUES(?, ?)", [.text(key), .text(value)])
            }
            try c.run("DELETE FROM sqlite_sequence WHERE name = 'inodes'")
            try c.run("INSERT INTO sqlite_sequence(name, seq) VALUES('inodes', max(?, coalesce((SELECT max(ino) FROM inodes), 0)))",
                      [.int(header.nextInode - 1)])
            try c.execute("COMMIT")
            // Back to the mode every connection of the live database expects (kept in the
            // file's header); the caller fsyncs the file before renaming it into place.
            try c.execute("PRAGMA journal_mode=WAL")
        }

        func abort() { try? c.execute("ROLLBACK") }
    }

    // MARK: PostgreSQL

    /// Rows per page of a PostgreSQL dump and per multi-row INSERT of a load.
    static let batchRows = 500

    /// Loads `reader` (its header read) into the PostgreSQL database `url`, which must hold no
    /// filesystem: the schema is created if missing, then every row goes in by multi-row
    /// INSERTs in ONE transaction that also claims the database for `header.fsUUID` — so a
    /// failed load leaves at most the empty schema, which a later format or load takes.
    public static func loadPostgres(_ reader: DumpReader, header: Header, url: String) throws -> Summary {
        _ = try PostgresMetaStore(url: url, connections: 1)  // the schema
        let target = try PostgresTarget(url: url)
        return try load(reader, header: header, into: target)
    }

    final class PostgresTarget: DumpTarget {
        let c: PostgresConnection
        var table: Table?
        var rows: [[SQLValue]] = []

        init(url: String) throws {
            c = try PostgresConnection(conninfo: url)
            try c.execute("BEGIN")
            // Against a format or another load of the same database at once.
            try c.update("SELECT pg_advisory_xact_lock($1)", [.int(PostgresSchema.migrationLock)])
            let owner = try c.queryOne("SELECT value FROM settings WHERE key = $1", [.text(PostgresMetaStore.ownerSetting)]) { $0.text(0) }
            let inodes = try c.queryOne("SELECT count(*)::bigint FROM inodes") { $0.int(0) } ?? 0
            if owner != nil || inodes > 0 {
                try? c.execute("ROLLBACK")
                let whose = owner.map { "the metadata of mossaicfs filesystem \($0)" } ?? "\(inodes) inodes"
                throw DumpError.target("the database already holds \(whose): load needs a new, empty database (CREATE DATABASE …)")
            }
        }

        func insert(_ table: Table, _ values: [SQLValue]) throws {
            if let current = self.table, current.type != table.type || rows.count >= batchRows { try flush() }
            self.table = table
            var values = values
            // PostgreSQL's stored_length is NOT NULL; SQLite's rows from before schema 6 may lack it.
            if table.sql == "chunks", case .null = values[7] { values[7] = values[1] }
            rows.append(values)
        }

        private func flush() throws {
            guard let table, !rows.isEmpty else { return }
            let width = table.columns.count
            let tuples = (0..<rows.count).map { r in
                "(" + (1...width).map { "$\(r * width + $0)" }.joined(separator: ", ") + ")"
            }
            let conflict = table.sql == "settings" ? " ON CONFLICT(key) DO UPDATE SET value = excluded.value" : ""
            try c.update("INSERT INTO \(table.sql)(\(table.columnList)) VALUES \(tuples.joined(separator: ", "))\(conflict)",
                         rows.flatMap { $0 })
            rows.removeAll(keepingCapacity: true)
        }

        func finish(_ header: Header) throws {
            try flush()
            try c.update("""
                SELECT setval(pg_get_serial_sequence('inodes', 'ino'), greatest($1, coalesce((SELECT max(ino) FROM inodes), 1)))
                """, [.int(max(1, header.nextInode - 1))])
            try c.update("INSERT INTO settings(key, value) VALUES($1, $2)", [.text(PostgresMetaStore.ownerSetting), .text(header.fsUUID)])
            try c.execute("COMMIT")
        }

        func abort() { if c.isUsable { try? c.execute("ROLLBACK") } }
    }
}

extension PostgresMetaStore {
    /// Dumps this database in one REPEATABLE READ, read-only transaction (a snapshot: hosts go
    /// on writing), each table read in pages of `MetadataDump.batchRows` rows by its primary
    /// key (keyset pagination: no OFFSET, no cursor held across pages' processing).
    /// `dataReference`: see `DumpWriter` (a metadata backup's inline chunks).
    public func dump(fsUUID: String, created: String, dataReference: DumpWriter.DataReferencing? = nil,
                     sink: @escaping ([UInt8]) throws -> Void) throws -> MetadataDump.Summary {
        try pool.withAnyConnection { (c) throws -> MetadataDump.Summary in
            // Between pages the sink writes (a pipe, the store's uploads of a backup), which may
            // take longer than the server's idle-in-transaction limit the pool sets for every
            // other transaction (PostgresMetaStore.serverSideTimeouts): that limit frees row
            // locks, and this transaction takes none.
            try c.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET LOCAL idle_in_transaction_session_timeout = 0")
            defer { if c.isUsable { try? c.execute("ROLLBACK") } }
            let sequence = try c.queryOne("SELECT pg_get_serial_sequence('inodes', 'ino')") { $0.text(0) } ?? "inodes_ino_seq"
            let fromSequence = try c.queryOne("SELECT (CASE WHEN is_called THEN last_value + 1 ELSE last_value END)::bigint FROM \(sequence)") {
                $0.int(0)
            } ?? 2
            let maximum = try c.queryOne("SELECT coalesce(max(ino), 0)::bigint + 1 FROM inodes") { $0.int(0) } ?? 2
            let writer = try DumpWriter(header: .init(fsUUID: fsUUID, engine: "postgres", schema: PostgresSchema.version, created: created,
                                                      nextInode: max(fromSequence, maximum)), dataReference: dataReference, sink: sink)
            for table in MetadataDump.Table.all {
                let select = "SELECT \(table.columnList) FROM \(table.sql)"
                let order = " ORDER BY \(table.keyList) LIMIT \(MetadataDump.batchRows)"
                let keyIndexes = table.key.map(table.index(of:))
                let marks = (1...table.key.count).map { "$\($0)" }.joined(separator: ", ")
                var after: [SQLValue]?
                while true {
                    let sql = after == nil ? select + order : select + " WHERE (\(table.keyList)) > (\(marks))" + order
                    let page = try c.query(sql, after ?? []) { row in
                        (0..<Int32(table.columns.count)).map { (i) -> SQLValue in
                            if row.isNull(i) { return .null }
                            switch table.columns[Int(i)].kind {
                            case .int, .optionalInt: return .int(row.int(i))
                            case .text: return .text(row.text(i))
                            case .bytes, .optionalBytes, .hex, .optionalHex: return .blob(row.blob(i))
                            }
                        }
                    }
                    for values in page {
                        if table.type == "setting", case .text(let key) = values[0], MetadataDump.engineSettings.contains(key) { continue }
                        try writer.write(table, ValuesRow(values: values))
                    }
                    guard page.count == MetadataDump.batchRows, let last = page.last else { break }
                    after = keyIndexes.map { last[$0] }
                }
            }
            return try writer.finish()
        }
    }
}
