import MossaicCore
import Synchronization

/// A regular file that has at least one open handle: what all its handles share — the write
/// side (`FileWriter`: dirty pages, streaming, commits' preparation) and the read side
/// (`FileReader`: chunk map, read-ahead) — and how many handles there are. Dropped with the
/// last handle.
final class OpenFile: Sendable {
    private struct State {
        var handles = 0
        /// The access time was considered at the first read through this open file.
        var accessTimeConsidered = false
        /// The file's data version at the latest open.
        var version: DataVersion
    }

    let ino: InodeNumber
    /// This opening of the file on this mount, as the metadata engine records it
    /// (`MetaStore.opened`/`closed`).
    let token: UInt64
    let writer: FileWriter
    let reader: FileReader
    private let state: Mutex<State>

    init(ino: InodeNumber, version: DataVersion, memory: MemoryLimiter, token: UInt64 = 0) {
        self.ino = ino
        self.token = token
        state = Mutex(State(version: version))
        writer = FileWriter(size: version.size, memory: memory)
        reader = FileReader(ino: ino)
    }

    /// One more handle, opened when the file's data was `version`.
    func opened(_ version: DataVersion) {
        let changed = state.withLock { s in
            s.handles += 1
            defer { s.version = version }
            return s.version != version
        }
        guard changed else { return }
        // Close-to-open across hosts: another host committed the file since this one opened
        // it (or this one did): the size it keeps and its chunk map are of the old data.
        writer.adoptCommitted(size: version.size)
        reader.invalidate()
    }

    /// One handle fewer; returns how many are left.
    func closed() -> Int {
        state.withLock { s in
            s.handles -= 1
            return s.handles
        }
    }

    /// True exactly once per open file: the first read decides about the access time.
    func firstRead() -> Bool {
        state.withLock { s in
            defer { s.accessTimeConsidered = true }
            return !s.accessTimeConsidered
        }
    }
}
