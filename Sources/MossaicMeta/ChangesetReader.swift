/// SQLite's patchset format — what metadata snapshots ship (`SQLiteChangeRecorder.patchset`) —
/// read without SQLite: where each table's block of changes lies, and the fields of one
/// change. The format is the session extension's (sqlite3session.c, "RECORD FORMAT",
/// "PATCHSET FORMAT"):
///
/// - a block per table: 'P', the column count (varint), one primary-key flag byte per
///   column, the table's name and a NUL; then its changes;
/// - a change: the operation (SQLITE_INSERT, _UPDATE, _DELETE), an "indirect" byte, then one
///   record: the new row (insert), the key (delete), or the key and the changed columns' new
///   values, the other fields undefined (update);
/// - a record: one field per column (a delete: per key column): a type byte — 0 undefined,
///   1 integer, 2 real, 3 text, 4 blob, 5 NULL — then 8 bytes big-endian (integer, real), a
///   varint length and the bytes (text, blob), or nothing.
///
/// A restore uses it to take one table's changes out of a patchset as bytes, and to bind
/// their values later, without SQLite's iterator copying every value into objects of its own
/// (`ChunkChangeStaging`). Anything else — a changeset with old values ('T' blocks), bytes it
/// cannot follow — makes it answer nil; the caller then lets SQLite read it (which rejects
/// what is damaged).
struct ChangesetReader {
    struct Table {
        let name: String
        let columns: Int
        let keyColumns: [Int]
        /// The whole block, header included.
        let block: Range<Int>
        /// The changes (after the header).
        let changes: Range<Int>
    }

    /// One field of a record: its type byte and where its value's bytes are.
    struct Field {
        var type: UInt8 = 0
        var start = 0
        var count = 0

        static let undefined: UInt8 = 0, integer: UInt8 = 1, real: UInt8 = 2, text: UInt8 = 3, blob: UInt8 = 4, null: UInt8 = 5
    }

    static let insert: UInt8 = 18, update: UInt8 = 23, delete: UInt8 = 9  // SQLITE_INSERT, _UPDATE, _DELETE

    let bytes: UnsafeRawBufferPointer

    /// The table blocks in order, or nil if the bytes are not a patchset this reader follows.
    func tables() -> [Table]? {
        var tables: [Table] = []
        var at = 0
        while at < bytes.count {
            let marker = bytes[at]
            guard marker == UInt8(ascii: "P"), let (columns, length) = varint(at: at + 1),
                  columns > 0, columns < 4096 else { return nil }
            var p = at + 1 + length
            guard p + columns <= bytes.count else { return nil }
            let keyColumns = (0..<columns).filter { bytes[p + $0] != 0 }
            p += columns
            guard let nul = (p..<bytes.count).first(where: { bytes[$0] == 0 }) else { return nil }
            let name = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[p..<nul]), as: UTF8.self)
            p = nul + 1
            let start = p
            let header = Table(name: name, columns: columns, keyColumns: keyColumns, block: at..<p, changes: p..<p)
            while p < bytes.count, bytes[p] != UInt8(ascii: "T"), bytes[p] != UInt8(ascii: "P") {
                guard let end = changeEnd(at: p, of: header) else { return nil }
                p = end
            }
            tables.append(Table(name: name, columns: columns, keyColumns: keyColumns, block: at..<p, changes: start..<p))
            at = p
        }
        return tables
    }

    /// How many fields the record of a change holds.
    static func recordFields(operation: UInt8, columns: Int, keyColumns: Int) -> Int? {
        switch operation {
        case insert, update: return columns
        case delete: return keyColumns
        default: return nil
        }
    }

    /// The offset after the change at `offset` of `table`, or nil if it is malformed.
    func changeEnd(at offset: Int, of table: Table) -> Int? {
        guard offset + 2 <= bytes.count,
              let count = Self.recordFields(operation: bytes[offset], columns: table.columns, keyColumns: table.keyColumns.count) else { return nil }
        var p = offset + 2
        for _ in 0..<count {
            guard let end = fieldEnd(at: p) else { return nil }
            p = end
        }
        return p
    }

    /// Reads `count` fields from `offset` into `fields[0..<count]`; returns the offset after
    /// them, or nil if they are malformed.
    func readFields(at offset: Int, count: Int, into fields: inout [Field]) -> Int? {
        var p = offset
        for i in 0..<count {
            guard let field = field(at: p) else { return nil }
            fields[i] = field
            p = field.start + field.count
        }
        return p
    }

    private func fieldEnd(at offset: Int) -> Int? { field(at: offset).map { $0.start + $0.count } }

    /// The field at `offset`, or nil if it is malformed or runs past the end.
    private func field(at offset: Int) -> Field? {
        guard offset < bytes.count else { return nil }
        let type = bytes[offset]
        var field = Field(type: type, start: offset + 1, count: 0)
        switch type {
        case Field.undefined, Field.null: break
        case Field.integer, Field.real: field.count = 8
        case Field.text, Field.blob:
            guard let (length, size) = varint(at: offset + 1) else { return nil }
            field.start = offset + 1 + size
            field.count = length
        default: return nil
        }
        return field.start + field.count <= bytes.count ? field : nil
    }

    /// An integer or real field's 8 bytes, big-endian.
    func int64(_ field: Field) -> Int64 {
        var v: UInt64 = 0
        for i in 0..<8 { v = v << 8 | UInt64(bytes[field.start + i]) }
        return Int64(bitPattern: v)
    }

    /// SQLite's varint (1–9 bytes, big-endian, 7 bits a byte but all 8 of the ninth), as
    /// (value, bytes read); nil past the end or above 2³¹ − 1 (it reads counts and lengths).
    func varint(at offset: Int) -> (Int, Int)? {
        var value: UInt64 = 0
        for i in 0..<9 {
            guard offset + i < bytes.count else { return nil }
            let byte = bytes[offset + i]
            if i == 8 {
                value = value << 8 | UInt64(byte)
            } else {
                value = value << 7 | UInt64(byte & 0x7f)
                if byte & 0x80 == 0 { return value <= UInt64(Int32.max) ? (Int(value), i + 1) : nil }
            }
        }
        return value <= UInt64(Int32.max) ? (Int(value), 9) : nil
    }
}
