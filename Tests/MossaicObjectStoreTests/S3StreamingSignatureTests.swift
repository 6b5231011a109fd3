import MossaicCore
import MossaicObjectStore
import Testing

/// The streaming signature against AWS's own worked example ("Signature Calculations for the
/// Authorization Header: Transferring Payload in Multiple Chunks", Example: PUT Object): 66,560
/// bytes of "a" sent as a 64 KiB piece and a 1 KiB piece. moto checks only the seed signature,
/// so these published values are what proves the per-piece signatures.
@Suite("S3 streaming signature")
struct S3StreamingSignatureTests {
    let signer = S3StreamingSignature(accessKeyID: "AKIAIOSFODNN7EXAMPLE",
                                      secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                                      region: "us-east-1")

    static func piece(_ count: Int, _ byte: UInt8 = UInt8(ascii: "a")) -> HashedBytes {
        let bytes = [UInt8](repeating: byte, count: count)
        return HashedBytes(bytes, sha256: ChunkHash.of(bytes))
    }

    @Test func awsExample() {
        let signed = signer.sign(method: "PUT", path: "/examplebucket/chunkObject.txt",
                                 headers: [("Host", "s3.amazonaws.com"), ("x-amz-storage-class", "REDUCED_REDUNDANCY")],
                                 pieces: [Self.piece(65536), Self.piece(1024)], timestamp: "20130524T000000Z")
        #expect(signed.seedSignature == "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9")
        #expect(signed.pieceSignatures == [
            "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
            "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
            "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9",
        ])
        let headers = Dictionary(signed.headers.map { ($0.name, $0.value) }, uniquingKeysWith: { a, _ in a })
        #expect(headers["authorization"] == "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
            + "SignedHeaders=content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;"
            + "x-amz-storage-class, Signature=4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9")
        #expect(headers["content-length"] == "66824")
        #expect(headers["x-amz-decoded-content-length"] == "66560")
        let a = UInt8(ascii: "a")
        let expected = Array("10000;chunk-signature=ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648\r\n".utf8)
            + [UInt8](repeating: a, count: 65536)
            + Array("\r\n400;chunk-signature=0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497\r\n".utf8)
            + [UInt8](repeating: a, count: 1024)
            + Array("\r\n0;chunk-signature=b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9\r\n\r\n".utf8)
        #expect(signed.body.flatMap { $0 } == expected)
        #expect(expected.count == 66824)
    }

    /// Pieces under S3's 8 KiB minimum are joined to the pieces after them (and the group is
    /// hashed); only the last may stay small. Bytes and order are unchanged.
    @Test func smallPiecesAreJoined() {
        let pieces = [Self.piece(1 << 20, 1), Self.piece(3000, 2), Self.piece(4000, 3), Self.piece(2 << 20, 4),
                      Self.piece(100, 5), Self.piece(9000, 6), Self.piece(50, 7)]
        let grouped = S3StreamingSignature.streamable(pieces)
        #expect(grouped.map(\.bytes.count) == [1 << 20, 3000 + 4000 + (2 << 20), 100 + 9000, 50])
        #expect(grouped.flatMap(\.bytes) == pieces.flatMap(\.bytes))
        for group in grouped { #expect(ChunkHash.of(group.bytes) == group.sha256) }
        #expect(grouped.dropLast().allSatisfy { $0.bytes.count >= S3StreamingSignature.minimumPieceSize })
    }

    /// The checksummed form: the body is `UNSIGNED-PAYLOAD`, and the CRC-32C header is one of
    /// the signed headers (else anyone on the way could change body and checksum together).
    /// The signature itself comes from the same code as the seed signature above (AWS's example)
    /// and is checked by authenticated moto in the conformance suite.
    @Test func checksummedSignsTheChecksumHeader() {
        let body = Array("123456789".utf8)
        let headers = signer.signChecksummed(method: "PUT", path: "/examplebucket/pack", headers: [("Host", "s3.amazonaws.com")],
                                             bodyLength: body.count, crc32c: CRC32C.of([body]), timestamp: "20130524T000000Z")
        let byName = Dictionary(headers.map { ($0.name, $0.value) }, uniquingKeysWith: { a, _ in a })
        #expect(byName["x-amz-content-sha256"] == "UNSIGNED-PAYLOAD")
        #expect(byName["x-amz-checksum-crc32c"] == "4waSgw==")
        #expect(byName["content-length"] == "9")
        #expect(byName["x-amz-date"] == "20130524T000000Z")
        let authorization = byName["authorization"] ?? ""
        #expect(authorization.hasPrefix("AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
            + "SignedHeaders=content-length;host;x-amz-checksum-crc32c;x-amz-content-sha256;x-amz-date, Signature="))
        let other = signer.signChecksummed(method: "PUT", path: "/examplebucket/pack", headers: [("Host", "s3.amazonaws.com")],
                                           bodyLength: body.count, crc32c: CRC32C.of([Array("123456780".utf8)]), timestamp: "20130524T000000Z")
        #expect(other.first { $0.name == "authorization" }?.value != authorization, "another checksum, another signature")
    }

    @Test func timestampIsUTC() {
        #expect(S3StreamingSignature.timestamp(at: 1_369_353_600) == "20130524T000000Z")
        #expect(S3StreamingSignature.timestamp(at: 1_700_000_000) == "20231114T221320Z")
    }
}
