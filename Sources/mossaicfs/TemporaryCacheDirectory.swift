#if canImport(Glibc)
import Glibc
#endif
import Foundation
import MossaicCore
import MossaicFS
import MossaicMount

/// Where `fsck` and `gc` find a filesystem's metadata: the cache_dir of the machine that mounts
/// it (`-o cache_dir=`, else the default one of its uuid) when that holds `meta.db`; otherwise
/// a temporary directory, into which the store's newest snapshot is restored exactly as a mount
/// on a fresh machine restores it. So the bucket alone is enough to check or collect a
/// filesystem, from any machine. The temporary directory is removed when the command ends.
/// A filesystem whose metadata is in PostgreSQL needs neither: its cache_dir is only caches.
///
/// It lives under $TMPDIR, else /var/tmp (not /tmp, often a small tmpfs: the metadata of a
/// large filesystem can be gigabytes), named `mossaicfs-<command>-XXXXXX`.
final class TemporaryCacheDirectory {
    let path: String

    /// The cache_dir to use for the filesystem `uuid`, and the temporary one made for it (nil
    /// when the given or default cache_dir holds metadata, or `sharedMetadata`: it is in PostgreSQL).
    static func choose(given: String?, uuid: String, command: String,
                       sharedMetadata: Bool = false) throws(OptionError) -> (path: String, temporary: TemporaryCacheDirectory?) {
        let chosen = given ?? CacheDirectory.defaultRoot + "/" + uuid
        if sharedMetadata || PosixFiles.exists(chosen + "/meta.db") { return (chosen, nil) }
        let temporary = try TemporaryCacheDirectory(command: command)
        return (temporary.path, temporary)
    }

    private init(command: String) throws(OptionError) {
        let root = ProcessInfo.processInfo.environment["TMPDIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/var/tmp"
        var template = Array((root + "/mossaicfs-\(command)-XXXXXX").utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw OptionError("cannot create a temporary directory in \(root) for the metadata: \(String(cString: strerror(errno)))")
        }
        path = String(cString: made)
    }

    /// Removes the directory and everything in it.
    func remove() {
        try? FileManager.default.removeItem(atPath: path)
    }
}
