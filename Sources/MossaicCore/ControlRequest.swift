/// Requests the `mossaicfs` command sends to a mounted daemon, as ioctl(2) on the mountpoint.
///
/// Why an ioctl: the kernel does not forward syncfs(2) (`sync -f`) to a /dev/fuse daemon — it
/// sends FUSE_SYNCFS only to virtiofs, and libfuse 3.14's low-level API has no syncfs
/// operation — so "snapshot the metadata now" needs a channel of its own. An ioctl on the
/// mountpoint reaches exactly the daemon serving it, needs no pid or cache_dir lookup, is
/// answered synchronously with an errno, and carries the snapshot id back.
///
/// Encoding: `_IOR('M', 'S', char[64])` — a read ioctl with a 64-byte reply, so the kernel's
/// restricted FUSE ioctl mode (sizes taken from the number) carries it without retries.
public enum ControlRequest {
    /// Take a metadata snapshot now; the reply is the snapshot id, NUL-terminated.
    public static let snapshot: UInt32 = (2 << 30) | (UInt32(replySize) << 16) | (0x4D << 8) | 0x53
    public static let replySize = 64
}
