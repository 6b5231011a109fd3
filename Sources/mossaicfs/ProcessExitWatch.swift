#if canImport(Glibc)
import Glibc
#endif

/// Waits for a process that is not our child to exit, on a pidfd (pidfd_open(2)): readable once
/// the process has exited. The pidfd names that one process, so a pid reused afterwards cannot
/// be mistaken for it.
final class ProcessExitWatch {
    private let fd: Int32

    /// Nil if the process is gone already or pidfds are not available (kernel before 5.3).
    init?(pid: pid_t) {
        // sys/pidfd.h (glibc 2.36) is not part of Swift's Glibc module, so pidfd_open is looked
        // up by name, as MallocControl looks up malloc.h's.
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "pidfd_open") else { return nil }
        typealias PidfdOpen = @convention(c) (pid_t, UInt32) -> Int32
        let fd = unsafeBitCast(symbol, to: PidfdOpen.self)(pid, 0)
        guard fd >= 0 else { return nil }
        self.fd = fd
    }

    deinit { close(fd) }

    /// Waits up to `seconds`; returns whether the process has exited.
    func wait(seconds: Double) -> Bool {
        var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        return poll(&entry, 1, Int32(max(0, min(seconds, 86_400)) * 1000)) > 0
    }
}
