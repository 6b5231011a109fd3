import Foundation
import MossaicCore
@testable import MossaicMeta
import MossaicObjectStore
import MossaicReplication
import MossaicTestSupport
import Synchronization
import Testing

/// Incremental metadata snapshots (issue 20): after a full copy, a snapshot ships the rows that
/// changed as a SQLite changeset, and restoring applies the chain to the base. What must hold:
/// the restored database is the live one, row for row, whatever the changes were.
@Suite struct IncrementalSnapshotTests {
    /// Every row of every filesystem table (settings aside: they hold each copy's own
    /// bookkeeping), as text, in primary-key order.
    static func rows(_ path: String) throws -> [String] {
        let c = try SQLiteConnection(path: path, readOnly: true)
        var out: [String] = []
        for table in ["inodes", "dentries", "file_chunks", "chunks", "symlinks", "xattrs", "orphans", "allocations"] {
            let columns = try c.query("SELECT name FROM pragma_table_info('\(table)')") { $0.text(0) }
            let row = columns.map { "quote(\($0))" }.joined(separator: " || ',' || ")
            out += try c.query("SELECT '\(table):' || \(row) FROM \(table) ORDER BY 1") { $0.text(0) }
        }
        return out
    }

    /// Makes `ino`'s first chunk the stored chunk of `content` (releasing the one before).
    static func point(_ rig: Rig, _ ino: InodeNumber, at content: String) throws {
        let hash = ChunkHash.of(Array(content.utf8))
        let ref = ChunkRef(index: ChunkIndex(0), hash: hash, length: content.utf8.count)
        _ = try rig.metadata.commit(FileCommit(ino: ino, chunks: [(ChunkIndex(0), ref)],
                                               newChunks: [NewChunk(hash: hash, length: content.utf8.count, state: .stored, inlineData: nil)],
                                               size: UInt64(content.utf8.count), mtime: .now(), ctime: .now()))
    }

    static func restoreHead(_ rig: Rig, to path: String) throws -> SnapshotManifest {
        let catalog = SnapshotCatalog(store: rig.base)
        let head = try #require(try catalog.head())
        let manifest = try catalog.manifest(head.pointer.snapshot)
        SQLiteMetaStore.removeDatabaseFiles(path)
        try SnapshotDownloader.download(manifest, from: rig.base, to: path)
        return manifest
    }

    @Test func aChainOfChangesetsRestoresTheLiveDatabaseRowForRow() throws {
        let rig = try Rig()
        let writer = try rig.writer()
        let a = try rig.addFile("a")
        try rig.addFile("b")
        guard case .published(let first, let full) = try writer.snapshot() else { Issue.record("nothing published"); return }
        #expect(!full.incremental && first.changesets.isEmpty)
        let dir = try rig.metadata.create(parent: .root, name: name("d"), NewNode(kind: .directory, permissions: 0o755, uid: 1, gid: 2), now: .now())
        var highest = InodeNumber(0)
        let steps: [() throws -> Void] = [
            { for i in 0..<50 { try rig.metadata.create(parent: dir.ino, name: name("f\(i)"), regular, now: .now()) } },
            { try rig.metadata.setXattr(a.ino, name: name("user.k"), value: [UInt8](repeating: 7, count: 3000), mode: .any, now: .now()) },
            { _ = try rig.metadata.rename(parent: .root, name: name("b"), newParent: dir.ino, newName: name("b2"), flags: [], now: .now()) },
            { for i in 0..<50 where i % 3 == 0 { _ = try rig.metadata.unlink(parent: dir.ino, name: name("f\(i)"), now: .now()) } },
            { try rig.metadata.removeXattr(a.ino, name: name("user.k"), now: .now()) },
            // A stored chunk referenced, released, then referenced again: the reclaim sweep's
            // triggers stamp those rows; applying the changesets must not stamp them anew (a
            // later change would then conflict with the restored row).
            { try Self.point(rig, a.ino, at: "X") },
            { try Self.point(rig, a.ino, at: "Y") },
            { try Self.point(rig, a.ino, at: "X") },
            {
                // The newest inode goes away: a restored database must still never reuse its number.
                let last = try rig.metadata.create(parent: .root, name: name("last"), regular, now: .now())
                highest = last.ino
                let gone = try rig.metadata.unlink(parent: .root, name: name("last"), now: .now())
                try rig.metadata.purgeOrphan(gone.ino)
            },
        ]
        let restored = rig.root + "/restored.db"
        var parent = first.id
        for step in steps {
            try step()
            guard case .published(let m, let stats) = try writer.snapshot() else { Issue.record("nothing published"); return }
            #expect(stats.incremental && m.parent == parent && m.chunks == first.chunks)
            parent = m.id
            let manifest = try Self.restoreHead(rig, to: restored)
            #expect(manifest.id == m.id)
            #expect(try Self.rows(restored) == Self.rows(rig.root + "/meta.db"))
            let state = try SQLiteMetaStore(path: restored).replicationState()
            #expect(state.snapshotID == m.id && state.generation == m.generation && !state.isDirty && state.pending == nil)
        }
        #expect(try writer.snapshot() == .unchanged(parent))
        // The restored database hands out a new inode number, above every one ever used.
        let copy = try SQLiteMetaStore(path: restored)
        #expect(try copy.create(parent: .root, name: name("new"), regular, now: .now()).ino.rawValue > highest.rawValue)
        try rig.checkStoreIsConsistent()
    }

    /// `rm -rf` of much small data: the chain now outweighs the live database (its free
    /// pages do not count), so the next snapshot is a full copy, compacted without the free
    /// pages; retention by size then lets the snapshots that held the data go. Whether the
    /// data came as changesets or is in the base copy (`baseHoldsTheData`: a remount took a
    /// full copy of it).
    @Test(arguments: [false, true])
    func deletingMostOfTheDatabaseRebasesOnACompactCopy(baseHoldsTheData: Bool) throws {
        let rig = try Rig()
        let retention = SnapshotRetention(keep: 30, maxSize: .percent(50))
        var writer = try rig.writer(retention: retention)
        guard case .published(_, let first) = try writer.snapshot() else { Issue.record("nothing published"); return }
        #expect(!first.incremental)
        for i in 0..<4000 {
            let f = try rig.addFile("f\(i)")
            try rig.metadata.setXattr(f.ino, name: name("user.v"), value: [UInt8](repeating: UInt8(i % 251), count: 3000), mode: .any, now: .now())
        }
        if baseHoldsTheData {
            writer = try rig.writer(retention: retention)  // a dirty database: a full copy first
        }
        guard case .published(_, let grown) = try writer.snapshot() else { Issue.record("nothing published"); return }
        #expect(grown.incremental != baseHoldsTheData)
        for i in 0..<4000 {
            let gone = try rig.metadata.unlink(parent: .root, name: name("f\(i)"), now: .now())
            try rig.metadata.purgeOrphan(gone.ino)
        }
        guard case .published(let head, let emptied) = try writer.snapshot() else { Issue.record("nothing published"); return }
        #expect(!emptied.incremental, "a chain of 12 MiB over a nearly empty database was not rebased")
        #expect(emptied.databaseBytes < 1 << 20, "the full copy kept the free pages: \(emptied.databaseBytes) bytes")
        let kept = try rig.base.list(prefix: MetadataLayout.chunksPrefix).reduce(0) { $0 + $1.size }
        #expect(kept < 2 << 20, "the store still holds \(kept) bytes of metadata pieces")
        let restored = rig.root + "/restored.db"
        #expect(try Self.restoreHead(rig, to: restored).id == head.id)
        #expect(try Self.rows(restored) == Self.rows(rig.root + "/meta.db"))
    }

    /// A new mount on a database that is exactly HEAD's state records changes from the start:
    /// its first snapshot is incremental. A dirty database starts with a full copy.
    @Test func aMountOnHeadsStateShipsOnlyItsChanges() throws {
        let rig = try Rig()
        try rig.addFile("a")
        guard case .published = try rig.writer().snapshot() else { Issue.record("nothing published"); return }
        let clean = try rig.writer()
        try rig.addFile("b")
        guard case .published(_, let stats) = try clean.snapshot() else { Issue.record("nothing published"); return }
        #expect(stats.incremental)

        try rig.addFile("c")  // changed before the next "mount": nothing recorded it
        let dirty = try rig.writer()
        guard case .published(_, let again) = try dirty.snapshot() else { Issue.record("nothing published"); return }
        #expect(!again.incremental)
        let restored = rig.root + "/restored.db"
        _ = try Self.restoreHead(rig, to: restored)
        #expect(try Self.rows(restored) == Self.rows(rig.root + "/meta.db"))
    }

    /// A changeset is checked against its name like every piece: a damaged one fails the
    /// restore instead of applying.
    @Test func aDamagedChangesetFailsTheRestore() throws {
        let rig = try Rig()
        let writer = try rig.writer()
        try rig.addFile("a")
        _ = try writer.snapshot()
        try rig.addFile("b")
        guard case .published(let m, _) = try writer.snapshot() else { Issue.record("nothing published"); return }
        let key = MetadataLayout.chunk(try #require(m.changesets.last?.hash))
        var bytes = try rig.base.get(key)
        bytes[bytes.count / 2] ^= 0xff
        try rig.base.put(key, bytes)
        #expect(throws: ReplicationError.self) { try SnapshotDownloader.download(m, from: rig.base, to: rig.root + "/bad.db") }
        #expect(!FileManager.default.fileExists(atPath: rig.root + "/bad.db"))
    }

    /// A changeset meant for another base: conflicts outside `settings` (a row it inserts is
    /// there already, a row it deletes is not) abort the restore, which names the snapshot and
    /// leaves no file behind — never a database that is not the filesystem's.
    @Test func aChangesetThatConflictsOutsideSettingsAbortsTheRestore() throws {
        let rig = try Rig()
        let first = try rig.writer()
        try rig.addFile("a")
        guard case .published(let onlyA, _) = try first.snapshot() else { Issue.record("nothing published"); return }
        try rig.addFile("b")
        guard case .published(let addsB, _) = try first.snapshot() else { Issue.record("nothing published"); return }
        try rig.addFile("c")  // unrecorded: the next writer makes a full copy, with a, b and c
        let second = try rig.writer()
        guard case .published(let full, let stats) = try second.snapshot() else { Issue.record("nothing published"); return }
        #expect(!stats.incremental)
        let gone = try rig.metadata.unlink(parent: .root, name: name("c"), now: .now())
        try rig.metadata.purgeOrphan(gone.ino)
        guard case .published(let removesC, _) = try second.snapshot() else { Issue.record("nothing published"); return }

        // b's insert on a base that has b; c's removal on a base that never had c.
        for (base, changes) in [(full, addsB), (onlyA, removesC)] {
            let generation = removesC.generation + 1
            let broken = SnapshotManifest(
                id: SnapshotID.make(generation: generation), generation: generation, parent: removesC.id, fsUUID: fsUUID,
                created: .now(), host: "test", schemaVersion: base.schemaVersion, inodes: base.inodes, files: base.files,
                logicalBytes: base.logicalBytes, databaseBytes: base.databaseBytes, chunks: base.chunks,
                changes: changes.changesets, changeSequence: try #require(changes.changeSequence),
                inodeSequence: try #require(changes.inodeSequence))
            let path = rig.root + "/broken.db"
            do {
                try SnapshotDownloader.download(broken, from: rig.base, to: path)
                Issue.record("a changeset was applied to a base it does not fit")
            } catch {
                guard case .damaged(let why) = error else { Issue.record("expected damaged, got \(error)"); continue }
                #expect(why.contains("snapshot \(broken.id)") && why.contains("do not apply to its base"), "\(why)")
            }
            #expect(!FileManager.default.fileExists(atPath: path) && !FileManager.default.fileExists(atPath: path + ".download"))
        }
        // The chain as published restores: there its settings rows differ, which is allowed.
        let restored = rig.root + "/restored.db"
        #expect(try Self.restoreHead(rig, to: restored).id == removesC.id)
        #expect(try Self.rows(restored) == Self.rows(rig.root + "/meta.db"))
    }

    /// Overwrites the 4 KiB value of `user.pad` on each of `files`.
    static func rewrite(_ rig: Rig, _ files: [InodeNumber], byte: UInt8) throws {
        for ino in files {
            try rig.metadata.setXattr(ino, name: name("user.pad"), value: [UInt8](repeating: byte, count: 4096), mode: .any, now: .now())
        }
    }

    /// The old row values a recording keeps are bounded (`changeRecordingLimit`, lowered here
    /// from 256 MiB): past the bound the recording is dropped, the next snapshot is a full
    /// copy, and that copy starts recording again.
    @Test func aRecordingPastItsMemoryBoundIsDroppedAndTheNextSnapshotIsFull() throws {
        let rig = try Rig(changeRecordingLimit: 64 << 10)
        var files: [InodeNumber] = []
        for i in 0..<40 { files.append(try rig.addFile("f\(i)").ino) }
        try Self.rewrite(rig, files, byte: 1)
        let writer = try rig.writer()
        _ = try writer.snapshot()
        try Self.rewrite(rig, Array(files.prefix(2)), byte: 2)  // 8 KiB of old values: within the bound
        guard case .published(_, let small) = try writer.snapshot() else { Issue.record("nothing published"); return }
        #expect(small.incremental)

        try Self.rewrite(rig, files, byte: 3)  // 160 KiB of old values
        guard case .published(_, let big) = try writer.snapshot() else { Issue.record("nothing published"); return }
        #expect(!big.incremental)
        let restored = rig.root + "/restored.db"
        _ = try Self.restoreHead(rig, to: restored)
        #expect(try Self.rows(restored) == Self.rows(rig.root + "/meta.db"))

        try rig.addFile("after")
        guard case .published(_, let after) = try writer.snapshot() else { Issue.record("nothing published"); return }
        #expect(after.incremental)
        _ = try Self.restoreHead(rig, to: restored)
        #expect(try Self.rows(restored) == Self.rows(rig.root + "/meta.db"))
    }

    /// Snapshots that cannot be published keep their changes for the next attempt: those count
    /// toward the bound too, or a long store outage would hold every change since in memory.
    @Test func changesHeldWhilePublishingFailsCountTowardTheBound() throws {
        final class Outage: Sendable {
            let on = Mutex(false)
        }
        let rig = try Rig(changeRecordingLimit: 64 << 10)
        let outage = Outage()
        let store = PutInterceptingObjectStore(rig.base) { key, data, condition, base throws(ObjectStoreError) in
            if outage.on.withLock({ $0 }) && key.hasPrefix("meta/") { throw .failed("store unreachable") }
            return try base.put(key, data, condition: condition)
        }
        let writer = try rig.writer(store)
        try rig.addFile("a")
        _ = try writer.snapshot()

        outage.on.withLock { $0 = true }
        let value = [UInt8](repeating: 0x55, count: 2048)
        for i in 0..<40 {  // each attempt holds 2 KiB more: 80 KiB in the end
            let f = try rig.addFile("during-\(i)")
            try rig.metadata.setXattr(f.ino, name: name("user.v"), value: value, mode: .any, now: .now())
            #expect(throws: ReplicationError.self) { try writer.snapshot() }
        }
        outage.on.withLock { $0 = false }
        try rig.addFile("back")
        guard case .published(_, let stats) = try writer.snapshot() else { Issue.record("nothing published"); return }
        #expect(!stats.incremental)
        let restored = rig.root + "/restored.db"
        _ = try Self.restoreHead(rig, to: restored)
        #expect(try Self.rows(restored) == Self.rows(rig.root + "/meta.db"))
    }
}
