/// Where a stored chunk's bytes are in the object store.
///
/// A chunk is either its own object, `chunks/xx/<hash>`, or a byte range of a pack object,
/// `packs/xx/<name>` (`ChunkHash.packName`): the chunks one commit (or one run of a sequential
/// writer) stored together, concatenated. Packing is a matter of request count, not of identity: a
/// chunk is still named, deduplicated and verified by its own SHA-256 wherever it lives, and
/// every reader re-hashes exactly the chunk's bytes. S3-style stores charge (in latency and
/// server CPU) per request, so several chunks in one PUT and one GET are what large files need.
public enum ChunkLocation: Sendable, Hashable {
    /// Its own object (`ChunkHash.objectKey`). Also the answer for inline and staged chunks,
    /// whose bytes are not found through a location.
    case object
    /// `length` bytes at `offset` of the pack `pack` (`ChunkHash.packKey`).
    case packed(pack: ChunkHash, offset: UInt64, length: Int)

    /// The object that holds chunk `hash`'s bytes.
    public func key(of hash: ChunkHash) -> String {
        switch self {
        case .object: hash.objectKey
        case .packed(let pack, _, _): pack.packKey
        }
    }

    /// Whether `next` lies right after this chunk in the same pack: the two are one ranged GET.
    /// `overhead`: bytes a chunk has in the store beyond its length (`ChunkSealing`).
    public func isFollowed(by next: ChunkLocation, overhead: Int = 0) -> Bool {
        guard case .packed(let pack, let offset, let length) = self,
              case .packed(let nextPack, let nextOffset, _) = next else { return false }
        return pack == nextPack && nextOffset == offset + UInt64(length + overhead)
    }

    /// The pack, if the chunk is in one.
    public var pack: ChunkHash? {
        if case .packed(let pack, _, _) = self { return pack }
        return nil
    }

    /// Bytes `range` of the chunk as a range of the object that holds it.
    public func objectRange(_ range: Range<Int>) -> Range<UInt64> {
        switch self {
        case .object: UInt64(range.lowerBound)..<UInt64(range.upperBound)
        case .packed(_, let offset, _): (offset + UInt64(range.lowerBound))..<(offset + UInt64(range.upperBound))
        }
    }
}

extension ChunkHash {
    /// The name of the pack holding `members` (chunk hashes, in pack order): the SHA-256 of
    /// "mossaicfs-pack:" followed by the members' 32-byte hashes. Like a hash of the pack's bytes
    /// it is fixed by the content, but it costs 32 bytes of hashing per chunk instead of a second
    /// pass over megabytes (the members were hashed already, for their own names). Packs written
    /// before this rule are named by the SHA-256 of their bytes; both are just keys: a chunk row
    /// records its pack's name, and readers verify each chunk by its own hash, never a pack's.
    public static func packName(_ members: [ChunkHash]) -> ChunkHash {
        var input = Array("mossaicfs-pack:".utf8)
        input.reserveCapacity(input.count + 32 * members.count)
        for member in members { input += member.bytes }
        return of(input)
    }

    /// The key of the pack with this name: `packs/<first two hex digits>/<hex>`.
    public var packKey: String {
        let h = hex
        return "packs/\(h.prefix(2))/\(h)"
    }

    /// The chunk object (`objectKey`) or pack (`packKey`) a listed key names, and which of the
    /// two it is; nil for any other key (not ours to judge, e.g. for gc and fsck).
    public static func dataObject(key: String) -> (hash: ChunkHash, isPack: Bool)? {
        guard let hash = ChunkHash(hex: key.split(separator: "/").last ?? "") else { return nil }
        if key == hash.objectKey { return (hash, false) }
        if key == hash.packKey { return (hash, true) }
        return nil
    }
}
