import MossaicCore
import MossaicMeta
import Synchronization

/// A directory listing taken at opendir (and again at a rewind to offset 0), so that offsets
/// stay stable while the directory changes underneath a reader.
final class DirectoryListing: Sendable {
    struct Entry: Sendable {
        var name: [UInt8]
        var attributes: FileAttributes
    }
    let entries: Mutex<[Entry]>
    init(_ entries: [Entry]) { self.entries = Mutex(entries) }
}

/// What a handle number the kernel holds refers to.
enum Handle: Sendable {
    case file(OpenFile, writable: Bool)
    case directory(DirectoryListing)
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
