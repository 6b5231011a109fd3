import MossaicCore
import Synchronization

/// What a file's data was at an open.
struct DataVersion: Equatable, Sendable {
    var size: UInt64
    var mtime: Timestamp
    var ctime: Timestamp
}

/// The data version each file had at its last open, so that an open of a file unchanged since
/// tells the kernel to keep the pages it cached (keep_cache).
///
/// Bounded, not one entry per inode the kernel holds: the kernel keeps millions of inodes where
/// memory allows (all 2,000,000 that bench/scale.sh creates at N = 10⁶; one entry each would
/// be 32 bytes × 4 Mi dictionary buckets, 128 MiB), while a version dropped too early costs
/// only what an open without keep_cache costs — the kernel rereads that file's pages once. So two generations of
/// at most `capacity / 2` entries: opens record into `recent`; when it is full it becomes
/// `older` and the previous `older` is dropped. A file opened in either generation keeps its
/// version (moved to `recent`), so files opened again and again stay.
final class OpenedVersions: Sendable {
    private struct State {
        var recent: [InodeNumber: DataVersion] = [:]
        var older: [InodeNumber: DataVersion] = [:]
    }
    private let state = Mutex(State())
    let capacity: Int

    /// Default capacity: 2 × 32,768 files, about 2 MiB.
    init(capacity: Int = 65_536) {
        precondition(capacity >= 2, "OpenedVersions holds two generations")
        self.capacity = capacity
    }

    /// Records `version` as `ino`'s at this open. Returns whether it is the version recorded at
    /// the file's previous open (false when none is remembered).
    func open(_ ino: InodeNumber, _ version: DataVersion) -> Bool {
        state.withLock { s in
            let previous = s.recent[ino] ?? s.older.removeValue(forKey: ino)
            s.recent[ino] = version
            if s.recent.count >= capacity / 2 {
                swap(&s.recent, &s.older)
                s.recent.removeAll(keepingCapacity: true)
            }
            return previous == version
        }
    }

    /// The kernel evicted `ino` and its cached pages: nothing is left to keep.
    func forget(_ ino: InodeNumber) {
        state.withLock { s in
            s.recent.removeValue(forKey: ino)
            s.older.removeValue(forKey: ino)
        }
    }

    var count: Int { state.withLock { $0.recent.count + $0.older.count } }
}
