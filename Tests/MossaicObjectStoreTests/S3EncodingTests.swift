import MossaicCore
@testable import MossaicObjectStore
import Testing

/// The pieces of S3 request and response handling that libcurl does not provide.
@Suite("S3 encoding and parsing")
struct S3EncodingTests {
    @Test func pathAndQueryEncoding() {
        #expect(S3Encoding.percentEncode("chunks/ab/ab01", keepSlash: true) == "chunks/ab/ab01")
        #expect(S3Encoding.percentEncode("a b+c/é~_.-*", keepSlash: true) == "a%20b%2Bc/%C3%A9~_.-%2A")
        #expect(S3Encoding.percentEncode("a/b", keepSlash: false) == "a%2Fb")
        // Sorted by name, strictly encoded values, `name=` even when empty.
        #expect(S3Encoding.query([("prefix", "a/b c"), ("list-type", "2"), ("continuation-token", "x+y=="), ("uploads", "")])
            == "continuation-token=x%2By%3D%3D&list-type=2&prefix=a%2Fb%20c&uploads=")
    }

    @Test func listingKeyDecoding() {
        #expect(S3Encoding.urlDecode("a+b%2Bc%C3%A9%2F") == "a b+cé/")
        #expect(S3Encoding.urlDecode("100%") == nil)
        #expect(S3Encoding.urlDecode("%G0") == nil)
        #expect(S3Encoding.urlDecode("%FF") == nil, "not UTF-8")
    }

    @Test func lastModifiedTimes() {
        #expect(S3Encoding.timestamp(iso8601: "1970-01-01T00:00:00Z") == Timestamp(seconds: 0, nanoseconds: 0))
        #expect(S3Encoding.timestamp(iso8601: "2024-02-29T23:59:59.5Z") == Timestamp(seconds: 1_709_251_199, nanoseconds: 500_000_000))
        #expect(S3Encoding.timestamp(iso8601: "2026-11-21T10:20:30.123456789Z") == Timestamp(seconds: 1_795_256_430, nanoseconds: 123_456_789))
        #expect(S3Encoding.timestamp(iso8601: "2024-01-01 00:00:00Z") == nil)
        #expect(S3Encoding.timestamp(iso8601: "2024-13-01T00:00:00Z") == nil)
        #expect(S3Encoding.timestamp(iso8601: "2024-01-01T00:00:00") == nil, "no zone")
    }

    @Test func etags() {
        #expect(S3Encoding.unquoteETag("\"abc\"") == "abc")
        #expect(S3Encoding.unquoteETag("W/\"abc\"") == "abc")
        #expect(S3Encoding.unquoteETag("abc") == "abc")
        #expect(S3Encoding.quoteETag("abc") == "\"abc\"")
        #expect(S3Encoding.quoteETag("\"abc\"") == "\"abc\"")
    }

    @Test func listObjectsPage() throws {
        let xml = """
            <?xml version="1.0" encoding="UTF-8"?>
            <ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name><Prefix>p%2F</Prefix>
            <KeyCount>2</KeyCount><MaxKeys>2</MaxKeys><EncodingType>url</EncodingType><IsTruncated>true</IsTruncated>
            <Contents><Key>p/a+b%2Bc</Key><LastModified>2024-01-01T00:00:00.000Z</LastModified>
            <ETag>&quot;0123&quot;</ETag><Size>5</Size><StorageClass>STANDARD</StorageClass></Contents>
            <Contents><Key>p/%C3%A9%26%3C</Key><ETag>"4567"</ETag><Size>0</Size></Contents>
            <NextContinuationToken>tok/en+=</NextContinuationToken></ListBucketResult>
            """
        let page = try #require(ListObjectsPage(Array(xml.utf8)))
        #expect(page.objects.map(\.key) == ["p/a b+c", "p/é&<"])
        #expect(page.objects.map(\.size) == [5, 0])
        #expect(page.objects.map(\.etag) == ["0123", "4567"])
        #expect(page.objects.map(\.lastModified) == [Timestamp(seconds: 1_704_067_200, nanoseconds: 0), nil])
        #expect(page.isTruncated)
        #expect(page.nextContinuationToken == "tok/en+=")

        let plain = "<ListBucketResult><IsTruncated>false</IsTruncated><Contents><Key>a &amp; b</Key><Size>1</Size></Contents></ListBucketResult>"
        let plainPage = try #require(ListObjectsPage(Array(plain.utf8)))
        #expect(plainPage.objects.map(\.key) == ["a & b"])
        #expect(!plainPage.isTruncated && plainPage.nextContinuationToken == nil)

        #expect(ListObjectsPage(Array("<ListBucketResult><Contents><Key>x</Key></Contents>".utf8)) == nil, "malformed")
        #expect(ListObjectsPage(Array("<Error><Code>X</Code></Error>".utf8)) == nil)
    }

    @Test func errorBody() throws {
        let xml = """
            <?xml version="1.0" encoding="UTF-8"?>
            <Error><Code>NoSuchBucket</Code><Message>The specified bucket does not exist</Message>
            <BucketName>photos</BucketName><RequestId>1</RequestId></Error>
            """
        let body = try #require(S3ErrorBody(Array(xml.utf8)))
        #expect(body.code == "NoSuchBucket")
        #expect(body.message == "The specified bucket does not exist")
        #expect(body.bucketName == "photos")
        #expect(S3ErrorBody([]) == nil)
        #expect(S3ErrorBody(Array("<html>503</html>".utf8)) == nil)
    }

    @Test func backoffIsBoundedFullJitter() {
        let policy = RetryPolicy(maxAttempts: 9, baseDelay: 0.1, maxDelay: 10)
        for retry in 1...20 {
            let ceiling = min(10, 0.1 * Double(1 << min(retry - 1, 30)))
            for _ in 0..<50 {
                let d = policy.delay(beforeRetry: retry)
                #expect(d >= 0 && d <= ceiling)
            }
        }
        #expect(RetryPolicy(maxAttempts: 0).maxAttempts == 1)
    }

    @Test func oneLineMessages() {
        #expect(S3ObjectStore.oneLine("a\nb\r\nc") == "a b c")
        #expect(S3ObjectStore.oneLine(String(repeating: "x", count: 400)).count == 301)
    }
}

extension S3EncodingTests {
    @Test func contentRange() {
        #expect(S3ObjectStore.contentRange("bytes 10-19/1000").map { [$0.0, $0.1] } == [10, 19])
        #expect(S3ObjectStore.contentRange("bytes 0-0/*").map { [$0.0, $0.1] } == [0, 0])
        #expect(S3ObjectStore.contentRange("bytes */1000") == nil)
        #expect(S3ObjectStore.contentRange(nil) == nil)
    }
}
