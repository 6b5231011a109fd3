import Dispatch
import Foundation
import Synchronization

/// A moto S3 server for tests, run through `Tests/e2e/s3server.py serve` (the one launcher the
/// Python end-to-end tests use too).
///
/// The launcher prints one JSON line with the endpoint and the generated credentials and lives
/// until its stdin reaches EOF; `stop()` closes that pipe, waits a bounded time and then
/// signals it by PID. Because the launcher also exits when the pipe closes for any other reason,
/// a test process that crashes takes moto with it.
public final class S3TestServer: Sendable {
    public let endpoint: String
    /// moto itself, when `endpoint` is the fault proxy in front of it (else equal to `endpoint`).
    public let upstreamEndpoint: String
    public let accessKey: String
    public let secretKey: String
    public let bucket: String
    public let region: String
    /// PID of the launcher process (which owns moto and the proxy).
    public let pid: Int32
    /// With `tls`, the PEM file of the endpoint's self-signed certificate.
    public let caFile: String?

    private struct State {
        var process: Process?
        var stdin: FileHandle?
    }
    private let state: Mutex<State>
    private let exited: DispatchSemaphore

    /// What the fault proxy does with one request.
    public enum Fault: String, Sendable {
        case before, after, none
    }

    /// What the fault proxy does with uploads of one form.
    public enum UploadFault: String, Sendable {
        /// Answers uploads signed as a stream (aws-chunked) 501 NotImplemented, like
        /// S3-compatible servers without that feature.
        case refuseStreaming = "refuse-streaming"
        /// Answers uploads with a CRC-32C header 501 NotImplemented (no checksum support).
        case refuseChecksummed = "refuse-checksummed"
        /// Flips one byte of the first checksummed body before forwarding it (damage on the way).
        case corruptChecksummed = "corrupt-checksummed"
    }

    public struct LaunchError: Error, CustomStringConvertible {
        public let description: String
    }

    /// Starts a server. Blocks until it is ready (the launcher bounds its own wait).
    /// - Parameters:
    ///   - repositoryRoot: the directory holding `Tests/e2e/s3server.py`.
    ///   - faultRate: if > 0, a fault proxy answering 503 for this share of requests is in front.
    ///   - faultPattern: instead of a rate, the proxy's answer per request, cycled: `.before`
    ///     (503 without forwarding), `.after` (forwarded, then the response replaced by a 503),
    ///     `.none`.
    ///   - tls: serve HTTPS (through the proxy) with a fresh self-signed certificate (`caFile`).
    ///   - authenticated: false skips moto's IAM authentication (any signature is accepted).
    ///   - uploadFault: what the proxy does to uploads of one form (refuse or damage them).
    public init(repositoryRoot: URL, bucket: String = "mossaicfs-test", region: String = "us-east-1",
                faultRate: Double = 0, faultSeed: Int = 1, faultPattern: [Fault] = [], tls: Bool = false,
                authenticated: Bool = true, uploadFault: UploadFault? = nil) throws {
        let script = repositoryRoot.appendingPathComponent("Tests/e2e/s3server.py").path
        var arguments = ["python3", script, "serve", "--bucket", bucket, "--region", region]
        if faultRate > 0 { arguments += ["--fault-rate", String(faultRate), "--fault-seed", String(faultSeed)] }
        if !faultPattern.isEmpty { arguments += ["--fault-pattern", faultPattern.map(\.rawValue).joined(separator: ",")] }
        if tls { arguments.append("--tls") }
        if !authenticated { arguments.append("--no-auth") }
        if let uploadFault { arguments += ["--upload-fault", uploadFault.rawValue] }

        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        let input = Pipe(), output = Pipe()
        // stderr goes to a file, not a pipe: nobody drains it while tests run, and a full pipe
        // would block the launcher.
        let logPath = FileManager.default.temporaryDirectory
            .appendingPathComponent("s3server-\(ProcessInfo.processInfo.processIdentifier)-\(UUID().uuidString).log").path
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        let log = FileHandle(forWritingAtPath: logPath)
        process.standardInput = input
        process.standardOutput = output
        process.standardError = log ?? FileHandle.nullDevice
        let exited = DispatchSemaphore(value: 0)
        process.terminationHandler = { _ in exited.signal() }
        try process.run()
        try? log?.close()
        try? output.fileHandleForWriting.close()
        try? input.fileHandleForReading.close()

        // Reading blocks only until the launcher prints its line or exits (closing the pipe).
        let line = Self.readLine(output.fileHandleForReading)
        let info = line.flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        guard let info, let endpoint = info["endpoint"] as? String, let accessKey = info["access_key"] as? String,
              let secretKey = info["secret_key"] as? String, let bucketName = info["bucket"] as? String,
              let regionName = info["region"] as? String else {
            try? input.fileHandleForWriting.close()
            if exited.wait(timeout: .now() + 10) == .timedOut { process.terminate(); exited.wait() }
            let stderr = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
            try? FileManager.default.removeItem(atPath: logPath)
            throw LaunchError(description: "s3server.py did not start: \(stderr.suffix(2000))")
        }
        try? FileManager.default.removeItem(atPath: logPath)
        self.endpoint = endpoint
        self.upstreamEndpoint = (info["upstream_endpoint"] as? String) ?? endpoint
        self.accessKey = accessKey
        self.secretKey = secretKey
        self.bucket = bucketName
        self.region = regionName
        self.pid = process.processIdentifier
        self.caFile = info["ca_file"] as? String
        self.exited = exited
        state = Mutex(State(process: process, stdin: input.fileHandleForWriting))
    }

    /// Stops the launcher (and with it moto and the proxy). Idempotent.
    public func stop() {
        // Taking the process out of the state makes a second stop() a no-op.
        let (running, stdin) = state.withLock { s in
            defer { s = State() }
            return (s.process != nil, s.stdin)
        }
        guard running else { return }
        // EOF on stdin is the launcher's orderly shutdown; SIGTERM by PID if it does not exit.
        try? stdin?.close()
        if exited.wait(timeout: .now() + 10) == .timedOut {
            kill(pid, SIGTERM)
            if exited.wait(timeout: .now() + 5) == .timedOut {
                kill(pid, SIGKILL)
                exited.wait()
            }
        }
    }

    deinit { stop() }

    private static func readLine(_ handle: FileHandle) -> String? {
        var bytes: [UInt8] = []
        while true {
            guard let chunk = try? handle.read(upToCount: 1), let byte = chunk.first else { break }
            if byte == UInt8(ascii: "\n") { return String(decoding: bytes, as: UTF8.self) }
            bytes.append(byte)
        }
        return bytes.isEmpty ? nil : String(decoding: bytes, as: UTF8.self)
    }
}
