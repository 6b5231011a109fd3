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
    }

    let ino: InodeNumber
    let writer: FileWriter
    let reader: FileReader
    private let state = Mutex(State())

    init(ino: InodeNumber, size: UInt64, memory: MemoryLimiter) {
        self.ino = ino
        writer = FileWriter(size: size, memory: memory)
        reader = FileReader(ino: ino)
    }

    /// One more handle.
    func opened() { state.withLock { $0.handles += 1 } }

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
