import MossaicCore

/// Where a dump of format version 2 (written only by a metadata backup, `BackupCatalog`) keeps
/// an inline chunk's bytes instead of its line: `length` bytes at `offset` of the store object
/// `object` (a key under the backup's data prefix), in form `codec`. The chunk line says so
/// with `"data":null` and the keys `data_object`, `data_offset`, `data_length`, `data_codec`;
/// a restore fetches the bytes and checks them against the chunk's SHA-256, its name.
public struct DumpDataReference: Sendable, Hashable {
    public var object: String
    public var offset: Int64
    public var length: Int64
    public var codec: ChunkCodec

    public init(object: String, offset: Int64, length: Int64, codec: ChunkCodec) {
        self.object = object; self.offset = offset; self.length = length; self.codec = codec
    }

    static let keys = (object: "data_object", offset: "data_offset", length: "data_length", codec: "data_codec")

    /// Appends the reference's keys to a chunk line being written (after its columns).
    func append(to out: inout [UInt8]) {
        out += Array(",\"\(Self.keys.object)\":".utf8)
        DumpCodec.appendString(object, to: &out)
        out += Array(",\"\(Self.keys.offset)\":\(offset),\"\(Self.keys.length)\":\(length),\"\(Self.keys.codec)\":\(codec.rawValue)".utf8)
    }

    /// The reference a chunk line carries, nil if it carries none; malformed keys are an error.
    static func parse(_ fields: [String: DumpCodec.Scalar]) -> Result<DumpDataReference, ParseFailure>? {
        guard let value = fields[keys.object] else { return nil }
        guard case .string(let object) = value, !object.isEmpty, !object.contains("/"),
              case .int(let offset)? = fields[keys.offset], offset >= 0,
              case .int(let length)? = fields[keys.length], length >= 0,
              case .int(let raw)? = fields[keys.codec], let codec = ChunkCodec(rawValue: raw) else {
            return .failure(ParseFailure())
        }
        return .success(DumpDataReference(object: object, offset: offset, length: length, codec: codec))
    }

    struct ParseFailure: Error {}
}
