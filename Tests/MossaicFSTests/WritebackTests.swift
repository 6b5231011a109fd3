import Foundation
import Logging
import MossaicCache
import MossaicCore
import MossaicObjectStore
import MossaicFS
import Testing

@Suite struct WritebackTests {
    @Test func commitsSucceedWhileTheStoreFailsAndShutdownDrainsTheStagedChunks() throws {
        let f = try Fixture(writeback: true)
        f.putControl.failing.store(true, ordering: .relaxed)
        let (ino, h) = try f.createFile("a")
        let data = randomBytes(3 * MiB, seed: 41)
        try f.write(ino, h, 0, data)
        try f.fs.fsync(ino, handle: h)  // staged, not stored: the failing store is not waited for
        try f.fs.release(ino, handle: h)
        #expect(try f.objects().isEmpty)
        #expect(f.fs.stagedChunks?.chunks == 3)
        let h2 = try f.fs.open(ino, mode: .init(writable: false))
        #expect(try f.fs.read(ino, handle: h2, offset: 0, size: data.count) == data)  // from staging
        try f.fs.release(ino, handle: h2)

        f.putControl.failing.store(false, ordering: .relaxed)
        #expect(f.fs.shutdown().isEmpty)  // returns once every staged chunk is stored
        #expect(try f.objects().count == 3)
        #expect(f.fs.stagedChunks?.chunks == 0)
        #expect(try FileManager.default.contentsOfDirectory(atPath: f.cacheDirectory.path + "/staging").filter { $0.count == 64 }.isEmpty)
    }
}

@Suite struct StagingFailureTests {
    @Test func aChunkThatCannotBeStagedFailsTheCommitWithEIO() throws {
        let f = try Fixture(writeback: true)
        let staging = f.cacheDirectory.path + "/staging"
        try FileManager.default.removeItem(atPath: staging)
        #expect(FileManager.default.createFile(atPath: staging, contents: Data()))  // no directory to stage into
        let (ino, h) = try f.createFile("a")
        try f.write(ino, h, 0, randomBytes(2 * MiB, seed: 43))
        #expect { try f.fs.fsync(ino, handle: h) } throws: { error in
            if case FSError.io = error { return true } else { return false }
        }
        #expect(throws: FSError.self) { try f.fs.release(ino, handle: h) }
        #expect(try f.fs.getattr(ino).size == 0)  // nothing unstaged was published
    }

    @Test func aDamagedStagedFileIsNotUploadedButMovedAside() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("staging-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        let store = try DirectoryObjectStore(root: root + "/store", create: true)
        let good = randomBytes(MiB, seed: 44), bad = randomBytes(MiB, seed: 45)
        let goodHash = ChunkHash.of(good), badHash = ChunkHash.of(bad)
        try FileManager.default.createDirectory(atPath: root + "/staging", withIntermediateDirectories: true)
        #expect(FileManager.default.createFile(atPath: root + "/staging/" + goodHash.hex, contents: Data(good)))
        // Bytes that do not hash to the file's name, as after a disk error.
        #expect(FileManager.default.createFile(atPath: root + "/staging/" + badHash.hex, contents: Data(good)))
        let staging = try StagingArea(directory: root + "/staging", limit: 1 << 30, logger: Logger(label: "test"))
        #expect(staging.pending.chunks == 2)
        #expect(staging.read(badHash) == nil)
        staging.start(store: store, threads: 1) { _, _ in }
        #expect(staging.drain(timeout: 30) { _, _ in }.chunks == 0)
        staging.stop()
        #expect(try store.head(goodHash.objectKey) != nil)
        #expect(try store.head(badHash.objectKey) == nil)  // never a wrong object under a name
        #expect(FileManager.default.fileExists(atPath: root + "/staging/" + badHash.hex + ".damaged"))
    }
}
