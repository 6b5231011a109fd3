#if canImport(Glibc)
import Glibc
#endif

/// Tells when a lock file may have changed hands: some process closed it or wrote it (inotify
/// IN_CLOSE_WRITE, IN_CLOSE_NOWRITE, IN_MODIFY).
///
/// The kernel releases a flock(2) when the last descriptor of the locked open file is closed,
/// which includes the exit of the process holding it; inotify reports that same close. So a
/// process waiting for a lock sleeps until the holder lets go instead of polling: it sets the
/// watch up first, tries the lock, and waits here only if the try failed — a release after the
/// try is then an event, never missed. A new holder writing its pid into the file is an event
/// too, so a waiter re-reads who holds the lock. Other processes opening and closing the file
/// wake the waiter as well; it just tries again.
public final class LockWatch {
    private let fd: Int32

    public init(path: String) throws(SystemError) {
        fd = inotify_init1(Int32(IN_CLOEXEC | IN_NONBLOCK))
        guard fd >= 0 else { throw SystemError("inotify_init1", path: path) }
        guard inotify_add_watch(fd, path, UInt32(IN_CLOSE_WRITE | IN_CLOSE_NOWRITE | IN_MODIFY)) >= 0 else {
            let error = SystemError("inotify_add_watch", path: path)
            close(fd)
            throw error
        }
    }

    deinit { close(fd) }

    /// Waits up to `seconds` for an event; returns whether there was one (events are consumed).
    @discardableResult
    public func wait(seconds: Double) -> Bool {
        var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let milliseconds = Int32(max(0, min(seconds, 86_400)) * 1000)
        guard poll(&entry, 1, milliseconds) > 0 else { return false }
        var buffer = [UInt8](repeating: 0, count: 4096)
        while read(fd, &buffer, buffer.count) > 0 {}
        return true
    }
}
