/// The kernel's lookup count of each inode it holds, in 8 bytes a slot: what the daemon keeps
/// per inode the kernel holds, which is millions after a `find` or a `stat` of a big tree (the
/// kernel evicts inodes only under memory pressure).
///
/// A dictionary `[InodeNumber: UInt64]` took 16 bytes a bucket at a load of at most 3/4 in a
/// power-of-two table, and both the old and the new table while it grew: 64 MiB at 2 M inodes,
/// 96 MiB at the peak of a growth (issue 21). Here an open-addressing table with linear probing
/// holds each entry in one `UInt64` — the inode number in the high 48 bits, the count in the
/// low 16 — in a table of any size (not a power of two) kept between 1/5 and 4/5 full: about
/// 10–40 bytes per inode, 13 on average over a growth, with no object or allocation per entry.
/// Deleting shifts the entries after it back (no tombstones), so a table that only ever had
/// entries added and removed is as fast as a fresh one, and it shrinks when the kernel forgets.
///
/// The rare entry that does not fit — a count of 65,535 or more (an inode looked up that often
/// between two forgets), or an inode number of 2⁴⁸ or more — moves to a small dictionary.
///
/// Not thread-safe: `InodeTable` holds it behind its lock.
struct LookupCounts {
    /// 0: empty; else `ino << 16 | count`, count in 1 ... `maxPacked`.
    private var slots: [UInt64]
    /// Entries whose count or inode number does not fit a slot; never also in `slots`.
    private var large: [UInt64: UInt64] = [:]
    /// Entries in `slots`.
    private var packed = 0

    static let countBits: UInt64 = 16
    static let maxPacked: UInt64 = (1 << countBits) - 2
    static let maxPackedIno: UInt64 = (1 << (64 - countBits)) - 1
    /// The smallest table (8 KiB), which it never shrinks below.
    static let minimumCapacity = 1024

    init(capacity: Int = LookupCounts.minimumCapacity) {
        slots = Array(repeating: 0, count: max(Self.minimumCapacity, capacity))
    }

    /// Inodes with a count.
    var count: Int { packed + large.count }
    /// Slots in the table (8 bytes each).
    var capacity: Int { slots.count }
    /// Entries kept outside the table.
    var overflowCount: Int { large.count }
    /// What the counts take, roughly: the table and the overflow entries.
    var bytes: Int { slots.count * 8 + large.capacity * 16 }

    /// The count of `ino`, 0 for one the kernel does not hold.
    subscript(ino: UInt64) -> UInt64 {
        if let i = find(ino) { return slots[i] & Self.countMask }
        return large.isEmpty ? 0 : large[ino] ?? 0
    }

    func contains(_ ino: UInt64) -> Bool { self[ino] != 0 }

    /// Adds `n` references to `ino`.
    mutating func add(_ ino: UInt64, _ n: UInt64 = 1) {
        guard n > 0 else { return }
        if let i = find(ino) {
            let total = (slots[i] & Self.countMask).addingReportingOverflow(n)
            if !total.overflow && total.partialValue <= Self.maxPacked {
                slots[i] = ino << Self.countBits | total.partialValue
            } else {
                remove(at: i)
                large[ino] = total.overflow ? .max : total.partialValue
            }
            return
        }
        if !large.isEmpty, let c = large[ino] {
            let total = c.addingReportingOverflow(n)
            large[ino] = total.overflow ? .max : total.partialValue
            return
        }
        guard ino <= Self.maxPackedIno, n <= Self.maxPacked else {
            large[ino] = n
            return
        }
        if (packed + 1) * 5 > slots.count * 4 { resize(to: (packed + 1) * 2) }
        var i = home(ino)
        while slots[i] != 0 { i = next(i) }
        slots[i] = ino << Self.countBits | n
        packed += 1
    }

    /// What a forget did.
    enum Forgotten: Equatable {
        /// The kernel did not hold the inode (a forget after a remount, or counted twice).
        case unknown
        /// References are left.
        case held
        /// That was the last reference: nothing is kept for the inode any more.
        case released
    }

    /// Drops `n` references to `ino` (all it has when `n` is as many or more).
    mutating func forget(_ ino: UInt64, _ n: UInt64) -> Forgotten {
        if let i = find(ino) {
            let c = slots[i] & Self.countMask
            if c > n {
                slots[i] = ino << Self.countBits | (c - n)
                return .held
            }
            remove(at: i)
            shrinkIfSparse()
            return .released
        }
        guard !large.isEmpty, let c = large[ino] else { return .unknown }
        if c > n {
            large[ino] = c - n
            return .held
        }
        large[ino] = nil
        if large.isEmpty { large = [:] }  // its buckets too
        return .released
    }

    /// Forgets everything.
    mutating func removeAll() {
        slots = Array(repeating: 0, count: Self.minimumCapacity)
        large = [:]
        packed = 0
    }

    // MARK: The table

    private static let countMask: UInt64 = (1 << countBits) - 1

    /// Where `ino`'s probe sequence starts: Fibonacci hashing (consecutive inode numbers, the
    /// usual case, spread evenly) onto 0 ..< capacity by the high half of a multiplication.
    private func home(_ ino: UInt64) -> Int {
        Int((ino &* 0x9E37_79B9_7F4A_7C15).multipliedFullWidth(by: UInt64(slots.count)).high)
    }

    private func next(_ i: Int) -> Int { i + 1 == slots.count ? 0 : i + 1 }

    private func find(_ ino: UInt64) -> Int? {
        guard ino <= Self.maxPackedIno else { return nil }
        var i = home(ino)
        while true {
            let s = slots[i]
            if s == 0 { return nil }
            if s >> Self.countBits == ino { return i }
            i = next(i)
        }
    }

    /// Empties slot `i` and moves back the entries after it that could not be in their home
    /// slot or one before `i` while it was taken, so every probe sequence stays unbroken.
    private mutating func remove(at i: Int) {
        var hole = i
        var j = i
        while true {
            j = next(j)
            let s = slots[j]
            if s == 0 { break }
            let k = home(s >> Self.countBits)
            // The entry at j stays if its home lies cyclically in (hole, j].
            let stays = hole <= j ? (hole < k && k <= j) : (hole < k || k <= j)
            if !stays {
                slots[hole] = s
                hole = j
            }
        }
        slots[hole] = 0
        packed -= 1
    }

    private mutating func shrinkIfSparse() {
        guard slots.count > Self.minimumCapacity, packed * 5 < slots.count else { return }
        resize(to: packed * 2)
    }

    /// Moves every entry into a table of `capacity` slots (at least the minimum).
    private mutating func resize(to capacity: Int) {
        let old = slots
        slots = Array(repeating: 0, count: max(Self.minimumCapacity, capacity))
        for s in old where s != 0 {
            var i = home(s >> Self.countBits)
            while slots[i] != 0 { i = next(i) }
            slots[i] = s
        }
    }
}
