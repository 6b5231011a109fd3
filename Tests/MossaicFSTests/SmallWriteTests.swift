import Foundation
import MossaicCore
@testable import MossaicFS
import MossaicMeta
import Testing

/// The small-write path (issue 20): a commit that changes a small part of a page publishes
/// the written bytes as patches over the page's chunk instead of a new chunk, and a commit
/// past the bounds folds the page back into one chunk. Reads must see exactly the bytes
/// written, whatever the layers.
@Suite struct SmallWriteTests {
    /// The file's whole content through the filesystem.
    static func content(_ f: Fixture, _ ino: InodeNumber, _ h: HandleID) throws -> [UInt8] {
        let size = try f.fs.getattr(ino).size
        return try f.fs.read(ino, handle: h, offset: 0, size: Int(size))
    }

    static func refs(_ f: Fixture, _ ino: InodeNumber) throws -> [ChunkRef] {
        try f.fs.metadata.chunkRefs(ino, indexes: 0...1000)
    }

    /// Writes `bytes` at `offset` through handle `h`, fsyncs, and lays them over `model`.
    static func writeSynced(_ f: Fixture, _ ino: InodeNumber, _ h: HandleID, _ offset: Int, _ bytes: [UInt8],
                            into model: inout [UInt8]) throws {
        try f.write(ino, h, UInt64(offset), bytes)
        try f.fs.fsync(ino, handle: h)
        overwrite(&model, offset, bytes)
    }

    static func overwrite(_ model: inout [UInt8], _ offset: Int, _ bytes: [UInt8]) {
        if model.count < offset + bytes.count { model += [UInt8](repeating: 0, count: offset + bytes.count - model.count) }
        model.replaceSubrange(offset..<(offset + bytes.count), with: bytes)
    }

    @Test func smallSynchronousWritesStoreNoChunk() throws {
        let f = try Fixture()
        let (ino, h) = try f.createFile("db")
        var model = randomBytes(3 * MiB, seed: 1)
        try f.write(ino, h, 0, model)
        try f.fs.fsync(ino, handle: h)
        let puts = f.putControl.puts.load(ordering: .relaxed)
        for i in 0..<40 {
            let offset = (i * 77_777) % (3 * MiB - 4096)
            let page = randomBytes(4096, seed: UInt64(100 + i))
            try Self.writeSynced(f, ino, h, offset, page, into: &model)
        }
        #expect(f.putControl.puts.load(ordering: .relaxed) == puts, "a 4 KiB synchronous write stored an object")
        #expect(try Self.refs(f, ino).contains { !$0.patches.isEmpty })
        #expect(f.fs.metrics.value("mossaicfs_patched_pages_total") ?? 0 >= 40)
        #expect(try Self.content(f, ino, h) == model)
        // Appends past the end are small writes too (a log, a database's WAL).
        for i in 0..<10 {
            let tail = randomBytes(1000 + i, seed: UInt64(500 + i))
            try f.write(ino, h, UInt64(model.count), tail)
            try f.fs.fsync(ino, handle: h)
            model += tail
        }
        #expect(f.putControl.puts.load(ordering: .relaxed) == puts)
        #expect(try Self.content(f, ino, h) == model)
        try f.fs.release(ino, handle: h)
        #expect(try f.fs.metadata.checkConsistency().isEmpty)
    }

    @Test func aPagePastItsBoundsBecomesOneChunkAgain() throws {
        let f = try Fixture()
        let (ino, h) = try f.createFile("log")
        var model = randomBytes(2 * MiB, seed: 2)
        try f.write(ino, h, 0, model)
        try f.fs.fsync(ino, handle: h)
        let puts = f.putControl.puts.load(ordering: .relaxed)
        for i in 0..<PagePatchPlanner.maxPatches {
            let bytes = randomBytes(100, seed: UInt64(i))
            try Self.writeSynced(f, ino, h, i * 1000, bytes, into: &model)
        }
        #expect(f.putControl.puts.load(ordering: .relaxed) == puts)
        #expect(try Self.refs(f, ino)[0].patches.count == PagePatchPlanner.maxPatches)
        // One more: the page is compacted, stored as one new chunk with no patches.
        let last = randomBytes(100, seed: 999)
        try Self.writeSynced(f, ino, h, 500_000, last, into: &model)
        #expect(f.putControl.puts.load(ordering: .relaxed) == puts + 1)
        let page = try Self.refs(f, ino)[0]
        #expect(page.patches.isEmpty && page.length == MiB)
        #expect(f.fs.metrics.value("mossaicfs_compacted_pages_total") == 1)
        #expect(try Self.content(f, ino, h) == model)
        #expect(try f.fs.metadata.checkConsistency().isEmpty)
    }

    /// A reference cut short keeps its chunk's older bytes past its length; a patch that
    /// makes the page longer again must show zeros there, not those bytes.
    @Test func growingACutPageShowsZerosNotOldBytes() throws {
        let f = try Fixture()
        let (ino, h) = try f.createFile("t")
        var model = randomBytes(2 * MiB, seed: 3)
        try f.write(ino, h, 0, model)
        try f.fs.fsync(ino, handle: h)
        let cut = MiB + 100_000
        _ = try f.fs.setattr(ino, .init(size: UInt64(cut)), handle: h)
        model.removeLast(model.count - cut)
        let bytes = randomBytes(4096, seed: 4)
        try Self.writeSynced(f, ino, h, MiB + 600_000, bytes, into: &model)
        #expect(try Self.refs(f, ino)[1].patches.count >= 1)
        #expect(try Self.content(f, ino, h) == model)
        // Cut inside the patched part, then grow by truncation: zeros past the cut.
        _ = try f.fs.setattr(ino, .init(size: UInt64(MiB + 602_000)), handle: h)
        _ = try f.fs.setattr(ino, .init(size: UInt64(MiB + 700_000)), handle: h)
        model.removeLast(model.count - (MiB + 602_000))
        model += [UInt8](repeating: 0, count: 98_000)
        #expect(try Self.content(f, ino, h) == model)
        #expect(try f.fs.metadata.checkConsistency().isEmpty)
    }

    /// A hole written in small part gets the empty chunk as its base.
    @Test func aSmallWriteIntoAHoleNeedsNoChunk() throws {
        let f = try Fixture()
        let (ino, h) = try f.createFile("sparse")
        _ = try f.fs.setattr(ino, .init(size: UInt64(4 * MiB)), handle: h)
        let puts = f.putControl.puts.load(ordering: .relaxed)
        let bytes = randomBytes(3000, seed: 5)
        try f.write(ino, h, UInt64(2 * MiB + 700_000), bytes)
        try f.fs.fsync(ino, handle: h)
        var model = [UInt8](repeating: 0, count: 4 * MiB)
        Self.overwrite(&model, 2 * MiB + 700_000, bytes)
        #expect(f.putControl.puts.load(ordering: .relaxed) == puts)
        let refs = try Self.refs(f, ino)
        #expect(refs.count == 1 && refs[0].chunkLength == 0 && refs[0].patches.count == 2)  // zeros up to the write, then it
        #expect(try Self.content(f, ino, h) == model)
        try f.fs.release(ino, handle: h)
        #expect(try f.fs.metadata.checkConsistency().isEmpty)
    }

    /// copy_file_range shares a patched page: the copy has the same chunk and patches.
    @Test func aSharedPageTakesItsPatchesAlong() throws {
        let f = try Fixture()
        let (source, s) = try f.createFile("src")
        var model = randomBytes(MiB + 5000, seed: 6)
        try f.write(source, s, 0, model)
        try f.fs.fsync(source, handle: s)
        let bytes = randomBytes(2000, seed: 7)
        try f.write(source, s, 300_000, bytes)
        try f.fs.fsync(source, handle: s)
        Self.overwrite(&model, 300_000, bytes)
        let (copy, c) = try f.createFile("copy")
        #expect(try f.fs.copyFileRange(from: source, handle: s, offset: 0, to: copy, handle: c, offset: 0, length: UInt64(model.count)) == UInt64(model.count))
        #expect(try Self.refs(f, copy)[0].patches == Self.refs(f, source)[0].patches)
        #expect(try Self.content(f, copy, c) == model)
        try f.fs.release(copy, handle: c)
        try f.fs.release(source, handle: s)
        #expect(try f.fs.metadata.checkConsistency().isEmpty)
    }

    /// Patches are made against the page as the commit read it; if it changed since (here:
    /// behind the open file's cached chunk map), the transaction refuses them and the commit
    /// is made again from the page as it is, with a whole chunk. Laid over the stale page, the
    /// zeros that fill up to the write would have erased the bytes added meanwhile.
    @Test func aPageChangedUnderACommitIsRebuiltNotPatched() throws {
        let f = try Fixture()
        let (ino, h) = try f.createFile("stale")
        var model = randomBytes(MiB + 512 * 1024, seed: 8)
        try f.write(ino, h, 0, model)
        try f.fs.fsync(ino, handle: h)
        _ = try f.fs.read(ino, handle: h, offset: 0, size: model.count)  // the chunk map is cached
        let page = try #require(try Self.refs(f, ino).first { $0.index.rawValue == 1 })
        let meanwhile = randomBytes(1000, seed: 9)
        _ = try f.fs.metadata.commit(FileCommit(ino: ino, chunks: [], newChunks: [], size: UInt64(MiB + 601 * 1024), mtime: .now(), ctime: .now(),
                                                patches: [PagePatches(index: ChunkIndex(1), base: page, length: 601 * 1024, patches: [
                                                    ChunkPatch(offset: 512 * 1024, length: 88 * 1024, data: []),
                                                    ChunkPatch(offset: 600 * 1024, length: 1024, data: meanwhile)])]))
        model += [UInt8](repeating: 0, count: 89 * 1024)
        Self.overwrite(&model, MiB + 600 * 1024, meanwhile)
        let puts = f.putControl.puts.load(ordering: .relaxed)
        let bytes = randomBytes(100, seed: 10)
        try Self.writeSynced(f, ino, h, MiB + 700 * 1024, bytes, into: &model)
        #expect(f.putControl.puts.load(ordering: .relaxed) == puts + 1)  // the rebuilt page
        #expect(try Self.refs(f, ino)[1].patches.isEmpty)
        #expect(try Self.content(f, ino, h) == model)
        try f.fs.release(ino, handle: h)
        #expect(try f.fs.metadata.checkConsistency().isEmpty)
    }

    /// Random writes of every size, truncations and syncs against a byte model: whatever the
    /// mix of patches, compactions and whole chunks, the file reads as the model.
    @Test(arguments: [11, 12, 13] as [UInt64])
    func randomWritesReadAsTheModel(seed: UInt64) throws {
        let f = try Fixture()
        let (ino, h) = try f.createFile("r")
        var model: [UInt8] = []
        var rng = seed
        func next(_ bound: Int) -> Int {
            rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17
            return Int(rng % UInt64(bound))
        }
        for step in 0..<300 {
            switch next(20) {
            case 0:
                let size = next(4 * MiB)
                _ = try f.fs.setattr(ino, .init(size: UInt64(size)), handle: h)
                if size < model.count { model.removeLast(model.count - size) } else { model += [UInt8](repeating: 0, count: size - model.count) }
            case 1, 2:
                let offset = next(4 * MiB), count = 1 + next(300_000)
                let bytes = randomBytes(count, seed: rng)
                try f.write(ino, h, UInt64(offset), bytes)
                Self.overwrite(&model, offset, bytes)
            default:
                let offset = next(4 * MiB), count = 1 + next(next(2) == 0 ? 100 : 9000)
                let bytes = next(5) == 0 ? [UInt8](repeating: 0, count: count) : randomBytes(count, seed: rng)
                try f.write(ino, h, UInt64(offset), bytes)
                Self.overwrite(&model, offset, bytes)
            }
            if next(3) == 0 { try f.fs.fsync(ino, handle: h) }
            if step % 25 == 0 { #expect(try Self.content(f, ino, h) == model, "step \(step)") }
        }
        try f.fs.fsync(ino, handle: h)
        #expect(try Self.content(f, ino, h) == model)
        try f.fs.release(ino, handle: h)
        let reopened = try f.fs.open(ino, mode: .init(writable: false))
        #expect(try Self.content(f, ino, reopened) == model)
        #expect(try f.fs.metadata.checkConsistency().isEmpty)
    }
}
