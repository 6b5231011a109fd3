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
/// - or `force` (`-o force_lease`), for a machine known to be dead before its lease runs out.
/// Anything else is refused with one line naming the holder and when its lease expires.
public final class WriterLease: Sendable {
    public let store: any ObjectStore
    public let duration: Double
    private let logger: Logger

    private struct State {
        var record: LeaseRecord
        var etag: String
        var lost: String?
    }
    private let state: Mutex<State>

    private init(store: any ObjectStore, duration: Double, record: LeaseRecord, etag: String, logger: Logger) {
        self.store = store; self.duration = duration; self.logger = logger
        state = Mutex(State(record: record, etag: etag, lost: nil))
    }

    public var record: LeaseRecord { state.withLock { $0.record } }
    /// Why the lease was lost, if it was (someone else replaced it).
    public var lostReason: String? { state.withLock { $0.lost } }

    /// Takes the lease. Call it while holding the lock of `cacheDirectory` (see above).
    public static func acquire(store: any ObjectStore, identity: HostIdentity = .current(), pid: Int32 = getpid(),
                               cacheDirectory: String, duration: Double, force: Bool,
                               now: @Sendable () -> Timestamp = { .now() }, logger: Logger) throws(ReplicationError) -> WriterLease {
        let key = MetadataLayout.lease
        for _ in 0..<8 {
            let t = now()
            let mine = LeaseRecord(
                format: 1, leaseID: String(UInt64.random(in: 0...UInt64.max), radix: 16), hostname: identity.hostname,
                machineID: identity.machineID, bootID: identity.bootID, pid: pid, cacheDirectory: cacheDirectory,
                mounted: SnapshotManifest.iso8601(t), mountedNanoseconds: t.nanoseconds,
                expires: SnapshotManifest.iso8601(Timestamp(nanoseconds: t.nanoseconds + Int64(duration * 1e9))),
                expiresNanoseconds: t.nanoseconds + Int64(duration * 1e9))
            do {
                let etag = try store.put(key, jsonEncode(mine), condition: .ifNoneMatch)
                return WriterLease(store: store, duration: duration, record: mine, etag: etag, logger: logger)
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
                } else if force {
                    reason = "force_lease"
                } else {
                    throw .leaseHeld(store: store.displayName, holder: holder.holderDescription)
                }
            } else {
                reason = "it is not a valid lease record"
            }
            do {
                let etag = try store.put(key, jsonEncode(mine), condition: .ifMatch(info.etag))
                logger.warning("took over the writer lease", metadata: [
                    "holder": "\(holder?.holderDescription ?? "?")", "reason": "\(reason)"])
                return WriterLease(store: store, duration: duration, record: mine, etag: etag, logger: logger)
            } catch .preconditionFailed {
                continue  // it changed since we read it: look again
            } catch {
                throw .store(error)
            }
        }
        throw .leaseHeld(store: store.displayName, holder: "the lease keeps changing (another mount is starting)")
    }

    /// Extends the lease by `duration` from now. Throws `.leaseLost` (and stays lost) if another
    /// mount replaced it; a store error leaves it as it was, to be retried.
    public func renew(now: Timestamp = .now()) throws(ReplicationError) {
        let (current, etag, lost) = state.withLock { ($0.record, $0.etag, $0.lost) }
        if let lost { throw .leaseLost(lost) }
        var next = current
        next.expiresNanoseconds = now.nanoseconds + Int64(duration * 1e9)
        next.expires = SnapshotManifest.iso8601(Timestamp(nanoseconds: next.expiresNanoseconds))
        do {
            let newTag = try store.put(MetadataLayout.lease, jsonEncode(next), condition: .ifMatch(etag))
            state.withLock { $0.record = next; $0.etag = newTag }
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
