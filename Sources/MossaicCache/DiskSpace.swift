#if canImport(Glibc)
import Glibc
#endif

/// Size and room of the filesystem that holds a directory, as the disk cache sees it.
/// A value (not a statvfs call inside the cache) so that tests can give the cache a disk of any
/// size and fullness: `BlobCache.Configuration.diskSpace`.
public struct DiskSpace: Sendable, Equatable {
    /// Bytes of the filesystem.
    public var total: Int
    /// Bytes an unprivileged writer may still use (`f_bavail`): blocks reserved for root are
    /// not counted as the cache's to take.
    public var available: Int

    public init(total: Int, available: Int) {
        self.total = total; self.available = available
    }

    /// The filesystem of `path` now; nil if it cannot be asked (the cache then bounds itself by
    /// `cache_size` alone and relies on its ENOSPC handling).
    public static func of(_ path: String) -> DiskSpace? {
        var fs = statvfs()
        guard statvfs(path, &fs) == 0 else { return nil }
        return DiskSpace(total: Int(fs.f_blocks) * Int(fs.f_frsize), available: Int(fs.f_bavail) * Int(fs.f_frsize))
    }
}
