#if canImport(Glibc)
import Glibc
#endif
import MossaicCore

/// Files and directories given to `info` and `warmup`, grouped by the daemon serving them.
///
/// A path's daemon is found from its device number (stat's st_dev is the mount's, as mountinfo
/// shows it), through the daemon's registration in /run/mossaicfs (`MountRegistry`); the daemon
/// is asked about inode numbers (st_ino), which are its own: nothing is resolved twice.
struct MountedPath {
    var path: String
    var inode: UInt64

    struct Daemon {
        var device: String
        var socket: String
        var paths: [MountedPath]
    }

    static func group(_ paths: [String]) throws(OptionError) -> [Daemon] {
        var daemons: [Daemon] = []
        for path in paths {
            var st = stat()
            guard stat(path, &st) == 0 else { throw OptionError("\(path): \(String(cString: strerror(errno)))") }
            // glibc's major()/minor() are macros Swift cannot call: the same bit layout.
            let dev = UInt64(st.st_dev)
            let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & ~0xfff)
            let minor = (dev & 0xff) | ((dev >> 12) & ~0xff)
            let device = "\(major):\(minor)"
            let entry = MountedPath(path: path, inode: UInt64(st.st_ino))
            if let i = daemons.firstIndex(where: { $0.device == device }) {
                daemons[i].paths.append(entry)
                continue
            }
            guard let cacheDirectory = MountRegistry.cacheDirectory(ofDevice: device) else {
                throw OptionError("\(path) is not on a mounted mossaicfs filesystem (or its daemon did not register in \(MountRegistry.directory))")
            }
            daemons.append(Daemon(device: device, socket: cacheDirectory + "/control.sock", paths: [entry]))
        }
        return daemons
    }
}
