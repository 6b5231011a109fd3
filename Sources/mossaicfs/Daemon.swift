#if canImport(Glibc)
import Glibc
#endif
import MossaicCore

/// Starting the mount daemon in the background without fork(2).
///
/// Forking after Swift concurrency or Foundation threads have started is unsafe (the child
/// inherits one thread and locks held by others). So `mount` without `-f` spawns this same
/// executable in the foreground mode with `--ready-fd N` (posix_spawn, new session, stdio on
/// /dev/null) and waits on a pipe: the daemon writes `READY` once the kernel mount exists, or
/// one line saying why it failed. EOF without either means it died; its exit status is told.
/// Before that, lines starting with `NOTE ` are news for the user that `mount` prints at once
/// (it waits for a previous daemon on the same cache_dir, say).
enum Daemon {
    static let readyMessage = "READY"
    static let notePrefix = "NOTE "

    /// Spawns the daemon and waits for its verdict. Returns the exit code for `mount`.
    static func spawnAndWait(arguments: [String]) -> Int32 {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { Console.error("pipe: \(String(cString: strerror(errno)))"); return 1 }
        let (readEnd, writeEnd) = (fds[0], fds[1])
        // Neither end may leak into other children; the daemon gets its own copy below.
        _ = fcntl(readEnd, F_SETFD, FD_CLOEXEC)
        _ = fcntl(writeEnd, F_SETFD, FD_CLOEXEC)

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        // The write end must survive exec in the child: dup2 onto another number clears CLOEXEC
        // (dup2 onto the same number would not).
        let childFD: Int32 = writeEnd == 3 ? 4 : 3
        posix_spawn_file_actions_adddup2(&actions, writeEnd, childFD)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // A session of its own: the daemon must not die with the terminal or shell that ran
        // mount. POSIX_SPAWN_SETSID (glibc's 0x80) is hidden behind _GNU_SOURCE in Swift.
        posix_spawnattr_setflags(&attributes, 0x80)

        let executable = selfExecutable()
        let argv = [executable] + arguments + ["--foreground", "--ready-fd", "\(childFD)"]
        var cArgs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
        defer { for p in cArgs { free(p) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, executable, &actions, &attributes, &cArgs, environ)
        close(writeEnd)
        guard rc == 0 else {
            close(readEnd)
            Console.error("cannot start the daemon \(executable): \(String(cString: strerror(rc)))")
            return 1
        }

        // Lines until EOF: progress of a metadata restore (shown on a terminal), notes (the
        // wait for a previous daemon), then READY or why the mount failed.
        let bar = ProgressBar(unit: .bytes)
        var unread: [UInt8] = []
        var reply: [String] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        func take(_ line: String) {
            if line.hasPrefix(notePrefix) { Console.error(String(line.dropFirst(notePrefix.count))) } else { reply.append(line) }
        }
        while true {
            let n = read(readEnd, &buffer, buffer.count)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { break }
            unread += buffer[0..<n]
            while let newline = unread.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: unread[..<newline], as: UTF8.self)
                if let event = ProgressEvent(line: line) { bar.show(event) } else { take(line) }
                unread.removeSubrange(...newline)
            }
        }
        bar.finish()
        close(readEnd)
        if !unread.isEmpty { take(String(decoding: unread, as: UTF8.self)) }
        let text = reply.joined(separator: "\n").trimmingWhitespace()
        if text == readyMessage { return 0 }
        if !text.isEmpty {
            Console.error(text)
        } else {
            var status: Int32 = 0
            waitpid(pid, &status, 0)
            let signal = status & 0x7f
            Console.error(signal != 0 ? "the daemon was killed by signal \(signal) before the mount was ready"
                                      : "the daemon exited with status \((status >> 8) & 0xff) before the mount was ready")
        }
        // The daemon exits on its own after reporting; reap it so no zombie stays behind.
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        return 1
    }

    /// Tells the waiting `mount` (if any) something to print at once; the pipe stays open.
    static func tell(fd: Int32?, _ message: String) {
        guard let fd else { return }
        Console.write(fd, notePrefix + message + "\n")
    }

    /// Tells the waiting `mount` (if any) that the mount is live, or why it failed.
    static func report(fd: Int32?, _ message: String) {
        guard let fd else { return }
        Console.write(fd, message + "\n")
        close(fd)
    }

    private static func selfExecutable() -> String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard n > 0 else { return CommandLine.arguments[0] }
        return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
