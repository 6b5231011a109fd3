import MossaicCore

/// Where a filesystem's objects live: chunks, the superblock and metadata snapshots.
///
/// Keys are relative to the store's root (a directory, or a bucket plus prefix) and use `/` as a
/// separator, e.g. `chunks/ab/abcdef…`. Implementations are thread-safe: the filesystem calls
/// them concurrently from FUSE worker threads and background workers, and every call blocks.
public protocol ObjectStore: Sendable {
    /// Stores `data` under `key` atomically: readers see the old object or the whole new one.
    /// Returns the new object's ETag.
    @discardableResult
    func put(_ key: String, _ data: [UInt8], condition: PutCondition) throws(ObjectStoreError) -> String

    /// Stores content-addressed bytes unconditionally under `key`: the concatenation of
    /// `pieces` (one for a chunk, its members for a pack), each with the SHA-256 the caller
    /// computed for its name. A store that must send the payload's hash — S3 signs it — uses
    /// these instead of hashing megabytes again. Callers use `putChunk` and `putPack`, which
    /// spell the keys.
    func putAddressed(_ key: String, _ pieces: [HashedBytes]) throws(ObjectStoreError)

    /// The whole object. Throws `.notFound` if there is none.
    func get(_ key: String) throws(ObjectStoreError) -> [UInt8]

    /// Bytes `range` of the object (clamped to its end). Throws `.notFound` if there is none.
    func get(_ key: String, range: Range<UInt64>) throws(ObjectStoreError) -> [UInt8]

    /// Bytes `range` of the object received as consecutive parts of `lengths` (which sum to
    /// the range's length), each in a buffer of its own: a run of packed chunks arrives as its
    /// chunks, with no copy out of one big buffer. Past the object's end parts are short or
    /// missing. Throws `.notFound` if there is no object.
    func get(_ key: String, range: Range<UInt64>, parts lengths: [Int]) throws(ObjectStoreError) -> [[UInt8]]

    /// Size and ETag of the object, or nil if there is none.
    func head(_ key: String) throws(ObjectStoreError) -> ObjectInfo?

    /// Removes the object; removing a missing object is not an error.
    func delete(_ key: String) throws(ObjectStoreError)

    /// Every object whose key starts with `prefix`, in key order; pages are fetched as needed.
    func list(prefix: String) throws(ObjectStoreError) -> [ObjectInfo]

    /// A short human-readable name for messages, e.g. `s3://bucket/prefix` or a directory path.
    var displayName: String { get }

    /// The cipher an encrypted filesystem's chunks are sealed with (`ChunkTransform`, which
    /// seals before `putChunk`/`putPack` and opens after reads): `SealedObjectStore` has it;
    /// every other store nil, and a store wrapping another forwards its base's.
    var chunkCipher: ConvergentCipher? { get }

    /// True when the store is on the local machine, so a local blob cache in front of it would
    /// only duplicate bytes already on this disk.
    var isLocal: Bool { get }
}

extension ObjectStore {
    public var chunkCipher: ConvergentCipher? { nil }

    @discardableResult
    public func put(_ key: String, _ data: [UInt8]) throws(ObjectStoreError) -> String {
        try put(key, data, condition: .none)
    }

    public func putAddressed(_ key: String, _ pieces: [HashedBytes]) throws(ObjectStoreError) {
        try put(key, HashedBytes.concatenated(pieces), condition: .none)
    }

    public func get(_ key: String, range: Range<UInt64>, parts lengths: [Int]) throws(ObjectStoreError) -> [[UInt8]] {
        try get(key, range: range).cut(into: lengths)
    }

    /// Stores chunk `bytes` (its plaintext: stored as it is) under its content address
    /// `hash.objectKey`.
    public func putChunk(_ hash: ChunkHash, _ bytes: [UInt8]) throws(ObjectStoreError) {
        try putChunk(hash, HashedBytes(bytes, sha256: hash))
    }

    /// Stores chunk `hash` as `stored`, its stored form (`ChunkTransform`: compressed, or the
    /// plaintext itself), under its content address `hash.objectKey`.
    public func putChunk(_ hash: ChunkHash, _ stored: HashedBytes) throws(ObjectStoreError) {
        try putAddressed(hash.objectKey, [stored])
    }

    /// Stores a pack — `members` (chunks' stored forms) concatenated, see `ChunkLocation.packed`
    /// — under the key of its name, `ChunkHash.packName(members' hashes).packKey`. Returns the name.
    @discardableResult
    public func putPack(_ members: [HashedBytes]) throws(ObjectStoreError) -> ChunkHash {
        let name = ChunkHash.packName(members.map(\.identity))
        try putAddressed(name.packKey, members)
        return name
    }
}

/// Bytes to store, with what their caller knows of them: their SHA-256 when it has it (a chunk
/// stored raw: its name), and an identity for naming a pack they go into.
public struct HashedBytes: Sendable {
    public var bytes: [UInt8]
    /// Their SHA-256, if the caller computed it; otherwise a store that signs requests by it
    /// (S3's single PUTs and streaming signatures) computes it (`sha256`). Packs sent with a
    /// signed CRC-32C (the default) never need it.
    public var knownSHA256: ChunkHash?
    /// Stands for the bytes in a pack's name (`ChunkHash.packName`): equal for equal bytes and,
    /// but with negligible probability, different for different ones — their SHA-256, or for a
    /// sealed chunk an identity that costs no pass over them (`EncodedChunk.identity`).
    public var identity: ChunkHash

    public init(_ bytes: [UInt8], sha256: ChunkHash) {
        self.bytes = bytes
        knownSHA256 = sha256
        identity = sha256
    }

    /// Bytes whose SHA-256 is not known; `identity` as `HashedBytes.identity` says (for a
    /// chunk put as its own object, which no pack name covers, its name will do).
    public init(_ bytes: [UInt8], identity: ChunkHash) {
        self.bytes = bytes
        knownSHA256 = nil
        self.identity = identity
    }

    /// Their SHA-256: the known one, or computed now.
    public var sha256: ChunkHash { knownSHA256 ?? ChunkHash.of(bytes) }

    /// The pieces' bytes one after the other (no copy for a single piece).
    public static func concatenated(_ pieces: [HashedBytes]) -> [UInt8] {
        if pieces.count == 1 { return pieces[0].bytes }
        var all: [UInt8] = []
        all.reserveCapacity(pieces.reduce(0) { $0 + $1.bytes.count })
        for piece in pieces { all += piece.bytes }
        return all
    }
}

extension EncodedChunk {
    /// A chunk's stored form as `putChunk` and `putPack` take it.
    public var payload: HashedBytes {
        guard let sha256 else { return HashedBytes(bytes, identity: identity) }
        return HashedBytes(bytes, sha256: sha256)
    }
}

/// A precondition on a PUT, as S3's conditional writes express them.
public enum PutCondition: Sendable, Equatable {
    case none
    /// `If-None-Match: *` — only if no object exists under the key.
    case ifNoneMatch
    /// `If-Match: <etag>` — only if the current object has this ETag.
    case ifMatch(String)
}

public struct ObjectInfo: Sendable, Equatable {
    public var key: String
    public var size: UInt64
    public var etag: String
    /// When the object was last written (S3's LastModified, a file's mtime). `list` sets it;
    /// `head` may leave it nil. The garbage collector spares objects younger than its grace
    /// period by it — on S3 it is the server's clock, so hosts need roughly synchronised clocks.
    public var lastModified: Timestamp?
    public init(key: String, size: UInt64, etag: String, lastModified: Timestamp? = nil) {
        self.key = key; self.size = size; self.etag = etag; self.lastModified = lastModified
    }
}

/// Errors of the object store layer. Messages are one line and never contain a secret.
public enum ObjectStoreError: Error, Equatable, Sendable, CustomStringConvertible {
    case notFound(key: String)
    case preconditionFailed(key: String)
    case noSuchBucket(bucket: String)
    case accessDenied(String)
    /// The credentials were rejected (bad signature or unknown key); names where they came from.
    case badCredentials(String)
    case unreachable(endpoint: String, reason: String)
    case invalidConfiguration(String)
    /// Any other failure that retries did not cure.
    case failed(String)

    public var description: String {
        switch self {
        case .notFound(let key): "object not found: \(key)"
        case .preconditionFailed(let key): "precondition failed for \(key) (changed concurrently)"
        case .noSuchBucket(let bucket): "bucket \"\(bucket)\" does not exist"
        case .accessDenied(let why): "access denied: \(why)"
        case .badCredentials(let why): "credentials rejected: \(why)"
        case .unreachable(let endpoint, let reason): "cannot reach \(endpoint): \(reason)"
        case .invalidConfiguration(let why): why
        case .failed(let why): why
        }
    }
}

extension [UInt8] {
    /// These bytes cut into consecutive parts of `lengths` (the last ones short or missing if
    /// the bytes end early), as `get(_:range:parts:)` returns them; one part that is all of
    /// them is not copied.
    func cut(into lengths: [Int]) -> [[UInt8]] {
        if lengths.count == 1, lengths[0] >= count { return [self] }
        var parts: [[UInt8]] = []
        var start = 0
        for length in lengths where start < count {
            let end = Swift.min(start + length, count)
            parts.append(Array(self[start..<end]))
            start = end
        }
        return parts
    }
}
