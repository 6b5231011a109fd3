import Foundation
import MossaicObjectStore
import MossaicTestSupport
import Testing

/// HTTPS: certificates are verified by default, and a private CA is trusted through `ca_file=`
/// or `AWS_CA_BUNDLE`.
@Suite("S3 transport")
struct S3TransportTests {
    @Test func tlsIsVerifiedAndCAFileIsHonoured() throws {
        let server = try S3TestServer(repositoryRoot: TestEnvironment.repositoryRoot, tls: true)
        defer { server.stop() }
        let caFile = try #require(server.caFile)
        #expect(server.endpoint.hasPrefix("https://127.0.0.1:"))

        // A self-signed certificate is refused, with a hint, and quickly (not retried).
        let untrusted = try TestEnvironment.s3Store(on: server)
        let error = try #require(throws: ObjectStoreError.self) { try untrusted.checkAccess() }
        guard case .unreachable(let endpoint, let reason) = error else { Issue.record("got \(error)"); return }
        #expect(endpoint == server.endpoint)
        #expect(reason.contains("certificate") && reason.contains("ca_file"))
        #expect(untrusted.retryCount == 0)

        // Trusted through ca_file=: the whole path works over TLS.
        let trusted = try TestEnvironment.s3Store(on: server, extraOptions: ["ca_file": caFile])
        try trusted.checkAccess()
        let data = ObjectStoreConformance.bytes((1 << 20) + 3, seed: 9)
        let etag = try trusted.put("tls/object", data)
        #expect(try trusted.get("tls/object") == data)
        #expect(try trusted.get("tls/object", range: 5..<10) == Array(data[5..<10]))
        #expect(try trusted.list(prefix: "tls/").map(\.etag) == [etag])

        // And through AWS_CA_BUNDLE.
        let fromEnvironment = S3ObjectStore(configuration: try S3Configuration(
            source: "s3://\(server.bucket)/fs", options: ["endpoint": server.endpoint],
            environment: ["AWS_ACCESS_KEY_ID": server.accessKey, "AWS_SECRET_ACCESS_KEY": server.secretKey,
                          "AWS_CA_BUNDLE": caFile]))
        #expect(try fromEnvironment.head("tls/object")?.size == UInt64(data.count))
    }
}
