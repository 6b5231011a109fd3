import Foundation
import MossaicCore

/// `meta/snapshots/<id>.json`: one metadata snapshot. Its base database file is the
/// concatenation of `chunks` in order (each a `meta/chunks/` object named by its SHA-256;
/// every piece is 1 MiB but the last), `database_bytes` long. Format 2 adds `changes`: SQLite
/// changesets (also `meta/chunks/` objects named by their SHA-256), applied to the base in
/// order, then `inode_seq` and the snapshot's own labels (`change_seq`) — an incremental
/// snapshot lists its parent's base and changes plus its own (`SnapshotWriter`).
///
///     {
///       "format": 1, "id": "0000000042-3fa9c1d2", "generation": 42,
///       "parent": "0000000041-0b1c2d3e",            (null for the first snapshot)
///       "fs_uuid": "…", "created": "2026-01-02T03:04:05Z", "created_ns": 1767323045000000000,
///       "host": "build-7", "schema_version": 1,
///       "inodes": 130, "files": 123, "logical_bytes": 123456,
///       "database_bytes": 4194304, "chunk_size": 1048576,
///       "chunks": [{"sha256": "…", "size": 1048576}, …],
///       "changes": [{"sha256": "…", "size": 5120}, …],   (format 2)
///       "change_seq": 1234, "inode_seq": 130               (format 2)
///     }
///
/// `generation` orders snapshots: each is its parent's + 1. `files`/`logical_bytes` count
/// regular files with a name (hard links once) and their sizes, for `mossaicfs snapshots`.
public struct SnapshotManifest: Codable, Sendable, Equatable {
    /// 2: base pieces need `change_seq` labelling at restore, `changes` may follow. A
    /// format-1 reader refuses it with "upgrade mossaicfs" rather than restore it unlabelled.
    public static let currentFormat = 2

    public struct Piece: Codable, Sendable, Equatable {
        public var sha256: String
        public var size: Int
        public init(sha256: String, size: Int) { self.sha256 = sha256; self.size = size }
        public var hash: ChunkHash? { ChunkHash(hex: sha256) }
    }

    public var format: Int
    public var id: String
    public var generation: Int64
    public var parent: String?
    public var fsUUID: String
    public var created: String
    public var createdNanoseconds: Int64
    public var host: String
    public var schemaVersion: Int64
    public var inodes: Int64
    public var files: Int64
    public var logicalBytes: Int64
    public var databaseBytes: Int64
    public var chunkSize: Int
    public var chunks: [Piece]
    /// Changesets applied to the base, oldest first (absent in format 1).
    public var changes: [Piece]?
    /// `change_seq` of the database this snapshot holds, and its inode counter (format 2).
    public var changeSequence: Int64?
    public var inodeSequence: Int64?

    enum CodingKeys: String, CodingKey {
        case format, id, generation, parent, fsUUID = "fs_uuid", created, createdNanoseconds = "created_ns", host
        case schemaVersion = "schema_version", inodes, files, logicalBytes = "logical_bytes"
        case databaseBytes = "database_bytes", chunkSize = "chunk_size", chunks, changes
        case changeSequence = "change_seq", inodeSequence = "inode_seq"
    }

    public init(id: String, generation: Int64, parent: String?, fsUUID: String, created: Timestamp, host: String,
                schemaVersion: Int64, inodes: Int64, files: Int64, logicalBytes: Int64, databaseBytes: Int64, chunks: [Piece],
                changes: [Piece] = [], changeSequence: Int64, inodeSequence: Int64) {
        format = Self.currentFormat
        self.id = id; self.generation = generation; self.parent = parent; self.fsUUID = fsUUID
        self.created = Self.iso8601(created); createdNanoseconds = created.nanoseconds; self.host = host
        self.schemaVersion = schemaVersion; self.inodes = inodes; self.files = files; self.logicalBytes = logicalBytes
        self.databaseBytes = databaseBytes; chunkSize = FormatConstants.chunkSize; self.chunks = chunks
        self.changes = changes; self.changeSequence = changeSequence; self.inodeSequence = inodeSequence
    }

    /// The changesets applied to the base (none for format 1 or a full snapshot).
    public var changesets: [Piece] { changes ?? [] }
    /// Bytes of all changesets.
    public var changesetBytes: Int64 { changesets.reduce(0) { $0 + Int64($1.size) } }

    /// The distinct pieces this snapshot needs (base pieces and changesets).
    public var pieceHashes: Set<ChunkHash> { Set((chunks + changesets).compactMap(\.hash)) }

    public func encoded() -> [UInt8] { jsonEncode(self) }

    public static func decode(_ bytes: [UInt8], key: String) throws(ReplicationError) -> SnapshotManifest {
        guard let m = try? JSONDecoder().decode(SnapshotManifest.self, from: Data(bytes)) else {
            throw .damaged("\(key) is not a valid snapshot manifest")
        }
        guard m.format <= currentFormat else {
            throw .damaged("\(key) has manifest format \(m.format); this mossaicfs reads up to \(currentFormat) (upgrade mossaicfs)")
        }
        guard m.chunkSize == FormatConstants.chunkSize, m.chunks.allSatisfy({ $0.hash != nil && $0.size > 0 && $0.size <= m.chunkSize }),
              m.chunks.reduce(0, { $0 + Int64($1.size) }) == m.databaseBytes,
              m.changesets.allSatisfy({ $0.hash != nil && $0.size > 0 }) else {
            throw .damaged("\(key) lists pieces that do not add up to its database")
        }
        guard m.format < 2 || (m.changeSequence != nil && m.inodeSequence != nil) else {
            throw .damaged("\(key) lacks change_seq or inode_seq")
        }
        return m
    }

    static func iso8601(_ t: Timestamp) -> String {
        let f = ISO8601DateFormatter()
        return f.string(from: Date(timeIntervalSince1970: Double(t.nanoseconds) / 1e9))
    }
}

/// `meta/HEAD`: the newest snapshot.
public struct HeadPointer: Codable, Sendable, Equatable {
    public var format: Int
    public var snapshot: String
    public var generation: Int64

    public init(snapshot: String, generation: Int64) { format = 1; self.snapshot = snapshot; self.generation = generation }

    public func encoded() -> [UInt8] { jsonEncode(self) }

    public static func decode(_ bytes: [UInt8]) throws(ReplicationError) -> HeadPointer {
        guard let h = try? JSONDecoder().decode(HeadPointer.self, from: Data(bytes)), SnapshotID.generation(of: h.snapshot) != nil else {
            throw .damaged("\(MetadataLayout.head) is not a valid snapshot pointer")
        }
        return h
    }
}

/// HEAD as read from the store, with the ETag a conditional replacement must match.
public struct PublishedHead: Sendable, Equatable {
    public var pointer: HeadPointer
    public var etag: String
}

func jsonEncode<T: Encodable>(_ value: T) -> [UInt8] {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    return Array((try? encoder.encode(value)) ?? Data()) + [0x0a]
}
