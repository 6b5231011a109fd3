#if canImport(Glibc)
import Glibc
#endif
import MossaicCore

/// Lets `mossaicfs status MOUNTPOINT` find the daemon serving a mount: the daemon links
/// `/run/mossaicfs/<major>:<minor>` (the mount's device number, from mountinfo) to its
/// cache_dir, whose `control.sock` answers. Device numbers are unique among live mounts and
/// /run is emptied at boot, so a stale link can only name a dead daemon's cache_dir.
enum MountRegistry {
    static let directory = "/run/mossaicfs"

    /// The device number ("major:minor") and type of the mount at `mountpoint` (the last
    /// entry wins: mounts stack).
    static func mount(at mountpoint: String) -> (device: String, type: String)? {
        MountTable.mount(at: mountpoint).map { ($0.device, $0.type) }
    }

    /// Raises the kernel's read-ahead for the mount to one chunk (1 MiB; the default is
    /// 128 KiB), so sequential readers arrive in chunk-sized requests. Best effort: needs root.
    static func raiseReadahead(mountpoint: String) {
        guard let (device, _) = mount(at: mountpoint) else { return }
        let path = "/sys/class/bdi/\(device)/read_ahead_kb"
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { return }
        Console.write(fd, "1024\n")
        close(fd)
    }

    static func register(mountpoint: String, cacheDirectory: String) -> String? {
        guard let (device, _) = mount(at: mountpoint) else { return nil }
        try? PosixFiles.makeDirectories(directory)
        let link = directory + "/" + device
        unlink(link)
        return symlink(cacheDirectory, link) == 0 ? link : nil
    }

    /// The cache_dir of the daemon serving `mountpoint`, if it registered.
    static func cacheDirectory(of mountpoint: String) -> String? {
        guard let (device, type) = mount(at: mountpoint), type == "fuse.mossaicfs" else { return nil }
        return cacheDirectory(ofDevice: device)
    }

    /// The cache_dir of the daemon serving the mossaicfs mount with device number `device`
    /// ("major:minor"), if it registered.
    static func cacheDirectory(ofDevice device: String) -> String? {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink(directory + "/" + device, &buffer, buffer.count - 1)
        guard n > 0 else { return nil }
        return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
