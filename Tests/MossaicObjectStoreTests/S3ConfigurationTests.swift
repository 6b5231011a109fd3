import Foundation
@testable import MossaicObjectStore
import Testing

/// Resolution of source URL, mount options and environment into an S3Configuration.
@Suite("S3 configuration")
struct S3ConfigurationTests {
    static let keys = ["AWS_ACCESS_KEY_ID": "AKIAENV", "AWS_SECRET_ACCESS_KEY": "env-secret"]

    func configuration(_ source: String = "s3://bucket-1/some/prefix", _ options: [String: String] = [:],
                       _ environment: [String: String] = keys) throws(ObjectStoreError) -> S3Configuration {
        try S3Configuration(source: source, options: options, environment: environment)
    }

    /// The message of an invalidConfiguration error, or nil (recording an issue) for anything else.
    func invalid(_ body: () throws(ObjectStoreError) -> S3Configuration) -> String? {
        do {
            let c = try body()
            Issue.record("expected invalidConfiguration, got \(c)")
        } catch {
            if case .invalidConfiguration(let message) = error {
                #expect(!message.contains("\n"))
                return message
            }
            Issue.record("expected invalidConfiguration, got \(error)")
        }
        return nil
    }

    @Test func sourceURL() throws {
        let c = try configuration("s3://bucket-1//some/prefix/")
        #expect(c.bucket == "bucket-1")
        #expect(c.prefix == "some/prefix")
        #expect(c.displayName == "s3://bucket-1/some/prefix")
        #expect(try configuration("s3://bucket-1").prefix == "")
        #expect(try configuration("s3://bucket-1/").displayName == "s3://bucket-1")
        #expect(invalid { () throws(ObjectStoreError) in try configuration("/srv/data") }?.contains("s3://") == true)
        #expect(invalid { () throws(ObjectStoreError) in try configuration("s3://b") }?.contains("\"b\"") == true)
        #expect(invalid { () throws(ObjectStoreError) in try configuration("s3://bad bucket/x") }?.contains("bucket") == true)
        #expect(invalid { () throws(ObjectStoreError) in try configuration("s3://bucket-1/a//b") }?.contains("prefix") == true)
    }

    @Test func regionOrder() throws {
        #expect(try configuration().region == "us-east-1")
        #expect(try configuration(environment: ["AWS_DEFAULT_REGION": "eu-west-3"]).region == "eu-west-3")
        #expect(try configuration(environment: ["AWS_DEFAULT_REGION": "eu-west-3", "AWS_REGION": "eu-north-1"]).region == "eu-north-1")
        #expect(try configuration(["region": "ap-south-1"], environment: ["AWS_REGION": "eu-north-1"]).region == "ap-south-1")
        #expect(invalid { () throws(ObjectStoreError) in try configuration("s3://bucket-1", ["region": "EU West"]) }?.contains("region") == true)
    }

    private func configuration(_ options: [String: String] = [:], environment: [String: String]) throws(ObjectStoreError) -> S3Configuration {
        try configuration("s3://bucket-1/some/prefix", options, environment.merging(Self.keys) { a, _ in a })
    }

    @Test func endpointOrderAndAddressing() throws {
        let aws = try configuration(["region": "eu-west-1"], environment: [:])
        #expect(aws.endpoint == "https://s3.eu-west-1.amazonaws.com")
        #expect(aws.addressing == .virtual)
        #expect(try configuration(environment: ["AWS_REGION": "cn-north-1"]).endpoint == "https://s3.cn-north-1.amazonaws.com.cn")

        let generic = try configuration(environment: ["AWS_ENDPOINT_URL": "http://minio.local:9000/"])
        #expect(generic.endpoint == "http://minio.local:9000")
        #expect(generic.addressing == .path)
        #expect(try configuration(environment: ["AWS_ENDPOINT_URL": "http://a:1", "AWS_ENDPOINT_URL_S3": "http://b:2"]).endpoint == "http://b:2")
        #expect(try configuration(["endpoint": "https://c"], environment: ["AWS_ENDPOINT_URL_S3": "http://b:2"]).endpoint == "https://c")
        #expect(try configuration(["endpoint": "http://[::1]:9000"], environment: [:]).endpoint == "http://[::1]:9000")
        #expect(try configuration(["endpoint": "https://s3.example.net", "addressing": "virtual"], environment: [:]).addressing == .virtual)
        #expect(try configuration(["endpoint": "https://s3.eu-west-1.amazonaws.com", "addressing": "path"], environment: [:]).addressing == .path)

        // A dotted bucket cannot be a virtual host under AWS's wildcard certificate.
        #expect(try configuration("s3://my.dotted.bucket", [:], Self.keys).addressing == .path)
        #expect(invalid { () throws(ObjectStoreError) in try configuration("s3://my.dotted.bucket", ["addressing": "virtual"], Self.keys) }?.contains("addressing") == true)
        #expect(invalid { () throws(ObjectStoreError) in try configuration(["addressing": "dns"], environment: [:]) }?.contains("addressing=dns") == true)
        #expect(invalid { () throws(ObjectStoreError) in try configuration(["endpoint": "ftp://x"], environment: [:]) }?.contains("endpoint=ftp://x") == true)
        #expect(invalid { () throws(ObjectStoreError) in try configuration(["endpoint": "localhost:9000"], environment: [:]) }?.contains("endpoint") == true)
        let withSecret = invalid { () throws(ObjectStoreError) in try configuration(["endpoint": "https://AKIA:s3cr3t@host"], environment: [:]) }
        #expect(withSecret?.contains("s3cr3t") == false)
    }

    @Test func urls() throws {
        let path = try configuration("s3://bucket-1/pre fix", ["endpoint": "http://127.0.0.1:9000"], Self.keys)
        let store = S3ObjectStore(configuration: path)
        #expect(store.url(for: "a b+c/é~", query: []) == "http://127.0.0.1:9000/bucket-1/pre%20fix/a%20b%2Bc/%C3%A9~")
        #expect(store.url(for: nil, query: [("prefix", "pre fix/chunks/"), ("list-type", "2")])
            == "http://127.0.0.1:9000/bucket-1?list-type=2&prefix=pre%20fix%2Fchunks%2F")

        let virtual = S3ObjectStore(configuration: try configuration("s3://bucket-1", ["region": "eu-west-1"], Self.keys))
        #expect(virtual.url(for: "mossaicfs.json", query: []) == "https://bucket-1.s3.eu-west-1.amazonaws.com/mossaicfs.json")
        #expect(virtual.url(for: nil, query: [("list-type", "2")]) == "https://bucket-1.s3.eu-west-1.amazonaws.com/?list-type=2")

        let gateway = S3ObjectStore(configuration: try configuration("s3://bucket-1", ["endpoint": "https://gw.example/s3/"], Self.keys))
        #expect(gateway.url(for: "k", query: []) == "https://gw.example/s3/bucket-1/k")
    }

    @Test func numericOptions() throws {
        let c = try configuration("s3://bucket-1", ["max_connections": "4", "retries": "0", "list_page_size": "10", "timeout": "5"], Self.keys)
        #expect(c.maxConnections == 4)
        #expect(c.retryPolicy.maxAttempts == 1)
        #expect(c.retryPolicy.totalBudget == 5 && c.retryPolicy.requestTimeout == 5)
        #expect(c.listPageSize == 10)
        let d = try configuration()
        #expect(d.maxConnections == 16)
        #expect(d.retryPolicy.maxAttempts == 9)
        #expect(d.retryPolicy.totalBudget == 60)
        // Every attempt gets what is left of the request's deadline, the last one a sliver.
        #expect(d.retryPolicy.attemptTimeout(elapsed: 0) == 60)
        #expect(d.retryPolicy.attemptTimeout(elapsed: 45) == 15)
        #expect(d.retryPolicy.attemptTimeout(elapsed: 75)! > 0)
        #expect(d.listPageSize == 1000)
        for (name, value) in [("max_connections", "0"), ("max_connections", "many"), ("retries", "-1"), ("list_page_size", "5000"),
                              ("timeout", "0"), ("timeout", "99999999999")] {
            let message = invalid { () throws(ObjectStoreError) in try configuration("s3://bucket-1", [name: value], Self.keys) }
            #expect(message?.contains("\(name)=\(value)") == true)
        }
    }

    @Test func uploadChecksum() throws {
        #expect(try configuration().uploadChecksum == .crc32c)
        #expect(try configuration("s3://bucket-1", ["upload_checksum": "sha256"]).uploadChecksum == .sha256)
        #expect(try configuration("s3://bucket-1", ["upload_checksum": "crc32c"]).uploadChecksum == .crc32c)
        let message = invalid { () throws(ObjectStoreError) in try configuration("s3://bucket-1", ["upload_checksum": "md5"]) }
        #expect(message == "invalid upload_checksum=md5: expected crc32c or sha256")
    }

    @Test func caBundle() throws {
        let file = try TestEnvironment.temporaryDirectory() + "/ca.pem"
        defer { try? FileManager.default.removeItem(atPath: (file as NSString).deletingLastPathComponent) }
        try "not really a certificate".write(toFile: file, atomically: true, encoding: .utf8)
        #expect(try configuration("s3://bucket-1", ["ca_file": file], Self.keys).caFile == file)
        #expect(try configuration(environment: ["AWS_CA_BUNDLE": file]).caFile == file)
        #expect(try configuration().caFile == nil)
        #expect(invalid { () throws(ObjectStoreError) in try configuration("s3://bucket-1", ["ca_file": "/nonexistent/ca.pem"], Self.keys) }?.contains("ca_file=/nonexistent/ca.pem") == true)
        #expect(invalid { () throws(ObjectStoreError) in try configuration(environment: ["AWS_CA_BUNDLE": "/nonexistent/x"]) }?.contains("AWS_CA_BUNDLE") == true)
    }

    @Test func credentialOrder() throws {
        let dir = try TestEnvironment.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let file = dir + "/creds"
        try """
            # comment
            [default]
            aws_access_key_id = AKIAFILEDEFAULT
            aws_secret_access_key = file-default-secret

            [profile backup]
            AWS_ACCESS_KEY_ID=AKIAFILEBACKUP
            aws_secret_access_key=file-backup-secret
            aws_session_token = token-xyz
            ; another comment
            [broken]
            aws_access_key_id = AKIABROKEN
            """.write(toFile: file, atomically: true, encoding: .utf8)
        try FileManager.default.createDirectory(atPath: dir + "/home/.aws", withIntermediateDirectories: true)
        try "[default]\naws_access_key_id=AKIAHOME\naws_secret_access_key=home-secret\n[other]\naws_access_key_id=AKIAHOMEOTHER\naws_secret_access_key=x\n"
            .write(toFile: dir + "/home/.aws/credentials", atomically: true, encoding: .utf8)
        let home = ["HOME": dir + "/home"]
        let env = Self.keys.merging(home) { a, _ in a }

        // 1. credentials=FILE (profile= or default) beats everything.
        var c = try configuration("s3://bucket-1", ["credentials": file], env).credentials
        #expect(c.accessKeyID == "AKIAFILEDEFAULT" && c.secretAccessKey == "file-default-secret")
        #expect(c.source == "credentials file \(file) profile default")
        c = try configuration("s3://bucket-1", ["credentials": file, "profile": "backup"], env).credentials
        #expect(c.accessKeyID == "AKIAFILEBACKUP" && c.sessionToken == "token-xyz")
        // 2. the environment's keys.
        c = try configuration("s3://bucket-1", [:], env.merging(["AWS_SESSION_TOKEN": "t"]) { a, _ in a }).credentials
        #expect(c.accessKeyID == "AKIAENV" && c.sessionToken == "t" && c.source == "environment AWS_ACCESS_KEY_ID")
        // 3. the shared file: $HOME/.aws/credentials, AWS_PROFILE, AWS_SHARED_CREDENTIALS_FILE.
        c = try configuration("s3://bucket-1", [:], home).credentials
        #expect(c.accessKeyID == "AKIAHOME" && c.source == "shared credentials file \(dir)/home/.aws/credentials profile default")
        c = try configuration("s3://bucket-1", [:], home.merging(["AWS_PROFILE": "other"]) { a, _ in a }).credentials
        #expect(c.accessKeyID == "AKIAHOMEOTHER")
        c = try configuration("s3://bucket-1", [:], home.merging(["AWS_SHARED_CREDENTIALS_FILE": file, "AWS_PROFILE": "backup"]) { a, _ in a }).credentials
        #expect(c.accessKeyID == "AKIAFILEBACKUP")
        // profile= alone picks that profile of the shared file, even over the environment.
        c = try configuration("s3://bucket-1", ["profile": "other"], env).credentials
        #expect(c.accessKeyID == "AKIAHOMEOTHER")

        // Errors name the file and profile, never a secret.
        #expect(invalid { () throws(ObjectStoreError) in try configuration("s3://bucket-1", ["credentials": file, "profile": "nope"], env) }
            == "credentials file \(file) has no profile [nope]")
        #expect(invalid { () throws(ObjectStoreError) in try configuration("s3://bucket-1", ["credentials": file, "profile": "broken"], env) }?
            .contains("aws_secret_access_key is missing") == true)
        #expect(invalid { () throws(ObjectStoreError) in try configuration("s3://bucket-1", ["credentials": dir + "/missing"], env) }?
            .contains("\(dir)/missing") == true)
        #expect(invalid { () throws(ObjectStoreError) in try configuration("s3://bucket-1", [:], ["AWS_ACCESS_KEY_ID": "AKIA"]) }?
            .contains("AWS_SECRET_ACCESS_KEY") == true)
        #expect(invalid { () throws(ObjectStoreError) in try configuration("s3://bucket-1", [:], ["HOME": dir + "/nowhere"]) }?
            .hasPrefix("no S3 credentials") == true)
        #expect(invalid { () throws(ObjectStoreError) in try configuration("s3://bucket-1", [:], ["HOME": dir + "/nowhere", "AWS_PROFILE": "x"]) }?
            .contains("\(dir)/nowhere/.aws/credentials") == true)
    }

    @Test func secretsStayOutOfDescriptions() throws {
        let c = try configuration()
        var dumped = ""
        dump(c, to: &dumped)
        for text in [String(describing: c), String(reflecting: c), "\(c.credentials)", dumped] {
            #expect(!text.contains("env-secret"), "leaked in: \(text)")
        }
        #expect("\(c.credentials)" == "access key AKIAENV from environment AWS_ACCESS_KEY_ID")
    }
}
