/// Where a stored chunk's bytes are in the object store.
///
/// A chunk is either its own object, `chunks/xx/<hash>`, or a byte range of a pack object,
/// `packs/xx/<name>` (`ChunkHash.packName`): the chunks one commit (or one run of a sequential
/// writer) stored together, concatenated. Packing is a matter of request count, not of identity: a
/// chunk is still named, deduplicated and verified by its own SHA-256 wherever it lives, and
/// every reader re-hashes exactly the chunk's bytes — after undoing its `codec`: a compressed
/// chunk is stored (and packed) as its zstd frame, and a pack range's `length` counts the
/// frame's bytes. S3-style stores charge (in latency and server CPU) per request, so several
/// chunks in one PUT and one GET are what large files need.
public struct ChunkLocation: Sendable, Hashable {
    /// The object that holds the stored bytes.
    public enum Placement: Sendable, Hashable {
        /// Its own object (`ChunkHash.objectKey`). Also the answer for inline and staged
        /// chunks, whose bytes are not found through a location.
        case object
        /// `length` stored bytes at `offset` of the pack `pack` (`ChunkHash.packKey`).
        case packed(pack: ChunkHash, offset: UInt64, length: Int)
    }

    public var placement: Placement
    /// How the stored bytes were made from the chunk (`ChunkTransform`): needed to read them.
    public var codec: ChunkCodec

    public init(_ placement: Placement, codec: ChunkCodec = .none) {
        self.placement = placement; self.codec = codec
    }

    /// Its own object, stored as it is.
    public static let object = ChunkLocation(.object)

    /// `length` stored bytes at `offset` of pack `pack`, in form `codec`.
    public static func packed(pack: ChunkHash, offset: UInt64, length: Int, codec: ChunkCodec = .none) -> ChunkLocation {
        ChunkLocation(.packed(pack: pack, offset: offset, length: length), codec: codec)
    }

    /// The object that holds chunk `hash`'s bytes.
    public func key(of hash: ChunkHash) -> String {
        switch placement {
        case .object: hash.objectKey
        case .packed(let pack, _, _): pack.packKey
        }
    }

    /// Whether `next` lies right after this chunk in the same pack: the two are one ranged GET.
    public func isFollowed(by next: ChunkLocation) -> Bool {
        guard case .packed(let pack, let offset, let length) = placement,
              case .packed(let nextPack, let nextOffset, _) = next.placement else { return false }
        return pack == nextPack && nextOffset == offset + UInt64(length)
    }

    /// The pack, if the chunk is in one.
    public var pack: ChunkHash? {
        if case .packed(let pack, _, _) = placement { return pack }
        return nil
    }

    /// Bytes `range` of the stored chunk as a range of the object that holds it.
    public func objectRange(_ range: Range<Int>) -> Range<UInt64> {
        switch placement {
        case .object: UInt64(range.lowerBound)..<UInt64(range.upperBound)
        case .packed(_, let offset, _): (offset + UInt64(range.lowerBound))..<(offset + UInt64(range.upperBound))
        }
    }
}

extension ChunkHash {
    /// The name of the pack holding `members` (the SHA-256 of each member's stored bytes, in pack
    /// order — for a chunk stored as it is, its name): the SHA-256 of "mossaicfs-pack:" followed
    /// by those 32-byte hashes. Named by the stored bytes, a pack name never stands for two
    /// different contents, whatever compression (or a later zstd) made of the same chunks. Like a hash of the pack's bytes
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
