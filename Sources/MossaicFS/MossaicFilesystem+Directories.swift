import MossaicCore
import MossaicMeta

/// opendir/readdir/releasedir, a page of names per reply (`DirectoryCursor`).
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
        let attrs = try getattr(ino)
        guard attrs.kind == .directory else { throw .notDirectory }
        if permissions.enabled { try permissions.check(attrs, caller, .read) }
        let handle = handles.insert(.directory(DirectoryCursor()))
        accessed(ino)
        return handle
    }

    /// Offsets of `.` and `..`; names follow from `firstNameOffset` + 1 on.
    static let firstNameOffset: UInt64 = 2
    /// Names read at a time when a seekdir resumes past entries (kept in memory only while read).
    static let skipPage = 1024

    /// At most `limit` entries after `offset` (0: from the start, `.` and `..` first), each one
    /// indexed read of a page of names: what one reply to the kernel holds, not the directory.
    public func readdir(_ ino: InodeNumber, handle: HandleID, offset: UInt64, limit: Int) throws(FSError) -> [ListingEntry] {
        guard case .directory(let cursor) = try handles.get(handle) else { throw .badHandle }
        guard limit > 0 else { return [] }
        var out: [ListingEntry] = []
        if offset < Self.firstNameOffset {
            let me = try getattr(ino)
            if offset == 0 { out.append(ListingEntry(name: [0x2e], attributes: me, nextOffset: 1, isDotOrDotDot: true)) }
            let up = (try? meta { () throws(MetaError) in try metadata.parentDirectory(of: ino) }) ?? me
            out.append(ListingEntry(name: [0x2e, 0x2e], attributes: up, nextOffset: 2, isDotOrDotDot: true))
        }
        // Where the names resume: after a known name, then past `skip` more (a seekdir).
        let (known, knownOffset) = cursor.state.withLock { s -> ([UInt8]?, UInt64) in
            if offset <= Self.firstNameOffset {
                s = DirectoryCursor.State()  // a new read or a rewinddir
                return (nil, Self.firstNameOffset)
            }
            return s.resumePoint(for: offset)
        }
        var after = known
        var base = knownOffset
        // Past the entries between the known name and the offset asked for, a page at a time.
        while base < offset {
            let page = try meta { () throws(MetaError) in
                try metadata.readDirectory(ino, after: after, limit: Int(min(offset - base, UInt64(Self.skipPage))))
            }
            guard let last = page.last else { return out }  // the directory ends before it
            after = last.name
            base += UInt64(page.count)
        }
        let wanted = limit - out.count
        let names = wanted > 0 ? try meta { () throws(MetaError) in try metadata.readDirectory(ino, after: after, limit: wanted) } : []
        var next = base
        for entry in names {
            next += 1
            var attrs = entry.attributes
            overlay(&attrs)
            out.append(ListingEntry(name: entry.name, attributes: attrs, nextOffset: next, isDotOrDotDot: false))
        }
        cursor.state.withLock { s in
            s.record(first: base + 1, names: names.map(\.name), resumed: after.map { ($0, base) })
        }
        return out
    }

    public func releasedir(_ handle: HandleID) {
        _ = handles.remove(handle)
    }
}
