import MossaicCore

/// The lock tables (`flocks`, `plocks`: per inode, session and owner, as JuiceFS keeps them).
///
/// Each call is one READ COMMITTED transaction that first locks the file's inode row (the
/// engine's lock order: one inode, nothing before it). That row lock is what serializes two
/// hosts locking one file: the second waits for the first's COMMIT, and READ COMMITTED then
/// lets its next statement see the first's rows — under REPEATABLE READ its snapshot, taken
/// before the wait, would not, and both could take the same lock. Conflicts with other
/// transactions are the retry loop's, as everywhere. Rows are deleted by their owner's unlock
/// or close, by this session's end, and by the cleanup of a dead host's session.
extension PostgresMetaStore: FileLockTable {
    public var session: String { sessionID }

    public func conflictingRangeLock(_ ino: InodeNumber, _ kind: LockKind, _ range: ClosedRange<UInt64>, owner: UInt64) throws(MetaError) -> RangeLock? {
        let me = LockOwner(session: sessionID, id: owner)
        let locks = try read { (c) throws(MetaError) in try Self.rangeLocks(c, ino) }
        guard var holder = RangeLocks.conflict(kind, range, owner: me, in: locks) else { return nil }
        if holder.owner.session != sessionID { holder.pid = 0 }
        return holder
    }

    public func setRangeLock(_ ino: InodeNumber, _ kind: LockKind?, _ range: ClosedRange<UInt64>, owner: UInt64, pid: UInt32) throws(MetaError) -> Bool {
        let me = LockOwner(session: sessionID, id: owner)
        return try write(isolation: .readCommitted) { (c) throws(MetaError) -> Bool in
            try Self.lock(c, [ino])
            let locks = try Self.rangeLocks(c, ino)
            if let kind, RangeLocks.conflict(kind, range, owner: me, in: locks) != nil { return false }
            let held = locks.filter { $0.owner == me }
            let after = RangeLocks.applying(kind, range, owner: me, pid: pid, to: held)
            guard after != held else { return true }
            try c.update("DELETE FROM plocks WHERE ino = $1 AND session = $2 AND owner = $3", Self.key(ino, me))
            for lock in after {
                try c.update("""
                    INSERT INTO plocks(ino, session, owner, start, "end", kind, pid) VALUES($1, $2, $3, $4, $5, $6, $7)
                    """, Self.key(ino, me) + [.int(Int64(clamping: lock.range.lowerBound)), .int(Int64(clamping: lock.range.upperBound)),
                                             .int(lock.kind.rawValue), .int(Int64(lock.pid))])
            }
            return true
        }
    }

    public func setFlock(_ ino: InodeNumber, _ kind: LockKind?, owner: UInt64) throws(MetaError) -> Bool {
        let me = LockOwner(session: sessionID, id: owner)
        return try write(isolation: .readCommitted) { (c) throws(MetaError) -> Bool in
            try Self.lock(c, [ino])
            guard let kind else {
                try c.update("DELETE FROM flocks WHERE ino = $1 AND session = $2 AND owner = $3", Self.key(ino, me))
                return true
            }
            // Another description's lock conflicts if either is exclusive (flock(2): a
            // conversion is not atomic, and may be refused like a new lock).
            let conflict = try c.queryOne("""
                SELECT 1 FROM flocks WHERE ino = $1 AND NOT (session = $2 AND owner = $3) AND (kind = 1 OR $4 = 1) LIMIT 1
                """, Self.key(ino, me) + [.int(kind.rawValue)]) { _ in true }
            if conflict != nil { return false }
            try c.update("""
                INSERT INTO flocks(ino, session, owner, kind) VALUES($1, $2, $3, $4)
                ON CONFLICT(ino, session, owner) DO UPDATE SET kind = excluded.kind
                """, Self.key(ino, me) + [.int(kind.rawValue)])
            return true
        }
    }

    public func releaseRangeLocks(_ ino: InodeNumber, owner: UInt64) throws(MetaError) {
        let me = LockOwner(session: sessionID, id: owner)
        try write(isolation: .readCommitted) { (c) throws(MetaError) in
            try Self.lock(c, [ino])
            try c.update("DELETE FROM plocks WHERE ino = $1 AND session = $2 AND owner = $3", Self.key(ino, me))
        }
    }

    public func releaseSessionLocks() throws(MetaError) {
        try write(isolation: .readCommitted) { (c) throws(MetaError) in
            try c.update("DELETE FROM plocks WHERE session = $1", [.text(sessionID)])
            try c.update("DELETE FROM flocks WHERE session = $1", [.text(sessionID)])
        }
    }

    private static func key(_ ino: InodeNumber, _ owner: LockOwner) -> [SQLValue] {
        [.int(Int64(ino.rawValue)), .text(owner.session), .int(Int64(bitPattern: owner.id))]
    }

    private static func rangeLocks(_ c: PostgresConnection, _ ino: InodeNumber) throws(MetaError) -> [RangeLock] {
        try c.query("""
            SELECT session, owner, kind, start, "end", pid FROM plocks WHERE ino = $1 ORDER BY session, owner, start
            """, [.int(Int64(ino.rawValue))]) { s in
            RangeLock(owner: LockOwner(session: s.text(0), id: UInt64(bitPattern: s.int(1))), kind: LockKind(rawValue: s.int(2)) ?? .exclusive,
                      range: UInt64(s.int(3))...UInt64(s.int(4)), pid: UInt32(truncatingIfNeeded: s.int(5)))
        }
    }
}
