import Foundation
import Logging
import MossaicObjectStore
import MossaicTestSupport

/// Paths and store factories shared by the tests.
enum TestEnvironment {
    /// The repository root, found from this file's path (Tests/MossaicObjectStoreTests/…).
    static let repositoryRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// An S3 store on `server`, configured the way the CLI does it: source URL, mount options
    /// and an environment (here holding the server's generated credentials).
    static func s3Store(on server: S3TestServer, prefix: String = "fs", secret: String? = nil,
                        bucket: String? = nil, extraOptions: [String: String] = [:],
                        logger: Logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })) throws -> S3ObjectStore {
        var options = ["endpoint": server.endpoint, "region": server.region, "list_page_size": "100"]
        options.merge(extraOptions) { $1 }
        let configuration = try S3Configuration(
            source: "s3://\(bucket ?? server.bucket)/\(prefix)", options: options,
            environment: ["AWS_ACCESS_KEY_ID": server.accessKey, "AWS_SECRET_ACCESS_KEY": secret ?? server.secretKey])
        return S3ObjectStore(configuration: configuration, logger: logger)
    }

    /// A fresh temporary directory, removed by `remove`.
    static func temporaryDirectory() throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("mossaicfs-test-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// A loopback port with nothing listening on it (bound, then released).
    static func closedPort() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}
