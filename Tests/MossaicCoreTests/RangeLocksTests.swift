import MossaicCore
import Testing

/// The rules of POSIX byte-range locks (`RangeLocks`), without a table or a kernel.
@Suite struct RangeLocksTests {
    let a = LockOwner(session: "host-a", id: 7)
    let b = LockOwner(session: "host-b", id: 7)
    let a2 = LockOwner(session: "host-a", id: 8)

    func lock(_ owner: LockOwner, _ kind: LockKind, _ range: ClosedRange<UInt64>, pid: UInt32 = 1) -> RangeLock {
        RangeLock(owner: owner, kind: kind, range: range, pid: pid)
    }

    @Test func writeLocksConflictOnlyWhereTheyOverlapAnotherOwner() {
        let held = [lock(a, .exclusive, 100...199)]
        #expect(RangeLocks.conflict(.exclusive, 150...300, owner: b, in: held) == held[0])
        #expect(RangeLocks.conflict(.shared, 0...100, owner: b, in: held) == held[0])
        #expect(RangeLocks.conflict(.exclusive, 200...300, owner: b, in: held) == nil)
        #expect(RangeLocks.conflict(.exclusive, 0...99, owner: b, in: held) == nil)
        // The same id in another session is another owner; the same owner never conflicts.
        #expect(RangeLocks.conflict(.exclusive, 0...1000, owner: a2, in: held) == held[0])
        #expect(RangeLocks.conflict(.exclusive, 0...1000, owner: a, in: held) == nil)
    }

    @Test func readLocksShareButExcludeWriters() {
        let held = [lock(a, .shared, 0...UInt64(Int64.max))]
        #expect(RangeLocks.conflict(.shared, 10...20, owner: b, in: held) == nil)
        #expect(RangeLocks.conflict(.exclusive, 10...20, owner: b, in: held) == held[0])
    }

    @Test func unlockingTheMiddleSplitsALock() {
        let after = RangeLocks.applying(nil, 40...59, owner: a, pid: 1, to: [lock(a, .exclusive, 0...99)])
        #expect(after == [lock(a, .exclusive, 0...39), lock(a, .exclusive, 60...99)])
        #expect(RangeLocks.conflict(.exclusive, 40...59, owner: b, in: after) == nil)
        #expect(RangeLocks.conflict(.exclusive, 39...40, owner: b, in: after) != nil)
    }

    @Test func unlockingAcrossSeveralLocksTrimsEachAndDropsThoseInside() {
        let held = [lock(a, .shared, 0...9), lock(a, .exclusive, 20...29), lock(a, .shared, 40...49)]
        #expect(RangeLocks.applying(nil, 5...44, owner: a, pid: 1, to: held) == [lock(a, .shared, 0...4), lock(a, .shared, 45...49)])
        #expect(RangeLocks.applying(nil, 0...UInt64(Int64.max), owner: a, pid: 1, to: held) == [])
    }

    @Test func adjacentAndOverlappingLocksOfOneKindMerge() {
        var held = RangeLocks.applying(.exclusive, 0...9, owner: a, pid: 1, to: [])
        held = RangeLocks.applying(.exclusive, 20...29, owner: a, pid: 1, to: held)
        #expect(held.count == 2)
        // Fills the gap exactly: one lock, so one unlock of the union frees it all.
        held = RangeLocks.applying(.exclusive, 10...19, owner: a, pid: 2, to: held)
        #expect(held == [lock(a, .exclusive, 0...29, pid: 2)])
        #expect(RangeLocks.applying(nil, 0...29, owner: a, pid: 2, to: held) == [])
    }

    @Test func aNewKindReplacesTheOldOnTheBytesItCovers() {
        let held = [lock(a, .shared, 0...99)]
        let after = RangeLocks.applying(.exclusive, 50...59, owner: a, pid: 1, to: held)
        #expect(after == [lock(a, .shared, 0...49), lock(a, .exclusive, 50...59), lock(a, .shared, 60...99)])
        // Back to shared: merges into one again.
        #expect(RangeLocks.applying(.shared, 50...59, owner: a, pid: 1, to: after) == [lock(a, .shared, 0...99)])
    }

    @Test func lockToTheEndMergesWithoutOverflow() {
        let end = UInt64.max
        var held = RangeLocks.applying(.exclusive, 100...end, owner: a, pid: 1, to: [])
        held = RangeLocks.applying(.exclusive, 0...99, owner: a, pid: 1, to: held)
        #expect(held == [lock(a, .exclusive, 0...end)])
        #expect(RangeLocks.applying(nil, 10...end, owner: a, pid: 1, to: held) == [lock(a, .exclusive, 0...9)])
    }
}
