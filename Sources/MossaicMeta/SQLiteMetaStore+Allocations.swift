import MossaicCore

/// Space fallocate(2) reserved, for `st_blocks` (what `du` shows) to follow allocation as on
/// ext4. Nothing is stored for a reservation — a hole can always be written here — but a file
/// fallocated to 1 GiB counts 1 GiB, before and after it is written, until the range is
/// punched or truncated away.
///
/// `allocations(ino, start, end)` holds the reserved byte ranges of a file: 4 KiB-aligned,
/// disjoint and merged. `inodes.reserved` is how many bytes of them no chunk's data covers,
/// where a chunk reference at `idx` covers `[idx·1 MiB, idx·1 MiB + length)` rounded up to
/// 4 KiB (its bytes up to its last non-zero one). So st_blocks, in 4 KiB blocks, is the
/// data (`allocated`, rounded up) plus `reserved`: data and reservations counted once each.
extension SQLiteMetaStore {
    static let allocationBlock: UInt64 = 4096

    /// fallocate in one transaction: `reserve` is added to the file's reserved ranges,
    /// `release` removed from them (both rounded to whole 4 KiB blocks by the caller), and
    /// with `growTo` above the size the size becomes it.
    public func changeAllocation(_ ino: InodeNumber, reserve: Range<UInt64>?, release: Range<UInt64>?,
                                 growTo size: UInt64?, touch: AllocationTimes, now: Timestamp) throws(MetaError) -> FileAttributes {
        try write { (c) throws(MetaError) in
            let attrs = try Self.attributes(c, ino)
            guard attrs.kind == .regular else { throw .invalidArgument }
            if let release { try Self.removeAllocation(c, ino, release) }
            if let reserve { try Self.addAllocation(c, ino, reserve) }
            let key = SQLValue.int(Int64(ino.rawValue)), time = SQLValue.int(now.nanoseconds)
            let grows = size.map { $0 > attrs.size } ?? false
            if let size, grows { try c.run("UPDATE inodes SET size = ? WHERE ino = ?", [.int(Int64(size)), key]) }
            if grows || touch == .both { try c.run("UPDATE inodes SET mtime_ns = ?, ctime_ns = ? WHERE ino = ?", [time, time, key]) }
            if touch == .ctime { try c.run("UPDATE inodes SET ctime_ns = ? WHERE ino = ?", [time, key]) }
            try Self.refreshReserved(c, ino)
            return try Self.attributes(c, ino)
        }
    }

    /// The reserved ranges of `ino`, in order (for tests and fsck).
    public func allocations(of ino: InodeNumber) throws(MetaError) -> [Range<UInt64>] {
        try read { (c) throws(MetaError) in try Self.allocationRows(c, ino, within: 0..<UInt64(Int64.max)) }
    }

    static func hasAllocations(_ c: SQLiteConnection, _ ino: InodeNumber) throws(MetaError) -> Bool {
        try c.queryOne("SELECT 1 FROM allocations WHERE ino = ? LIMIT 1", [.int(Int64(ino.rawValue))], row: { _ in true }) != nil
    }

    private static func allocationRows(_ c: SQLiteConnection, _ ino: InodeNumber, within range: Range<UInt64>) throws(MetaError) -> [Range<UInt64>] {
        try c.query("SELECT start, end FROM allocations WHERE ino = ? AND start < ? AND end > ? ORDER BY start",
                    [.int(Int64(ino.rawValue)), .int(Int64(range.upperBound)), .int(Int64(range.lowerBound))]) {
            UInt64($0.int(0))..<UInt64($0.int(1))
        }
    }

    /// Adds `range`, merged with the rows it overlaps or touches.
    private static func addAllocation(_ c: SQLiteConnection, _ ino: InodeNumber, _ range: Range<UInt64>) throws(MetaError) {
        guard !range.isEmpty else { return }
        let key = SQLValue.int(Int64(ino.rawValue))
        let neighbours = try c.query("SELECT start, end FROM allocations WHERE ino = ? AND start <= ? AND end >= ?",
                                     [key, .int(Int64(range.upperBound)), .int(Int64(range.lowerBound))]) { ($0.int(0), $0.int(1)) }
        for (start, _) in neighbours { try c.run("DELETE FROM allocations WHERE ino = ? AND start = ?", [key, .int(start)]) }
        let merged = merged(range, with: neighbours.map { UInt64($0.0)..<UInt64($0.1) })
        try c.run("INSERT INTO allocations(ino, start, end) VALUES(?, ?, ?)",
                  [key, .int(Int64(merged.lowerBound)), .int(Int64(merged.upperBound))])
    }

    /// Removes `range`, keeping the parts of rows outside it.
    static func removeAllocation(_ c: SQLiteConnection, _ ino: InodeNumber, _ range: Range<UInt64>) throws(MetaError) {
        guard !range.isEmpty else { return }
        let key = SQLValue.int(Int64(ino.rawValue))
        for row in try allocationRows(c, ino, within: range) {
            try c.run("DELETE FROM allocations WHERE ino = ? AND start = ?", [key, .int(Int64(row.lowerBound))])
            for rest in remainders(of: row, without: range) where !rest.isEmpty {
                try c.run("INSERT INTO allocations(ino, start, end) VALUES(?, ?, ?)", [key, .int(Int64(rest.lowerBound)), .int(Int64(rest.upperBound))])
            }
        }
    }

    /// Truncation: reservations past `size` (rounded up to a block) go, as ext4 frees every
    /// block past the new end — preallocations beyond EOF (KEEP_SIZE) included.
    static func cutAllocations(_ c: SQLiteConnection, _ ino: InodeNumber, to size: UInt64) throws(MetaError) {
        guard try hasAllocations(c, ino) else { return }
        try removeAllocation(c, ino, roundUp(size)..<UInt64(Int64.max))
        try refreshReserved(c, ino)
    }

    /// How much of `range` is reserved.
    static func reservedBytes(_ c: SQLiteConnection, _ ino: InodeNumber, in range: Range<UInt64>) throws(MetaError) -> Int64 {
        guard !range.isEmpty else { return 0 }
        return Int64(try allocationRows(c, ino, within: range).reduce(0) { $0 + $1.clamped(to: range).count })
    }

    /// The change of `inodes.reserved` when the reference at chunk `index` goes from `old` to
    /// `new` bytes: the data covers the first bytes of the chunk's span, so a longer reference
    /// covers more of a reservation, a shorter one less.
    static func reservedDelta(_ c: SQLiteConnection, _ ino: InodeNumber, index: UInt64, old: UInt64, new: UInt64) throws(MetaError) -> Int64 {
        let change = reservationChange(index: index, old: old, new: new)
        let bytes = try reservedBytes(c, ino, in: change.range)
        return change.grows ? -bytes : bytes
    }

    /// The bytes of chunk `index`'s span whose cover changes when its reference goes from
    /// `old` to `new` bytes, and whether they become covered (`grows`) or uncovered.
    static func reservationChange(index: UInt64, old: UInt64, new: UInt64) -> (range: Range<UInt64>, grows: Bool) {
        let start = index * UInt64(FormatConstants.chunkSize)
        let (o, n) = (roundUp(old), roundUp(new))
        return n > o ? (start + o..<start + n, true) : (start + n..<start + o, false)
    }

    /// `range` merged with the reserved rows it overlaps or touches.
    static func merged(_ range: Range<UInt64>, with rows: [Range<UInt64>]) -> Range<UInt64> {
        rows.reduce(range) { min($0.lowerBound, $1.lowerBound)..<max($0.upperBound, $1.upperBound) }
    }

    /// What is left of reserved row `row` without `range`: the parts before and after it (either may be empty).
    static func remainders(of row: Range<UInt64>, without range: Range<UInt64>) -> [Range<UInt64>] {
        [row.lowerBound..<min(row.upperBound, max(row.lowerBound, range.lowerBound)),
         max(row.lowerBound, min(row.upperBound, range.upperBound))..<row.upperBound]
    }

    /// The bytes of reserved row `row` that no chunk data of `data` ((index, reference length)) covers.
    static func uncovered(_ row: Range<UInt64>, by data: [(UInt64, UInt64)]) -> UInt64 {
        let chunkSize = UInt64(FormatConstants.chunkSize)
        var uncovered = UInt64(row.count)
        for (idx, length) in data {
            let covered = idx * chunkSize..<(idx * chunkSize + roundUp(length))
            if covered.overlaps(row) { uncovered -= UInt64(covered.clamped(to: row).count) }
        }
        return uncovered
    }

    /// Sets `inodes.reserved`: the bytes of the reserved ranges no chunk's data covers.
    static func refreshReserved(_ c: SQLiteConnection, _ ino: InodeNumber) throws(MetaError) {
        try c.run("UPDATE inodes SET reserved = ? WHERE ino = ?", [.int(try uncoveredReservation(c, ino)), .int(Int64(ino.rawValue))])
    }

    /// What `inodes.reserved` of `ino` should be.
    static func uncoveredReservation(_ c: SQLiteConnection, _ ino: InodeNumber) throws(MetaError) -> Int64 {
        let chunkSize = UInt64(FormatConstants.chunkSize)
        var reserved: UInt64 = 0
        for row in try allocationRows(c, ino, within: 0..<UInt64(Int64.max)) {
            let data = try c.query("SELECT idx, length FROM file_chunks WHERE ino = ? AND idx BETWEEN ? AND ?",
                                   [.int(Int64(ino.rawValue)), .int(Int64(row.lowerBound / chunkSize)), .int(Int64((row.upperBound - 1) / chunkSize))]) {
                (UInt64($0.int(0)), UInt64($0.int(1)))
            }
            reserved += uncovered(row, by: data)
        }
        return Int64(reserved)
    }

    /// Files whose `inodes.reserved` disagrees with their reservations and chunks (fsck):
    /// (inode, stored, actual). Only files with reservations or a reserved count are read.
    static func wrongReservations(_ c: SQLiteConnection) throws(MetaError) -> [(Int64, Int64, Int64)] {
        var wrong: [(Int64, Int64, Int64)] = []
        for (ino, stored) in try c.query("""
            SELECT i.ino, i.reserved FROM inodes i WHERE i.reserved != 0 OR i.ino IN (SELECT DISTINCT ino FROM allocations)
            """, row: { ($0.int(0), $0.int(1)) }) {
            let actual = try uncoveredReservation(c, InodeNumber(UInt64(ino)))
            if actual != stored { wrong.append((ino, stored, actual)) }
        }
        return wrong
    }

    static func roundUp(_ n: UInt64) -> UInt64 { (n + allocationBlock - 1) / allocationBlock * allocationBlock }
}
