/// A POSIX ACL in its xattr form (`system.posix_acl_access` / `_default`): version 2, then
/// (tag, perm, id) entries, little-endian, in the kernel's canonical order. The kernel checks
/// and enforces ACLs (`-o acl`); what is left to the filesystem, and done here with the rules of
/// the kernel's posix_acl.c, is keeping the mode and the access ACL in step and inheriting
/// default ACLs.
struct PosixACL: Equatable, Sendable {
    struct Entry: Equatable, Sendable {
        var tag: UInt16
        var perm: UInt16
        var id: UInt32
    }

    static let userObj: UInt16 = 0x01, user: UInt16 = 0x02, groupObj: UInt16 = 0x04
    static let group: UInt16 = 0x08, mask: UInt16 = 0x10, other: UInt16 = 0x20
    static let accessName = Array("system.posix_acl_access".utf8)
    static let defaultName = Array("system.posix_acl_default".utf8)
    private static let version: UInt32 = 2

    var entries: [Entry]

    /// nil if `xattr` is not a well-formed ACL.
    init?(xattr: [UInt8]) {
        guard xattr.count >= 4, (xattr.count - 4) % 8 == 0, Self.read32(xattr, 0) == Self.version else { return nil }
        entries = stride(from: 4, to: xattr.count, by: 8).map { at in
            Entry(tag: Self.read16(xattr, at), perm: Self.read16(xattr, at + 2), id: Self.read32(xattr, at + 4))
        }
        guard entries.contains(where: { $0.tag == Self.userObj }), entries.contains(where: { $0.tag == Self.groupObj }),
              entries.contains(where: { $0.tag == Self.other }) else { return nil }
    }

    var xattr: [UInt8] {
        var out = Self.bytes(Self.version, 4)
        for e in entries { out += Self.bytes(UInt32(e.tag), 2) + Self.bytes(UInt32(e.perm), 2) + Self.bytes(e.id, 4) }
        return out
    }

    /// Named users or groups (and so a mask): the mode cannot say it all (posix_acl_equiv_mode).
    var isMinimal: Bool { !entries.contains { $0.tag == Self.user || $0.tag == Self.group || $0.tag == Self.mask } }

    private var hasMask: Bool { entries.contains { $0.tag == Self.mask } }

    /// Which entry carries each class's bits: the owner's, the group class's (the mask if there
    /// is one) and other's, as shifts into the mode.
    private func shift(of tag: UInt16) -> UInt32? {
        switch tag {
        case Self.userObj: 6
        case Self.mask: 3
        case Self.groupObj: hasMask ? nil : 3
        case Self.other: 0
        default: nil
        }
    }

    /// The rwx bits of the mode the ACL implies.
    var modeBits: UInt32 {
        entries.reduce(0) { bits, e in shift(of: e.tag).map { bits | (UInt32(e.perm) & 7) << $0 } ?? bits }
    }

    /// After a chmod: each class's entry takes the new bits (posix_acl_chmod).
    func withMode(_ permissions: UInt32) -> PosixACL {
        var acl = self
        for i in acl.entries.indices {
            if let s = shift(of: acl.entries[i].tag) { acl.entries[i].perm = UInt16((permissions >> s) & 7) }
        }
        return acl
    }

    /// A new inode's access ACL from its directory's default ACL, and its mode: each class
    /// keeps what both the requested mode and the ACL grant (posix_acl_create_masq). The ACL is
    /// nil when it is minimal: then the mode alone is stored.
    func inherited(requested: UInt32) -> (acl: PosixACL?, permissions: UInt32) {
        var acl = self
        var mode = requested
        for i in acl.entries.indices {
            guard let s = shift(of: acl.entries[i].tag) else { continue }
            acl.entries[i].perm &= UInt16((mode >> s) & 7)
            mode &= ~(0o7 << s) | UInt32(acl.entries[i].perm) << s
        }
        return (acl.isMinimal ? nil : acl, mode)
    }

    private static func read16(_ b: [UInt8], _ at: Int) -> UInt16 { UInt16(b[at]) | UInt16(b[at + 1]) << 8 }
    private static func read32(_ b: [UInt8], _ at: Int) -> UInt32 { UInt32(read16(b, at)) | UInt32(read16(b, at + 2)) << 16 }
    private static func bytes(_ value: UInt32, _ count: Int) -> [UInt8] { (0..<count).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) } }
}
