/// `mossaicfs dump` / `mossaicfs load`: the metadata of a filesystem as engine-neutral JSON
/// lines (ARCHITECTURE.md §9), streamed both ways, so a dump of any size needs flat memory.
///
/// The format, version 1 (the man page describes it too):
/// - line 1, the header: `{"mossaicfs_dump":1,"fs_uuid":…,"engine":"sqlite"|"postgres",
///   "schema":N,"created":…,"next_ino":N}` — `next_ino` is the inode number the engine would
///   give next (never reused: NFS handles name inodes), `schema` the source engine's version;
/// - then one object per row, `"t"` naming the table (`Table.all`, in that order: a chunk's row
///   comes before the rows that reference it, as PostgreSQL's foreign key wants), the other
///   keys its columns. Integers are JSON numbers (64-bit, exact); byte strings (names, symlink
///   targets, xattr names and values, inline data) are ALWAYS standard base64 with padding, so
///   no byte sequence needs an exception; hashes and pack names are lowercase hex; NULL is null.
/// - version 2 (metadata backups only, `DumpDataReference`): an inline chunk's line may hold
///   `"data":null` and name where its bytes are (`data_object`, `data_offset`, `data_length`,
///   `data_codec`) instead; everything else as in version 1;
/// - last, the trailer: `{"end":"mossaicfs_dump","records":N,"<t>":count,…}`. A dump without it
///   is truncated, and `load` refuses it.
///
/// What is not dumped, each because it is not the tree: per-session rows (PostgreSQL's `plocks`,
/// `flocks`), each engine's own bookkeeping (SQLite's refcounts and snapshot marks, which a load
/// recomputes; `schema_version`; `fs_uuid`, which is the header's).
public enum MetadataDump {
    public static let formatVersion: Int64 = 1
    /// Version 1 whose inline chunks' lines may name their bytes in a store object instead of
    /// holding them (`DumpDataReference`): what metadata backups write since they keep those
    /// bytes once for all backups (`BackupCatalog`). `dump` never writes it.
    public static let referencingFormatVersion: Int64 = 2
    public static let marker = "mossaicfs_dump"

    /// How a column's values are written.
    enum Kind {
        case int, optionalInt, bytes, optionalBytes, hex, optionalHex, text
    }

    /// One table of the dump: the record type `t`, the SQL table, its columns and its key
    /// (the primary key, for order and keyset pagination).
    struct Table {
        let type: String
        let sql: String
        let columns: [(name: String, kind: Kind)]
        let key: [String]

        var columnList: String { columns.map { "\"\($0.name)\"" }.joined(separator: ", ") }
        var keyList: String { key.map { "\"\($0)\"" }.joined(separator: ", ") }
        func index(of column: String) -> Int { columns.firstIndex { $0.name == column }! }

        static let all: [Table] = [
            Table(type: "setting", sql: "settings", columns: [("key", .text), ("value", .text)], key: ["key"]),
            Table(type: "inode", sql: "inodes", columns: [
                ("ino", .int), ("kind", .int), ("mode", .int), ("uid", .int), ("gid", .int), ("size", .int), ("nlink", .int),
                ("rdev", .int), ("atime_ns", .int), ("mtime_ns", .int), ("ctime_ns", .int), ("generation", .int),
                ("allocated", .int), ("reserved", .int), ("parent", .optionalInt)], key: ["ino"]),
            Table(type: "dentry", sql: "dentries", columns: [("parent", .int), ("name", .bytes), ("ino", .int)], key: ["parent", "name"]),
            Table(type: "symlink", sql: "symlinks", columns: [("ino", .int), ("target", .bytes)], key: ["ino"]),
            Table(type: "xattr", sql: "xattrs", columns: [("ino", .int), ("name", .bytes), ("value", .bytes)], key: ["ino", "name"]),
            Table(type: "allocation", sql: "allocations", columns: [("ino", .int), ("start", .int), ("end", .int)], key: ["ino", "start"]),
            Table(type: "orphan", sql: "orphans", columns: [("ino", .int)], key: ["ino"]),
            Table(type: "chunk", sql: "chunks", columns: [
                ("hash", .hex), ("length", .int), ("state", .int), ("data", .optionalBytes), ("pack", .optionalHex),
                ("pack_offset", .optionalInt), ("codec", .int), ("stored_length", .optionalInt)], key: ["hash"]),
            Table(type: "file_chunk", sql: "file_chunks", columns: [("ino", .int), ("idx", .int), ("hash", .hex), ("length", .int)],
                  key: ["ino", "idx"]),
            Table(type: "patch", sql: "chunk_patches", columns: [
                ("ino", .int), ("idx", .int), ("seq", .int), ("offset", .int), ("length", .int), ("data", .bytes)],
                  key: ["ino", "idx", "seq"]),
        ]
        static let byType: [String: Table] = Dictionary(uniqueKeysWithValues: all.map { ($0.type, $0) })
    }

    /// Settings that are an engine's own bookkeeping, not the filesystem's: neither dumped nor
    /// loaded (`fs_uuid` travels in the header).
    static let engineSettings: Set<String> = [
        "schema_version", "fs_uuid", "change_seq", "snapshot_generation", "snapshot_id", "snapshot_change_seq", "snapshot_pending",
        "last_sync", backupSetting,
    ]
    /// When the newest backup into the store was started (PostgreSQL filesystems): the row
    /// the hosts agree on who writes the next one (`MetadataBackup`).
    public static let backupSetting = "backup_started_ns"

    /// The first line.
    public struct Header: Equatable, Sendable {
        public var fsUUID: String
        public var engine: String
        public var schema: Int64
        public var created: String
        public var nextInode: Int64
        public init(fsUUID: String, engine: String, schema: Int64, created: String, nextInode: Int64) {
            self.fsUUID = fsUUID; self.engine = engine; self.schema = schema; self.created = created; self.nextInode = nextInode
        }
    }

    /// What a dump or a load did: records by type.
    public struct Summary: Equatable, Sendable {
        public var header: Header
        public var counts: [String: Int64]
        public var records: Int64 { counts.values.reduce(0, +) }
        public func count(_ type: String) -> Int64 { counts[type] ?? 0 }
    }
}

/// A dump that cannot be read or loaded, in one line.
public enum DumpError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Not a dump, or damaged at `line`.
    case malformed(line: Int64, String)
    /// Ends without its trailer.
    case truncated(line: Int64)
    /// The trailer's counts differ from the records read.
    case countMismatch(String)
    case target(String)
    case io(String)

    public var description: String {
        switch self {
        case .malformed(let line, let why): line == 1 ? "not a mossaicfs dump: \(why)" : "damaged dump at line \(line): \(why)"
        case .truncated(let line): "the dump ends after line \(line) without its trailer: it is truncated; nothing was loaded"
        case .countMismatch(let why): "the dump's trailer does not match its records (\(why)): nothing was loaded"
        case .target(let why): why
        case .io(let why): why
        }
    }
}
