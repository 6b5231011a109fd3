import Foundation
import Logging
import MossaicCore
import MossaicObjectStore
import Synchronization

/// `meta/lease`: who mounts the filesystem read-write, and until when that claim holds.
public struct LeaseRecord: Codable, Sendable, Equatable {
    public var format: Int
    /// Random per mount: tells this mount's lease from any other, even of the same process.
    public var leaseID: String
    public var hostname: String
    public var machineID: String
    public var bootID: String
    public var pid: Int32
    public var cacheDirectory: String
    public var mounted: String
    public var mountedNanoseconds: Int64
    public var expires: String
    public var expiresNanoseconds: Int64

    enum CodingKeys: String, CodingKey {
        case format, leaseID = "lease_id", hostname = "host", machineID = "machine_id", bootID = "boot_id", pid
        case cacheDirectory = "cache_dir", mounted, mountedNanoseconds = "mounted_ns", expires, expiresNanoseconds = "expires_ns"
    }

    var identity: HostIdentity { HostIdentity(hostname: hostname, machineID: machineID, bootID: bootID) }

    /// "host build-7 (pid 4242, cache_dir /var/cache/x) since 2026-…Z, lease expires 2026-…Z"
    public var holderDescription: String {
        "host \(hostname) (pid \(pid), cache_dir \(cacheDirectory)) since \(mounted), lease expires \(expires)"
    }
}

/// The single-writer lease of a read-write mount.
///
/// Acquired with a conditional create (`If-None-Match: *`) of `meta/lease`; renewed by
/// replacing it with `If-Match` its last ETag, which fails if anyone else took it over; deleted
/// at unmount. An existing lease is taken over (by a conditional replace of exactly the
/// version read, so two contenders cannot both win) when:
/// - it is this machine's and names this cache_dir: the caller holds the cache_dir's lock, so
///   the daemon that wrote it is gone (kill -9, crash);
/// - it is this machine's and its process is gone, or it is from an earlier boot;
/// - it expired (by this machine's clock: hosts need roughly synchronised clocks, as for any
///   lease; the expiry is several renewal periods away, which absorbs small skew);
/// - or `force` (`-o force_lease`), for a machine known to be dead before its lease runs out:
///   refused while the holder's process runs on this machine; a holder on another machine may
///   be alive after all, so the taker waits until the holder's lease would have expired (and
///   so the holder has fenced itself, below) before it goes on.
/// Anything else is refused with one line naming the holder and when its lease expires.
///
/// Fencing: a holder acknowledges changes only while `acknowledgeableUntil` is ahead, a
/// monotonic deadline `fenceFraction` of the lease's duration after the start of its last
/// successful write of the lease. Others take the lease over only once its recorded expiry
/// (the same write's start + the full duration) has passed, or after waiting that long with
/// `force`; so an old writer that can no longer renew — cut off from the store, stalled, or
/// taken over — has stopped acknowledging before anybody else can accept a write. The sixth
/// of the duration in between absorbs clock skew between hosts.
public final class WriterLease: Sendable {
    public let store: any ObjectStore
    public let duration: Double
    private let logger: Logger

    private struct State {
        var record: LeaseRecord
        var etag: String
        var lost: String?
        /// Monotonic: changes may be acknowledged until then (see Fencing above).
        var acknowledgeableUntil: Timestamp
    }

    /// The part of the lease's duration after a successful renewal during which this mount
    /// acknowledges changes.
    static let fenceFraction = 5.0 / 6.0
    private let state: Mutex<State>
    /// Held through each renewal: two at once (the lease thread's and `renewIfLapsed`) would
    /// both send the same If-Match, and the loser would take its twin for a takeover.
    private let renewal = Mutex(())
    /// Whether a renewal is on its way (`renewIfLapsed` then waits for it rather than start
    /// one), and how many finished, successful or not: waiters wake at each.
    private let renewals = ConditionBox((running: false, finished: 0))

    private init(store: any ObjectStore, duration: Double, record: LeaseRecord, etag: String, writeStarted: Timestamp, logger: Logger) {
        self.store = store; self.duration = duration; self.logger = logger
        state = Mutex(State(record: record, etag: etag, lost: nil,
                            acknowledgeableUntil: Self.deadline(after: writeStarted, duration: duration)))
    }

    private static func deadline(after started: Timestamp, duration: Double) -> Timestamp {
        Timestamp(nanoseconds: started.nanoseconds + Int64(duration * fenceFraction * 1e9))
    }

    /// Why this mount may not acknowledge a change now (nil: it may): the lease was lost, or
    /// it could not be renewed for so long that another machine may soon take it over.
    public func fenceReason(now: Timestamp = .monotonicNow()) -> String? {
        state.withLock { s in
            if let lost = s.lost { return "writer lease lost: \(lost)" }
            guard now.nanoseconds < s.acknowledgeableUntil.nanoseconds else {
                return "the writer lease could not be renewed for \(Int(duration * Self.fenceFraction)) s (lease_time=\(Int(duration))): "
                    + "the store is unreachable or too slow, and another machine may take the lease over"
            }
            return nil
        }
    }

    public var record: LeaseRecord { state.withLock { $0.record } }
    /// Why the lease was lost, if it was (someone else replaced it).
    public var lostReason: String? { state.withLock { $0.lost } }

    /// Takes the lease. Call it while holding the lock of `cacheDirectory` (see above).
    /// `claimant` (a mount, or a command such as gc) picks the advice of a refusal.
    public static func acquire(store: any ObjectStore, identity: HostIdentity = .current(), pid: Int32 = getpid(),
                               cacheDirectory: String, duration: Double, force: Bool, claimant: Claimant = .mount,
                               now: @Sendable () -> Timestamp = { .now() },
                               sleep: @Sendable (Double) -> Void = { Thread.sleep(forTimeInterval: $0) },
                               logger: Logger) throws(ReplicationError) -> WriterLease {
        let key = MetadataLayout.lease
        for _ in 0..<8 {
            let t = now()
            let started = Timestamp.monotonicNow()
            let mine = LeaseRecord(
                format: 1, leaseID: String(UInt64.random(in: 0...UInt64.max), radix: 16), hostname: identity.hostname,
                machineID: identity.machineID, bootID: identity.bootID, pid: pid, cacheDirectory: cacheDirectory,
                mounted: SnapshotManifest.iso8601(t), mountedNanoseconds: t.nanoseconds,
                expires: SnapshotManifest.iso8601(Timestamp(nanoseconds: t.nanoseconds + Int64(duration * 1e9))),
                expiresNanoseconds: t.nanoseconds + Int64(duration * 1e9))
            do {
                let etag = try store.put(key, jsonEncode(mine), condition: .ifNoneMatch)
                return WriterLease(store: store, duration: duration, record: mine, etag: etag, writeStarted: started, logger: logger)
            } catch .preconditionFailed {
                // Someone holds it: look at who.
            } catch {
                throw .store(error)
            }
            guard let info = try ReplicationError.wrap({ () throws(ObjectStoreError) in try store.head(key) }) else { continue }
            let bytes: [UInt8]
            do { bytes = try store.get(key) } catch .notFound { continue } catch { throw .store(error) }
            let holder = try? JSONDecoder().decode(LeaseRecord.self, from: Data(bytes))
            let reason: String
            var waitUntil: Int64?  // a forced takeover of a holder that may be alive elsewhere
            if let holder {
                let sameHost = identity.isSameHost(holder.identity)
                if sameHost && holder.cacheDirectory == cacheDirectory {
                    reason = "its daemon (pid \(holder.pid)) is gone: this mount holds the lock of the same cache_dir"
                } else if sameHost && holder.bootID != identity.bootID {
                    reason = "it is from an earlier boot of this machine"
                } else if sameHost && !processExists(holder.pid) {
                    reason = "its process \(holder.pid) no longer runs on this machine"
                } else if t.nanoseconds > holder.expiresNanoseconds {
                    reason = "it expired at \(holder.expires)"
                } else if force && sameHost {
                    throw .leaseHeld(store: store.displayName,
                                     holder: "\(holder.holderDescription), whose process still runs on this machine (force_lease is for a holder on a dead machine; unmount it, or stop pid \(holder.pid))",
                                     claimant: claimant)
                } else if force {
                    reason = "force_lease"
                    waitUntil = holder.expiresNanoseconds
                } else {
                    throw .leaseHeld(store: store.displayName, holder: holder.holderDescription, claimant: claimant)
                }
            } else {
                reason = "it is not a valid lease record"
            }
            let etag: String
            do {
                etag = try store.put(key, jsonEncode(mine), condition: .ifMatch(info.etag))
            } catch .preconditionFailed {
                continue  // it changed since we read it: look again
            } catch {
                throw .store(error)
            }
            logger.warning("took over the writer lease", metadata: [
                "holder": "\(holder?.holderDescription ?? "?")", "reason": "\(reason)"])
            let lease = WriterLease(store: store, duration: duration, record: mine, etag: etag, writeStarted: started, logger: logger)
            if let waitUntil {
                do { try lease.waitOut(seconds: Double(waitUntil - t.nanoseconds) / 1e9, sleep: sleep) } catch {
                    try? lease.release()
                    throw error
                }
            }
            return lease
        }
        throw .leaseHeld(store: store.displayName, holder: "the lease keeps changing (another mount is starting)", claimant: claimant)
    }

    /// A forced takeover: the old holder may still be alive on another machine, acknowledging
    /// changes until it finds out (its next renewal fails) or fences itself (`fenceReason`),
    /// at the latest by the expiry its lease recorded. This mount goes on only after that,
    /// renewing its own lease meanwhile.
    private func waitOut(seconds: Double, sleep: @Sendable (Double) -> Void) throws(ReplicationError) {
        guard seconds > 0 else { return }
        logger.warning("force_lease: waiting for the previous holder's lease to run out, so that it has stopped writing",
                       metadata: ["seconds": "\(Int(seconds.rounded(.up)))"])
        var remaining = seconds
        while remaining > 0 {
            let step = min(remaining, duration / 3)
            sleep(step)
            try renew()
            remaining -= step
        }
    }

    /// Extends the lease by `duration` from now. Throws `.leaseLost` (and stays lost) if another
    /// mount replaced it; a store error leaves it as it was, to be retried.
    public func renew(now: Timestamp? = nil) throws(ReplicationError) {
        renewals.withLock { $0.running = true }
        defer { renewals.withLock { $0.running = false; $0.finished += 1 } }
        try renewal.withLock { (_) throws(ReplicationError) in try renewHoldingLock(now: now ?? .now()) }
    }

    /// A lapsed lease (`fenceReason`, not lost) is renewed at once rather than at the lease
    /// thread's next period, and the caller — a change about to be refused — waits for that
    /// renewal (or one already on its way) up to `seconds`: a mount whose store is back takes
    /// changes again at once, and one whose store is stalled refuses them within `seconds`.
    public func renewIfLapsed(waitingAtMost seconds: Double = 5) {
        guard lostReason == nil, fenceReason() != nil else { return }
        let (running, seen) = renewals.withLock { ($0.running, $0.finished) }
        if !running {
            let thread = Thread { [self] in try? renew() }
            thread.name = "mossaicfs-lease-now"
            thread.start()
        }
        _ = renewals.wait(seconds: seconds) { $0.finished != seen ? () : nil }
    }

    private func renewHoldingLock(now: Timestamp) throws(ReplicationError) {
        let (current, etag, lost) = state.withLock { ($0.record, $0.etag, $0.lost) }
        if let lost { throw .leaseLost(lost) }
        var next = current
        next.expiresNanoseconds = now.nanoseconds + Int64(duration * 1e9)
        next.expires = SnapshotManifest.iso8601(Timestamp(nanoseconds: next.expiresNanoseconds))
        let started = Timestamp.monotonicNow()
        do {
            let newTag = try store.put(MetadataLayout.lease, jsonEncode(next), condition: .ifMatch(etag))
            let until = Self.deadline(after: started, duration: duration)
            state.withLock { $0.record = next; $0.etag = newTag; $0.acknowledgeableUntil = until }
        } catch .preconditionFailed {
            let holder = (try? store.get(MetadataLayout.lease)).flatMap { try? JSONDecoder().decode(LeaseRecord.self, from: Data($0)) }
            let why = holder.map { "taken over by \($0.holderDescription)" } ?? "\(MetadataLayout.lease) was removed"
            state.withLock { $0.lost = why }
            throw .leaseLost(why)
        } catch {
            throw .store(error)
        }
    }

    /// Deletes the lease if it is still this mount's (at unmount).
    public func release() throws(ReplicationError) {
        guard lostReason == nil else { return }
        let mine = record.leaseID
        let current: [UInt8]
        do { current = try store.get(MetadataLayout.lease) } catch .notFound { return } catch { throw .store(error) }
        guard let holder = try? JSONDecoder().decode(LeaseRecord.self, from: Data(current)), holder.leaseID == mine else { return }
        try ReplicationError.wrap { () throws(ObjectStoreError) in try store.delete(MetadataLayout.lease) }
    }
}
