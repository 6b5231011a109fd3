import MossaicCore
import MossaicMeta

/// How long the kernel may keep names, when mossaicfs checks permissions itself.
///
/// A name the kernel has cached is walked through without a lookup, and so without lookup's
/// search-permission check of its directory — for every caller, not only the one it was looked
/// up for. Names are therefore cached only in directories everyone may search (all three
/// execute bits; root may search any directory); in the others every walk asks again. Caching
/// nothing at all would be correct too, but makes each path walk a round trip per component
/// (measured: stat of a cached 5-deep path some 100 times slower).
extension MossaicFilesystem {
    /// Whether the kernel may cache names in directory `dir` for every caller.
    public func namesCacheable(in dir: InodeNumber) -> Bool {
        guard permissions.enabled else { return true }
        guard let attrs = try? getattr(dir) else { return false }
        return Self.everyoneSearches(attrs)
    }

    static func everyoneSearches(_ attrs: FileAttributes) -> Bool { attrs.permissions & 0o111 == 0o111 }

    /// Names the kernel may have cached and must drop — once it has the reply to the request
    /// that made them stale, not before: the kernel locks `directory` to drop them, as it does
    /// while that request (a chmod of it, a rename into it) waits for its reply.
    public struct StaleNames: Sendable {
        public var directory: InodeNumber
        public var names: [[UInt8]]
    }

    /// Names in `dir` the kernel may hold (their inodes are referenced), after a chmod of `dir`
    /// from `before`: those it cached while everyone could search it, when that ended. Empty
    /// when nothing needs forgetting.
    func namesToForget(in dir: InodeNumber, before: FileAttributes) -> StaleNames {
        let none = StaleNames(directory: dir, names: [])
        guard permissions.enabled, before.kind == .directory, Self.everyoneSearches(before), !namesCacheable(in: dir) else { return none }
        guard let (_, entries) = try? metadata.readDirectory(dir) else { return none }
        return StaleNames(directory: dir, names: entries.filter { inodes.isReferenced($0.attributes.ino) }.map(\.name))
    }

    /// A name renamed into `dir`: the kernel moves its cached name along, with the lifetime it
    /// had where it was, so it must go if `dir` is not one where names may be cached.
    func renamedNameToForget(in dir: InodeNumber, name: [UInt8]) -> StaleNames {
        StaleNames(directory: dir, names: namesCacheable(in: dir) ? [] : [name])
    }
}
