/// Which filesystem a database belongs to: the `fs_uuid` setting (the key the SQLite engine
/// uses in meta.db), set once by `format --meta` and checked by every mount and tool, so a
/// URL naming the wrong database is refused instead of showing (or writing) another
/// filesystem's tree.
extension PostgresMetaStore {
    public static let ownerSetting = "fs_uuid"

    /// What a database holds, looked at without creating anything in it.
    public enum Holding: Equatable, Sendable {
        /// No mossaicfs schema.
        case nothing
        /// A mossaicfs schema that no filesystem claimed (a format that stopped halfway).
        case unclaimed
        case filesystem(uuid: String)
    }

    /// Connects to `url` once and reads its owner, creating nothing.
    public static func holding(url: String) throws(MetaError) -> Holding {
        let c = try PostgresConnection(conninfo: url)
        let schema = try c.queryOne("SELECT 1 FROM pg_catalog.pg_tables WHERE schemaname = current_schema() AND tablename = 'settings'") { _ in true }
        guard schema != nil else { return .nothing }
        let owner = try c.queryOne("SELECT value FROM settings WHERE key = $1", [.text(ownerSetting)]) { $0.text(0) }
        return owner.map { .filesystem(uuid: $0) } ?? .unclaimed
    }

    /// Makes this database `uuid`'s unless another filesystem claimed it first (two formats
    /// racing for one database: one wins). Returns the owner now recorded.
    public func claim(filesystem uuid: String) throws(MetaError) -> String {
        try write(durable: true) { (c) throws(MetaError) in
            try c.update("INSERT INTO settings(key, value) VALUES($1, $2) ON CONFLICT(key) DO NOTHING", [.text(Self.ownerSetting), .text(uuid)])
            return try c.queryOne("SELECT value FROM settings WHERE key = $1", [.text(Self.ownerSetting)]) { $0.text(0) } ?? ""
        }
    }
}

extension PostgresMetaStore {
    /// Whether this host writes the next backup into the store (`MetadataBackup`): true, and
    /// the start recorded, when the last one started `interval` or longer before `now`. One
    /// settings row is what the hosts agree on: two hosts claiming at once both update it, one
    /// of them gets a serialization failure, runs again, sees the other's claim and answers false.
    public func claimBackup(interval: Int64, now: Int64) throws(MetaError) -> Bool {
        try write(durable: true) { (c) throws(MetaError) in
            let last = try c.queryOne("SELECT value FROM settings WHERE key = $1", [.text(MetadataDump.backupSetting)]) { Int64($0.text(0)) } ?? nil
            if let last, now - last < interval, now >= last { return false }
            try c.update("INSERT INTO settings(key, value) VALUES($1, $2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                         [.text(MetadataDump.backupSetting), .text(String(now))])
            return true
        }
    }
}
