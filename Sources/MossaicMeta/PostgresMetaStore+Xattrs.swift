import MossaicCore

/// Extended attributes, as in the SQLite engine (SQLiteMetaStore+Xattrs): bytes in, bytes
/// out; a change locks the inode's row and updates its ctime.
extension PostgresMetaStore {
    public func xattr(_ ino: InodeNumber, name: [UInt8]) throws(MetaError) -> [UInt8] {
        try read(snapshot: true) { (c) throws(MetaError) in
            if let value = try c.queryOne("SELECT value FROM xattrs WHERE ino = $1 AND name = $2", [.int(Int64(ino.rawValue)), .blob(name)],
                                          row: { $0.blob(0) }) {
                return value
            }
            _ = try Self.attributes(c, ino)
            throw .noAttribute
        }
    }

    public func xattrNames(_ ino: InodeNumber) throws(MetaError) -> [[UInt8]] {
        try read(snapshot: true) { (c) throws(MetaError) in
            _ = try Self.attributes(c, ino)
            return try c.query("SELECT name FROM xattrs WHERE ino = $1 ORDER BY name", [.int(Int64(ino.rawValue))]) { $0.blob(0) }
        }
    }

    public func setXattr(_ ino: InodeNumber, name: [UInt8], value: [UInt8], mode: XattrMode, now: Timestamp) throws(MetaError) {
        try write { (c) throws(MetaError) in
            try Self.lock(c, [ino])
            _ = try Self.attributes(c, ino)
            let key = SQLValue.int(Int64(ino.rawValue))
            let exists = try c.queryOne("SELECT 1 FROM xattrs WHERE ino = $1 AND name = $2", [key, .blob(name)], row: { _ in true }) != nil
            if (mode == .create || mode == .createAndReplace) && exists { throw .exists }
            if (mode == .replace || mode == .createAndReplace) && !exists { throw .noAttribute }
            try Self.storeXattr(c, ino, name: name, value: value)
            try c.update("UPDATE inodes SET ctime_ns = $1 WHERE ino = $2", [.int(now.nanoseconds), key])
        }
    }

    /// Sets (or, for nil, removes) one attribute row inside the caller's transaction.
    static func storeXattr(_ c: PostgresConnection, _ ino: InodeNumber, name: [UInt8], value: [UInt8]?) throws(MetaError) {
        let key: [SQLValue] = [.int(Int64(ino.rawValue)), .blob(name)]
        if let value {
            try c.update("INSERT INTO xattrs(ino, name, value) VALUES($1, $2, $3) ON CONFLICT(ino, name) DO UPDATE SET value = excluded.value",
                         key + [.blob(value)])
        } else {
            try c.update("DELETE FROM xattrs WHERE ino = $1 AND name = $2", key)
        }
    }

    public func removeXattr(_ ino: InodeNumber, name: [UInt8], now: Timestamp) throws(MetaError) {
        try write { (c) throws(MetaError) in
            try Self.lock(c, [ino])
            _ = try Self.attributes(c, ino)
            let key = SQLValue.int(Int64(ino.rawValue))
            guard try c.update("DELETE FROM xattrs WHERE ino = $1 AND name = $2", [key, .blob(name)]) == 1 else { throw .noAttribute }
            try c.update("UPDATE inodes SET ctime_ns = $1 WHERE ino = $2", [.int(now.nanoseconds), key])
        }
    }
}
