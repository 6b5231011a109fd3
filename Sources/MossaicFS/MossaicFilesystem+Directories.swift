import MossaicCore
import MossaicMeta

/// opendir/readdir/releasedir over a listing taken at open.
extension MossaicFilesystem {
    /// One entry of a directory read: `.`, `..`, then the entries in name order. `nextOffset`
    /// is what the kernel passes back to continue after this entry.
    public struct ListingEntry: Sendable {
        public var name: [UInt8]
        public var attributes: FileAttributes
        public var nextOffset: UInt64
        /// `.` and `..` are not looked up: readdirplus must not count a reference for them.
        public var isDotOrDotDot: Bool
    }

    public func opendir(_ ino: InodeNumber, caller: Caller = .root) throws(FSError) -> HandleID {
        if permissions.enabled { try permissions.check(try getattr(ino), caller, .read) }
        let handle = handles.insert(.directory(DirectoryListing(try listing(ino))))
        accessed(ino)
        return handle
    }

    private func listing(_ ino: InodeNumber) throws(FSError) -> [DirectoryListing.Entry] {
        let (parent, entries) = try meta { () throws(MetaError) in try metadata.readDirectory(ino) }
        let me = try getattr(ino)
        let up = (try? getattr(parent)) ?? me
        var out: [DirectoryListing.Entry] = [.init(name: [0x2e], attributes: me), .init(name: [0x2e, 0x2e], attributes: up)]
        out.reserveCapacity(entries.count + 2)
        for e in entries { out.append(.init(name: e.name, attributes: e.attributes)) }
        return out
    }

    /// Entries from `offset` on. Offset 0 (a new read or a rewinddir) takes a fresh listing.
    public func readdir(_ ino: InodeNumber, handle: HandleID, offset: UInt64) throws(FSError) -> [ListingEntry] {
        guard case .directory(let listing) = try handles.get(handle) else { throw .badHandle }
        if offset == 0 {
            let fresh = try self.listing(ino)
            listing.entries.withLock { $0 = fresh }
        }
        return listing.entries.withLock { entries in
            guard offset < UInt64(entries.count) else { return [] }
            var out: [ListingEntry] = []
            out.reserveCapacity(entries.count - Int(offset))
            for i in Int(offset)..<entries.count {
                var attrs = entries[i].attributes
                overlay(&attrs)
                out.append(ListingEntry(name: entries[i].name, attributes: attrs, nextOffset: UInt64(i + 1), isDotOrDotDot: i < 2))
            }
            return out
        }
    }

    public func releasedir(_ handle: HandleID) {
        _ = handles.remove(handle)
    }
}
