import Foundation
import Logging
import MossaicObjectStore
import MossaicTestSupport
import Testing

/// The one conformance suite (ObjectStoreConformance), run on every ObjectStore implementation.
@Suite("ObjectStore conformance")
struct ObjectStoreConformanceTests {
    @Test func directoryStore() throws {
        let root = try TestEnvironment.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let store = try DirectoryObjectStore(root: root, create: true)
        ObjectStoreConformance(store: store).run()
    }

    @Test func s3StoreOnMoto() throws {
        let server = try S3TestServer(repositoryRoot: TestEnvironment.repositoryRoot)
        defer { server.stop() }
        let store = try TestEnvironment.s3Store(on: server)
        try store.checkAccess()
        ObjectStoreConformance(store: store).run()
        #expect(store.retryCount == 0, "moto without faults should need no retries")
    }

    /// `upload_checksum=sha256`: packs signed member by member (aws-chunked streaming
    /// signatures), which authenticated moto checks like any signature.
    @Test func s3StoreWithStreamingSignatures() throws {
        let server = try S3TestServer(repositoryRoot: TestEnvironment.repositoryRoot)
        defer { server.stop() }
        let store = try TestEnvironment.s3Store(on: server, extraOptions: ["upload_checksum": "sha256"])
        #expect(store.configuration.uploadChecksum == .sha256)
        ObjectStoreConformance(store: store).run(only: ["pack put", "chunk put", "round trip", "special keys"])
        #expect(store.retryCount == 0)
    }

    /// A server that does not take uploads signed as a stream (the proxy answers 501
    /// NotImplemented, as some S3-compatible servers do): packs still get stored, signed whole,
    /// and the store stops trying after the first refusal.
    @Test func s3StoreThatRefusesStreamingUploads() throws {
        let server = try S3TestServer(repositoryRoot: TestEnvironment.repositoryRoot, uploadFault: .refuseStreaming)
        defer { server.stop() }
        try expectOneRefusalThenWholeBodies(on: server, options: ["upload_checksum": "sha256"], form: "streaming-signed")
    }

    /// The same for a server that refuses uploads with a CRC-32C header (the default form).
    @Test func s3StoreThatRefusesChecksummedUploads() throws {
        let server = try S3TestServer(repositoryRoot: TestEnvironment.repositoryRoot, uploadFault: .refuseChecksummed)
        defer { server.stop() }
        try expectOneRefusalThenWholeBodies(on: server, options: [:], form: "CRC-32C-checked")
    }

    /// Packs still stored (and read back) after the server refused their form, which is logged
    /// once and not retried: every later pack goes signed whole.
    private func expectOneRefusalThenWholeBodies(on server: S3TestServer, options: [String: String], form: String) throws {
        let log = CapturingLogHandler.Messages()
        let store = try TestEnvironment.s3Store(on: server, extraOptions: options, logger: CapturingLogHandler.logger(into: log))
        ObjectStoreConformance(store: store).run(only: ["pack put", "chunk put", "round trip"])
        ObjectStoreConformance(store: store).run(only: ["pack put"])
        #expect(store.retryCount == 0, "a refused form is not a transient failure")
        let refusals = log.all.filter { $0.message.contains("refused a \(form) PUT") }
        #expect(refusals.count == 1, "one refusal, then whole bodies: \(log.all.map(\.message))")
    }

    /// A pack damaged on the way (the proxy flips one byte of the first checksummed body): the
    /// server, checking the CRC-32C as S3 does, answers BadDigest and stores nothing; the store
    /// sends the pack again signed whole, and it arrives intact. Later packs use the checksum
    /// again. This also shows the test server checks the header, so the other suites' packs
    /// passing means their checksums are right.
    @Test func s3StoreResendsAPackDamagedOnTheWay() throws {
        let server = try S3TestServer(repositoryRoot: TestEnvironment.repositoryRoot, uploadFault: .corruptChecksummed)
        defer { server.stop() }
        let log = CapturingLogHandler.Messages()
        let store = try TestEnvironment.s3Store(on: server, logger: CapturingLogHandler.logger(into: log))
        ObjectStoreConformance(store: store).run(only: ["pack put"])
        ObjectStoreConformance(store: store).run(only: ["pack put"])
        let messages = log.all.map(\.message)
        #expect(messages.filter { $0.contains("checksum did not match") }.count == 1, "\(messages)")
        #expect(!messages.contains { $0.contains("refused") }, "the checksummed form stays in use: \(messages)")
    }

    /// moto behind a proxy that answers 503 to a seeded 10% of requests (half of them after
    /// moto did the work): the suite must still pass, through retries.
    @Test func s3StoreThroughFaultProxy() throws {
        let server = try S3TestServer(repositoryRoot: TestEnvironment.repositoryRoot, faultRate: 0.1, faultSeed: 7)
        defer { server.stop() }
        #expect(server.endpoint != server.upstreamEndpoint)
        let store = try TestEnvironment.s3Store(on: server)
        ObjectStoreConformance(store: store).run()
        #expect(store.retryCount > 0, "the proxy injected no fault the store noticed")
    }

    /// A conditional PUT whose first attempt succeeded but whose response was lost (the proxy
    /// alternates "forward, then answer 503" and "pass through"): the retry sees 412, and the
    /// store must recognise its own write instead of reporting a conflict, yet still report a
    /// real conflict.
    @Test func conditionalPutWithLostResponse() throws {
        let server = try S3TestServer(repositoryRoot: TestEnvironment.repositoryRoot, faultPattern: [.after, .none])
        defer { server.stop() }
        let store = try TestEnvironment.s3Store(on: server)
        let first: [UInt8] = Array("holder A".utf8)

        let etag = try store.put("meta/lease", first, condition: .ifNoneMatch)
        #expect(try store.get("meta/lease") == first)
        #expect(throws: ObjectStoreError.preconditionFailed(key: "meta/lease")) {
            try store.put("meta/lease", Array("holder B".utf8), condition: .ifNoneMatch)
        }
        let renewed = try store.put("meta/lease", Array("holder A, renewed".utf8), condition: .ifMatch(etag))
        #expect(renewed != etag)
        #expect(throws: ObjectStoreError.preconditionFailed(key: "meta/lease")) {
            try store.put("meta/lease", Array("holder C".utf8), condition: .ifMatch(etag))
        }
        #expect(try store.get("meta/lease") == Array("holder A, renewed".utf8))
        #expect(store.retryCount >= 8, "every request's first attempt lost its response")
    }

    /// The fault-injecting wrapper over the directory store: faults surface as errors, and are
    /// counted; with the failure rate at 0 the wrapper itself conforms.
    @Test func faultInjectingStore() throws {
        let root = try TestEnvironment.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let base = try DirectoryObjectStore(root: root, create: true)

        ObjectStoreConformance(store: FaultInjectingObjectStore(base, configuration: .init(failureRate: 0))).run()

        let faulty = FaultInjectingObjectStore(base, configuration: .init(failureRate: 0.3, timing: .after, seed: 42))
        var failures = 0
        for i in 0..<200 {
            do { try faulty.put("f/\(i)", [UInt8(i & 0xFF)]) } catch { failures += 1; #expect(error == .failed("injected fault")) }
        }
        #expect(failures == faulty.injectedFaults)
        #expect((30...90).contains(failures), "about 30% of 200")
        // Faults injected after the call: every put still took effect.
        #expect(try base.list(prefix: "f/").count == 200)

        // Same seed, same single-threaded sequence: the same faults.
        let replay = FaultInjectingObjectStore(base, configuration: .init(failureRate: 0.3, timing: .before, seed: 42))
        var replayFailures = 0
        for i in 0..<200 { if (try? replay.head("f/\(i)")) == nil { replayFailures += 1 } }
        #expect(replayFailures == failures)
    }
}
