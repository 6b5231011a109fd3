#if canImport(Glibc)
import Glibc
#endif
import MossaicCore
import MossaicFS

/// The local state of one filesystem on this machine (`cache_dir`, mode 0700):
///
///     meta.db (+ -wal)   the SQLite metadata, authoritative between snapshots
///     blobs/             disk LRU cache of chunks
///     staging/           chunks committed locally but not yet stored (write-back mode)
///     spool/             write buffers that outgrew memory
///     lock               held (flock) by the process using this directory; says who it is
///
/// The lock makes a second daemon on the same cache_dir fail at once with a clear message,
/// instead of two writers corrupting one database. It is released by the kernel when the
/// process dies, so a crashed daemon never blocks the next mount.
///
/// A daemon whose filesystem was unmounted still holds the lock while it stores what is left
/// (open files' last commits, write-back chunks, the final metadata snapshot, the lease).
/// `umount` returns before that is done, so a mount, fsck or gc started right after it waits
/// for that daemon to exit (a bounded wait, on the lock's release) instead of failing. A holder
/// still serving a mount, or one not serving any (starting up, fsck, gc), is refused at once.
public final class CacheDirectory: @unchecked Sendable {
    // @unchecked: the only mutable state is the lock descriptor, written once in init and
    // closed in deinit; the lock file's writes are appends by the one thread that mounts.
    public let path: String
    private let lockFD: Int32

    public static let defaultRoot = "/var/cache/mossaicfs"
    /// How long a mount, fsck or gc waits for a daemon that is finishing after its unmount: the
    /// longest a final snapshot and the last uploads may reasonably take on a slow store.
    public static let finishingWait = 600.0

    public var metadataPath: String { path + "/meta.db" }
    public var blobsPath: String { path + "/blobs" }
    /// Write-back chunks not yet in the store (StagingArea).
    public var stagingPath: String { path + "/staging" }
    public var spoolPath: String { path + "/spool" }
    public static func lockPath(of cacheDirectory: String) -> String { cacheDirectory + "/lock" }

    /// What the lock file says about the process holding it, one line each, written by that
    /// process: its pid when it takes the lock; `mounted DEVICE MOUNTPOINT` once its mount
    /// exists; `finished ok` or `finished failed: WHY` once it has stored all it will, its last
    /// act before it exits (`mossaicfs umount` reports it).
    public struct Holder: Equatable, Sendable {
        public var pid: String
        /// The mount's device number ("major:minor") and path, once mounted.
        public var device: String?
        public var mountpoint: String?
        /// "ok" or "failed: …".
        public var finished: String?

        public init(_ text: String) {
            let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
            pid = lines.first.map { String($0).trimmingWhitespace() } ?? ""
            if pid.isEmpty { pid = "?" }
            // Only whole lines count: a line being appended may be read half-written.
            for line in lines.dropFirst().dropLast() {
                if line.hasPrefix("mounted ") {
                    let rest = line.dropFirst("mounted ".count)
                    guard let space = rest.firstIndex(of: " ") else { continue }
                    device = String(rest[..<space])
                    mountpoint = String(rest[rest.index(after: space)...])
                } else if line.hasPrefix("finished ") {
                    finished = String(line.dropFirst("finished ".count))
                }
            }
        }

        /// Whether the holder is a daemon whose mount is gone: it finishes and exits, so it is
        /// worth waiting for. Its mount still there means it serves it. The device number
        /// alone does not tell: the kernel hands a freed one to the next mount anywhere (the
        /// lowest free number), so the mountpoint must match too. A new mount with the
        /// recycled number on the very same path is taken for the old one: a refusal, the
        /// safe side.
        public func isFinishing(mounts: [MountTable.Entry]) -> Bool {
            if finished != nil { return true }
            guard let device, let mountpoint else { return false }
            return !mounts.contains { $0.device == device && $0.mountpoint == mountpoint }
        }
    }

    /// What became of a wait for a lock.
    public enum LockOutcome: Equatable, Sendable {
        case acquired
        /// Held by a process that is not finishing (serving a mount, starting one, fsck, gc).
        case inUse(Holder)
        /// The finishing holder did not let go within the wait.
        case timedOut(Holder)
    }

    /// Creates the directory if needed and takes its lock, waiting up to `finishingWait`
    /// seconds for a daemon that is finishing (`waiting` is told once, with its pid, when the
    /// wait begins).
    /// `claimant` (who asks) picks the advice when another process holds it.
    public init(path: String, claimant: Claimant = .mount, finishingWait: Double = CacheDirectory.finishingWait,
                waiting: (_ pid: String) -> Void = { _ in }) throws(FormatError) {
        self.path = path
        do {
            try PosixFiles.makeDirectories(path, mode: 0o700)
            for sub in [path + "/blobs", path + "/staging", path + "/spool"] { try PosixFiles.makeDirectories(sub, mode: 0o700) }
        } catch {
            throw .cacheDirectory("cannot create cache_dir: \(error)")
        }
        chmod(path, 0o700)
        let lockPath = Self.lockPath(of: path)
        let fd = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw .cacheDirectory("cannot open \(lockPath): \(String(cString: strerror(errno)))") }
        let outcome: LockOutcome
        do {
            outcome = try Self.lock(fd, path: lockPath, exclusive: true, timeout: finishingWait, tellAfter: 0) { waiting($0.pid) }
        } catch {
            close(fd)
            throw .cacheDirectory("cannot lock \(lockPath): \(error)")
        }
        switch outcome {
        case .acquired:
            break
        case .inUse(let holder):
            close(fd)
            let serving = holder.mountpoint.map { ", mounted on \($0)" } ?? ""
            throw .cacheDirectory("cache_dir \(path) is in use by another mossaicfs process (pid \(holder.pid)\(serving)); \(claimant.adviceForLockedCacheDirectory(holder: holder.pid))")
        case .timedOut(let holder):
            close(fd)
            throw .cacheDirectory("cache_dir \(path): the previous daemon (pid \(holder.pid)) is still storing what it holds \(Int(finishingWait)) s after its unmount; see its log, and try again once it has exited")
        }
        let pid = Array("\(getpid())\n".utf8)
        ftruncate(fd, 0)
        pid.withUnsafeBytes { _ = pwrite(fd, $0.baseAddress, $0.count, 0) }
        lockFD = fd
    }

    deinit { close(lockFD) }

    /// Records in the lock file that this process serves the mount `device` at `mountpoint`.
    public func recordMounted(device: String, mountpoint: String) {
        append("mounted \(device) \(mountpoint.replacingNewlines())\n")
    }

    /// Records that this process has stored everything it will (`failure`: what it could not).
    public func recordFinished(failure: String?) {
        append("finished " + (failure.map { "failed: " + $0.replacingNewlines() } ?? "ok") + "\n")
    }

    private func append(_ line: String) {
        var st = stat()
        guard fstat(lockFD, &st) == 0 else { return }
        let bytes = Array(line.utf8)
        bytes.withUnsafeBytes { _ = pwrite(lockFD, $0.baseAddress, $0.count, st.st_size) }
    }

    /// Takes the flock of the lock file open at `fd` (`exclusive`, or shared to learn that the
    /// holder let go). A holder that is finishing is waited for, up to `timeout` seconds, on
    /// the real event: its close of the lock file (LockWatch). `waiting` is told once the
    /// wait has lasted `tellAfter` seconds.
    public static func lock(_ fd: Int32, path: String, exclusive: Bool, timeout: Double, tellAfter: Double,
                            waiting: (Holder) -> Void) throws(SystemError) -> LockOutcome {
        let start = Timestamp.monotonicNow()
        var watch: LockWatch?
        var told = false
        while flock(fd, (exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB) != 0 {
            guard errno == EWOULDBLOCK || errno == EINTR else { throw SystemError("flock", path: path) }
            // Read through our own descriptor: opening the file again would wake other waiters.
            let holder = Holder(readAll(fd))
            guard holder.isFinishing(mounts: MountTable.entries()) else { return .inUse(holder) }
            guard let watch else {
                // Watch first, then try again: a release from now on is an event.
                watch = try LockWatch(path: path)
                continue
            }
            let waited = Timestamp.monotonicNow().secondsSince(start)
            if waited >= timeout { return .timedOut(holder) }
            if !told && waited >= tellAfter { waiting(holder); told = true }
            watch.wait(seconds: (told ? timeout : min(tellAfter, timeout)) - waited)
        }
        return .acquired
    }

    /// The lock file's text, read through `fd`.
    public static func readAll(_ fd: Int32) -> String {
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = pread(fd, &buffer, buffer.count, off_t(bytes.count))
            if n > 0 { bytes += buffer[0..<n]; continue }
            if n < 0 && errno == EINTR { continue }
            break
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

private extension String {
    /// A mountpoint or message on one line of the lock file.
    func replacingNewlines() -> String { String(map { $0 == "\n" ? " " : $0 }) }
}
