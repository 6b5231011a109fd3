import Foundation
import MossaicCore
@testable import MossaicMeta
import MossaicTestSupport
import Synchronization
import Testing

/// `mossaicfs dump` / `load` where the logic lives: the line codec (odd bytes), the stream's
/// checks (truncation, counts), and each engine's reader and writer — a tree dumped, loaded into
/// the other engine and dumped again gives the same records.
@Suite struct MetadataDumpTests {
    @Test func base64AndHexRoundTripEveryLength() {
        var random = SeededRandom(seed: 25)
        for length in 0..<300 {
            let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &random) }
            #expect(DumpCodec.decodeBase64(DumpCodec.base64(bytes)) == bytes)
            var hex: [UInt8] = []
            DumpCodec.appendHex(bytes, to: &hex)
            #expect(DumpCodec.decodeHex(String(decoding: hex.dropFirst().dropLast(), as: UTF8.self)) == bytes)
        }
        #expect(DumpCodec.base64(Array("foobar".utf8)) == "Zm9vYmFy")
        #expect(DumpCodec.base64(Array("fo".utf8)) == "Zm8=")
        #expect(DumpCodec.decodeBase64("Zm8") == nil)
        #expect(DumpCodec.decodeBase64("Zm8*") == nil)
    }

    @Test func stringsWithEscapesParseBack() throws {
        let odd = "quote\" back\\ new\nline tab\t nul\u{0} bell\u{7} ünï 😀"
        var line = Array("{\"k\":".utf8)
        DumpCodec.appendString(odd, to: &line)
        line += Array(",\"n\":-9223372036854775808,\"z\":null}".utf8)
        let parsed = try DumpCodec.parseObject(line[...])
        #expect(parsed["k"] == .string(odd))
        #expect(parsed["n"] == .int(Int64.min))
        #expect(parsed["z"] == .null)
        #expect(try DumpCodec.parseObject(Array(#"{"a":"\ud83d\ude00\u00fc"}"#.utf8)[...])["a"] == .string("😀ü"))
        for bad in ["", "[1]", "{\"a\":1", "{\"a\":1.5}", "{\"a\":1,\"a\":2}", "{\"a\":\"x}", "{\"a\":1} x"] {
            #expect(throws: DumpCodec.ParseError.self) { try DumpCodec.parseObject(Array(bad.utf8)[...]) }
        }
    }

    /// Every table's record, with bytes no text encoding could carry, written and read back.
    static let records: [(String, [SQLValue])] = [
        ("setting", [.text("a \"key\""), .text("val\nue")]),
        ("inode", [.int(1), .int(16384), .int(0o755), .int(0), .int(0), .int(0), .int(2), .int(0), .int(1), .int(-2), .int(Int64.max),
                   .int(7), .int(0), .int(0), .int(1)]),
        ("inode", [.int(9), .int(32768), .int(0o4755), .int(4_294_967_295), .int(5), .int(3), .int(1), .int(0), .int(1), .int(2), .int(3),
                   .int(0), .int(4096), .int(8192), .null]),
        ("dentry", [.int(1), .blob([0xff, 0xfe, 0x0a, 0x00, 0x22, 0x5c]), .int(9)]),
        ("symlink", [.int(9), .blob(Array(0...255))]),
        ("xattr", [.int(9), .blob(Array("user.\u{ff}".utf8) + [0xff]), .blob([])]),
        ("allocation", [.int(9), .int(0), .int(4096)]),
        ("orphan", [.int(9)]),
        ("chunk", [.blob(Array(repeating: 0xab, count: 32)), .int(3), .int(1), .blob([1, 2, 3]), .null, .null, .int(0), .int(3)]),
        ("chunk", [.blob(Array(repeating: 0xcd, count: 32)), .int(1 << 20), .int(2), .null, .blob(Array(repeating: 1, count: 32)),
                   .int(4096), .int(1), .int(1000)]),
        ("file_chunk", [.int(9), .int(0), .blob(Array(repeating: 0xab, count: 32)), .int(3)]),
        ("patch", [.int(9), .int(0), .int(1), .int(2), .int(3), .blob([0, 0xff])]),
    ]

    static func dump(_ records: [(String, [SQLValue])]) throws -> [UInt8] {
        var out: [UInt8] = []
        let writer = try DumpWriter(header: .init(fsUUID: "uuid-1", engine: "test", schema: 6, created: "now", nextInode: 10),
                                    blockSize: 64) { out += $0 }
        for (type, values) in records { try writer.write(MetadataDump.Table.byType[type]!, ValuesRow(values: values)) }
        _ = try writer.finish()
        return out
    }

    static func reader(_ bytes: [UInt8], blocks: Int = 7) -> DumpReader {
        var rest = bytes[...]
        return DumpReader {
            guard !rest.isEmpty else { return nil }
            let block = Array(rest.prefix(blocks))
            rest = rest.dropFirst(blocks)
            return block
        }
    }

    static func sameValue(_ a: SQLValue, _ b: SQLValue) -> Bool {
        switch (a, b) {
        case (.int(let x), .int(let y)): x == y
        case (.blob(let x), .blob(let y)): x == y
        case (.text(let x), .text(let y)): x == y
        case (.null, .null): true
        default: false
        }
    }

    @Test func recordsRoundTripThroughTheStream() throws {
        let bytes = try Self.dump(Self.records)
        let reader = Self.reader(bytes)
        let header = try reader.header()
        #expect(header == .init(fsUUID: "uuid-1", engine: "test", schema: 6, created: "now", nextInode: 10))
        var read: [(String, [SQLValue])] = []
        while let (table, values) = try reader.next() { read.append((table.type, values)) }
        #expect(read.count == Self.records.count)
        for (a, b) in zip(read, Self.records) {
            #expect(a.0 == b.0)
            #expect(a.1.count == b.1.count && zip(a.1, b.1).allSatisfy(Self.sameValue), "\(a.0)")
        }
        #expect(reader.counts["inode"] == 2)
    }

    @Test func truncatedMiscountedAndForeignDumpsAreRefused() throws {
        let bytes = try Self.dump(Self.records)
        let lines: [[UInt8]] = bytes.split(separator: 0x0a, omittingEmptySubsequences: false).map { Array($0) }
        func readAll(_ b: [UInt8]) throws {
            let r = Self.reader(b)
            _ = try r.header()
            while try r.next() != nil {}
        }
        let withoutTrailer: [UInt8] = lines.dropLast(2).flatMap { $0 + [UInt8(0x0a)] }
        #expect(throws: DumpError.truncated(line: Int64(lines.count - 2))) { try readAll(withoutTrailer) }
        #expect(throws: DumpError.self) { try readAll(Array(withoutTrailer.dropLast(5))) }
        let missingOne: [UInt8] = Array((Array(lines[0..<2]) + Array(lines[3...])).flatMap { $0 + [UInt8(0x0a)] }.dropLast())
        #expect {
            try readAll(missingOne)
        } throws: { ($0 as? DumpError).map { if case .countMismatch = $0 { true } else { false } } ?? false }
        #expect(throws: DumpError.self) { _ = try Self.reader(Array("garbage\n".utf8)).header() }
        #expect(throws: DumpError.self) { _ = try Self.reader([]).header() }
    }

    // MARK: Engines

    /// A small tree with every kind of row, built through the `MetaStore` API.
    static func buildTree(_ m: any MetaStore) throws {
        try m.createRootIfMissing(permissions: 0o755, uid: 0, gid: 0, now: .now())
        let file = NewNode(kind: .regular, permissions: 0o644, uid: 1, gid: 2)
        let d = try m.create(parent: .root, name: Array("d".utf8), NewNode(kind: .directory, permissions: 0o1777, uid: 0, gid: 0), now: .now())
        let f = try m.create(parent: d.ino, name: [0xff, 0x0a, 0x22], file, now: Timestamp(nanoseconds: 1_234_567_891))
        _ = try m.link(f.ino, parent: .root, name: Array("hard".utf8), now: .now())
        _ = try m.create(parent: .root, name: Array("s".utf8),
                         NewNode(kind: .symlink, permissions: 0o777, uid: 0, gid: 0, symlinkTarget: [0xfe, 0x2f, 0x01]), now: .now())
        try m.setXattr(f.ino, name: Array("user.bin".utf8), value: Array(0...255), mode: .any, now: .now())
        let inline = ChunkHash.of(Array("small".utf8)), stored = ChunkHash.of(Array("big".utf8))
        _ = try m.commit(FileCommit(ino: f.ino, chunks: [(ChunkIndex(0), ChunkRef(index: ChunkIndex(0), hash: inline, length: 5)),
                                                         (ChunkIndex(1), ChunkRef(index: ChunkIndex(1), hash: stored, length: 3))],
                                    newChunks: [NewChunk(hash: inline, length: 5, state: .inline, inlineData: Array("small".utf8)),
                                                NewChunk(hash: stored, length: 3, state: .stored, inlineData: nil)],
                                    size: UInt64(FormatConstants.chunkSize) + 3, mtime: .now(), ctime: .now()), durable: true)
    }

    static func records(of dump: [UInt8]) -> [String] {
        String(decoding: dump, as: UTF8.self).split(separator: "\n").dropFirst().map(String.init)
    }

    @Test func sqliteDumpLoadsIntoSQLiteAndDumpsTheSame() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("dump-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        do { try Self.buildTree(try SQLiteMetaStore(path: dir + "/a.db")) }
        var first: [UInt8] = []
        let summary = try MetadataDump.dumpSQLite(path: dir + "/a.db", fsUUID: "u", created: "c") { first += $0 }
        #expect(summary.count("inode") == 4 && summary.count("dentry") == 4 && summary.count("chunk") == 2 && summary.count("xattr") == 1)
        let reader = Self.reader(first, blocks: 1000)
        let loaded = try MetadataDump.loadSQLite(reader, header: try reader.header(), path: dir + "/b.db", generation: 5)
        #expect(loaded.counts == summary.counts)
        var second: [UInt8] = []
        _ = try MetadataDump.dumpSQLite(path: dir + "/b.db", fsUUID: "u", created: "c") { second += $0 }
        #expect(Self.records(of: first) == Self.records(of: second))
        let b = try SQLiteMetaStore(path: dir + "/b.db")
        #expect(try b.checkConsistency().isEmpty)
        #expect(try b.replicationState().generation == 5)
        // New inodes come after the loaded ones.
        let next = try b.create(parent: .root, name: Array("new".utf8), NewNode(kind: .regular, permissions: 0o644, uid: 0, gid: 0), now: .now())
        #expect(next.ino.rawValue > 4)

        // A truncated dump leaves nothing behind.
        let cut = Array(first.dropLast(3))
        let r = Self.reader(cut)
        #expect(throws: DumpError.self) { try MetadataDump.loadSQLite(r, header: try r.header(), path: dir + "/c.db", generation: 1) }
        #expect(!FileManager.default.fileExists(atPath: dir + "/c.db"))
        #expect(!FileManager.default.fileExists(atPath: dir + "/c.db.load"))

        // The load went through a scratch file without a journal; the database it leaves is
        // in WAL mode as every live one, and a scratch file a crashed load left is replaced.
        #expect(try SQLiteConnection(path: dir + "/b.db", readOnly: true).pragma("journal_mode").lowercased() == "wal")
        try Array("not a database".utf8).withUnsafeBytes { _ = FileManager.default.createFile(atPath: dir + "/d.db.load", contents: Data($0)) }
        let again = Self.reader(first, blocks: 1000)
        #expect(try MetadataDump.loadSQLite(again, header: try again.header(), path: dir + "/d.db", generation: 2).counts == summary.counts)
        #expect(!FileManager.default.fileExists(atPath: dir + "/d.db.load"))
        #expect(try SQLiteMetaStore(path: dir + "/d.db").checkConsistency().isEmpty)
    }

    @Test func postgresAndSQLiteDumpTheSameTree() throws {
        let pg = try server.get()
        let name = "dump\(databases.add(1, ordering: .relaxed).newValue)"
        try PostgresConnection(conninfo: pg.url).execute("CREATE DATABASE \(name)")
        let url = pg.url(database: name)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("dump-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        do { try Self.buildTree(try SQLiteMetaStore(path: dir + "/a.db")) }
        var fromSQLite: [UInt8] = []
        _ = try MetadataDump.dumpSQLite(path: dir + "/a.db", fsUUID: "u", created: "c") { fromSQLite += $0 }
        let reader = Self.reader(fromSQLite, blocks: 4096)
        _ = try MetadataDump.loadPostgres(reader, header: try reader.header(), url: url)
        let store = try PostgresMetaStore(url: url)
        #expect(try store.setting(PostgresMetaStore.ownerSetting) == "u")
        #expect(try store.checkConsistency().isEmpty)
        var fromPostgres: [UInt8] = []
        _ = try store.dump(fsUUID: "u", created: "c") { fromPostgres += $0 }
        #expect(Self.records(of: fromSQLite) == Self.records(of: fromPostgres))
        let next = try store.create(parent: .root, name: Array("new".utf8), NewNode(kind: .regular, permissions: 0o644, uid: 0, gid: 0), now: .now())
        #expect(next.ino.rawValue > 4)
        // The database is no longer empty: a second load is refused before anything is read.
        let again = Self.reader(fromSQLite)
        #expect(throws: DumpError.self) { try MetadataDump.loadPostgres(again, header: try again.header(), url: url) }
    }
}

private let server = Result { try PostgresTestServer(repositoryRoot: URL(fileURLWithPath: #filePath).deletingLastPathComponent()
                                                        .deletingLastPathComponent().deletingLastPathComponent()) }
private let databases = Atomic<Int>(0)
