import Foundation
import MossaicObjectStore
import MossaicTestSupport
import Testing

/// What users see when something is wrong: one-line errors that name the cause, fast.
@Suite("S3 errors")
struct S3ErrorTests {
    @Test func credentialsAndBucketErrorsOnMoto() throws {
        let server = try S3TestServer(repositoryRoot: TestEnvironment.repositoryRoot)
        defer { server.stop() }

        // Wrong secret: SignatureDoesNotMatch, mapped to badCredentials naming the source.
        let wrongSecret = "wrong-secret-\(UUID().uuidString)"
        let badSigner = try TestEnvironment.s3Store(on: server, secret: wrongSecret)
        for attempt in [{ try badSigner.checkAccess() }, { _ = try badSigner.get("anything") },
                        { _ = try badSigner.put("anything", [1]) }] as [() throws -> Void] {
            let error = try #require(throws: ObjectStoreError.self) { try attempt() }
            guard case .badCredentials(let message) = error else {
                Issue.record("expected badCredentials, got \(error)"); continue
            }
            #expect(message.contains("signature"))
            #expect(message.contains("environment AWS_ACCESS_KEY_ID"))
            #expect(!message.contains(wrongSecret) && !message.contains(server.secretKey))
            #expect(!error.description.contains("\n"))
        }
        #expect(badSigner.retryCount == 0, "a 403 cannot succeed on retry")

        // Unknown access key: InvalidAccessKeyId.
        let unknownKey = try S3ObjectStore(configuration: S3Configuration(
            source: "s3://\(server.bucket)", options: ["endpoint": server.endpoint],
            environment: ["AWS_ACCESS_KEY_ID": "AKIAUNKNOWNUNKNOWN00", "AWS_SECRET_ACCESS_KEY": "x"]))
        let unknownError = try #require(throws: ObjectStoreError.self) { try unknownKey.checkAccess() }
        guard case .badCredentials(let unknownMessage) = unknownError else {
            Issue.record("expected badCredentials, got \(unknownError)"); return
        }
        #expect(unknownMessage.contains("AKIAUNKNOWNUNKNOWN00") && unknownMessage.contains("unknown"))

        // Unknown bucket: named in the error, from the access check and from data operations.
        let noBucket = try TestEnvironment.s3Store(on: server, bucket: "no-such-bucket-here")
        #expect(throws: ObjectStoreError.noSuchBucket(bucket: "no-such-bucket-here")) { try noBucket.checkAccess() }
        #expect(throws: ObjectStoreError.noSuchBucket(bucket: "no-such-bucket-here")) { try noBucket.get("k") }
        #expect(throws: ObjectStoreError.noSuchBucket(bucket: "no-such-bucket-here")) { try noBucket.put("k", [1]) }
        #expect(throws: ObjectStoreError.noSuchBucket(bucket: "no-such-bucket-here")) { try noBucket.list(prefix: "") }
        #expect(throws: ObjectStoreError.noSuchBucket(bucket: "no-such-bucket-here")) { try noBucket.delete("k") }
        #expect(ObjectStoreError.noSuchBucket(bucket: "no-such-bucket-here").description.contains("no-such-bucket-here"))

        // And the good configuration passes the check.
        try TestEnvironment.s3Store(on: server).checkAccess()
    }

    @Test func unreachableEndpointFailsFast() throws {
        let endpoint = "http://127.0.0.1:\(TestEnvironment.closedPort())"
        let configuration = try S3Configuration(
            source: "s3://some-bucket/p", options: ["endpoint": endpoint],
            environment: ["AWS_ACCESS_KEY_ID": "AKIAEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret"])
        let store = S3ObjectStore(configuration: configuration)

        let clock = ContinuousClock()
        var caught: ObjectStoreError?
        let elapsed = clock.measure {
            do { try store.checkAccess() } catch { caught = error as? ObjectStoreError }
        }
        guard case .unreachable(let named, let reason)? = caught else {
            Issue.record("expected unreachable, got \(String(describing: caught))"); return
        }
        #expect(named == endpoint)
        #expect(caught?.description.contains(endpoint) == true)
        #expect(!reason.isEmpty && !reason.contains("\n"))
        #expect(elapsed < .seconds(5), "checkAccess took \(elapsed)")
        #expect(store.retryCount >= 1, "connection refused is retried (briefly)")
    }

    @Test func unresolvableHostFailsFast() throws {
        // .invalid never resolves (RFC 6761); curl's connect timeout bounds a slow resolver.
        let endpoint = "http://mossaicfs-test.invalid:9000"
        let store = try S3ObjectStore(configuration: S3Configuration(
            source: "s3://some-bucket", options: ["endpoint": endpoint],
            environment: ["AWS_ACCESS_KEY_ID": "AKIAEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret"]))
        let started = ContinuousClock.now
        let error = try #require(throws: ObjectStoreError.self) { try store.checkAccess() }
        #expect(started.duration(to: .now) < .seconds(5))
        guard case .unreachable(let named, _) = error else { Issue.record("got \(error)"); return }
        #expect(named == endpoint)
    }

    @Test func unreachableDataOperationUsesConfiguredRetries() throws {
        let endpoint = "http://127.0.0.1:\(TestEnvironment.closedPort())"
        let store = try S3ObjectStore(configuration: S3Configuration(
            source: "s3://some-bucket", options: ["endpoint": endpoint, "retries": "2"],
            environment: ["AWS_ACCESS_KEY_ID": "AKIAEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret"]))
        let error = try #require(throws: ObjectStoreError.self) { try store.get("x") }
        guard case .unreachable(let named, _) = error else { Issue.record("got \(error)"); return }
        #expect(named == endpoint)
        #expect(store.retryCount == 2)
    }
}
