import Foundation
import MossaicCore
import MossaicMeta
import MossaicMount
import MossaicObjectStore
import MossaicTestSupport
import Synchronization
import Testing

/// Metadata backups keep small files' bytes (inline chunks) once, in `backups/data/`, for all
/// backups: a second backup uploads only what is new; a backup that died halfway is never
/// reused; pruning deletes the data objects no kept backup names (and only old ones); a restore
/// checks every chunk against its SHA-256, and still reads backups of the former format.
/// The metadata is SQLite's, dumped as a PostgreSQL mount's backup dumps its database.
@Suite struct MetadataBackupDataTests {
    /// The PUTs made, and the key suffix of those to fail.
    final class Recorder: Sendable {
        let puts = Mutex<[String]>([])
        let failing = Mutex<String?>(nil)
    }

    /// A directory store that counts PUTs by key, and can be told to fail some.
    final class Fixture {
        let root: String
        let directory: DirectoryObjectStore
        let recorder = Recorder()
        let store: PutInterceptingObjectStore
        let db: String
        let meta: SQLiteMetaStore

        init() throws {
            root = FileManager.default.temporaryDirectory.appendingPathComponent("backupdata-\(UUID().uuidString)").path
            try FileManager.default.createDirectory(atPath: root + "/meta", withIntermediateDirectories: true)
            directory = try DirectoryObjectStore(root: root + "/store", create: true)
            let recorder = recorder
            store = PutInterceptingObjectStore(directory) { (key, data, condition, base) throws(ObjectStoreError) -> String in
                if let suffix = recorder.failing.withLock({ $0 }), key.hasSuffix(suffix) { throw .failed("injected: \(key)") }
                recorder.puts.withLock { $0.append(key) }
                return try base.put(key, data, condition: condition)
            }
            db = root + "/meta/meta.db"
            meta = try SQLiteMetaStore(path: db)
            _ = try meta.createRootIfMissing(permissions: 0o755, uid: 0, gid: 0, now: .now())
        }

        deinit { try? FileManager.default.removeItem(atPath: root) }

        /// A new file of `bytes`, one inline chunk.
        @discardableResult
        func file(_ name: String, _ bytes: [UInt8]) throws -> InodeNumber {
            let f = try meta.create(parent: .root, name: Array(name.utf8), NewNode(kind: .regular, permissions: 0o644, uid: 1, gid: 2), now: .now())
            let hash = ChunkHash.of(bytes)
            _ = try meta.commit(FileCommit(ino: f.ino, chunks: [(ChunkIndex(0), ChunkRef(index: ChunkIndex(0), hash: hash, length: bytes.count))],
                                           newChunks: [NewChunk(hash: hash, length: bytes.count, state: .inline, inlineData: bytes)],
                                           size: UInt64(bytes.count), mtime: .now(), ctime: .now()), durable: true)
            return f.ino
        }

        func remove(_ name: String) throws {
            _ = try meta.unlink(parent: .root, name: Array(name.utf8), now: .now())
            for ino in try meta.orphans() { try meta.purgeOrphan(ino) }
        }

        /// A backup; the PUTs it made.
        func backup(at seconds: Double, compression: Compression = .none) throws -> (id: String, manifest: BackupCatalog.Manifest, puts: [String]) {
            try meta.checkpoint()
            recorder.puts.withLock { $0.removeAll() }
            let (id, _, manifest) = try BackupCatalog.write(fsUUID: "u", to: store, compression: compression,
                                                            now: Date(timeIntervalSince1970: seconds)) { created, reference, sink in
                try MetadataDump.dumpSQLite(path: db, fsUUID: "u", created: created, dataReference: reference, sink: sink)
            }
            return (id, manifest, recorder.puts.withLock { $0 })
        }

        /// The records of a plain dump (inline data in its lines) of the live metadata.
        func records() throws -> [String] {
            try meta.checkpoint()
            var out: [UInt8] = []
            _ = try MetadataDump.dumpSQLite(path: db, fsUUID: "u", created: "c") { out += $0 }
            return String(decoding: out, as: UTF8.self).split(separator: "\n").dropFirst().map(String.init)
        }

        /// Backup `id` restored into a new SQLite database, dumped plainly.
        func restored(_ id: String) throws -> [String] {
            let path = root + "/meta/restored-\(UUID().uuidString).db"
            let reader = try BackupCatalog.restoreReader(id, manifest: try BackupCatalog.manifest(id, in: store), in: store,
                                                         spoolDirectory: root, width: 3)
            _ = try MetadataDump.loadSQLite(reader, header: try reader.header(), path: path, generation: 1)
            var out: [UInt8] = []
            _ = try MetadataDump.dumpSQLite(path: path, fsUUID: "u", created: "c") { out += $0 }
            return String(decoding: out, as: UTF8.self).split(separator: "\n").dropFirst().map(String.init)
        }

        func dataKeys() throws -> Set<String> { Set(try directory.list(prefix: BackupCatalog.dataPrefix).map(\.key)) }
    }

    static func bytes(_ seed: Int, _ count: Int = 4096) -> [UInt8] {
        var random = SeededRandom(seed: UInt64(seed))
        return (0..<count).map { _ in UInt8.random(in: 0...255, using: &random) }
    }

    static let t0 = 1_800_000_000.0

    @Test func aSecondBackupUploadsOnlyNewInlineData() throws {
        let f = try Fixture()
        for i in 0..<300 { try f.file("f\(i)", Self.bytes(i)) }
        let first = try f.backup(at: Self.t0)
        let firstData = first.puts.filter { $0.hasPrefix(BackupCatalog.dataPrefix) }
        // 300 × 4 KiB in one object, not 300 PUTs.
        #expect(firstData.count == 1)
        #expect(first.manifest.format == 2 && first.manifest.newDataBytes == 300 * 4096)
        // The lines carry no inline data: far smaller than the 1.2 MiB of it.
        #expect(first.manifest.bytes < 100_000)

        try f.file("new", Self.bytes(1000))
        let second = try f.backup(at: Self.t0 + 3600)
        let secondData = second.puts.filter { $0.hasPrefix(BackupCatalog.dataPrefix) }
        #expect(secondData.count == 1)
        #expect(second.manifest.newDataBytes == 4096 && second.manifest.newDataObjects == 1)
        #expect(second.manifest.base == first.id)
        #expect(Set(second.manifest.data!.map(\.name)) == Set(first.manifest.data!.map(\.name)).union(secondData.map {
            String($0.dropFirst(BackupCatalog.dataPrefix.count)) }))
        // Nothing new: no data PUT at all.
        let third = try f.backup(at: Self.t0 + 7200)
        #expect(third.puts.allSatisfy { !$0.hasPrefix(BackupCatalog.dataPrefix) } && third.manifest.newDataBytes == 0)
        #expect(try f.restored(third.id) == (try f.records()))
        #expect(try f.restored(first.id).count == (try f.records()).count - 4)  // without "new": its inode, dentry, chunk, file_chunk

        // With compression configured, compressible chunks are stored compressed and restore the same.
        try f.file("text", Array(repeating: 0x61, count: 12000))
        let fourth = try f.backup(at: Self.t0 + 10800, compression: .zstd(level: 3))
        #expect(fourth.manifest.newDataBytes! < 1000)
        #expect(try f.restored(fourth.id) == (try f.records()))
    }

    @Test func aBackupThatDiedHalfwayIsNeverReused() throws {
        let f = try Fixture()
        for i in 0..<50 { try f.file("f\(i)", Self.bytes(i)) }
        let first = try f.backup(at: Self.t0)
        try f.file("a", Self.bytes(500))
        // The host dies after the data and the parts, before the manifest.
        f.recorder.failing.withLock { $0 = "/manifest.json" }
        #expect(throws: ObjectStoreError.self) { try f.backup(at: Self.t0 + 3600) }
        f.recorder.failing.withLock { $0 = nil }
        #expect(try BackupCatalog.complete(in: f.store) == [first.id])
        let orphans = try f.dataKeys().subtracting(first.manifest.data!.map { BackupCatalog.dataPrefix + $0.name })
        #expect(orphans.count == 1)
        // The next backup builds on the complete one and stores "a" again, in an object of its own.
        let next = try f.backup(at: Self.t0 + 7200)
        #expect(next.manifest.base == first.id && next.manifest.newDataBytes == 4096)
        #expect(Set(next.manifest.data!.map { BackupCatalog.dataPrefix + $0.name }).isDisjoint(with: orphans))
        #expect(try f.restored(next.id) == (try f.records()))

        // A data object of the base that vanished is not reused either: its chunks are stored again.
        let firstObject = BackupCatalog.dataPrefix + first.manifest.data![0].name
        try f.directory.delete(firstObject)
        let after = try f.backup(at: Self.t0 + 10800)
        #expect(after.manifest.newDataBytes ?? 0 == Int64(50 * 4096))
        #expect(!after.manifest.data!.contains { BackupCatalog.dataPrefix + $0.name == firstObject })
        #expect(try f.restored(after.id) == (try f.records()))

        // Pruned once old: the dead backup's objects and its orphan data go; the rest stays.
        let complete = try BackupCatalog.complete(in: f.store)
        let named = try BackupCatalog.referencedData(of: complete, in: f.store)
        try BackupCatalog.prune(f.store, keep: 24, now: Timestamp.now())
        #expect(try f.dataKeys().isSuperset(of: orphans))
        try BackupCatalog.prune(f.store, keep: 24, now: Timestamp(nanoseconds: Timestamp.now().nanoseconds + 7 * 3_600_000_000_000))
        #expect(try f.dataKeys().isDisjoint(with: orphans) && (try f.dataKeys()) == named.intersection(try f.dataKeys()))
        #expect(try f.directory.list(prefix: BackupCatalog.prefix).allSatisfy { info in
            info.key.hasPrefix(BackupCatalog.dataPrefix) || complete.contains { info.key.hasPrefix(BackupCatalog.prefix + $0 + "/") }
        })
        #expect(try BackupCatalog.complete(in: f.store) == complete)
        #expect(try f.restored(after.id) == (try f.records()))
    }

    @Test func pruningDeletesDataNoKeptBackupNames() throws {
        let f = try Fixture()
        for i in 0..<20 { try f.file("old\(i)", Self.bytes(i)) }
        let first = try f.backup(at: Self.t0)
        let oldObject = BackupCatalog.dataPrefix + first.manifest.data![0].name
        // Every file of the first object deleted; new ones written.
        for i in 0..<20 { try f.remove("old\(i)") }
        for i in 0..<20 { try f.file("new\(i)", Self.bytes(100 + i)) }
        let second = try f.backup(at: Self.t0 + 3600)
        let newObject = BackupCatalog.dataPrefix + second.manifest.data![0].name
        #expect(second.manifest.data!.count == 1 && newObject != oldObject)

        let now = Timestamp.now()
        let later = Timestamp(nanoseconds: now.nanoseconds + Int64(BackupCatalog.inProgressGrace * 1e9) + 1)
        // A backup in progress elsewhere, based on the first: the first and its data stay.
        _ = try f.directory.put(BackupCatalog.prefix + "29990101T000000.000Z/started.json", Array(#"{"base":"\#(first.id)"}"#.utf8), condition: .none)
        try BackupCatalog.prune(f.store, keep: 1, now: now)
        #expect(try BackupCatalog.complete(in: f.store) == [first.id, second.id])
        #expect(try f.dataKeys() == [oldObject, newObject])
        try f.directory.delete(BackupCatalog.prefix + "29990101T000000.000Z/started.json")

        // Young unreferenced data (it could be a running backup's) stays; the first backup goes.
        try BackupCatalog.prune(f.store, keep: 1, now: now)
        #expect(try BackupCatalog.complete(in: f.store) == [second.id])
        #expect(try f.dataKeys() == [oldObject, newObject])
        // Once old, it goes; what the kept backup names stays.
        try BackupCatalog.prune(f.store, keep: 1, now: later)
        #expect(try f.dataKeys() == [newObject])
        #expect(try f.restored(second.id) == (try f.records()))
    }

    @Test func aRestoreChecksEveryChunkAndReadsTheFormerFormat() throws {
        let f = try Fixture()
        for i in 0..<30 { try f.file("f\(i)", Self.bytes(i)) }
        let backup = try f.backup(at: Self.t0)
        let key = BackupCatalog.dataPrefix + backup.manifest.data![0].name
        let good = try f.directory.get(key)
        var bad = good
        bad[4096 * 7 + 100] ^= 1
        _ = try f.directory.put(key, bad, condition: .none)
        #expect {
            _ = try f.restored(backup.id)
        } throws: { "\($0)".contains("does not match its SHA-256") && "\($0)".contains(key) }
        try f.directory.delete(key)
        #expect {
            _ = try f.restored(backup.id)
        } throws: { "\($0)".contains("which is not in the store") }
        _ = try f.directory.put(key, good, condition: .none)
        #expect(try f.restored(backup.id) == (try f.records()))
        // A plain reader refuses the references rather than load chunks without their bytes.
        let plain = DumpReader(source: BackupCatalog.source(backup.id, manifest: backup.manifest, in: f.store))
        _ = try plain.header()
        #expect(throws: DumpError.self) { try plain.readToEnd() }

        // A backup of format 1 (inline data in the lines, written before data objects existed).
        var dump: [UInt8] = []
        _ = try MetadataDump.dumpSQLite(path: f.db, fsUUID: "u", created: "c") { dump += $0 }
        let id = "20200101T000000.000Z"
        _ = try f.directory.put(BackupCatalog.prefix + id + "/000000.jsonl.zst", Zstd.compress(dump, level: 3, capacity: dump.count + 1024)!,
                                condition: .none)
        _ = try f.directory.put(BackupCatalog.prefix + id + "/manifest.json",
                                Array(#"{"bytes":1,"created":"c","fs_uuid":"u","parts":1,"records":1}"#.utf8), condition: .none)
        #expect(try f.restored(id) == (try f.records()))
    }
}
