import MossaicCore

/// Creating, linking, removing and renaming directory entries. Each method is one transaction
/// that checks its preconditions and applies every change (entries, link counts, parent times),
/// so a crash never leaves a half-done rename or a link count that disagrees with the entries.
extension SQLiteMetaStore {
    /// The generation of a new inode: random, so a file handle (inode number + generation)
    /// never names a different file, even where an inode number comes back — a database
    /// restored from an older snapshot hands out again the numbers given after it (AUTOINCREMENT
    /// never reuses one otherwise). 32 bits: what the kernel keeps and puts in a handle.
    static func newGeneration() -> Int64 { Int64(UInt32.random(in: 1...UInt32.max)) }

    static func directory(_ c: SQLiteConnection, _ ino: InodeNumber) throws(MetaError) -> FileAttributes {
        let attrs = try attributes(c, ino)
        guard attrs.kind == .directory else { throw .notDirectory }
        return attrs
    }

    static func entry(_ c: SQLiteConnection, _ parent: InodeNumber, _ name: [UInt8]) throws(MetaError) -> InodeNumber? {
        try c.queryOne("SELECT ino FROM dentries WHERE parent = ? AND name = ?", [.int(Int64(parent.rawValue)), .blob(name)]) {
            InodeNumber(UInt64($0.int(0)))
        }
    }

    static func touchDirectory(_ c: SQLiteConnection, _ dir: InodeNumber, now: Timestamp, nlinkDelta: Int64 = 0) throws(MetaError) {
        try c.run("UPDATE inodes SET mtime_ns = ?, ctime_ns = ?, nlink = nlink + ? WHERE ino = ?",
                  [.int(now.nanoseconds), .int(now.nanoseconds), .int(nlinkDelta), .int(Int64(dir.rawValue))])
    }

    /// Creates a file, directory, symlink or special file named `name` in `parent`.
    public func create(parent: InodeNumber, name: [UInt8], _ node: NewNode, now: Timestamp) throws(MetaError) -> FileAttributes {
        try write { (c) throws(MetaError) in
            _ = try Self.directory(c, parent)
            if try Self.entry(c, parent, name) != nil { throw .exists }
            let isDirectory = node.kind == .directory
            let size = Int64(node.symlinkTarget?.count ?? 0)
            try c.run("""
                INSERT INTO inodes(kind, mode, uid, gid, size, nlink, rdev, atime_ns, mtime_ns, ctime_ns, generation, parent)
                VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """, [.int(Int64(node.kind.rawValue)), .int(Int64(node.permissions & 0o7777)), .int(Int64(node.uid)), .int(Int64(node.gid)),
                      .int(size), .int(isDirectory ? 2 : 1), .int(Int64(bitPattern: node.rdev)),
                      .int(now.nanoseconds), .int(now.nanoseconds), .int(now.nanoseconds), .int(Self.newGeneration()),
                      isDirectory ? .int(Int64(parent.rawValue)) : .null])
            let ino = InodeNumber(UInt64(c.lastInsertRowID))
            try c.run("INSERT INTO dentries(parent, name, ino) VALUES(?, ?, ?)", [.int(Int64(parent.rawValue)), .blob(name), .int(Int64(ino.rawValue))])
            if let target = node.symlinkTarget {
                try c.run("INSERT INTO symlinks(ino, target) VALUES(?, ?)", [.int(Int64(ino.rawValue)), .blob(target)])
            }
            for (name, value) in node.xattrs { try Self.storeXattr(c, ino, name: name, value: value) }
            try Self.touchDirectory(c, parent, now: now, nlinkDelta: isDirectory ? 1 : 0)
            return try Self.attributes(c, ino)
        }
    }

    /// An O_TMPFILE file in directory `parent`: a regular file with no name (nlink 0), queued
    /// as an orphan from the start, so it is purged at its last close — or, after a crash, by
    /// the next mount's purge of orphans — unless `link` gives it a name first. The directory
    /// does not change (it gains no entry), as on ext4.
    public func createUnnamed(in parent: InodeNumber, _ node: NewNode, now: Timestamp) throws(MetaError) -> FileAttributes {
        try write { (c) throws(MetaError) in
            _ = try Self.directory(c, parent)
            guard node.kind == .regular else { throw .invalidArgument }
            try c.run("""
                INSERT INTO inodes(kind, mode, uid, gid, size, nlink, rdev, atime_ns, mtime_ns, ctime_ns, generation, parent)
                VALUES(?, ?, ?, ?, 0, 0, 0, ?, ?, ?, ?, NULL)
                """, [.int(Int64(node.kind.rawValue)), .int(Int64(node.permissions & 0o7777)), .int(Int64(node.uid)), .int(Int64(node.gid)),
                      .int(now.nanoseconds), .int(now.nanoseconds), .int(now.nanoseconds), .int(Self.newGeneration())])
            let ino = InodeNumber(UInt64(c.lastInsertRowID))
            for (name, value) in node.xattrs { try Self.storeXattr(c, ino, name: name, value: value) }
            try c.run("INSERT INTO orphans(ino) VALUES(?)", [.int(Int64(ino.rawValue))])
            return try Self.attributes(c, ino)
        }
    }

    /// Adds the name `name` in `parent` for the existing non-directory `ino`. An inode with no
    /// name left is linked only if it is still queued as an orphan (not purged): the kernel
    /// lets that through only for an O_TMPFILE file opened without O_EXCL (linkat(2)), and
    /// refuses it with ENOENT for a file that was unlinked, as ext4 relies on too.
    public func link(_ ino: InodeNumber, parent: InodeNumber, name: [UInt8], now: Timestamp) throws(MetaError) -> FileAttributes {
        try write { (c) throws(MetaError) in
            let attrs = try Self.attributes(c, ino)
            guard attrs.kind != .directory else { throw .isDirectory }
            if attrs.nlink == 0 {
                try c.run("DELETE FROM orphans WHERE ino = ?", [.int(Int64(ino.rawValue))])
                guard c.changes == 1 else { throw .notFound }
            }
            guard attrs.nlink < 65_000 else { throw .tooManyLinks }
            _ = try Self.directory(c, parent)
            if try Self.entry(c, parent, name) != nil { throw .exists }
            try c.run("INSERT INTO dentries(parent, name, ino) VALUES(?, ?, ?)", [.int(Int64(parent.rawValue)), .blob(name), .int(Int64(ino.rawValue))])
            try c.run("UPDATE inodes SET nlink = nlink + 1, ctime_ns = ? WHERE ino = ?", [.int(now.nanoseconds), .int(Int64(ino.rawValue))])
            try Self.touchDirectory(c, parent, now: now)
            return try Self.attributes(c, ino)
        }
    }

    /// Removes the non-directory entry `name` from `parent`.
    public func unlink(parent: InodeNumber, name: [UInt8], now: Timestamp) throws(MetaError) -> Unlinked {
        try write { (c) throws(MetaError) in
            _ = try Self.directory(c, parent)
            guard let ino = try Self.entry(c, parent, name) else { throw .notFound }
            let attrs = try Self.attributes(c, ino)
            guard attrs.kind != .directory else { throw .isDirectory }
            try c.run("DELETE FROM dentries WHERE parent = ? AND name = ?", [.int(Int64(parent.rawValue)), .blob(name)])
            let orphaned = try Self.dropLink(c, ino, now: now)
            try Self.touchDirectory(c, parent, now: now)
            return Unlinked(ino: ino, orphaned: orphaned)
        }
    }

    /// Decrements a non-directory's link count; at zero it becomes an orphan. Returns whether it did.
    private static func dropLink(_ c: SQLiteConnection, _ ino: InodeNumber, now: Timestamp) throws(MetaError) -> Bool {
        try c.run("UPDATE inodes SET nlink = max(nlink - 1, 0), ctime_ns = ? WHERE ino = ?", [.int(now.nanoseconds), .int(Int64(ino.rawValue))])
        let nlink = try c.queryOne("SELECT nlink FROM inodes WHERE ino = ?", [.int(Int64(ino.rawValue))]) { $0.int(0) } ?? 0
        if nlink == 0 {
            try c.run("INSERT OR IGNORE INTO orphans(ino) VALUES(?)", [.int(Int64(ino.rawValue))])
            return true
        }
        return false
    }

    /// Removes the empty directory `name` from `parent`.
    public func rmdir(parent: InodeNumber, name: [UInt8], now: Timestamp) throws(MetaError) -> InodeNumber {
        try write { (c) throws(MetaError) in
            _ = try Self.directory(c, parent)
            guard let ino = try Self.entry(c, parent, name) else { throw .notFound }
            let attrs = try Self.attributes(c, ino)
            guard attrs.kind == .directory else { throw .notDirectory }
            try Self.removeEmptyDirectory(c, ino)
            try c.run("DELETE FROM dentries WHERE parent = ? AND name = ?", [.int(Int64(parent.rawValue)), .blob(name)])
            try Self.touchDirectory(c, parent, now: now, nlinkDelta: -1)
            return ino
        }
    }

    private static func removeEmptyDirectory(_ c: SQLiteConnection, _ ino: InodeNumber) throws(MetaError) {
        if try c.queryOne("SELECT 1 FROM dentries WHERE parent = ? LIMIT 1", [.int(Int64(ino.rawValue))], row: { _ in true }) != nil {
            throw .notEmpty
        }
        try c.run("DELETE FROM xattrs WHERE ino = ?", [.int(Int64(ino.rawValue))])
        try c.run("DELETE FROM inodes WHERE ino = ?", [.int(Int64(ino.rawValue))])
    }

    /// True if `ino` is `ancestor` or lies below it.
    private static func isWithin(_ c: SQLiteConnection, _ ino: InodeNumber, _ ancestor: InodeNumber) throws(MetaError) -> Bool {
        var current = ino
        var steps = 0
        while true {
            if current == ancestor { return true }
            if current == .root { return false }
            guard let parent = try c.queryOne("SELECT parent FROM inodes WHERE ino = ?", [.int(Int64(current.rawValue))], row: { $0.int(0) }) else {
                return false
            }
            current = InodeNumber(UInt64(parent))
            steps += 1
            if steps > 100_000 { throw .incompatible("directory cycle at \(current)") }
        }
    }

    /// rename(2) and renameat2(2): moves `name` in `parent` to `newName` in `newParent`, replacing
    /// a compatible target atomically, or swapping with it under `.exchange`. Returns the inode
    /// that lost its last name by being replaced, if any.
    public func rename(parent: InodeNumber, name: [UInt8], newParent: InodeNumber, newName: [UInt8],
                       flags: RenameFlags, now: Timestamp) throws(MetaError) -> Unlinked? {
        try write { (c) throws(MetaError) in
            _ = try Self.directory(c, parent)
            _ = try Self.directory(c, newParent)
            guard let source = try Self.entry(c, parent, name) else { throw .notFound }
            let sourceAttrs = try Self.attributes(c, source)
            let target = try Self.entry(c, newParent, newName)
            let sourceIsDir = sourceAttrs.kind == .directory

            if flags.contains(.exchange) {
                guard let target else { throw .notFound }
                if target == source { return nil }
                let targetAttrs = try Self.attributes(c, target)
                let targetIsDir = targetAttrs.kind == .directory
                // Neither may end up inside itself.
                if sourceIsDir, try Self.isWithin(c, newParent, source) { throw .invalidArgument }
                if targetIsDir, try Self.isWithin(c, parent, target) { throw .invalidArgument }
                try c.run("UPDATE dentries SET ino = ? WHERE parent = ? AND name = ?", [.int(Int64(target.rawValue)), .int(Int64(parent.rawValue)), .blob(name)])
                try c.run("UPDATE dentries SET ino = ? WHERE parent = ? AND name = ?", [.int(Int64(source.rawValue)), .int(Int64(newParent.rawValue)), .blob(newName)])
                if parent != newParent {
                    if sourceIsDir { try c.run("UPDATE inodes SET parent = ? WHERE ino = ?", [.int(Int64(newParent.rawValue)), .int(Int64(source.rawValue))]) }
                    if targetIsDir { try c.run("UPDATE inodes SET parent = ? WHERE ino = ?", [.int(Int64(parent.rawValue)), .int(Int64(target.rawValue))]) }
                    let delta = Int64(targetIsDir ? 1 : 0) - Int64(sourceIsDir ? 1 : 0)
                    try Self.touchDirectory(c, parent, now: now, nlinkDelta: delta)
                    try Self.touchDirectory(c, newParent, now: now, nlinkDelta: -delta)
                } else {
                    try Self.touchDirectory(c, parent, now: now)
                }
                try c.run("UPDATE inodes SET ctime_ns = ? WHERE ino IN (?, ?)", [.int(now.nanoseconds), .int(Int64(source.rawValue)), .int(Int64(target.rawValue))])
                return nil
            }

            if sourceIsDir, try Self.isWithin(c, newParent, source) { throw .invalidArgument }
            var replaced: Unlinked?
            if let target {
                if flags.contains(.noReplace) { throw .exists }
                // Two names of one inode: POSIX says do nothing and succeed.
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
                try c.run("DELETE FROM dentries WHERE parent = ? AND name = ?", [.int(Int64(newParent.rawValue)), .blob(newName)])
            }
            try c.run("DELETE FROM dentries WHERE parent = ? AND name = ?", [.int(Int64(parent.rawValue)), .blob(name)])
            try c.run("INSERT INTO dentries(parent, name, ino) VALUES(?, ?, ?)", [.int(Int64(newParent.rawValue)), .blob(newName), .int(Int64(source.rawValue))])
            if sourceIsDir && parent != newParent {
                try c.run("UPDATE inodes SET parent = ? WHERE ino = ?", [.int(Int64(newParent.rawValue)), .int(Int64(source.rawValue))])
                try Self.touchDirectory(c, parent, now: now, nlinkDelta: -1)
                try Self.touchDirectory(c, newParent, now: now, nlinkDelta: 1)
            } else {
                try Self.touchDirectory(c, parent, now: now)
                if parent != newParent { try Self.touchDirectory(c, newParent, now: now) }
            }
            try c.run("UPDATE inodes SET ctime_ns = ? WHERE ino = ?", [.int(now.nanoseconds), .int(Int64(source.rawValue))])
            return replaced
        }
    }

    /// Inodes with no name left (unlinked while open, or a crash before their purge).
    public func orphans() throws(MetaError) -> [InodeNumber] {
        try read { (c) throws(MetaError) in
            try c.query("SELECT ino FROM orphans") { InodeNumber(UInt64($0.int(0))) }
        }
    }

    /// Deletes an orphan inode and releases its chunks. A no-op if it has a name again or is gone.
    public func purgeOrphan(_ ino: InodeNumber) throws(MetaError) {
        try write { (c) throws(MetaError) in
            let key = SQLValue.int(Int64(ino.rawValue))
            guard let nlink = try c.queryOne("SELECT nlink FROM inodes WHERE ino = ?", [key], row: { $0.int(0) }) else {
                try c.run("DELETE FROM orphans WHERE ino = ?", [key]); return
            }
            guard nlink == 0 else { try c.run("DELETE FROM orphans WHERE ino = ?", [key]); return }
            // One reference per row: a file may use one chunk at several indexes.
            try c.run("""
                UPDATE chunks SET refcount = refcount - (SELECT count(*) FROM file_chunks f WHERE f.ino = ? AND f.hash = chunks.hash)
                WHERE hash IN (SELECT hash FROM file_chunks WHERE ino = ?)
                """, [key, key])
            try c.run("DELETE FROM chunks WHERE refcount = 0 AND state = ? AND hash IN (SELECT hash FROM file_chunks WHERE ino = ?)",
                      [.int(ChunkState.inline.rawValue), key])
            try c.run("DELETE FROM file_chunks WHERE ino = ?", [key])
            try c.run("DELETE FROM chunk_patches WHERE ino = ?", [key])
            try c.run("DELETE FROM symlinks WHERE ino = ?", [key])
            try c.run("DELETE FROM xattrs WHERE ino = ?", [key])
            try c.run("DELETE FROM allocations WHERE ino = ?", [key])
            try c.run("DELETE FROM inodes WHERE ino = ?", [key])
            try c.run("DELETE FROM orphans WHERE ino = ?", [key])
        }
    }
}
