import MossaicCore

/// fallocate's reservations, with the SQLite engine's accounting (SQLiteMetaStore+Allocations
/// explains `allocations` and `inodes.reserved`); the range arithmetic is shared with it.
extension PostgresMetaStore {
    public func changeAllocation(_ ino: InodeNumber, reserve: Range<UInt64>?, release: Range<UInt64>?,
                                 growTo size: UInt64?, touch: AllocationTimes, now: Timestamp) throws(MetaError) -> FileAttributes {
        try write { (c) throws(MetaError) in
            try Self.lock(c, [ino])
            let attrs = try Self.attributes(c, ino)
            guard attrs.kind == .regular else { throw .invalidArgument }
            if let release { try Self.removeAllocation(c, ino, release) }
            if let reserve { try Self.addAllocation(c, ino, reserve) }
            let key = SQLValue.int(Int64(ino.rawValue)), time = SQLValue.int(now.nanoseconds)
            let grows = size.map { $0 > attrs.size } ?? false
            if let size, grows { try c.update("UPDATE inodes SET size = $1 WHERE ino = $2", [.int(Int64(size)), key]) }
            if grows || touch == .both { try c.update("UPDATE inodes SET mtime_ns = $1, ctime_ns = $1 WHERE ino = $2", [time, key]) }
            if touch == .ctime { try c.update("UPDATE inodes SET ctime_ns = $1 WHERE ino = $2", [time, key]) }
            try Self.refreshReserved(c, ino)
            return try Self.attributes(c, ino)
        }
    }

    public func allocations(of ino: InodeNumber) throws(MetaError) -> [Range<UInt64>] {
        try read { (c) throws(MetaError) in try Self.allocationRows(c, ino, within: 0..<UInt64(Int64.max)) }
    }

    static func hasAllocations(_ c: PostgresConnection, _ ino: InodeNumber) throws(MetaError) -> Bool {
        try c.queryOne("SELECT 1 FROM allocations WHERE ino = $1 LIMIT 1", [.int(Int64(ino.rawValue))], row: { _ in true }) != nil
    }

    private static func allocationRows(_ c: PostgresConnection, _ ino: InodeNumber, within range: Range<UInt64>) throws(MetaError) -> [Range<UInt64>] {
        try c.query("SELECT start, \"end\" FROM allocations WHERE ino = $1 AND start < $2 AND \"end\" > $3 ORDER BY start",
                    [.int(Int64(ino.rawValue)), .int(Int64(range.upperBound)), .int(Int64(range.lowerBound))]) {
            UInt64($0.int(0))..<UInt64($0.int(1))
        }
    }

    private static func replaceAllocations(_ c: PostgresConnection, _ ino: InodeNumber, removing old: [Range<UInt64>],
                                           adding new: [Range<UInt64>]) throws(MetaError) {
        let key = SQLValue.int(Int64(ino.rawValue))
        for row in old { try c.update("DELETE FROM allocations WHERE ino = $1 AND start = $2", [key, .int(Int64(row.lowerBound))]) }
        for row in new where !row.isEmpty {
            try c.update("INSERT INTO allocations(ino, start, \"end\") VALUES($1, $2, $3)", [key, .int(Int64(row.lowerBound)), .int(Int64(row.upperBound))])
        }
    }

    /// Adds `range`, merged with the rows it overlaps or touches.
    private static func addAllocation(_ c: PostgresConnection, _ ino: InodeNumber, _ range: Range<UInt64>) throws(MetaError) {
        guard !range.isEmpty else { return }
        let neighbours = try c.query("SELECT start, \"end\" FROM allocations WHERE ino = $1 AND start <= $2 AND \"end\" >= $3",
                                     [.int(Int64(ino.rawValue)), .int(Int64(range.upperBound)), .int(Int64(range.lowerBound))]) {
            UInt64($0.int(0))..<UInt64($0.int(1))
        }
        try replaceAllocations(c, ino, removing: neighbours, adding: [SQLiteMetaStore.merged(range, with: neighbours)])
    }

    /// Removes `range`, keeping the parts of rows outside it.
    static func removeAllocation(_ c: PostgresConnection, _ ino: InodeNumber, _ range: Range<UInt64>) throws(MetaError) {
        guard !range.isEmpty else { return }
        let rows = try allocationRows(c, ino, within: range)
        try replaceAllocations(c, ino, removing: rows, adding: rows.flatMap { SQLiteMetaStore.remainders(of: $0, without: range) })
    }

    static func cutAllocations(_ c: PostgresConnection, _ ino: InodeNumber, to size: UInt64) throws(MetaError) {
        guard try hasAllocations(c, ino) else { return }
        try removeAllocation(c, ino, SQLiteMetaStore.roundUp(size)..<UInt64(Int64.max))
        try refreshReserved(c, ino)
    }

    static func reservedDelta(_ c: PostgresConnection, _ ino: InodeNumber, index: UInt64, old: UInt64, new: UInt64) throws(MetaError) -> Int64 {
        let spans = SQLiteMetaStore.reservationChange(index: index, old: old, new: new)
        let bytes = spans.range.isEmpty ? 0 : Int64(try allocationRows(c, ino, within: spans.range).reduce(0) { $0 + $1.clamped(to: spans.range).count })
        return spans.grows ? -bytes : bytes
    }

    static func refreshReserved(_ c: PostgresConnection, _ ino: InodeNumber) throws(MetaError) {
        try c.update("UPDATE inodes SET reserved = $1 WHERE ino = $2", [.int(try uncoveredReservation(c, ino)), .int(Int64(ino.rawValue))])
    }

    /// What `inodes.reserved` of `ino` should be: the reserved bytes no chunk's data covers.
    static func uncoveredReservation(_ c: PostgresConnection, _ ino: InodeNumber) throws(MetaError) -> Int64 {
        let chunkSize = UInt64(FormatConstants.chunkSize)
        var reserved: UInt64 = 0
        for row in try allocationRows(c, ino, within: 0..<UInt64(Int64.max)) {
            let data = try c.query("SELECT idx, length FROM file_chunks WHERE ino = $1 AND idx BETWEEN $2 AND $3",
                                   [.int(Int64(ino.rawValue)), .int(Int64(row.lowerBound / chunkSize)), .int(Int64((row.upperBound - 1) / chunkSize))]) {
                (UInt64($0.int(0)), UInt64($0.int(1)))
            }
            reserved += SQLiteMetaStore.uncovered(row, by: data)
        }
        return Int64(reserved)
    }

    /// Files whose `inodes.reserved` disagrees with their reservations and chunks (fsck):
    /// (inode, stored, actual).
    static func wrongReservations(_ c: PostgresConnection) throws(MetaError) -> [(Int64, Int64, Int64)] {
        var wrong: [(Int64, Int64, Int64)] = []
        for (ino, stored) in try c.query("""
            SELECT i.ino, i.reserved FROM inodes i WHERE i.reserved != 0 OR i.ino IN (SELECT DISTINCT ino FROM allocations)
            """, row: { ($0.int(0), $0.int(1)) }) {
            let actual = try uncoveredReservation(c, InodeNumber(UInt64(ino)))
            if actual != stored { wrong.append((ino, stored, actual)) }
        }
        return wrong
    }
}
