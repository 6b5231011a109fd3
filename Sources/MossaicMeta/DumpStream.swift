import MossaicCore

/// Writes a dump's lines to `sink` in blocks of about `blockSize` bytes: header, records (in
/// the order the engine reads them, `MetadataDump.Table.all`), trailer.
///
/// With `dataReference` (a metadata backup), an inline chunk's bytes go where that puts them
/// and its line names the place (`DumpDataReference`); the header then says format version 2,
/// which a reader that cannot fetch them refuses rather than load chunks without their bytes.
public final class DumpWriter {
    /// Takes an inline chunk's bytes (named by their SHA-256) and says where they are kept;
    /// nil keeps them in the line.
    public typealias DataReferencing = (ChunkHash, [UInt8]) throws -> DumpDataReference?

    private let sink: ([UInt8]) throws -> Void
    private let dataReference: DataReferencing?
    private var buffer: [UInt8] = []
    private let blockSize: Int
    private(set) var counts: [String: Int64] = [:]
    let header: MetadataDump.Header

    init(header: MetadataDump.Header, blockSize: Int = 1 << 20, dataReference: DataReferencing? = nil,
         sink: @escaping ([UInt8]) throws -> Void) throws {
        self.header = header
        self.sink = sink
        self.dataReference = dataReference
        self.blockSize = blockSize
        buffer.reserveCapacity(blockSize + 4096)
        let version = dataReference == nil ? MetadataDump.formatVersion : MetadataDump.referencingFormatVersion
        buffer += Array("{\"\(MetadataDump.marker)\":\(version),\"fs_uuid\":".utf8)
        DumpCodec.appendString(header.fsUUID, to: &buffer)
        buffer += Array(",\"engine\":".utf8)
        DumpCodec.appendString(header.engine, to: &buffer)
        buffer += Array(",\"schema\":\(header.schema),\"created\":".utf8)
        DumpCodec.appendString(header.created, to: &buffer)
        buffer += Array(",\"next_ino\":\(header.nextInode)}\n".utf8)
    }

    /// One row of `table`, its values in the table's column order.
    func write(_ table: MetadataDump.Table, _ row: some ResultRow) throws {
        buffer += Array("{\"t\":\"\(table.type)\"".utf8)
        // An inline chunk's bytes, kept elsewhere: the line carries null and the reference.
        var reference: DumpDataReference?
        if let dataReference, table.type == "chunk", row.int(2) == ChunkState.inline.rawValue, !row.isNull(3) {
            let hash = row.blob(0)
            guard hash.count == 32 else { throw DumpError.io("a chunk row whose hash is not 32 bytes") }
            reference = try dataReference(ChunkHash(bytes: hash), row.blob(3))
        }
        for (i, column) in table.columns.enumerated() {
            buffer.append(0x2c)
            buffer.append(0x22)
            buffer += Array(column.name.utf8)
            buffer += [0x22, 0x3a]
            let c = Int32(i)
            let optional = column.kind == .optionalInt || column.kind == .optionalBytes || column.kind == .optionalHex
            if optional && row.isNull(c) || reference != nil && column.name == "data" {
                buffer += Array("null".utf8)
                continue
            }
            switch column.kind {
            case .int, .optionalInt: DumpCodec.appendInt(row.int(c), to: &buffer)
            case .bytes, .optionalBytes: DumpCodec.appendBase64(row.blob(c), to: &buffer)
            case .hex, .optionalHex: DumpCodec.appendHex(row.blob(c), to: &buffer)
            case .text: DumpCodec.appendString(row.text(c), to: &buffer)
            }
        }
        reference?.append(to: &buffer)
        buffer += [0x7d, 0x0a]
        counts[table.type, default: 0] += 1
        if buffer.count >= blockSize { try flush() }
    }

    private func flush() throws {
        guard !buffer.isEmpty else { return }
        try sink(buffer)
        buffer.removeAll(keepingCapacity: true)
    }

    /// Writes the trailer and the rest; returns what was written.
    func finish() throws -> MetadataDump.Summary {
        buffer += Array("{\"end\":\"\(MetadataDump.marker)\",\"records\":\(counts.values.reduce(0, +))".utf8)
        for table in MetadataDump.Table.all {
            buffer += Array(",\"\(table.type)\":\(counts[table.type] ?? 0)".utf8)
        }
        buffer += [0x7d, 0x0a]
        try flush()
        return MetadataDump.Summary(header: header, counts: counts)
    }
}

/// Reads a dump's lines from `source` (blocks of bytes, nil at the end) and checks each: the
/// header first (`header()`), then records, each as the table it belongs to and its values in
/// column order, until the trailer, whose counts must match.
public final class DumpReader {
    private let source: () throws -> [UInt8]?
    private var buffer: [UInt8] = []
    private var position = 0
    private var ended = false
    private(set) var line: Int64 = 0
    private(set) var counts: [String: Int64] = [:]
    private var trailerSeen = false
    /// The last line read had no newline: the input ended inside it.
    private var unterminated = false
    /// The header's format version.
    private(set) var version: Int64 = 0
    /// Fetches the bytes of an inline chunk a line names by reference (`DumpDataReference`,
    /// version 2: a metadata backup), given the chunk's hash and length; they must be checked.
    /// Without it such a line is an error: a chunk without its bytes would load as damage.
    public var dataSource: ((DumpDataReference, ChunkHash, Int) throws -> [UInt8])?

    public init(source: @escaping () throws -> [UInt8]?) {
        self.source = source
    }

    /// The next line without its newline; nil at the end of the input.
    private func nextLine() throws -> ArraySlice<UInt8>? {
        while true {
            if let newline = buffer[position...].firstIndex(of: 0x0a) {
                let slice = buffer[position..<newline]
                position = newline + 1
                line += 1
                return slice
            }
            if ended {
                guard position < buffer.count else { return nil }
                // A last line without its newline: only a truncated dump ends so.
                let slice = buffer[position...]
                position = buffer.count
                line += 1
                unterminated = true
                return slice
            }
            buffer.removeFirst(position)
            position = 0
            if let block = try source() { buffer += block } else { ended = true }
        }
    }

    private func object() throws -> [String: DumpCodec.Scalar]? {
        guard let text = try nextLine() else { return nil }
        do { return try DumpCodec.parseObject(text) } catch {
            // A line cut short is a truncated dump, not a damaged one.
            if unterminated && line > 1 { throw DumpError.truncated(line: line - 1) }
            throw DumpError.malformed(line: line, error.why)
        }
    }

    public func header() throws -> MetadataDump.Header {
        guard let fields = try object() else { throw DumpError.malformed(line: 1, "it is empty") }
        guard case .int(let version)? = fields[MetadataDump.marker] else {
            throw DumpError.malformed(line: 1, "its first line is not a mossaicfs dump header")
        }
        guard version == MetadataDump.formatVersion || version == MetadataDump.referencingFormatVersion else {
            throw DumpError.malformed(line: 1, "dump format version \(version); this mossaicfs reads versions \(MetadataDump.formatVersion) and \(MetadataDump.referencingFormatVersion)")
        }
        self.version = version
        guard case .string(let uuid)? = fields["fs_uuid"], case .string(let engine)? = fields["engine"],
              case .int(let schema)? = fields["schema"], case .int(let next)? = fields["next_ino"] else {
            throw DumpError.malformed(line: 1, "its header lacks fs_uuid, engine, schema or next_ino")
        }
        var created = ""
        if case .string(let c)? = fields["created"] { created = c }
        return MetadataDump.Header(fsUUID: uuid, engine: engine, schema: schema, created: created, nextInode: next)
    }

    /// The next record, or nil after the trailer (checked against what was read).
    func next() throws -> (table: MetadataDump.Table, values: [SQLValue])? {
        guard !trailerSeen else { return nil }
        guard let fields = try object() else { throw DumpError.truncated(line: line) }
        guard case .string(let type)? = fields["t"] else {
            if case .string(MetadataDump.marker)? = fields["end"] {
                try check(trailer: fields)
                trailerSeen = true
                if let extra = try nextLine(), !extra.allSatisfy({ $0 == 0x20 || $0 == 0x0d }) {
                    throw DumpError.malformed(line: line, "text after the trailer")
                }
                return nil
            }
            throw DumpError.malformed(line: line, "a record without \"t\"")
        }
        guard let table = MetadataDump.Table.byType[type] else { throw DumpError.malformed(line: line, "unknown record type \"\(type)\"") }
        var values: [SQLValue] = []
        values.reserveCapacity(table.columns.count)
        for column in table.columns {
            let value = fields[column.name] ?? .null
            switch (column.kind, value) {
            case (.optionalInt, .null), (.optionalBytes, .null), (.optionalHex, .null): values.append(.null)
            case (.int, .int(let v)), (.optionalInt, .int(let v)): values.append(.int(v))
            case (.bytes, .string(let s)), (.optionalBytes, .string(let s)):
                guard let bytes = DumpCodec.decodeBase64(s) else {
                    throw DumpError.malformed(line: line, "\(type).\(column.name) is not base64")
                }
                values.append(.blob(bytes))
            case (.hex, .string(let s)), (.optionalHex, .string(let s)):
                guard let bytes = DumpCodec.decodeHex(s) else { throw DumpError.malformed(line: line, "\(type).\(column.name) is not hex") }
                values.append(.blob(bytes))
            case (.text, .string(let s)): values.append(.text(s))
            default:
                throw DumpError.malformed(line: line, "\(type).\(column.name) is missing or of the wrong type")
            }
        }
        if table.type == "chunk", let parsed = DumpDataReference.parse(fields) {
            guard version == MetadataDump.referencingFormatVersion, case .success(let reference) = parsed,
                  case .int(ChunkState.inline.rawValue) = values[2], case .null = values[3],
                  case .blob(let hash) = values[0], hash.count == 32, case .int(let length) = values[1],
                  length >= 0, length <= FormatConstants.chunkSize else {
                throw DumpError.malformed(line: line, "a chunk's data reference is malformed or not allowed here")
            }
            guard let dataSource else {
                throw DumpError.malformed(line: line, "an inline chunk's bytes are in a backup's data object: only load --from-backup reads this dump")
            }
            values[3] = .blob(try dataSource(reference, ChunkHash(bytes: hash), Int(length)))
        }
        counts[type, default: 0] += 1
        return (table, values)
    }

    private func check(trailer: [String: DumpCodec.Scalar]) throws {
        var differences: [String] = []
        for table in MetadataDump.Table.all {
            let said: Int64
            if case .int(let n)? = trailer[table.type] { said = n } else { said = 0 }
            let read = counts[table.type] ?? 0
            if said != read { differences.append("\(table.type): \(read) read, \(said) in the trailer") }
        }
        if case .int(let total)? = trailer["records"], total != counts.values.reduce(0, +) {
            differences.append("records: \(counts.values.reduce(0, +)) read, \(total) in the trailer")
        }
        if !differences.isEmpty { throw DumpError.countMismatch(differences.joined(separator: "; ")) }
    }
}

/// Where `MetadataDump.load` puts rows: a new, empty engine, in one transaction that only
/// `finish` commits.
protocol DumpTarget {
    func insert(_ table: MetadataDump.Table, _ values: [SQLValue]) throws
    /// After the last row: derive each engine's own bookkeeping, commit.
    func finish(_ header: MetadataDump.Header) throws
    /// Undo everything (a damaged or truncated dump).
    func abort()
}

extension MetadataDump {
    /// Reads every record of `reader` (whose header was read) into `target`, committing only
    /// after the trailer checked out. Settings that are an engine's own are skipped.
    static func load(_ reader: DumpReader, header: Header, into target: some DumpTarget) throws -> Summary {
        do {
            while let (table, values) = try reader.next() {
                if table.type == "setting", case .text(let key) = values[0], engineSettings.contains(key) { continue }
                try target.insert(table, values)
            }
            guard reader.counts["inode"] ?? 0 > 0 else { throw DumpError.target("the dump holds no inode (not even the root): nothing was loaded") }
            try target.finish(header)
        } catch {
            target.abort()
            throw error
        }
        return Summary(header: header, counts: reader.counts)
    }
}

extension DumpReader {
    /// Reads every record to the trailer, checking it (for what `dataSource` sees on the way).
    public func readToEnd() throws {
        while try next() != nil {}
    }

    /// Calls `body` with the object key of every stored chunk (its own object, or its pack) the
    /// dump's chunk rows name, referenced or not, reading the dump to its trailer: what `gc`
    /// keeps so that a backup in the store stays restorable.
    public func storedChunkKeys(_ body: (String) -> Void) throws {
        // Inline chunks' bytes kept by reference are not needed here: not fetched.
        if dataSource == nil { dataSource = { _, _, _ in [] } }
        while let (table, values) = try next() {
            guard table.type == "chunk", case .int(ChunkState.stored.rawValue) = values[2], case .blob(let hash) = values[0],
                  hash.count == 32 else { continue }
            if case .blob(let pack) = values[4], pack.count == 32 {
                body(ChunkHash(bytes: pack).packKey)
            } else {
                body(ChunkHash(bytes: hash).objectKey)
            }
        }
    }
}
