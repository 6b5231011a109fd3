#if canImport(Glibc)
import Glibc
#endif
import MossaicCore

/// The local state of one filesystem on this machine (`cache_dir`, mode 0700):
///
///     meta.db (+ -wal)   the SQLite metadata, authoritative between snapshots
///     blobs/             disk LRU cache of chunks
///     staging/           chunks committed locally but not yet stored (write-back mode)
///     spool/             write buffers that outgrew memory
///     lock               held (flock) by the daemon using this directory; holds its pid
///
/// The lock makes a second daemon on the same cache_dir fail at once with a clear message,
/// instead of two writers corrupting one database. It is released by the kernel when the
/// process dies, so a crashed daemon never blocks the next mount.
public final class CacheDirectory: @unchecked Sendable {
    // @unchecked: the only mutable state is the lock descriptor, written once in init and
    // closed in deinit.
    public let path: String
    private let lockFD: Int32

    public static let defaultRoot = "/var/cache/mossaicfs"

    public var metadataPath: String { path + "/meta.db" }
    public var blobsPath: String { path + "/blobs" }
    /// Write-back chunks not yet in the store (StagingArea).
    public var stagingPath: String { path + "/staging" }
    public var spoolPath: String { path + "/spool" }

    /// Creates the directory if needed and takes its lock; `claimant` (who asks) picks the
    /// advice when another process holds it.
    public init(path: String, claimant: Claimant = .mount) throws(FormatError) {
        self.path = path
        do {
            try PosixFiles.makeDirectories(path, mode: 0o700)
            for sub in [path + "/blobs", path + "/staging", path + "/spool"] { try PosixFiles.makeDirectories(sub, mode: 0o700) }
        } catch {
            throw .cacheDirectory("cannot create cache_dir: \(error)")
        }
        chmod(path, 0o700)
        let lockPath = path + "/lock"
        let fd = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw .cacheDirectory("cannot open \(lockPath): \(String(cString: strerror(errno)))") }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let holder = (try? PosixFiles.read(lockPath)).map { String(decoding: $0, as: UTF8.self).trimmingWhitespace() } ?? "?"
            close(fd)
            throw .cacheDirectory("cache_dir \(path) is in use by another mossaicfs process (pid \(holder)); \(claimant.adviceForLockedCacheDirectory(holder: holder))")
        }
        let pid = Array("\(getpid())\n".utf8)
        ftruncate(fd, 0)
        pid.withUnsafeBytes { _ = pwrite(fd, $0.baseAddress, $0.count, 0) }
        lockFD = fd
    }

    deinit { close(lockFD) }
}
