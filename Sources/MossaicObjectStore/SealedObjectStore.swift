import MossaicCore

/// The store of an encrypted filesystem as everything above it sees it (ARCHITECTURE.md §10):
/// it wraps the real store once the key is proven right (`FilesystemKey.unlock`), and
///
/// - keys content-addressed objects by their enciphered names (`ObjectNaming`), both ways, so
///   chunk rows, packs, sweeps, gc, fsck and snapshot pieces keep speaking of plaintext hashes
///   while the store sees none;
/// - seals every object under `meta/` — snapshot pieces (names, inline data, attributes),
///   manifests, HEAD, the writer lease (host names, pids) — with the metadata key and the
///   object's logical key as associated data, and opens and authenticates it on every read.
///
/// File data (`chunks/`, `packs/`) passes through as it comes: its bytes are sealed per
/// chunk, convergently, by the chunk transform (`ChunkTransform`, with `chunkCipher`) before
/// they reach the store, and opened by their readers, because packs are read by byte ranges
/// that only the chunk rows know. The superblock (`mossaicfs.json`) passes through in the
/// clear: it says how to find and check the key.
///
/// ETags are those of the sealed objects; conditional PUTs compare sealed objects, which is
/// the same test as comparing the plaintext ones (each PUT seals afresh). Sizes (head, list)
/// of metadata objects are their plaintext's; of file data, what the store holds.
public final class SealedObjectStore: ObjectStore {
    public let base: any ObjectStore
    public let cipher: ConvergentCipher
    public let naming: ObjectNaming

    public init(_ base: any ObjectStore, cipher: ConvergentCipher) {
        self.base = base
        self.cipher = cipher
        naming = ObjectNaming(cipher: cipher)
    }

    public var displayName: String { base.displayName }
    public var isLocal: Bool { base.isLocal }
    public var chunkCipher: ConvergentCipher? { cipher }

    static let metadataPrefix = "meta/"

    private static func isSealedBlob(_ key: String) -> Bool { key.hasPrefix(metadataPrefix) }

    private func open(_ key: String, _ sealed: [UInt8]) throws(ObjectStoreError) -> [UInt8] {
        do { return try cipher.openBlob(sealed, context: key) } catch {
            throw .failed("\(base.displayName)/\(naming.storedKey(key)): \(error)")
        }
    }

    @discardableResult
    public func put(_ key: String, _ data: [UInt8], condition: PutCondition) throws(ObjectStoreError) -> String {
        let bytes = Self.isSealedBlob(key) ? cipher.sealBlob(data, context: key) : data
        return try base.put(naming.storedKey(key), bytes, condition: condition)
    }

    public func putAddressed(_ key: String, _ pieces: [HashedBytes]) throws(ObjectStoreError) {
        guard !Self.isSealedBlob(key) else {
            try put(key, HashedBytes.concatenated(pieces), condition: .none)
            return
        }
        try base.putAddressed(naming.storedKey(key), pieces)
    }

    public func get(_ key: String) throws(ObjectStoreError) -> [UInt8] {
        let bytes = try base.get(naming.storedKey(key))
        return Self.isSealedBlob(key) ? try open(key, bytes) : bytes
    }

    public func get(_ key: String, range: Range<UInt64>) throws(ObjectStoreError) -> [UInt8] {
        guard Self.isSealedBlob(key) else { return try base.get(naming.storedKey(key), range: range) }
        // A sealed blob authenticates only as a whole; nothing reads metadata by ranges today.
        let whole = try get(key)
        let lower = Int(min(range.lowerBound, UInt64(whole.count))), upper = Int(min(range.upperBound, UInt64(whole.count)))
        return Array(whole[lower..<upper])
    }

    public func get(_ key: String, range: Range<UInt64>, parts lengths: [Int]) throws(ObjectStoreError) -> [[UInt8]] {
        guard Self.isSealedBlob(key) else { return try base.get(naming.storedKey(key), range: range, parts: lengths) }
        return try get(key, range: range).cut(into: lengths)
    }

    public func head(_ key: String) throws(ObjectStoreError) -> ObjectInfo? {
        guard let info = try base.head(naming.storedKey(key)) else { return nil }
        return logical(info)
    }

    /// `info` of a stored object as the layers above know it: logical key, plaintext size.
    private func logical(_ stored: ObjectInfo) -> ObjectInfo {
        var info = stored
        info.key = naming.logicalKey(stored.key)
        if Self.isSealedBlob(info.key) { info.size = stored.size - min(stored.size, UInt64(ConvergentCipher.blobOverhead)) }
        return info
    }

    public func delete(_ key: String) throws(ObjectStoreError) {
        try base.delete(naming.storedKey(key))
    }

    public func list(prefix: String) throws(ObjectStoreError) -> [ObjectInfo] {
        let listed = try base.list(prefix: naming.enclosingSpace(ofPrefix: prefix) ?? prefix)
        return listed.map(logical).filter { $0.key.hasPrefix(prefix) }.sorted { $0.key < $1.key }
    }
}
