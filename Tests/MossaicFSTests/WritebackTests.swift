import Foundation
import MossaicCore
import MossaicFS
import Testing

@Suite struct WritebackTests {
    @Test func commitsSucceedWhileTheStoreFailsAndShutdownDrainsTheStagedChunks() throws {
        let f = try Fixture(writeback: true)
        f.store.failing.store(true, ordering: .relaxed)
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

        f.store.failing.store(false, ordering: .relaxed)
        #expect(f.fs.shutdown().isEmpty)  // returns once every staged chunk is stored
        #expect(try f.objects().count == 3)
        #expect(f.fs.stagedChunks?.chunks == 0)
        #expect(try FileManager.default.contentsOfDirectory(atPath: f.cacheDirectory.path + "/staging").filter { $0.count == 64 }.isEmpty)
    }
}
