/// Requests the `mossaicfs` command sends to a mounted daemon. Two channels carry them, and
/// the daemon answers both through `MossaicFilesystem.control(_:caller:)`, which decides once,
/// for every request, who may ask: the mount's owner or root.
///
/// - `snapshot`: an ioctl(2) on the mountpoint. The kernel does not forward syncfs(2)
///   (`sync -f`) to a /dev/fuse daemon — it sends FUSE_SYNCFS only to virtiofs, and libfuse
///   3.14's low-level API has no syncfs operation — so "snapshot the metadata now" needs a
///   channel of its own. An ioctl on the mountpoint reaches exactly the daemon serving it,
///   needs no pid or cache_dir lookup, is answered synchronously with an errno, and carries the
///   snapshot id back.
/// - `status`: a line on the daemon's control socket (cache_dir/control.sock), found through
///   /run/mossaicfs; its JSON answer has no fixed size, which an ioctl reply needs. The socket
///   takes any request's name, `snapshot` too.
/// - `info INO…`: a JSON array of the figures of each inode (a directory's over its tree).
/// - `warmup INO…`: fetches the chunks of the inodes' files into the daemon's cache; streams
///   `ProgressEvent` lines while it works, then the JSON report.
/// - `progress`: streams a `ProgressEvent` line at each change of the daemon's long tasks
///   (the unmount flush: the upload of write-back chunks) and never answers otherwise: the
///   connection ends when the daemon exits. A command that unmounts connects first, then
///   unmounts, shows the lines, and knows at EOF that the daemon has finished.
///
/// On the socket a request is one line: its name, then its arguments separated by spaces.
public enum ControlRequest: String, Sendable, CaseIterable {
    case snapshot
    case status
    case info
    case warmup
    case progress

    /// The ioctl number of `snapshot`: `_IOR('M', 'S', char[64])` — a read ioctl with a 64-byte
    /// reply, so the kernel's restricted FUSE ioctl mode (sizes taken from the number) carries
    /// it without retries. The reply is the snapshot id, NUL-terminated.
    public static let snapshotIoctl: UInt32 = (2 << 30) | (UInt32(replySize) << 16) | (0x4D << 8) | 0x53
    public static let replySize = 64

    /// The request a control socket line names (`status\n`, `info 1 42\n`) and its arguments.
    public static func parse(_ line: String) -> (request: ControlRequest, arguments: [String])? {
        let words = line.trimmingWhitespace().split(separator: " ").map(String.init)
        guard let first = words.first, let request = ControlRequest(rawValue: first) else { return nil }
        return (request, Array(words.dropFirst()))
    }

    /// The line that asks for `self` with `arguments`.
    public func line(_ arguments: [String] = []) -> String {
        ([rawValue] + arguments).joined(separator: " ") + "\n"
    }
}
