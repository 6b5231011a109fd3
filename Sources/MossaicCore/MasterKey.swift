#if canImport(Glibc)
import Glibc
#endif
internal import COpenSSL

/// Where an encrypted filesystem's 32-byte master key comes from.
///
/// - A key file: 64 hex digits (what `mossaicfs keygen` writes, with a newline; printable, so
///   it can be kept on paper) or exactly 32 raw bytes. It must be readable by its owner only,
///   as ssh insists of private keys: a key readable by others is a key given away.
/// - A passphrase, stretched by scrypt with the salt and costs the superblock records
///   (`KDFParameters`). It comes from a file (same rule as a key file), the environment
///   (`MOSSAICFS_PASSPHRASE`) or the terminal — never the command line, where `ps` shows it.
public enum MasterKey {
    /// Reads a key file.
    public static func read(keyFile path: String) throws(KeyError) -> [UInt8] {
        let bytes = try readPrivateFile(path)
        if bytes.count == ConvergentCipher.keyLength { return bytes }
        let text = String(decoding: bytes, as: UTF8.self).trimmingWhitespace()
        guard let key = ChunkHash(hex: text) else {
            throw .invalid("\(path): not a key file (64 hex digits, or 32 raw bytes; make one with: mossaicfs keygen FILE)")
        }
        return key.bytes
    }

    /// A passphrase file's passphrase: its contents without one trailing newline.
    public static func read(passphraseFile path: String) throws(KeyError) -> [UInt8] {
        var bytes = try readPrivateFile(path)
        if bytes.last == 0x0a { bytes.removeLast() }
        if bytes.last == 0x0d { bytes.removeLast() }
        guard !bytes.isEmpty else { throw .invalid("\(path): the passphrase file is empty") }
        return bytes
    }

    /// Creates `path` (it must not exist) with mode 0600 holding a new random key as 64 hex
    /// digits and a newline.
    public static func generate(keyFile path: String) throws(KeyError) {
        let hex = ChunkHash(bytes: ConvergentCipher.randomBytes(ConvergentCipher.keyLength)).hex
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            if errno == EEXIST { throw .invalid("\(path) exists; a key file is never overwritten (its filesystem would be lost)") }
            throw .invalid(SystemError("open", path: path).description)
        }
        defer { close(fd) }
        do {
            try PosixFiles.withBytes(Array((hex + "\n").utf8)) { (raw) throws(SystemError) in
                try PosixFiles.write(fd: fd, raw, offset: 0, path: path)
            }
        } catch { throw .invalid(error.description) }
        guard fsync(fd) == 0 else { throw .invalid(SystemError("fsync", path: path).description) }
    }

    /// The master key a passphrase gives with `parameters`.
    public static func derive(passphrase: [UInt8], parameters: KDFParameters) throws(KeyError) -> [UInt8] {
        guard parameters.name == KDFParameters.scrypt, let salt = ChunkHash(hex: parameters.salt)?.bytes,
              parameters.n > 1, parameters.n & (parameters.n - 1) == 0, parameters.r > 0, parameters.p > 0,
              parameters.n <= 1 << 22, parameters.r <= 32, parameters.p <= 16 else {
            throw .invalid("unsupported key derivation in the superblock (\(parameters.name), N=\(parameters.n), r=\(parameters.r), p=\(parameters.p))")
        }
        var key = [UInt8](repeating: 0, count: ConvergentCipher.keyLength)
        // scrypt needs 128·N·r bytes; OpenSSL refuses more than maxmem, by default 32 MiB.
        let memory = UInt64(128 * parameters.n * parameters.r) * UInt64(parameters.p) + (64 << 20)
        let ok = passphrase.withUnsafeBytes { pass in
            key.withUnsafeMutableBufferPointer { out in
                EVP_PBE_scrypt(pass.baseAddress?.assumingMemoryBound(to: CChar.self), pass.count, salt, salt.count,
                               UInt64(parameters.n), UInt64(parameters.r), UInt64(parameters.p), memory, out.baseAddress, out.count)
            }
        }
        guard ok == 1 else { throw .invalid("scrypt failed (not enough memory for N=\(parameters.n), r=\(parameters.r)?)") }
        return key
    }

    /// Reads a key or passphrase file, refusing one that others may read.
    private static func readPrivateFile(_ path: String) throws(KeyError) -> [UInt8] {
        var st = stat()
        guard stat(path, &st) == 0 else { throw .invalid(SystemError("cannot read key file", path: path).description) }
        guard st.st_mode & S_IFMT == S_IFREG else { throw .invalid("\(path): not a regular file") }
        guard st.st_mode & 0o077 == 0 else {
            throw .invalid("\(path) may be read by others (mode 0\(String(st.st_mode & 0o777, radix: 8))); chmod 600 it")
        }
        do { return try PosixFiles.read(path) } catch { throw .invalid(error.description) }
    }
}

/// How a passphrase becomes the master key; recorded in the superblock (no secret in it).
public struct KDFParameters: Codable, Sendable, Equatable {
    public static let scrypt = "scrypt"
    public var name: String
    /// 32 random bytes, hex.
    public var salt: String
    public var n: Int
    public var r: Int
    public var p: Int

    /// scrypt at N=2^17, r=8, p=1 (128 MiB, about half a second): OWASP's recommendation.
    public static func fresh() -> KDFParameters {
        KDFParameters(name: scrypt, salt: ChunkHash(bytes: ConvergentCipher.randomBytes(32)).hex, n: 1 << 17, r: 8, p: 1)
    }

    public init(name: String, salt: String, n: Int, r: Int, p: Int) {
        self.name = name; self.salt = salt; self.n = n; self.r = r; self.p = p
    }
}

/// A key that cannot be had or is not the filesystem's; the message is one line.
public enum KeyError: Error, Equatable, Sendable, CustomStringConvertible {
    case invalid(String)
    public var description: String {
        switch self { case .invalid(let why): why }
    }
}
