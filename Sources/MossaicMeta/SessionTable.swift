import MossaicCore

/// A mount as the engine for many hosts records it (`sessions`): what `mossaicfs status` shows.
public struct SessionRecord: Codable, Sendable, Equatable {
    public var id: String
    public var host: String
    public var pid: Int64
    /// The mossaicfs that mounted it.
    public var version: String
    /// Seconds since it mounted, and since its last heartbeat (by the database server's clock).
    public var mountedSecondsAgo: Double
    public var heartbeatAgeSeconds: Double
    /// Its `session_expiry`: dead once its heartbeat is older than that.
    public var expirySeconds: Double
    /// Files it has open (rows of `open_files`).
    public var openFiles: Int
    public var alive: Bool { heartbeatAgeSeconds <= expirySeconds }
}

/// What a cleanup of dead sessions did: sessions removed with their rows, and unlinked inodes
/// that nobody had open any more, reclaimed.
public struct SessionCleanup: Sendable, Equatable {
    public var sessions: Int = 0
    public var reclaimed: Int = 0
    public init(sessions: Int = 0, reclaimed: Int = 0) { self.sessions = sessions; self.reclaimed = reclaimed }
    /// Nothing was cleaned up (nothing worth telling).
    public var isEmpty: Bool { sessions == 0 && reclaimed == 0 }
}

/// The mounts of an engine for many hosts (PostgresMetaStore+Sessions): each read-write mount
/// registers a session, keeps it alive with a heartbeat, and ends it at unmount. A session
/// whose heartbeat is older than its expiry is dead: any host's heartbeat (and fsck, gc)
/// deletes its rows — its locks and open files — and reclaims what it alone kept.
public protocol SessionTable: Sendable {
    /// Registers this store's session (`host`, `pid` and `version` are for people), then
    /// cleans up dead sessions. `expiry`: seconds without a heartbeat after which other hosts
    /// take it for dead. `onLost` is called once, if it is found deleted by another host.
    func registerSession(host: String, pid: Int64, version: String, expiry: Double,
                         onLost: @escaping @Sendable (String) -> Void) throws(MetaError)
    /// Refreshes this session's heartbeat (throws `sessionLost` if another host deleted it),
    /// then cleans up dead sessions.
    func heartbeat() throws(MetaError) -> SessionCleanup
    /// Deletes every dead session with its rows, then reclaims unlinked inodes nobody has open.
    func cleanDeadSessions() throws(MetaError) -> SessionCleanup
    /// A clean unmount: this session's rows and the session go, then what it alone kept open.
    func endSession() throws(MetaError) -> SessionCleanup
    /// Every session, oldest first.
    func sessions() throws(MetaError) -> [SessionRecord]
    /// This store's session was found deleted by another host: it writes nothing any more.
    var sessionLost: Bool { get }
    /// This store's session id.
    var sessionID: String { get }
}
