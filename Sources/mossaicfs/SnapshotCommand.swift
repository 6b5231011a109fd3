#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
internal import CIoctl
import MossaicCore

/// `mossaicfs snapshot MOUNTPOINT`: publish a metadata snapshot of a mounted read-write
/// filesystem now. This is what `sync -f` would do if the kernel forwarded syncfs(2) to FUSE
/// daemons (it does not; see `ControlRequest`): it commits every open file's buffered writes
/// and returns once the store alone restores everything up to this moment.
struct SnapshotCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "snapshot",
        abstract: "Commit open files and publish a metadata snapshot of the filesystem mounted on MOUNTPOINT now.",
        discussion: """
        Returns when the snapshot is in the store and prints its id. Nothing is published when \
        nothing changed since the last snapshot; its id is printed. sync -f (syncfs) does not \
        reach FUSE daemons, so use this where a script needs the store to be up to date. \
        Only the user who mounted the filesystem, or root, may run it.
        """)

    @Argument(help: "The mountpoint (or any directory) of a read-write mossaicfs mount.")
    var mountpoint: String

    func run() throws {
        let fd = open(mountpoint, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else {
            Console.error("\(mountpoint): \(String(cString: strerror(errno)))")
            throw ExitCode.failure
        }
        defer { close(fd) }
        var reply = [UInt8](repeating: 0, count: ControlRequest.replySize)
        let rc = reply.withUnsafeMutableBytes { cioctl_ptr(fd, UInt(ControlRequest.snapshotIoctl), $0.baseAddress) }
        guard rc == 0 else {
            let e = errno
            switch e {
            case ENOTTY, EINVAL: Console.error("\(mountpoint) is not a mossaicfs mount")
            case EROFS: Console.error("\(mountpoint) is a read-only mount: it takes no snapshots")
            case EPERM: Console.error(ControlClient.refusal(mountpoint))
            case EIO: Console.error("\(mountpoint): the snapshot failed; the daemon's log (syslog) says why")
            case EOPNOTSUPP: Console.error("\(mountpoint) keeps its metadata in PostgreSQL: it has no metadata snapshots")
            default: Console.error("\(mountpoint): \(String(cString: strerror(e)))")
            }
            throw ExitCode.failure
        }
        let id = String(decoding: reply.prefix { $0 != 0 }, as: UTF8.self)
        Console.out(id.isEmpty ? "no metadata snapshot" : "snapshot \(id)")
    }
}
