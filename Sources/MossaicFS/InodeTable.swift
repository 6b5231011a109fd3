import MossaicCore
import Synchronization

/// The kernel's references to inodes: every entry reply (lookup, create, mkdir, link, a
/// readdirplus entry) adds one, every forget removes `count`. An inode that lost its last name
/// stays in the metadata until the kernel forgot it and no file handle has it open.
///
/// Memory follows what the kernel holds, not what it ever looked up: an inode's count goes at
/// its last forget, and the counts are kept compactly (`LookupCounts`, 8 bytes a slot).
final class InodeTable: Sendable {
    private struct State {
        var lookups = LookupCounts()
        /// Inodes with no name left that still had references when they lost it.
        var orphans: Set<InodeNumber> = []
    }
    private let state = Mutex(State())

    func remember(_ ino: InodeNumber) {
        guard ino != .root else { return }
        state.withLock { $0.lookups.add(ino.rawValue) }
    }

    /// What a forget left: whether the kernel holds no reference any more (it evicted the
    /// inode, and its page cache with it), and whether the inode is an orphan to purge then.
    struct Forgotten {
        var released: Bool
        var purgeable: Bool
    }

    /// Drops `count` references. Nothing is kept for an inode the kernel no longer holds.
    func forget(_ ino: InodeNumber, count: UInt64) -> Forgotten {
        state.withLock { s in
            guard s.lookups.forget(ino.rawValue, count) == .released else { return Forgotten(released: false, purgeable: false) }
            return Forgotten(released: true, purgeable: !s.orphans.isEmpty && s.orphans.contains(ino))
        }
    }

    /// Records that `ino` lost its last name. Returns true if the kernel holds no reference.
    func orphaned(_ ino: InodeNumber) -> Bool {
        state.withLock { s in
            s.orphans.insert(ino)
            return !s.lookups.contains(ino.rawValue)
        }
    }

    /// An orphan got a name again (an O_TMPFILE file linked in): its last forget no longer
    /// purges it.
    func relinked(_ ino: InodeNumber) { _ = state.withLock { $0.orphans.remove(ino) } }

    func isReferenced(_ ino: InodeNumber) -> Bool { state.withLock { $0.lookups.contains(ino.rawValue) } }
    func isOrphan(_ ino: InodeNumber) -> Bool { state.withLock { $0.orphans.contains(ino) } }
    func purged(_ ino: InodeNumber) { _ = state.withLock { $0.orphans.remove(ino) } }
    var referencedCount: Int { state.withLock { $0.lookups.count } }
    /// The kernel's references to `ino` (0: none).
    func references(_ ino: InodeNumber) -> UInt64 { state.withLock { $0.lookups[ino.rawValue] } }
    /// Slots of the counts' table, for tests: it shrinks as the kernel forgets.
    var capacity: Int { state.withLock { $0.lookups.capacity } }
}
