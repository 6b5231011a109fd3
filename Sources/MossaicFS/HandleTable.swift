import MossaicCore
import MossaicMeta
import Synchronization

/// Where an open directory's reader is: the names behind the offsets last handed to the kernel.
///
/// Offsets are positions in the listing (1 `.`, 2 `..`, then one per name), and a page is read
/// after a name (keyset, `MetaStore.readDirectory(_:after:limit:)`), never after a count of
/// rows. The kernel continues from the offset of an entry of its last reply (the last one its
/// reader took), so the names of the last reply are kept, and the last name of every reply
/// before it; a seekdir to an older offset resumes from that reply's last name, skipping the
/// entries in between as the directory has them then. Memory is one reply's names plus one
/// name per reply, not the directory.
final class DirectoryCursor: Sendable {
    struct State {
        /// Offset → name for the entries of the last reply.
        var lastReply: [UInt64: [UInt8]] = [:]
        /// The last offset and name of each earlier reply, in offset order.
        var replyEnds: [(offset: UInt64, name: [UInt8])] = []
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
