import MossaicCore
import MossaicMeta

/// flock(2) and fcntl(2) locks across hosts (a PostgreSQL mount: `lockTable`). The FUSE bridge
/// asks the kernel to send lock requests here only when `locksAcrossHosts`; otherwise the
/// kernel locks within this host itself, which is right when this mount is the only writer.
///
/// A blocking request polls the table with a growing pause (1 ms, doubling, at most
/// `maxLockPause`): the table lives in a database every host writes, which has no way to wake
/// a waiter on another host. The waiter gives up with `interrupted` when the kernel interrupts
/// the request (a signal to the locking process: F_SETLKW and flock then fail with EINTR).
/// Locks go at their owner's close: `closed(_:owner:)` (a FUSE flush) and `released(_:handle:)`
/// (a FUSE release; `HandleLocks` says why both), and with the mount (`shutdown`).
extension MossaicFilesystem {
    /// The longest pause between two attempts of a blocking lock request: how late at most a
    /// waiter notices the lock it waits for was released.
    static let maxLockPause = 0.25

    /// Lock requests come here (else the kernel handles them on this host alone).
    public var locksAcrossHosts: Bool { lockTable != nil }

    /// F_GETLK: the lock of another owner that a `kind` lock of `range` by `owner` would meet
    /// (its pid 0 when another host holds it), or nil.
    public func getlk(_ ino: InodeNumber, _ kind: LockKind, _ range: ClosedRange<UInt64>, owner: UInt64) throws(FSError) -> RangeLock? {
        guard let lockTable else { throw .notSupported }
        return try meta { () throws(MetaError) in try lockTable.conflictingRangeLock(ino, kind, range, owner: owner) }
    }

    /// F_SETLK (`wait` false) and F_SETLKW through `handle`: locks `range` as `kind` for
    /// `owner`, or unlocks it (nil).
    public func setlk(_ ino: InodeNumber, handle: HandleID, _ kind: LockKind?, _ range: ClosedRange<UInt64>, owner: UInt64, pid: UInt32,
                      wait: Bool, interruption: Interruption?) throws(FSError) {
        guard let lockTable else { throw .notSupported }
        if kind != nil {
            handleLocks.withLock(waking: .none) { h in
                h.owners[handle, default: []].insert(HandleLocks.Owner(id: owner, flock: false))
                h.rangeOwners[ino, default: []].insert(owner)
            }
        }
        try polling(ino, wait: wait, interruption: interruption) { () throws(MetaError) in
            try lockTable.setRangeLock(ino, kind, range, owner: owner, pid: pid)
        }
    }

    /// flock(2) through `handle` by its open file description `owner`: `kind`, or unlock (nil).
    public func flock(_ ino: InodeNumber, handle: HandleID, _ kind: LockKind?, owner: UInt64, wait: Bool,
                      interruption: Interruption?) throws(FSError) {
        guard let lockTable else { throw .notSupported }
        if kind != nil {
            handleLocks.withLock(waking: .none) { h in _ = h.owners[handle, default: []].insert(HandleLocks.Owner(id: owner, flock: true)) }
        }
        try polling(ino, wait: wait, interruption: interruption) { () throws(MetaError) in
            try lockTable.setFlock(ino, kind, owner: owner)
        }
    }

    /// A close by `owner` (a FUSE flush): its fcntl locks on the file go, as POSIX says for any
    /// close by the owning process. No round trip unless that owner locked the file here.
    /// A failure is logged: the close itself went through.
    public func closed(_ ino: InodeNumber, owner: UInt64) {
        guard let lockTable else { return }
        let locked = handleLocks.withLock(waking: .none) { h -> Bool in
            guard h.rangeOwners[ino]?.remove(owner) != nil else { return false }
            if h.rangeOwners[ino]?.isEmpty == true { h.rangeOwners[ino] = nil }
            // Released now, not again at a handle's release: by then the owner may have
            // locked anew through another handle.
            for handle in h.owners.keys { h.owners[handle]?.remove(HandleLocks.Owner(id: owner, flock: false)) }
            return true
        }
        guard locked else { return }
        do { try lockTable.releaseRangeLocks(ino, owner: owner) } catch {
            logger.error("cannot release fcntl locks at close", metadata: ["ino": "\(ino.rawValue)", "error": "\(error)"])
        }
    }

    /// The last close of the open file description behind `handle` (a FUSE release, before the
    /// handle itself goes): every lock taken through it goes — its flock, its OFD locks.
    public func released(_ ino: InodeNumber, handle: HandleID) {
        guard let lockTable else { return }
        let owners = handleLocks.withLock(waking: .none) { h -> Set<HandleLocks.Owner> in
            let owners = h.owners.removeValue(forKey: handle) ?? []
            if !owners.isEmpty { h.releasing[ino, default: 0] += 1 }
            return owners
        }
        guard !owners.isEmpty else { return }
        for owner in owners {
            do {
                if owner.flock { _ = try lockTable.setFlock(ino, nil, owner: owner.id) } else { try lockTable.releaseRangeLocks(ino, owner: owner.id) }
            } catch {
                logger.error("cannot release locks at release", metadata: ["ino": "\(ino.rawValue)", "error": "\(error)"])
            }
        }
        handleLocks.withLock { h in
            h.releasing[ino]! -= 1
            if h.releasing[ino] == 0 { h.releasing[ino] = nil }
            for owner in owners where !owner.flock { h.rangeOwners[ino]?.remove(owner.id) }
            if h.rangeOwners[ino]?.isEmpty == true { h.rangeOwners[ino] = nil }
        }
    }

    /// Runs `attempt` until it takes the lock, pausing between attempts when `wait`; without
    /// `wait`, a refused attempt is `wouldBlock` — after one more, if a release of the file was
    /// under way (`HandleLocks`).
    private func polling(_ ino: InodeNumber, wait: Bool, interruption: Interruption?,
                         _ attempt: () throws(MetaError) -> Bool) throws(FSError) {
        var pause = 0.001
        while try !meta(attempt) {
            guard wait else {
                guard handleLocks.withLock(waking: .none, { $0.releasing[ino] != nil }) else { throw .wouldBlock }
                handleLocks.wait { h -> Bool? in h.releasing[ino] == nil ? true : nil }
                if try meta(attempt) { return }
                throw .wouldBlock
            }
            if interruption?.isInterrupted == true { throw .interrupted }
            let woken = ConditionBox(false)
            let sleep = { _ = woken.wait(seconds: pause) { (done: inout Bool) -> Void? in done ? () : nil } }
            if let interruption { interruption.whileWatching(wake: { woken.withLock { $0 = true } }, sleep) } else { sleep() }
            if interruption?.isInterrupted == true { throw .interrupted }
            pause = min(pause * 2, Self.maxLockPause)
        }
    }
}
