#if canImport(Glibc)
import Glibc
#endif
import MossaicCore
import MossaicMeta
import MossaicReplication

/// The session of a read-write mount of an engine for many hosts (PostgreSQL): registered at
/// start, kept alive by a heartbeat every `session_heartbeat`, ended at a clean unmount. Each
/// heartbeat also cleans up the sessions of dead hosts (their locks and open files) and
/// reclaims the unlinked files they alone kept. If another host took this mount for dead and
/// deleted its session, every change is refused with EROFS from then on (`checkWritable`,
/// and the store itself: `MetaError.sessionLost`), and that is logged once.
extension MossaicFilesystem {
    func startSession() throws(FSError) {
        guard let sessionTable else { return }
        let logger = self.logger
        try meta { () throws(MetaError) in
            try sessionTable.registerSession(
                host: HostIdentity.current().hostname, pid: Int64(getpid()), version: FormatConstants.softwareVersion,
                expiry: options.sessionExpiry,
                onLost: { why in
                    logger.critical("this mount's session was ended by another host, which took it for dead (no heartbeat for session_expiry): from now on every change is refused (EROFS) — its locks and open files are no longer held; unmount and mount again", metadata: ["why": "\(why)"])
                })
        }
        logger.info("session registered", metadata: ["session": "\(sessionTable.sessionID)",
                                                     "heartbeat": "\(options.sessionHeartbeat)", "expiry": "\(options.sessionExpiry)"])
        let worker = PeriodicWorker(name: "mossaicfs-session", interval: options.sessionHeartbeat) { [weak self] in
            self?.beat()
        }
        heartbeat.withLock { $0 = worker }
        worker.start()
    }

    /// One heartbeat, and the cleanup of dead sessions that comes with it.
    private func beat() {
        guard let sessionTable, !sessionTable.sessionLost else { return }
        do {
            let cleanup = try sessionTable.heartbeat()
            if !cleanup.isEmpty {
                logger.notice("cleaned up dead sessions", metadata: ["sessions": "\(cleanup.sessions)",
                                                                    "reclaimed_inodes": "\(cleanup.reclaimed)"])
            }
        } catch .sessionLost {
            // Logged once by the store's callback.
        } catch {
            logger.warning("session heartbeat failed (retried at the next one)", metadata: ["error": "\(error)"])
        }
    }

    /// A clean unmount: the session's rows go, then what it alone kept open.
    func endSession() {
        guard let sessionTable, !sessionTable.sessionLost else { return }
        do { _ = try sessionTable.endSession() } catch { logger.error("cannot end this mount's session at shutdown: \(error)") }
    }

    /// The sessions of the filesystem's hosts, for `status` (nil: not an engine for many hosts).
    func sessionRecords() -> [SessionRecord]? {
        guard let table = metadata as? any SessionTable else { return nil }
        return try? table.sessions()
    }
}
