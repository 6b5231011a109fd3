import MossaicCore

/// Extended attributes. Names and values are bytes; any namespace is stored as given (the
/// kernel has already checked the caller may use it). A change updates the inode's ctime.
extension SQLiteMetaStore {
    public func xattr(_ ino: InodeNumber, name: [UInt8]) throws(MetaError) -> [UInt8] {
        try read { (c) throws(MetaError) in
            if let value = try c.queryOne("SELECT value FROM xattrs WHERE ino = ? AND name = ?", [.int(Int64(ino.rawValue)), .blob(name)], row: { $0.blob(0) }) {
                return value
            }
            _ = try Self.attributes(c, ino)
            throw .noAttribute
        }
    }

    public func xattrNames(_ ino: InodeNumber) throws(MetaError) -> [[UInt8]] {
        try read { (c) throws(MetaError) in
            _ = try Self.attributes(c, ino)
            return try c.query("SELECT name FROM xattrs WHERE ino = ? ORDER BY name", [.int(Int64(ino.rawValue))]) { $0.blob(0) }
        }
    }

    public func setXattr(_ ino: InodeNumber, name: [UInt8], value: [UInt8], mode: XattrMode, now: Timestamp) throws(MetaError) {
        try write { (c) throws(MetaError) in
            _ = try Self.attributes(c, ino)
            let key = SQLValue.int(Int64(ino.rawValue))
            let exists = try c.queryOne("SELECT 1 FROM xattrs WHERE ino = ? AND name = ?", [key, .blob(name)], row: { _ in true }) != nil
            if (mode == .create || mode == .createAndReplace) && exists { throw .exists }
            if (mode == .replace || mode == .createAndReplace) && !exists { throw .noAttribute }
            try Self.storeXattr(c, ino, name: name, value: value)
            try c.run("UPDATE inodes SET ctime_ns = ? WHERE ino = ?", [.int(now.nanoseconds), key])
        }
    }

    /// Sets (or, for nil, removes) one attribute row inside the caller's transaction.
    static func storeXattr(_ c: SQLiteConnection, _ ino: InodeNumber, name: [UInt8], value: [UInt8]?) throws(MetaError) {
        let key: [SQLValue] = [.int(Int64(ino.rawValue)), .blob(name)]
        if let value {
            try c.run("INSERT INTO xattrs(ino, name, value) VALUES(?, ?, ?) ON CONFLICT(ino, name) DO UPDATE SET value = excluded.value",
                      key + [.blob(value)])
        } else {
            try c.run("DELETE FROM xattrs WHERE ino = ? AND name = ?", key)
        }
    }

    public func removeXattr(_ ino: InodeNumber, name: [UInt8], now: Timestamp) throws(MetaError) {
        try write { (c) throws(MetaError) in
            _ = try Self.attributes(c, ino)
            let key = SQLValue.int(Int64(ino.rawValue))
            try c.run("DELETE FROM xattrs WHERE ino = ? AND name = ?", [key, .blob(name)])
            guard c.changes == 1 else { throw .noAttribute }
            try c.run("UPDATE inodes SET ctime_ns = ? WHERE ino = ?", [.int(now.nanoseconds), key])
        }
    }
}
