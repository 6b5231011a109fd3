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

    /// Drops `count` references. Returns true if the inode is an orphan with none left.
    func forget(_ ino: InodeNumber, count: UInt64) -> Bool {
        state.withLock { s in
            guard let n = s.lookups[ino] else { return false }
            if n > count {
                s.lookups[ino] = n - count
                return false
            }
            s.lookups[ino] = nil
            return s.orphans.contains(ino)
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
