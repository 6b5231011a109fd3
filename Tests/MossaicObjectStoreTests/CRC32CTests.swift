@testable import MossaicObjectStore
import Testing

/// CRC-32C against published check values, the instruction path against the table, and the
/// encoding S3 expects in `x-amz-checksum-crc32c`.
@Suite("CRC-32C")
struct CRC32CTests {
    /// RFC 3720 (iSCSI) appendix B.4 vectors and the catalogue's check value for "123456789".
    @Test func knownValues() {
        #expect(CRC32C.of([Array("123456789".utf8)]).value == 0xE306_9283)
        #expect(CRC32C.of([[UInt8](repeating: 0, count: 32)]).value == 0x8A91_36AA)
        #expect(CRC32C.of([[UInt8](repeating: 0xFF, count: 32)]).value == 0x62A8_AB43)
        #expect(CRC32C.of([(0..<32).map { UInt8($0) }]).value == 0x46DD_794E)
        #expect(CRC32C.of([]).value == 0)
        #expect(CRC32C.tableChecksum(Array("123456789".utf8)) == 0xE306_9283)
    }

    /// Whatever this CPU uses agrees with the table for every length around the 8-byte steps,
    /// and a checksum over pieces equals the one over their concatenation.
    @Test func piecesAndLengthsAgreeWithTheTable() {
        var x: UInt32 = 0x1234_5678
        let bytes: [UInt8] = (0..<5000).map { _ in x ^= x << 13; x ^= x >> 17; x ^= x << 5; return UInt8(truncatingIfNeeded: x) }
        for length in [1, 7, 8, 9, 15, 16, 17, 63, 64, 65, 1000, 4999, 5000] {
            let prefix = Array(bytes[..<length])
            #expect(CRC32C.of([prefix]).value == CRC32C.tableChecksum(prefix), "length \(length)")
        }
        let whole = CRC32C.of([bytes]).value
        #expect(CRC32C.of([Array(bytes[..<3]), Array(bytes[3..<1001]), [], Array(bytes[1001...])]).value == whole)
    }

    /// S3's form: the four bytes big-endian, base64 ("123456789" → E3069283 → "4waSgw==").
    @Test func base64IsBigEndian() {
        #expect(CRC32C.of([Array("123456789".utf8)]).base64 == "4waSgw==")
        #expect(CRC32C.of([]).base64 == "AAAAAA==")
    }
}
