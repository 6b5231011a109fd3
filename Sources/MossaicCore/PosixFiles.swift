#if canImport(Glibc)
import Glibc
#endif

/// Small, blocking file helpers over POSIX calls, shared by the directory store, the blob cache
/// and the daemon. They exist because every caller needs the same durability rule — publish by
/// temp file + fsync + rename + fsync of the directory — and the same errno-carrying errors.
public enum PosixFiles {
    /// Reads a whole file.
    public static func read(_ path: String) throws(SystemError) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw SystemError("open", path: path) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw SystemError("fstat", path: path) }
        if st.st_size > 0 { return try readAll(fd: fd, count: Int(st.st_size), offset: 0, path: path) }
        // Size 0 may mean "generated on read" (/proc): read until EOF.
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = Glibc.read(fd, &buffer, buffer.count)
            if n > 0 { out += buffer[0..<n]; continue }
            if n < 0 && errno == EINTR { continue }
            if n < 0 { throw SystemError("read", path: path) }
            return out
        }
    }

    /// Reads `count` bytes at `offset`, fewer only at end of file.
    public static func read(_ path: String, offset: UInt64, count: Int) throws(SystemError) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw SystemError("open", path: path) }
        defer { close(fd) }
        return try readAll(fd: fd, count: count, offset: off_t(offset), path: path)
    }

    /// Reads `count` bytes at `offset` of the open `fd` (`path` names it in errors), fewer only
    /// at end of file.
    public static func read(fd: Int32, offset: UInt64, count: Int, path: String) throws(SystemError) -> [UInt8] {
        try readAll(fd: fd, count: count, offset: off_t(offset), path: path)
    }

    private static func readAll(fd: Int32, count: Int, offset: off_t, path: String) throws(SystemError) -> [UInt8] {
        // Filled by pread directly: no zeroing of up to a megabyte that is then overwritten.
        var failure: SystemError?
        let buffer = [UInt8](unsafeUninitializedCapacity: count) { raw, initialized in
            var done = 0
            while done < count {
                let n = pread(fd, raw.baseAddress! + done, count - done, offset + off_t(done))
                if n < 0 {
                    if errno == EINTR { continue }
                    failure = SystemError("read", path: path); break
                }
                if n == 0 { break }
                done += n
            }
            initialized = done
        }
        if let failure { throw failure }
        return buffer
    }

    /// Writes all of `data` to `fd` at `offset`.
    public static func write(fd: Int32, _ data: UnsafeRawBufferPointer, offset: UInt64, path: String) throws(SystemError) {
        var done = 0
        while done < data.count {
            let n = pwrite(fd, data.baseAddress! + done, data.count - done, off_t(offset) + off_t(done))
            if n < 0 {
                if errno == EINTR { continue }
                throw SystemError("write", path: path)
            }
            done += n
        }
    }

    /// Writes `data` to a new temp file beside `path`'s directory in `tempDirectory`, fsyncs it,
    /// and returns the temp path. The caller publishes it (rename or link).
    public static func writeTemp(_ data: UnsafeRawBufferPointer, in tempDirectory: String, durable: Bool) throws(SystemError) -> String {
        let name = tempDirectory + "/" + uniqueName()
        let fd = open(name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw SystemError("create", path: name) }
        do throws(SystemError) {
            try write(fd: fd, data, offset: 0, path: name)
            if durable, fsync(fd) != 0 { throw SystemError("fsync", path: name) }
        } catch {
            close(fd); unlink(name); throw error
        }
        close(fd)
        return name
    }

    /// Publishes `data` at `path` atomically: readers see the old file or the whole new one.
    /// With `durable`, the data and the directory entry are on disk when this returns.
    public static func writeAtomically(_ data: [UInt8], to path: String, tempDirectory: String, durable: Bool) throws(SystemError) {
        let temp = try withBytes(data) { (raw) throws(SystemError) in try writeTemp(raw, in: tempDirectory, durable: durable) }
        guard rename(temp, path) == 0 else {
            let e = SystemError("rename", path: path); unlink(temp); throw e
        }
        if durable { try syncDirectory(of: path) }
    }

    /// `Array.withUnsafeBytes` is `rethrows`, which loses a typed error; this keeps it.
    public static func withBytes<R, E: Error>(_ data: [UInt8], _ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        var result: Result<R, E>!
        data.withUnsafeBytes { raw in
            do throws(E) { result = .success(try body(raw)) } catch { result = .failure(error) }
        }
        return try result.get()
    }

    /// fsyncs the directory holding `path`, so a rename or link into it survives a crash.
    /// fsync(2) of the file at `path`: writes back what any descriptor wrote to it.
    public static func syncFile(_ path: String) throws(SystemError) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw SystemError("open", path: path) }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw SystemError("fsync", path: path) }
    }

    public static func syncDirectory(of path: String) throws(SystemError) {
        let dir = directoryName(path)
        let fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw SystemError("open", path: dir) }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw SystemError("fsync", path: dir) }
    }

    /// `mkdir -p` with `mode` for the directories it creates.
    public static func makeDirectories(_ path: String, mode: mode_t = 0o755) throws(SystemError) {
        var st = stat()
        if stat(path, &st) == 0 {
            guard st.st_mode & S_IFMT == S_IFDIR else { throw SystemError("mkdir", path: path, errno: ENOTDIR) }
            return
        }
        let parent = directoryName(path)
        if parent != path && !parent.isEmpty { try makeDirectories(parent, mode: mode) }
        if mkdir(path, mode) != 0 && errno != EEXIST { throw SystemError("mkdir", path: path) }
    }

    /// Names of the entries of a directory, without `.` and `..`.
    public static func listDirectory(_ path: String) throws(SystemError) -> [String] {
        guard let dir = opendir(path) else { throw SystemError("opendir", path: path) }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(cString: raw.bindMemory(to: CChar.self).baseAddress!)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    /// Removes a file or a whole tree; a missing path is not an error.
    public static func removeTree(_ path: String) throws(SystemError) {
        var st = stat()
        guard lstat(path, &st) == 0 else {
            if errno == ENOENT { return }
            throw SystemError("lstat", path: path)
        }
        if st.st_mode & S_IFMT == S_IFDIR {
            for name in try listDirectory(path) { try removeTree(path + "/" + name) }
            if rmdir(path) != 0 && errno != ENOENT { throw SystemError("rmdir", path: path) }
        } else if unlink(path) != 0 && errno != ENOENT {
            throw SystemError("unlink", path: path)
        }
    }

    public static func exists(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0
    }

    public static func directoryName(_ path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    /// A name no other thread or process will pick: pid, a per-process counter and randomness.
    public static func uniqueName() -> String {
        ".tmp-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
    }
}
