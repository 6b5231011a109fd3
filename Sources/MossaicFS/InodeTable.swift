import MossaicCore
import Synchronization

/// The kernel's references to inodes: every entry reply (lookup, create, mkdir, link, a
/// readdirplus entry) adds one, every forget removes `count`. An inode that lost its last name
/// stays in the metadata until the kernel forgot it and no file handle has it open.
final class InodeTable: Sendable {
    private struct State {
        var lookups: [InodeNumber: UInt64] = [:]
        /// Inodes with no name left that still had references when they lost it.
        var orphans: Set<InodeNumber> = []
    }
    private let state = Mutex(State())

    func remember(_ ino: InodeNumber) {
        guard ino != .root else { return }
        state.withLock { $0.lookups[ino, default: 0] += 1 }
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
            guard let n = s.lookups[ino] else { return Forgotten(released: false, purgeable: false) }
            if n > count {
                s.lookups[ino] = n - count
                return Forgotten(released: false, purgeable: false)
            }
            s.lookups[ino] = nil
            return Forgotten(released: true, purgeable: s.orphans.contains(ino))
        }
    }

    /// Records that `ino` lost its last name. Returns true if the kernel holds no reference.
    func orphaned(_ ino: InodeNumber) -> Bool {
        state.withLock { s in
            s.orphans.insert(ino)
            return s.lookups[ino] == nil
        }
    }

    /// An orphan got a name again (an O_TMPFILE file linked in): its last forget no longer
    /// purges it.
    func relinked(_ ino: InodeNumber) { _ = state.withLock { $0.orphans.remove(ino) } }

    func isReferenced(_ ino: InodeNumber) -> Bool { state.withLock { $0.lookups[ino] != nil } }
    func isOrphan(_ ino: InodeNumber) -> Bool { state.withLock { $0.orphans.contains(ino) } }
    func purged(_ ino: InodeNumber) { _ = state.withLock { $0.orphans.remove(ino) } }
    var referencedCount: Int { state.withLock { $0.lookups.count } }
}
