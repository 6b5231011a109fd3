#if canImport(Glibc)
import Glibc
#endif
internal import CSQLite

/// A restore's changes to `chunks`, held back while the rest of a changeset chain applies and
/// then applied grouped by the first byte of their hash (`SnapshotChangeApplier`).
///
/// Why: `chunks` is keyed by SHA-256, so the rows a chain inserts land at random places of its
/// B-tree, and with inline data that table is most of the database (940 MiB of 1.2 GB at 10⁶
/// small files). Beyond the restore's page cache nearly every insert read and later wrote back
/// one page: restoring 2·10⁶ files took 43.9 s, and 10.4 s with `chunks` left out
/// (bench/restore.sh, META_INTERVAL=10); and even within the cache, inserts in random order
/// split pages all the time. Held back, each change is appended to one of 256 scratch tables
/// (`staged.chunk_changes_00` … `_ff`, by the hash's first byte; rowid = arrival, so every
/// write is an append). At the end each table in turn is read sorted by hash (1/256 of the
/// changes: SQLite sorts that in memory) and applied, so `chunks` is written in key order —
/// each of its pages read and written about once, and appended to where it was empty.
///
/// The changes are taken out of each patchset as bytes (`ChangesetReader`: SQLite's own
/// iterator copies every value into objects, and would read them once more to skip them when
/// applying the rest); SQLite applies the rest of the patchset at once. One the reader does not
/// follow goes to SQLite whole, after what was staged before it.
///
/// Same result as applying them in place: nothing reads `chunks` while the other tables apply
/// (the connection's triggers are off, SQLite has no foreign keys here), changes to different
/// rows commute, and changes to one row keep their order (one hash, one group, arrival order).
/// Each change is checked as SQLite's session extension checks a patchset's — an insert must
/// not find its row, an update or delete must find it — and one that does not apply fails the
/// restore (`.incompatible`), as a conflict does there.
///
/// The scratch file is `<database>-chunks` (`suffix`), attached to the applier's connection,
/// without journal or syncs, deleted when the restore ends; `SQLiteMetaStore.removeDatabaseFiles`
/// removes one a crash left. It needs free space in the cache_dir about the size of the chain's
/// chunk rows, for the restore's duration. Not `Sendable`: one restore, on one thread.
final class ChunkChangeStaging {
    static let table = "chunks"
    static let suffix = "-chunks"
    /// The scratch database's page cache, in KiB: the 256 tables' last pages while staging,
    /// a few pages while reading one back.
    static let cacheKiB = 8 << 10
    static let groups = 256

    private let connection: SQLiteConnection
    let path: String
    /// The column count of the staged changes (a chain could change it across a schema
    /// upgrade).
    private var columns: Int?
    private var arrivals: Int64 = 0
    /// The insert into each group's table.
    private var insertSQL: [String] = []
    /// The statement text for each kind of staged change.
    private var changeSQL: [ChangeShape: String] = [:]
    /// The fields of the change being applied.
    private var fields: [ChangesetReader.Field] = []

    private struct ChangeShape: Hashable {
        /// An insert must not find its key; an update or delete must find it.
        let operation: UInt8
        /// Bit i: column i gets a value.
        let setMask: UInt64
    }

    /// Attaches a new, empty scratch database beside the connection's as `staged`. Must run
    /// before the connection's transaction begins (SQLite does not attach inside one).
    init(connection: SQLiteConnection) throws(MetaError) {
        self.connection = connection
        path = connection.path + Self.suffix
        Glibc.unlink(path)
        try connection.run("ATTACH DATABASE ? AS staged", [.text(path)])
        try connection.execute("PRAGMA staged.journal_mode=OFF")
        guard try connection.pragma("staged.journal_mode").lowercased() == "off" else {
            throw .incompatible("\(path): SQLite refused journal_mode=OFF")
        }
        try connection.execute("PRAGMA staged.synchronous=OFF")
        try connection.execute("PRAGMA staged.cache_size=-\(Self.cacheKiB)")
    }

    /// Applies `changeset` (a patchset, inside the caller's transaction): its changes to
    /// `chunks` are staged, SQLite applies the rest now (`SQLiteChangeRecorder.apply`).
    func apply(_ changeset: [UInt8]) throws(MetaError) {
        let tables = changeset.withUnsafeBytes { ChangesetReader(bytes: $0).tables() }
        guard let tables, tables.allSatisfy({ $0.name != Self.table || ($0.keyColumns == [0] && $0.columns <= 64) }) else {
            // Not a layout staged here: what is staged goes first, to keep the order.
            try flush()
            try SQLiteChangeRecorder.apply(changeset, to: connection)
            return
        }
        guard tables.contains(where: { $0.name == Self.table }) else {
            try SQLiteChangeRecorder.apply(changeset, to: connection)
            return
        }
        var rest: [UInt8] = []
        rest.reserveCapacity(changeset.count)
        for t in tables where t.name != Self.table { rest.append(contentsOf: changeset[t.block]) }
        if !rest.isEmpty { try SQLiteChangeRecorder.apply(rest, to: connection) }
        for t in tables where t.name == Self.table { try stage(t, of: changeset) }
    }

    /// Appends the changes of block `table` (of `chunks`) to their groups' tables.
    private func stage(_ table: ChangesetReader.Table, of changeset: [UInt8]) throws(MetaError) {
        if columns != table.columns {
            try flush()
            try create(columns: table.columns)
        }
        let failure: MetaError? = changeset.withUnsafeBytes { raw in
            let reader = ChangesetReader(bytes: raw)
            var key = [ChangesetReader.Field()]
            var p = table.changes.lowerBound
            do throws(MetaError) {
                while p < table.changes.upperBound {
                    // The first field of a change is always its key (column 0).
                    guard let end = reader.changeEnd(at: p, of: table), reader.readFields(at: p + 2, count: 1, into: &key) != nil else {
                        return Self.damaged("a change to \(Self.table) is malformed")
                    }
                    let k = key[0]
                    let group = k.type == ChangesetReader.Field.blob && k.count > 0 ? Int(raw[k.start]) : 0
                    let insert = try connection.statement(insertSQL[group])
                    arrivals += 1
                    try insert.bind([.int(arrivals), .int(Int64(raw[p]))])
                    // The key's bytes (a blob's own, so each group sorts as `chunks` does),
                    // then the records; both are copied by SQLite in the step below, not here.
                    let keyBytes = k.type == ChangesetReader.Field.blob ? k.start..<(k.start + k.count) : (p + 2)..<(k.start + k.count)
                    try insert.bindBlob(raw.baseAddress! + keyBytes.lowerBound, count: keyBytes.count, at: 3)
                    try insert.bindBlob(raw.baseAddress! + p + 2, count: end - (p + 2), at: 4)
                    _ = try insert.step()
                    sqlite3_clear_bindings(insert.stmt)
                    p = end
                }
                return nil
            } catch {
                return error
            }
        }
        if let failure { throw failure }
    }

    private static func groupTable(_ group: Int) -> String {
        let hex = String(group, radix: 16)
        return "staged.chunk_changes_" + (hex.count < 2 ? "0" + hex : hex)
    }

    /// Creates the 256 empty group tables: each change's operation, key, and records.
    private func create(columns n: Int) throws(MetaError) {
        insertSQL = []
        for group in 0..<Self.groups {
            let table = Self.groupTable(group)
            try connection.execute("CREATE TABLE \(table)(op INTEGER NOT NULL, key BLOB NOT NULL, records BLOB NOT NULL)")
            insertSQL.append("INSERT INTO \(table)(rowid, op, key, records) VALUES(?, ?, ?, ?)")
        }
        fields = Array(repeating: ChangesetReader.Field(), count: n)
        columns = n
    }

    /// Applies what is staged and drops the group tables (before a changeset that is not
    /// staged, or staged another way).
    private func flush() throws(MetaError) {
        guard columns != nil else { return }
        try applyStaged()
        for group in 0..<Self.groups { try connection.execute("DROP TABLE \(Self.groupTable(group))") }
        columns = nil
    }

    /// Applies what is staged to `chunks`, group by group, each sorted by hash and, for one
    /// hash, in arrival order. (The staged rows stay: emptying the tables would read all their
    /// pages once more, and they are dropped or discarded next.)
    func applyStaged() throws(MetaError) {
        guard let n = columns else { return }
        let names = try connection.query("SELECT name FROM pragma_table_info(?) ORDER BY cid", [.text(Self.table)]) { $0.text(0) }
        guard names.count >= n else {
            throw .incompatible("\(connection.path): a changeset records \(n) columns of \(Self.table), the database has \(names.count)")
        }
        let columnNames = Array(names.prefix(n))
        for group in 0..<Self.groups {
            let read = try connection.statement("SELECT op, records FROM \(Self.groupTable(group)) ORDER BY key, rowid")
            while try read.step() {
                let count = Int(sqlite3_column_bytes(read.stmt, 1))
                guard count > 0, let base = sqlite3_column_blob(read.stmt, 1) else { throw Self.damaged("a staged change is empty") }
                try applyChange(UInt8(truncatingIfNeeded: read.int(0)), ChangesetReader(bytes: UnsafeRawBufferPointer(start: base, count: count)),
                                names: columnNames)
            }
        }
        changeSQL = [:]
    }

    /// Applies one staged change: `operation` with the record in `reader` (one column a name).
    private func applyChange(_ operation: UInt8, _ reader: ChangesetReader, names: [String]) throws(MetaError) {
        guard let count = ChangesetReader.recordFields(operation: operation, columns: names.count, keyColumns: 1),
              reader.readFields(at: 0, count: count, into: &fields) == reader.bytes.count,
              fields[0].type != ChangesetReader.Field.undefined else {
            throw Self.damaged("a staged change to \(Self.table) is malformed")
        }
        // Insert: every column set. Delete: the key found. Update: the key found, the columns
        // with a value set.
        var setMask: UInt64 = 0
        if operation != ChangesetReader.delete {
            for i in (operation == ChangesetReader.insert ? 0 : 1)..<count where fields[i].type != ChangesetReader.Field.undefined {
                setMask |= 1 << i
            }
        }
        let shape = ChangeShape(operation: operation, setMask: setMask)
        let sql: String
        if let known = changeSQL[shape] { sql = known } else {
            sql = try Self.applySQL(shape, names: names)
            changeSQL[shape] = sql
        }
        let change = try connection.statement(sql)
        var index: Int32 = 1
        for i in 0..<count where setMask & (1 << i) != 0 { try bind(fields[i], of: reader, change, index); index += 1 }
        if operation != ChangesetReader.insert { try bind(fields[0], of: reader, change, index) }
        do throws(MetaError) { _ = try change.step() } catch {
            if case .sqlite(let code, _, _) = error, code & 0xff == SQLITE_CONSTRAINT { throw Self.conflict() }
            throw error
        }
        sqlite3_clear_bindings(change.stmt)
        guard connection.changes == 1 else { throw Self.conflict() }
    }

    /// The statement for one kind of staged change: the values to set bound first, then the
    /// key to find — the checks of SQLite's session extension for a patchset.
    private static func applySQL(_ shape: ChangeShape, names: [String]) throws(MetaError) -> String {
        let set = names.indices.filter { shape.setMask & (1 << $0) != 0 }.map { "\"\(names[$0])\"" }
        let key = "\"\(names[0])\" = ?"
        switch shape.operation {
        case ChangesetReader.insert where set.count == names.count:
            return "INSERT INTO main.\(table)(\(set.joined(separator: ", "))) VALUES(" + Array(repeating: "?", count: set.count).joined(separator: ", ") + ")"
        case ChangesetReader.delete:
            return "DELETE FROM main.\(table) WHERE \(key)"
        case ChangesetReader.update:
            // (SQLite leaves out updates that change nothing; one would still have to find its row.)
            let assignments = set.isEmpty ? ["\"\(names[0])\" = \"\(names[0])\""] : set.map { "\($0) = ?" }
            return "UPDATE main.\(table) SET " + assignments.joined(separator: ", ") + " WHERE \(key)"
        default:
            throw damaged("a staged change to \(table) is malformed (operation \(shape.operation))")
        }
    }

    /// Binds one field of a staged change's records (SQLITE_STATIC: the record outlives the
    /// step, and the bindings are cleared after it).
    private func bind(_ field: ChangesetReader.Field, of reader: ChangesetReader, _ statement: Statement, _ index: Int32) throws(MetaError) {
        let s = statement.stmt
        let at = reader.bytes.baseAddress! + field.start
        let rc: Int32
        switch field.type {
        case ChangesetReader.Field.integer: rc = sqlite3_bind_int64(s, index, reader.int64(field))
        case ChangesetReader.Field.real: rc = sqlite3_bind_double(s, index, Double(bitPattern: UInt64(bitPattern: reader.int64(field))))
        case ChangesetReader.Field.text: rc = sqlite3_bind_text(s, index, at.assumingMemoryBound(to: CChar.self), Int32(field.count), nil)
        case ChangesetReader.Field.blob: return try statement.bindBlob(at, count: field.count, at: index)
        case ChangesetReader.Field.null: rc = sqlite3_bind_null(s, index)
        default: throw Self.damaged("a staged change to \(Self.table) has a value of type \(field.type)")
        }
        try statement.check(rc)
    }

    /// Deletes the scratch file (the connection may still hold it open: its space is freed
    /// when the connection closes).
    func discard() { Glibc.unlink(path) }

    private static func damaged(_ what: String) -> MetaError { .incompatible("a metadata snapshot's changes: \(what); the snapshot is damaged") }

    private static func conflict() -> MetaError {
        .incompatible("a metadata snapshot's changes do not apply to its base (a row of \(table)); the snapshot is damaged")
    }
}
