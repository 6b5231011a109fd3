import Dispatch
import Foundation
import Synchronization

/// A throwaway PostgreSQL server for tests, run through `Tests/e2e/pgserver.py serve` (the one
/// launcher the Python end-to-end tests use too): initdb into a temporary directory, the server
/// on a free port (as the `postgres` user when tests run as root), stopped by PID.
///
/// As with `S3TestServer`, the launcher lives until its stdin reaches EOF, so a test process
/// that crashes takes the server with it; `stop()` closes that pipe and waits.
public final class PostgresTestServer: Sendable {
    /// `postgres://mossaic@127.0.0.1:PORT/postgres?passfile=…`: the password is in the passfile.
    public let url: String
    public let port: Int
    public let passfile: String
    /// PID of the launcher (which owns the postmaster).
    public let pid: Int32

    private let launcher: Mutex<(process: Process, stdin: FileHandle)?>
    private let exited: DispatchSemaphore

    public struct LaunchError: Error, CustomStringConvertible {
        public let description: String
    }

    /// Starts a server; blocks until it accepts connections (the launcher bounds its own wait).
    public init(repositoryRoot: URL) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", repositoryRoot.appendingPathComponent("Tests/e2e/pgserver.py").path, "serve"]
        let input = Pipe(), output = Pipe(), errors = Pipe()
        process.standardInput = input
        process.standardOutput = output
        // The launcher writes to stderr only when it fails to start, before it prints its line.
        process.standardError = errors
        let exited = DispatchSemaphore(value: 0)
        process.terminationHandler = { _ in exited.signal() }
        try process.run()
        try? output.fileHandleForWriting.close()
        try? errors.fileHandleForWriting.close()
        try? input.fileHandleForReading.close()

        // Reading blocks only until the launcher prints its line or exits (closing the pipe).
        var line: [UInt8] = []
        while let byte = try? output.fileHandleForReading.read(upToCount: 1)?.first, byte != UInt8(ascii: "\n") { line.append(byte) }
        let info = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any]
        guard let info, let url = info["url"] as? String, let port = info["port"] as? Int, let passfile = info["passfile"] as? String else {
            try? input.fileHandleForWriting.close()
            exited.wait()
            let stderr = String(decoding: (try? errors.fileHandleForReading.readToEnd()) ?? Data(), as: UTF8.self)
            throw LaunchError(description: "pgserver.py did not start: \(stderr.suffix(2000))")
        }
        self.url = url
        self.port = port
        self.passfile = passfile
        self.pid = process.processIdentifier
        self.exited = exited
        launcher = Mutex((process, input.fileHandleForWriting))
    }

    /// The URL of database `name` on this server.
    public func url(database name: String) -> String {
        url.replacingOccurrences(of: "/postgres?", with: "/\(name)?")
    }

    /// Stops the launcher and with it the server (fast shutdown, by PID). Idempotent.
    public func stop() {
        guard let (_, stdin) = launcher.withLock({ state in defer { state = nil }; return state }) else { return }
        try? stdin.close()
        if exited.wait(timeout: .now() + 30) == .timedOut {
            kill(pid, SIGTERM)
            exited.wait()
        }
    }

    deinit { stop() }
}
