/// How the names of content-addressed objects become keys in the store. Everything above the
/// store — chunk rows, packs, sweeps, gc, fsck, snapshot pieces — speaks of *logical* keys,
/// `chunks/xx/<sha256>`, `packs/xx/<name>`, `meta/chunks/xx/<sha256>`; an encrypted
/// filesystem stores each under its name enciphered (`ConvergentCipher.encipherName`), so the
/// store sees no plaintext hash, and a listed key maps back to its logical key.
///
/// `plain` (no encryption) is the identity: existing filesystems keep their keys. Any other
/// key (the superblock, manifests, HEAD, the lease, a key that is not of the form
/// `<space>/<first two hex digits of name>/<name>`) is left as it is, both ways.
public struct ObjectNaming: Sendable {
    /// Spaces of content-addressed objects: file data, packs, snapshot database pieces.
    public static let addressedSpaces = ["chunks/", "packs/", "meta/chunks/"]

    private let cipher: ConvergentCipher?

    public static let plain = ObjectNaming(cipher: nil)

    public init(cipher: ConvergentCipher?) {
        self.cipher = cipher
    }

    public var isPlain: Bool { cipher == nil }

    /// The key the store holds the object of logical key `key` under.
    public func storedKey(_ key: String) -> String {
        guard let cipher, let (space, name) = Self.split(key) else { return key }
        return Self.join(space, cipher.encipherName(name))
    }

    /// The logical key of stored key `key` (the inverse of `storedKey`).
    public func logicalKey(_ key: String) -> String {
        guard let cipher, let (space, name) = Self.split(key) else { return key }
        return Self.join(space, cipher.decipherName(name))
    }

    /// The space of `prefix` when it lies strictly inside one (`chunks/ab`): enciphered keys
    /// do not keep a logical prefix's fan-out, so a listing must cover the whole space.
    public func enclosingSpace(ofPrefix prefix: String) -> String? {
        guard cipher != nil else { return nil }
        // "meta/chunks/" before "chunks/" is not needed: hasPrefix is anchored at the start.
        return Self.addressedSpaces.first { prefix.hasPrefix($0) && prefix != $0 }
    }

    private static func split(_ key: String) -> (space: String, name: ChunkHash)? {
        guard let space = addressedSpaces.first(where: { key.hasPrefix($0) }) else { return nil }
        let rest = key.utf8.dropFirst(space.utf8.count)
        guard rest.count == 67, let name = ChunkHash(hex: Substring(rest.dropFirst(3))) else { return nil }
        guard join(space, name) == key else { return nil }
        return (space, name)
    }

    private static func join(_ space: String, _ name: ChunkHash) -> String {
        let hex = name.hex
        return space + hex.prefix(2) + "/" + hex
    }
}
