import MossaicCore

/// Creating, linking, removing and renaming entries: the SQLite engine's rules
/// (SQLiteMetaStore+Namespace documents each), with this engine's lock order — the
/// directories first, then the inodes found in them (PostgresMetaStore's notes).
extension PostgresMetaStore {
    static func directory(_ c: PostgresConnection, _ ino: InodeNumber) throws(MetaError) -> FileAttributes {
        let attrs = try attributes(c, ino)
        guard attrs.kind == .directory else { throw .notDirectory }
        return attrs
    }

    static func entry(_ c: PostgresConnection, _ parent: InodeNumber, _ name: [UInt8]) throws(MetaError) -> InodeNumber? {
        try c.queryOne("SELECT ino FROM dentries WHERE parent = $1 AND name = $2", [.int(Int64(parent.rawValue)), .blob(name)]) {
            InodeNumber(UInt64($0.int(0)))
        }
    }

    static func touchDirectory(_ c: PostgresConnection, _ dir: InodeNumber, now: Timestamp, nlinkDelta: Int64 = 0) throws(MetaError) {
        try c.update("UPDATE inodes SET mtime_ns = $1, ctime_ns = $1, nlink = nlink + $2 WHERE ino = $3",
                     [.int(now.nanoseconds), .int(nlinkDelta), .int(Int64(dir.rawValue))])
    }

    /// Inserts a new inode row; returns its number.
    private static func insertInode(_ c: PostgresConnection, _ node: NewNode, size: Int64, nlink: Int64, parent: InodeNumber?,
                                    now: Timestamp) throws(MetaError) -> InodeNumber {
        let ino = try c.queryOne("""
            INSERT INTO inodes(kind, mode, uid, gid, size, nlink, rdev, atime_ns, mtime_ns, ctime_ns, generation, parent)
            VALUES($1, $2, $3, $4, $5, $6, $7, $8, $8, $8, $9, $10) RETURNING ino
            """, [.int(Int64(node.kind.rawValue)), .int(Int64(node.permissions & 0o7777)), .int(Int64(node.uid)), .int(Int64(node.gid)),
                  .int(size), .int(nlink), .int(Int64(bitPattern: node.rdev)), .int(now.nanoseconds), .int(SQLiteMetaStore.newGeneration()),
                  parent.map { .int(Int64($0.rawValue)) } ?? .null]) { $0.int(0) }
        guard let ino else { throw .incompatible("INSERT INTO inodes returned no number") }
        let number = InodeNumber(UInt64(ino))
        for (name, value) in node.xattrs { try storeXattr(c, number, name: name, value: value) }
        return number
    }

    public func create(parent: InodeNumber, name: [UInt8], _ node: NewNode, now: Timestamp) throws(MetaError) -> FileAttributes {
        try write { (c) throws(MetaError) in
            try Self.lock(c, [parent])
            _ = try Self.directory(c, parent)
            if try Self.entry(c, parent, name) != nil { throw .exists }
            let isDirectory = node.kind == .directory
            let ino = try Self.insertInode(c, node, size: Int64(node.symlinkTarget?.count ?? 0), nlink: isDirectory ? 2 : 1,
                                           parent: isDirectory ? parent : nil, now: now)
            try c.update("INSERT INTO dentries(parent, name, ino) VALUES($1, $2, $3)", [.int(Int64(parent.rawValue)), .blob(name), .int(Int64(ino.rawValue))])
            if let target = node.symlinkTarget {
                try c.update("INSERT INTO symlinks(ino, target) VALUES($1, $2)", [.int(Int64(ino.rawValue)), .blob(target)])
            }
            try Self.touchDirectory(c, parent, now: now, nlinkDelta: isDirectory ? 1 : 0)
            return try Self.attributes(c, ino)
        }
    }

    public func createUnnamed(in parent: InodeNumber, _ node: NewNode, now: Timestamp) throws(MetaError) -> FileAttributes {
        try write { (c) throws(MetaError) in
            _ = try Self.directory(c, parent)
            guard node.kind == .regular else { throw .invalidArgument }
            let ino = try Self.insertInode(c, node, size: 0, nlink: 0, parent: nil, now: now)
            try c.update("INSERT INTO orphans(ino) VALUES($1)", [.int(Int64(ino.rawValue))])
            return try Self.attributes(c, ino)
        }
    }

    public func link(_ ino: InodeNumber, parent: InodeNumber, name: [UInt8], now: Timestamp) throws(MetaError) -> FileAttributes {
        try write { (c) throws(MetaError) in
            try Self.lock(c, [parent])
            try Self.lock(c, [ino])
            let attrs = try Self.attributes(c, ino)
            guard attrs.kind != .directory else { throw .isDirectory }
            if attrs.nlink == 0 {
                guard try c.update("DELETE FROM orphans WHERE ino = $1", [.int(Int64(ino.rawValue))]) == 1 else { throw .notFound }
            }
            guard attrs.nlink < 65_000 else { throw .tooManyLinks }
            _ = try Self.directory(c, parent)
            if try Self.entry(c, parent, name) != nil { throw .exists }
            try c.update("INSERT INTO dentries(parent, name, ino) VALUES($1, $2, $3)", [.int(Int64(parent.rawValue)), .blob(name), .int(Int64(ino.rawValue))])
            try c.update("UPDATE inodes SET nlink = nlink + 1, ctime_ns = $1 WHERE ino = $2", [.int(now.nanoseconds), .int(Int64(ino.rawValue))])
            try Self.touchDirectory(c, parent, now: now)
            return try Self.attributes(c, ino)
        }
    }

    public func unlink(parent: InodeNumber, name: [UInt8], now: Timestamp) throws(MetaError) -> Unlinked {
        try write { (c) throws(MetaError) in
            try Self.lock(c, [parent])
            _ = try Self.directory(c, parent)
            guard let ino = try Self.entry(c, parent, name) else { throw .notFound }
            try Self.lock(c, [ino])
            let attrs = try Self.attributes(c, ino)
            guard attrs.kind != .directory else { throw .isDirectory }
            try c.update("DELETE FROM dentries WHERE parent = $1 AND name = $2", [.int(Int64(parent.rawValue)), .blob(name)])
            let orphaned = try Self.dropLink(c, ino, now: now)
            try Self.touchDirectory(c, parent, now: now)
            return Unlinked(ino: ino, orphaned: orphaned)
        }
    }

    /// Decrements a non-directory's link count; at zero it becomes an orphan. Returns whether it did.
    private static func dropLink(_ c: PostgresConnection, _ ino: InodeNumber, now: Timestamp) throws(MetaError) -> Bool {
        let nlink = try c.queryOne("UPDATE inodes SET nlink = greatest(nlink - 1, 0), ctime_ns = $1 WHERE ino = $2 RETURNING nlink",
                                   [.int(now.nanoseconds), .int(Int64(ino.rawValue))]) { $0.int(0) } ?? 0
        guard nlink == 0 else { return false }
        try c.update("INSERT INTO orphans(ino) VALUES($1) ON CONFLICT DO NOTHING", [.int(Int64(ino.rawValue))])
        return true
    }

    public func rmdir(parent: InodeNumber, name: [UInt8], now: Timestamp) throws(MetaError) -> InodeNumber {
        try write { (c) throws(MetaError) in
            try Self.lock(c, [parent])
            _ = try Self.directory(c, parent)
            guard let ino = try Self.entry(c, parent, name) else { throw .notFound }
            try Self.lock(c, [ino])
            guard try Self.attributes(c, ino).kind == .directory else { throw .notDirectory }
            try Self.removeEmptyDirectory(c, ino)
            try c.update("DELETE FROM dentries WHERE parent = $1 AND name = $2", [.int(Int64(parent.rawValue)), .blob(name)])
            try Self.touchDirectory(c, parent, now: now, nlinkDelta: -1)
            return ino
        }
    }

    /// Deletes directory `ino` (locked by the caller) if it has no entries. A create in it
    /// locks its row first, so no entry can appear between the check and the delete.
    private static func removeEmptyDirectory(_ c: PostgresConnection, _ ino: InodeNumber) throws(MetaError) {
        let key = SQLValue.int(Int64(ino.rawValue))
        if try c.queryOne("SELECT 1 FROM dentries WHERE parent = $1 LIMIT 1", [key], row: { _ in true }) != nil { throw .notEmpty }
        try c.update("DELETE FROM xattrs WHERE ino = $1", [key])
        try c.update("DELETE FROM inodes WHERE ino = $1", [key])
    }

    /// True if `ino` is `ancestor` or lies below it. Each step share-locks the directory it
    /// reads: a concurrent rename of one of them (the other half of a cycle) then conflicts
    /// with this one — one of the two is retried and sees the other's result.
    private static func isWithin(_ c: PostgresConnection, _ ino: InodeNumber, _ ancestor: InodeNumber) throws(MetaError) -> Bool {
        var current = ino
        for _ in 0..<100_000 {
            if current == ancestor { return true }
            if current == .root { return false }
            guard let parent = try c.queryOne("SELECT parent FROM inodes WHERE ino = $1 FOR SHARE", [.int(Int64(current.rawValue))],
                                              row: { $0.int(0) }) else { return false }
            current = InodeNumber(UInt64(parent))
        }
        throw .incompatible("directory cycle at \(current)")
    }

    public func rename(parent: InodeNumber, name: [UInt8], newParent: InodeNumber, newName: [UInt8],
                       flags: RenameFlags, now: Timestamp) throws(MetaError) -> Unlinked? {
        try write { (c) throws(MetaError) in
            try Self.lock(c, [parent, newParent])
            _ = try Self.directory(c, parent)
            _ = try Self.directory(c, newParent)
            guard let source = try Self.entry(c, parent, name) else { throw .notFound }
            let target = try Self.entry(c, newParent, newName)
            try Self.lock(c, [source] + (target.map { [$0] } ?? []))
            let sourceAttrs = try Self.attributes(c, source)
            let sourceIsDir = sourceAttrs.kind == .directory
            let p = Int64(parent.rawValue), np = Int64(newParent.rawValue)

            if flags.contains(.exchange) {
                guard let target else { throw .notFound }
                if target == source { return nil }
                let targetIsDir = try Self.attributes(c, target).kind == .directory
                if sourceIsDir, try Self.isWithin(c, newParent, source) { throw .invalidArgument }
                if targetIsDir, try Self.isWithin(c, parent, target) { throw .invalidArgument }
                try c.update("UPDATE dentries SET ino = $1 WHERE parent = $2 AND name = $3", [.int(Int64(target.rawValue)), .int(p), .blob(name)])
                try c.update("UPDATE dentries SET ino = $1 WHERE parent = $2 AND name = $3", [.int(Int64(source.rawValue)), .int(np), .blob(newName)])
                if parent != newParent {
                    if sourceIsDir { try c.update("UPDATE inodes SET parent = $1 WHERE ino = $2", [.int(np), .int(Int64(source.rawValue))]) }
                    if targetIsDir { try c.update("UPDATE inodes SET parent = $1 WHERE ino = $2", [.int(p), .int(Int64(target.rawValue))]) }
                    let delta = Int64(targetIsDir ? 1 : 0) - Int64(sourceIsDir ? 1 : 0)
                    try Self.touchDirectory(c, parent, now: now, nlinkDelta: delta)
                    try Self.touchDirectory(c, newParent, now: now, nlinkDelta: -delta)
                } else {
                    try Self.touchDirectory(c, parent, now: now)
                }
                try c.update("UPDATE inodes SET ctime_ns = $1 WHERE ino IN ($2, $3)",
                             [.int(now.nanoseconds), .int(Int64(source.rawValue)), .int(Int64(target.rawValue))])
                return nil
            }

            if sourceIsDir, try Self.isWithin(c, newParent, source) { throw .invalidArgument }
            var replaced: Unlinked?
            if let target {
                if flags.contains(.noReplace) { throw .exists }
                if target == source { return nil }
                let targetAttrs = try Self.attributes(c, target)
                if sourceIsDir {
                    guard targetAttrs.kind == .directory else { throw .notDirectory }
                    try Self.removeEmptyDirectory(c, target)
                    try Self.touchDirectory(c, newParent, now: now, nlinkDelta: -1)
                } else {
                    guard targetAttrs.kind != .directory else { throw .isDirectory }
                    replaced = Unlinked(ino: target, orphaned: try Self.dropLink(c, target, now: now))
                }
                try c.update("DELETE FROM dentries WHERE parent = $1 AND name = $2", [.int(np), .blob(newName)])
            }
            try c.update("DELETE FROM dentries WHERE parent = $1 AND name = $2", [.int(p), .blob(name)])
            try c.update("INSERT INTO dentries(parent, name, ino) VALUES($1, $2, $3)", [.int(np), .blob(newName), .int(Int64(source.rawValue))])
            if sourceIsDir && parent != newParent {
                try c.update("UPDATE inodes SET parent = $1 WHERE ino = $2", [.int(np), .int(Int64(source.rawValue))])
                try Self.touchDirectory(c, parent, now: now, nlinkDelta: -1)
                try Self.touchDirectory(c, newParent, now: now, nlinkDelta: 1)
            } else {
                try Self.touchDirectory(c, parent, now: now)
                if parent != newParent { try Self.touchDirectory(c, newParent, now: now) }
            }
            try c.update("UPDATE inodes SET ctime_ns = $1 WHERE ino = $2", [.int(now.nanoseconds), .int(Int64(source.rawValue))])
            return replaced
        }
    }

    /// The orphans no session has open (`open_files`): a mount starting, ending or cleaning
    /// up must not reclaim a file another host is still reading. A dead session's rows are
    /// deleted by the cleanup (PostgresMetaStore+Sessions) before it reclaims.
    public func orphans() throws(MetaError) -> [InodeNumber] {
        try read { (c) throws(MetaError) in
            try c.query("""
                SELECT o.ino FROM orphans o WHERE NOT EXISTS (SELECT 1 FROM open_files f WHERE f.ino = o.ino) ORDER BY o.ino
                """) { InodeNumber(UInt64($0.int(0))) }
        }
    }

    /// Deletes an orphan with its chunk references (inline chunks left unreferenced go with
    /// them), patches, symlink, xattrs and reservations. A no-op if it has a name again or is
    /// gone, and while any session has it open (its last close reclaims it).
    public func purgeOrphan(_ ino: InodeNumber) throws(MetaError) {
        _ = try purgeOrphanIfUnopened(ino)
    }

    /// `purgeOrphan`; returns whether the inode went. An open recorded by another host after
    /// this transaction's snapshot is not missed: its foreign key share-locks the inode row
    /// this one deletes, and the server then fails this transaction, which runs again and
    /// sees the open.
    func purgeOrphanIfUnopened(_ ino: InodeNumber) throws(MetaError) -> Bool {
        try write { (c) throws(MetaError) -> Bool in
            try Self.lock(c, [ino])
            let key = SQLValue.int(Int64(ino.rawValue))
            let nlink = try c.queryOne("SELECT nlink FROM inodes WHERE ino = $1", [key], row: { $0.int(0) })
            guard nlink == 0 else { try c.update("DELETE FROM orphans WHERE ino = $1", [key]); return false }
            if try c.queryOne("SELECT 1 FROM open_files WHERE ino = $1 LIMIT 1", [key], row: { _ in true }) != nil { return false }
            let released = try c.query("DELETE FROM file_chunks WHERE ino = $1 RETURNING hash", [key]) { $0.blob(0) }
            try Self.dropUnreferencedInline(c, released)
            for table in ["chunk_patches", "symlinks", "xattrs", "allocations", "inodes", "orphans"] {
                try c.update("DELETE FROM \(table) WHERE ino = $1", [key])
            }
            return true
        }
    }
}
