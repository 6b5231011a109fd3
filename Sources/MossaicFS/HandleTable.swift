import MossaicCore
import MossaicMeta
import Synchronization

/// Where an open directory's reader is: the names behind the offsets handed to the kernel.
///
/// Offsets are positions in the listing (1 `.`, 2 `..`, then one per name), and a page is read
/// after a name (keyset, `MetaStore.readDirectory(_:after:limit:)`), never after a count of
/// rows. The kernel continues from the offset of an entry of its last reply (the last one its
/// reader took), so the names of the last reply are kept, packed in one buffer; a seekdir to
/// an older offset resumes from the nearest earlier mark — a name at a known offset, one per
/// reply, at most `maxMarks` of them, thinned out evenly when more — reading past the entries
/// in between in pages, as the directory has them then. Memory is one reply's names plus at
/// most `maxMarks` names, whatever the size of the directory, and all of it goes at releasedir.
final class DirectoryCursor: Sendable {
    static let maxMarks = 64

    struct State {
        /// Offset of the last reply's first name; the i-th name is at `replyFirst + i`.
        var replyFirst: UInt64 = 0
        /// The last reply's names, one after the other; `replyEnds[i]` is where the i-th ends.
        var replyNames: [UInt8] = []
        var replyEnds: [UInt32] = []
        /// Names at known offsets before the last reply, in offset order.
        var marks: [(offset: UInt64, name: [UInt8])] = []

        var replyCount: Int { replyEnds.count }

        /// The name at `offset` if the last reply had it.
        func replyName(at offset: UInt64) -> [UInt8]? {
            guard offset >= replyFirst, offset - replyFirst < UInt64(replyEnds.count) else { return nil }
            let i = Int(offset - replyFirst)
            let start = i == 0 ? 0 : Int(replyEnds[i - 1])
            return Array(replyNames[start..<Int(replyEnds[i])])
        }

        /// Where to resume for `offset` (past the first names' offset): the name at the
        /// greatest known offset at or before it (nil: the start), and that offset. A resume
        /// before the last reply forgets the marks after it: what follows is numbered anew.
        mutating func resumePoint(for offset: UInt64) -> (name: [UInt8]?, offset: UInt64) {
            if let name = replyName(at: offset) { return (name, offset) }
            if let last = replyEnds.indices.last, replyFirst + UInt64(last) < offset {
                return (replyName(at: replyFirst + UInt64(last)), replyFirst + UInt64(last))
            }
            marks.removeAll { $0.offset > offset }
            guard let mark = marks.last else { return (nil, MossaicFilesystem.firstNameOffset) }
            return (mark.name, mark.offset)
        }

        /// Records the names of a reply, the first at `first`, and keeps a mark where it
        /// resumed (`resumed`: the name before its first, at `first - 1`).
        mutating func record(first: UInt64, names: [[UInt8]], resumed: (name: [UInt8], offset: UInt64)?) {
            if let resumed { mark(resumed.offset, resumed.name) }
            guard !names.isEmpty else { return }  // the end: the last reply stays what it was
            replyFirst = first
            replyNames.removeAll(keepingCapacity: true)
            replyEnds.removeAll(keepingCapacity: true)
            for name in names {
                replyNames.append(contentsOf: name)
                replyEnds.append(UInt32(replyNames.count))
            }
        }

        private mutating func mark(_ offset: UInt64, _ name: [UInt8]) {
            if let last = marks.last, last.offset >= offset { return }
            marks.append((offset, name))
            if marks.count > DirectoryCursor.maxMarks {
                // Every other one goes, the newest stays: the marks stay spread over the listing.
                marks = marks.enumerated().filter { ($0.offset + marks.count) % 2 == 1 }.map(\.element)
            }
        }
    }
    let state = Mutex(State())
}

/// What a handle number the kernel holds refers to.
enum Handle: Sendable {
    case file(OpenFile, writable: Bool)
    case directory(DirectoryCursor)
}

/// File and directory handles by number. Numbers are never reused within a mount.
final class HandleTable: Sendable {
    private struct State {
        var next: UInt64 = 1
        var handles: [UInt64: Handle] = [:]
    }
    private let state = Mutex(State())

    func insert(_ handle: Handle) -> HandleID {
        state.withLock { s in
            let id = s.next
            s.next += 1
            s.handles[id] = handle
            return HandleID(rawValue: id)
        }
    }

    func get(_ id: HandleID) throws(FSError) -> Handle {
        guard let h = state.withLock({ $0.handles[id.rawValue] }) else { throw .badHandle }
        return h
    }

    func remove(_ id: HandleID) -> Handle? {
        state.withLock { $0.handles.removeValue(forKey: id.rawValue) }
    }

    var count: Int { state.withLock { $0.handles.count } }
}
