#if canImport(Glibc)
import Glibc
#endif
import MossaicCore

/// The directory of a local store, as `mossaicfs format` prepares it (an s3:// prefix needs
/// neither step):
///
/// - It must be empty or hold a filesystem already. `format /etc` would otherwise mix the
///   filesystem's objects among other files, which a later `rm -r` of the store or a stray
///   process writing there would take along or damage.
/// - Only its owner may enter it (0700): anyone who can write the directory can delete `meta/`,
///   `chunks/` and `packs/`, and with them every write the filesystem acknowledged.
public enum StoreDirectory {
    /// Entries a directory may hold and still count as empty: the root of a freshly made ext4
    /// filesystem, a natural place for a store, holds `lost+found`.
    static let ignoredEntries: Set<String> = ["lost+found"]

    /// Checks `path` before anything is created in or changed on it, then creates it (0700) or
    /// tightens its mode to 0700. Returns the mode it had when that was changed, so `format`
    /// can say so. `force`: also a directory that holds a filesystem or other entries.
    public static func prepare(_ path: String, force: Bool) throws(FormatError) -> mode_t? {
        var st = stat()
        if stat(path, &st) != 0 {
            guard errno == ENOENT else { throw .store(.failed(SystemError("stat", path: path).description)) }
            do { try PosixFiles.makeDirectories(path, mode: 0o700) } catch { throw .store(.failed(error.description)) }
            guard stat(path, &st) == 0 else { throw .store(.failed(SystemError("stat", path: path).description)) }
        }
        guard st.st_mode & S_IFMT == S_IFDIR else { throw .store(.invalidConfiguration("\(path): not a directory")) }
        if !force {
            let entries: [String]
            do { entries = try PosixFiles.listDirectory(path) } catch { throw .store(.failed(error.description)) }
            // Refused here rather than by Superblock.format's conditional write, which comes
            // after the mode is changed and the store's .tmp is created.
            if entries.contains(Superblock.key) { throw .alreadyFormatted(path) }
            if entries.contains(where: { !ignoredEntries.contains($0) }) { throw .notEmpty(path) }
        }
        let mode = st.st_mode & 0o7777
        guard mode != 0o700 else { return nil }
        guard chmod(path, 0o700) == 0 else { throw .store(.failed(SystemError("chmod", path: path).description)) }
        return mode
    }
}
