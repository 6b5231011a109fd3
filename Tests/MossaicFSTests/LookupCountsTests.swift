import MossaicCore
@testable import MossaicFS
import Testing

/// The kernel's lookup counts (`LookupCounts`): what FORGET/BATCH_FORGET drop goes, the table
/// grows with the inodes the kernel holds and shrinks again as it forgets them.
@Suite struct LookupCountsTests {
    @Test func addAndForget() {
        var c = LookupCounts()
        #expect(c.count == 0 && c[7] == 0 && !c.contains(7))
        c.add(7)
        c.add(7)
        c.add(9, 3)
        #expect(c.count == 2 && c[7] == 2 && c[9] == 3)
        #expect(c.forget(7, 1) == .held)
        #expect(c[7] == 1)
        #expect(c.forget(7, 1) == .released)
        #expect(!c.contains(7) && c.count == 1)
        // More than is held releases all of it.
        #expect(c.forget(9, 100) == .released)
        #expect(c.count == 0)
    }

    @Test func forgetOfAnUnknownInodeIsHarmless() {
        var c = LookupCounts()
        #expect(c.forget(42, 1) == .unknown)
        c.add(1_000)
        #expect(c.forget(42, 1) == .unknown)
        #expect(c.forget(1_000, 1) == .released)
        #expect(c.forget(1_000, 1) == .unknown)  // a second forget of the same references
        #expect(c.count == 0)
        #expect(c.capacity == LookupCounts.minimumCapacity)
    }

    /// A batch forget (one count per inode, any order) of a million inodes looked up one after
    /// the other: the table grows to hold them in at most 16 bytes each, and shrinks back.
    @Test func manyInodesGrowAndShrink() {
        var c = LookupCounts()
        let n: UInt64 = 1_000_000
        for ino in 2...(n + 1) { c.add(ino) }
        for ino in stride(from: UInt64(2), through: n + 1, by: 3) { c.add(ino) }  // a second lookup for a third
        #expect(c.count == Int(n))
        #expect(c.capacity >= Int(n) && c.capacity * 8 <= Int(n) * 16)
        #expect(c.bytes <= Int(n) * 16)
        var batch = Array(2...(n + 1))
        var rng = SystemRandomNumberGenerator()
        batch.shuffle(using: &rng)
        var wrong = 0
        for ino in batch {
            let expected: LookupCounts.Forgotten = (ino - 2) % 3 == 0 ? .held : .released
            if c.forget(ino, 1) != expected { wrong += 1 }
        }
        #expect(wrong == 0)
        #expect(c.count == Int(n / 3 + 1))
        for ino in stride(from: UInt64(2), through: n + 1, by: 3) where c.forget(ino, 1) != .released { wrong += 1 }
        #expect(wrong == 0)
        #expect(c.count == 0)
        #expect(c.capacity == LookupCounts.minimumCapacity)
    }

    /// Against a dictionary, random adds and forgets over a small set of inodes (so probe
    /// chains collide and wrap around the table's end, and removals shift entries back).
    @Test func agreesWithADictionary() {
        var c = LookupCounts()
        var model: [UInt64: UInt64] = [:]
        var rng = SplitMix(seed: 21)
        var wrong = 0
        for step in 0..<400_000 {
            // Inode numbers from a window that moves, so the table grows and shrinks over the run.
            let window = UInt64(step / 50_000 % 2 == 0 ? 3_000 : 300)
            let ino = rng.next() % window + UInt64(step / 100_000) * 1_000_000
            if rng.next() % 2 == 0 {
                let n = rng.next() % 3 + 1
                c.add(ino, n)
                model[ino, default: 0] += n
            } else {
                let n = rng.next() % 3 + 1
                let expected: LookupCounts.Forgotten
                if let m = model[ino] {
                    expected = m > n ? .held : .released
                    model[ino] = m > n ? m - n : nil
                } else {
                    expected = .unknown
                }
                if c.forget(ino, n) != expected { wrong += 1 }
            }
            if step % 10_007 == 0 {
                if c.count != model.count { wrong += 1 }
                for (ino, m) in model where c[ino] != m { wrong += 1 }
            }
        }
        #expect(wrong == 0)
        #expect(c.capacity > LookupCounts.minimumCapacity)
        for (ino, m) in model where c.forget(ino, m) != .released { wrong += 1 }
        #expect(wrong == 0)
        #expect(c.count == 0)
        #expect(c.capacity == LookupCounts.minimumCapacity)
    }

    /// Counts beyond 16 bits and inode numbers beyond 48 bits are kept exactly, outside the table.
    @Test func largeCountsAndInodeNumbers() {
        var c = LookupCounts()
        for _ in 0..<70_000 { c.add(5) }
        #expect(c[5] == 70_000 && c.count == 1 && c.overflowCount == 1)
        c.add(5, UInt64.max)  // saturates
        #expect(c[5] == .max)
        #expect(c.forget(5, .max - 1) == .held)
        #expect(c.forget(5, 1) == .released)
        let big: UInt64 = 1 << 50
        c.add(big)
        c.add(big)
        c.add(3)
        #expect(c[big] == 2 && c[3] == 1 && c.count == 2)
        #expect(c.forget(big, 1) == .held)
        #expect(c.forget(big, 1) == .released)
        #expect(c.forget(big, 1) == .unknown)
        #expect(c.overflowCount == 0 && c.count == 1)
        c.add(6, 1 << 20)  // a first count that does not fit
        #expect(c[6] == 1 << 20)
        #expect(c.forget(6, 1 << 20) == .released)
    }

    /// The filesystem's table: a batch forget (the bridge calls `forget` once per entry of a
    /// BATCH_FORGET) of what many lookups handed out leaves nothing, and its table shrinks.
    @Test func filesystemForgetsWhatTheKernelForgot() throws {
        let f = try Fixture()
        let d = try f.fs.mkdir(parent: .root, name: Array("d".utf8), permissions: 0o755, caller: .root)
        var inodes: [InodeNumber] = []
        for i in 0..<3_000 {
            let a = try f.fs.mknod(parent: d.ino, name: Array("f\(i)".utf8), kind: .regular, permissions: 0o644, rdev: 0, caller: .root)
            inodes.append(a.ino)
        }
        for i in 0..<3_000 { _ = try f.fs.lookup(parent: d.ino, name: Array("f\(i)".utf8)) }
        #expect(f.fs.inodes.referencedCount == 3_001)
        #expect(f.fs.inodes.references(inodes[0]) == 2)
        let grown = f.fs.inodes.capacity
        #expect(grown > LookupCounts.minimumCapacity)
        for ino in inodes.reversed() { f.fs.forget(ino, count: 2) }
        f.fs.forget(InodeNumber(999_999), count: 1)  // never looked up
        #expect(f.fs.inodes.referencedCount == 1)
        #expect(f.fs.inodes.capacity < grown)
        // An unlinked file the kernel still holds is purged at its last forget.
        let g = try f.fs.mknod(parent: d.ino, name: Array("g".utf8), kind: .regular, permissions: 0o644, rdev: 0, caller: .root)
        try f.fs.unlink(parent: d.ino, name: Array("g".utf8))
        #expect(f.fs.inodes.isOrphan(g.ino))
        f.fs.forget(g.ino, count: 1)
        #expect(!f.fs.inodes.isOrphan(g.ino) && !f.fs.inodes.isReferenced(g.ino))
    }
}

/// A small deterministic generator for the randomized tests.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49EB_00D1_33EB
        return z ^ (z >> 31)
    }
}
