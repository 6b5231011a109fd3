#if canImport(Glibc)
import Glibc
#endif
import MossaicCore

/// Who holds a writer lease: enough to tell "this very machine" from "another one", and "a
/// daemon of an earlier boot" from "one that may still run".
public struct HostIdentity: Sendable, Equatable {
    public var hostname: String
    /// `/etc/machine-id`: stable across reboots, distinct between machines that happen to share
    /// a hostname. Empty if unavailable.
    public var machineID: String
    /// `/proc/sys/kernel/random/boot_id`: new at every boot, so a pid from another boot means
    /// nothing.
    public var bootID: String

    public init(hostname: String, machineID: String, bootID: String) {
        self.hostname = hostname; self.machineID = machineID; self.bootID = bootID
    }

    public static func current() -> HostIdentity {
        var buffer = [CChar](repeating: 0, count: 256)
        let name = gethostname(&buffer, buffer.count) == 0
            ? String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) : "unknown"
        return HostIdentity(hostname: name, machineID: firstLine("/etc/machine-id"),
                            bootID: firstLine("/proc/sys/kernel/random/boot_id"))
    }

    /// Same machine: equal machine ids when both are known, else equal hostnames.
    public func isSameHost(_ other: HostIdentity) -> Bool {
        if !machineID.isEmpty && !other.machineID.isEmpty { return machineID == other.machineID }
        return hostname == other.hostname
    }

    /// The first line of a small file, read until EOF (procfs files report size 0, so a read
    /// sized by fstat would return nothing).
    private static func firstLine(_ path: String) -> String {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return "" }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 256)
        while bytes.count < 4096 {
            let n = read(fd, &buffer, buffer.count)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            bytes += buffer[0..<n]
        }
        return String(decoding: bytes.prefix { $0 != 0x0a }, as: UTF8.self)
    }
}

/// Whether process `pid` exists on this machine (kill(pid, 0); EPERM means it exists).
func processExists(_ pid: Int32) -> Bool {
    guard pid > 0 else { return false }
    return kill(pid, 0) == 0 || errno == EPERM
}
