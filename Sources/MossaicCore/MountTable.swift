/// The mounts this process sees, from /proc/self/mountinfo.
public enum MountTable {
    public struct Entry: Equatable, Sendable {
        /// The device number as "major:minor": unique among live mounts (FUSE mounts get an
        /// anonymous one each), so it names one mount even when mounts stack on a path.
        public var device: String
        public var mountpoint: String
        /// The filesystem type, e.g. "fuse.mossaicfs".
        public var type: String
        public var source: String
    }

    /// Every mount, in mountinfo's order (a later entry on the same path is mounted over an
    /// earlier one). Empty if /proc is not mounted.
    public static func entries() -> [Entry] {
        guard let bytes = try? PosixFiles.read("/proc/self/mountinfo") else { return [] }
        var out: [Entry] = []
        for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard fields.count > 7, let dash = fields.firstIndex(of: "-"), dash + 2 < fields.count else { continue }
            out.append(Entry(device: String(fields[2]), mountpoint: unescape(String(fields[4])),
                             type: String(fields[dash + 1]), source: unescape(String(fields[dash + 2]))))
        }
        return out
    }

    /// The mount at `mountpoint` (the topmost, when mounts stack there).
    public static func mount(at mountpoint: String) -> Entry? {
        entries().last { $0.mountpoint == mountpoint }
    }

    /// mountinfo writes space, tab, newline and backslash as \040-style octal escapes.
    static func unescape(_ s: String) -> String {
        var out = [UInt8](), bytes = Array(s.utf8), i = 0
        while i < bytes.count {
            if bytes[i] == UInt8(ascii: "\\"), i + 3 < bytes.count, let v = UInt8(String(decoding: bytes[(i + 1)...(i + 3)], as: UTF8.self), radix: 8) {
                out.append(v); i += 4
            } else {
                out.append(bytes[i]); i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
