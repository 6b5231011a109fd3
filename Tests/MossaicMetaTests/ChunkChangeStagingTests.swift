import Foundation
import MossaicCore
@testable import MossaicMeta
import Testing

/// At a restore the changes a chain makes to `chunks` wait in scratch tables and apply at the
/// end, sorted by hash (`ChunkChangeStaging`, reading the patchsets' bytes with
/// `ChangesetReader`). What must hold: the result is the live database, row for row and value
/// type for value type — exactly what SQLite's own apply makes of the same patchsets — and a
/// change that does not fit its base fails the restore.
@Suite struct ChunkChangeStagingTests {
    /// A new database with the filesystem's schema; returns its directory.
    static func database() throws -> String {
        let (store, dir) = try makeStore()
        try store.sync()
        return dir
    }

    /// A single-file copy of `path` (the base of a chain), at `copy`.
    static func copy(_ path: String, to copy: String) throws {
        SQLiteMetaStore.removeDatabaseFiles(copy)
        try SQLiteConnection(path: path, readOnly: false).backup(to: copy)
        try SQLiteConnection(path: copy, readOnly: false).execute("PRAGMA journal_mode=DELETE")
    }

    /// Runs `sql` on `path` and returns the patchset that recorded it.
    static func patchset(_ path: String, _ sql: [String]) throws -> [UInt8] {
        let c = try SQLiteConnection(path: path, readOnly: false)
        let recorder = try SQLiteChangeRecorder(on: c)
        for statement in sql { try c.execute(statement) }
        return try recorder.patchset()
    }

    /// Every row of the tables the chains below change, quoted (so a value's type shows).
    static func rows(_ path: String) throws -> [String] {
        let c = try SQLiteConnection(path: path, readOnly: true)
        var out: [String] = []
        for table in ["chunks", "orphans", "symlinks"] {
            let columns = try c.query("SELECT name FROM pragma_table_info('\(table)')") { $0.text(0) }
            let row = columns.map { "quote(\($0))" }.joined(separator: " || ',' || ")
            out += try c.query("SELECT '\(table):' || \(row) FROM \(table) ORDER BY 1") { $0.text(0) }
        }
        return out
    }

    /// The hash of chunk `i`, as an SQL blob literal: spread over all first bytes.
    static func key(_ i: Int) -> String { "X'" + ChunkHash.of(Array("chunk \(i)".utf8)).hex + "'" }

    /// `count` bytes that depend on `seed`, as an SQL blob literal.
    static func blob(_ count: Int, seed: Int) -> String {
        "X'" + (0..<count).map { String(format: "%02x", ($0 &* 31 &+ seed) & 0xff) }.joined() + "'"
    }

    /// An insert of chunk `i` whose columns hold every kind of value a patchset can carry:
    /// integers (negative, extreme), reals, text, NULL, empty and large blobs.
    static func insert(_ i: Int) -> String {
        let data = switch i % 6 {
        case 0: "NULL"
        case 1: "X''"
        case 2: blob(20_000 + i, seed: i)  // a length of three varint bytes
        default: blob(i * 37 % 3000, seed: i)
        }
        let pack = i % 4 == 0 ? "'pack-\(i)'" : (i % 4 == 1 ? blob(16, seed: i) : "NULL")
        let offset = [Int64.min, -1, 0, Int64.max][i % 4]
        let released = i % 3 == 0 ? "\(Double(i) + 0.5)" : "NULL"
        return """
            INSERT INTO chunks(hash, length, refcount, state, data, pack, pack_offset, released_ms, codec, stored_length)
            VALUES(\(key(i)), \(i), \(i % 3), \(1 + i % 2), \(data), \(pack), \(offset), \(released), \(i % 3), \(i % 2 == 0 ? "\(i * 3)" : "NULL"))
            """
    }

    /// A chain of five patchsets over a base that already holds chunks: inserts, updates
    /// (refcounts that fire the reclaim triggers, data to NULL and back, a value's type
    /// changed), deletes of base rows and of new ones, a hash deleted and inserted again, a
    /// delete and insert of one hash in one patchset, and changes to other tables beside them
    /// and alone.
    static func chain(_ live: String) throws -> [[UInt8]] {
        var chain: [[UInt8]] = []
        chain.append(try patchset(live, (0..<400).map(insert) + ["INSERT INTO orphans(ino) VALUES(1000), (1001)"]))
        chain.append(try patchset(live, [
            "UPDATE chunks SET refcount = refcount + 5, data = NULL WHERE length % 7 = 0",
            "UPDATE chunks SET refcount = 0 WHERE length % 11 = 0",
            "UPDATE chunks SET pack = 42.25, stored_length = 'now text' WHERE length % 13 = 0",
            "DELETE FROM chunks WHERE length % 5 = 0 AND length < 100",
            "DELETE FROM chunks WHERE hash IN (\(key(1000)), \(key(1001)))",  // base rows
            "INSERT INTO symlinks(ino, target) VALUES(7, X'2f746d70')",
        ]))
        chain.append(try patchset(live, ["INSERT INTO orphans(ino) VALUES(1002)", "DELETE FROM orphans WHERE ino = 1000"]))
        chain.append(try patchset(live, [
            insert(5), insert(10),  // deleted in the second patchset, back with their first values
            "UPDATE chunks SET refcount = 9, data = \(blob(300, seed: 9)) WHERE length % 7 = 0",
            "DELETE FROM chunks WHERE hash = \(key(3))",
            insert(3).replacingOccurrences(of: "VALUES(\(key(3)), 3,", with: "VALUES(\(key(3)), 333,"),
        ]))
        chain.append(try patchset(live, ["UPDATE chunks SET codec = codec + 1 WHERE length % 2 = 1"]))
        return chain
    }

    /// Applies `chain` to a copy of `base` at `path` the restore's way (staged) and returns
    /// the rows; the staging file is gone afterwards.
    static func restore(_ chain: [[UInt8]], base: String, to path: String) throws -> [String] {
        try copy(base, to: path)
        let applier = try SnapshotChangeApplier(path: path)
        for patchset in chain { try applier.apply(patchset) }
        #expect(FileManager.default.fileExists(atPath: path + ChunkChangeStaging.suffix))
        try applier.finish(inodeSequence: 0, generation: 1, id: "test", changeSequence: Int64(chain.count))
        #expect(!FileManager.default.fileExists(atPath: path + ChunkChangeStaging.suffix))
        return try rows(path)
    }

    @Test func aStagedChainRestoresTheLiveRowsAsSQLiteAppliesThem() throws {
        let dir = try Self.database()
        let live = dir + "/meta.db"
        _ = try Self.patchset(live, [Self.insert(1000), Self.insert(1001), Self.insert(1002)])  // rows of the base
        try Self.copy(live, to: dir + "/base.db")
        let chain = try Self.chain(live)
        #expect(chain.count == 5 && chain.allSatisfy { !$0.isEmpty })
        let expected = try Self.rows(live)
        #expect(expected.filter { $0.hasPrefix("chunks:") }.count > 300)

        #expect(try Self.restore(chain, base: dir + "/base.db", to: dir + "/staged.db") == expected)

        // SQLite's own apply of the same chain, one transaction, triggers off: the same rows.
        try Self.copy(dir + "/base.db", to: dir + "/sqlite.db")
        let c = try SQLiteConnection(path: dir + "/sqlite.db", readOnly: false)
        try c.disableTriggers()
        try c.execute("BEGIN")
        for patchset in chain { try SQLiteChangeRecorder.apply(patchset, to: c) }
        try c.execute("COMMIT")
        #expect(try Self.rows(dir + "/sqlite.db") == expected)
    }

    /// A patchset only SQLite can read (here: its first block's marker is not a patchset's)
    /// goes to SQLite whole, after what was staged before it — and SQLite rejects it.
    @Test func bytesTheReaderDoesNotFollowGoToSQLiteAfterWhatWasStaged() throws {
        let dir = try Self.database()
        let live = dir + "/meta.db"
        try Self.copy(live, to: dir + "/base.db")
        let chain = try Self.chain(live)
        for damage in ["marker", "truncated"] {
            var bad = chain[1]
            // One byte short: the last change lacks (part of) its last field.
            if damage == "marker" { bad[0] = UInt8(ascii: "X") } else { bad.removeLast() }
            #expect(bad.withUnsafeBytes { ChangesetReader(bytes: $0).tables() } == nil, "\(damage)")
            try Self.copy(dir + "/base.db", to: dir + "/bad.db")
            #expect(throws: MetaError.self, "\(damage)") {
                let applier = try SnapshotChangeApplier(path: dir + "/bad.db")
                try applier.apply(chain[0])
                try applier.apply(bad)
                try applier.finish(inodeSequence: 0, generation: 1, id: "test", changeSequence: 2)
            }
            #expect(!FileManager.default.fileExists(atPath: dir + "/bad.db" + ChunkChangeStaging.suffix))
        }
    }

    /// Changes to `chunks` meant for another base: an insert whose row is there, a delete or
    /// an update whose row is not. Each fails the restore when the staged changes apply.
    @Test(arguments: ["insert twice", "delete missing", "update missing"])
    func aStagedChangeThatDoesNotFitItsBaseFailsTheRestore(_ conflict: String) throws {
        let dir = try Self.database()
        let live = dir + "/meta.db"
        try Self.copy(live, to: dir + "/base.db")
        let inserted = try Self.patchset(live, [Self.insert(1), Self.insert(2)])
        let chain: [[UInt8]] = switch conflict {
        case "insert twice": [inserted, inserted]
        case "delete missing": [try Self.patchset(live, ["DELETE FROM chunks WHERE hash = \(Self.key(2))"])]
        default: [try Self.patchset(live, ["UPDATE chunks SET refcount = 7 WHERE hash = \(Self.key(1))"])]
        }
        try Self.copy(dir + "/base.db", to: dir + "/restored.db")
        let applier = try SnapshotChangeApplier(path: dir + "/restored.db")
        for patchset in chain { try applier.apply(patchset) }
        do {
            try applier.finish(inodeSequence: 0, generation: 1, id: "test", changeSequence: 1)
            Issue.record("\(conflict): applied to a base it does not fit")
        } catch {
            guard case .incompatible(let why) = error else { Issue.record("\(conflict): expected incompatible, got \(error)"); return }
            #expect(why.contains("do not apply to its base"), "\(why)")
        }
    }
}
