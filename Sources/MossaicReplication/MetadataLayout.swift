import MossaicCore

/// Where the metadata snapshots and the writer lease live in the object store (under `meta/`,
/// next to `mossaicfs.json` and `chunks/`):
///
///     meta/HEAD                    pointer to the newest snapshot (JSON `HeadPointer`), only
///                                  ever replaced by a conditional PUT (If-Match its ETag, or
///                                  If-None-Match for the first one)
///     meta/snapshots/<id>.json     one manifest per snapshot (`SnapshotManifest`)
///     meta/chunks/ab/<sha256>      1 MiB pieces of snapshot database files, named by the
///                                  SHA-256 of their bytes
///     meta/lease                   the writer lease (`LeaseRecord`)
///
/// Database pieces deliberately do not share `chunks/` with file data: the chunk garbage
/// collector lists `chunks/` and keeps what file metadata references, and must never see (or
/// delete) a piece of a snapshot; snapshot pruning deletes `meta/chunks/` objects no retained
/// manifest lists, and never touches `chunks/`.
public enum MetadataLayout {
    public static let head = "meta/HEAD"
    public static let lease = "meta/lease"
    public static let snapshotsPrefix = "meta/snapshots/"
    public static let chunksPrefix = "meta/chunks/"

    public static func manifest(_ id: String) -> String { snapshotsPrefix + id + ".json" }

    public static func chunk(_ hash: ChunkHash) -> String {
        let hex = hash.hex
        return chunksPrefix + hex.prefix(2) + "/" + hex
    }

    /// The snapshot id a manifest key names, or nil for anything else under the prefix.
    static func snapshotID(manifestKey key: String) -> String? {
        guard key.hasPrefix(snapshotsPrefix), key.hasSuffix(".json") else { return nil }
        let id = String(key.dropFirst(snapshotsPrefix.count).dropLast(".json".count))
        return SnapshotID.generation(of: id) == nil ? nil : id
    }

    /// The hash a meta chunk key names, or nil.
    public static func chunkHash(key: String) -> ChunkHash? {
        guard key.hasPrefix(chunksPrefix), let slash = key.lastIndex(of: "/") else { return nil }
        return ChunkHash(hex: key[key.index(after: slash)...])
    }
}

/// Snapshot ids: `GGGGGGGGGG-rrrrrrrr`, the generation zero-padded to 10 digits (so keys list
/// in generation order) and 8 random hex digits (so two writers that both believed they held
/// the lease never write the same manifest key; the HEAD swap decides which one counts).
/// Where a user names a snapshot, the bare generation number (`42`) is accepted too.
public enum SnapshotID {
    public static func make(generation: Int64) -> String {
        let digits = String(generation)
        let padded = String(repeating: "0", count: max(0, 10 - digits.count)) + digits
        let random = String(UInt32.random(in: 0...UInt32.max), radix: 16)
        return padded + "-" + String(repeating: "0", count: 8 - random.count) + random
    }

    /// The generation an id carries, or nil if it is not an id.
    public static func generation(of id: String) -> Int64? {
        let parts = id.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 2, parts[0].count >= 10, parts[1].count == 8,
              parts[0].allSatisfy(\.isNumber), parts[1].allSatisfy(\.isHexDigit),
              let g = Int64(parts[0]) else { return nil }
        return g
    }
}
