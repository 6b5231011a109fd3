import Foundation
import Logging
import MossaicCache
import MossaicCore
@testable import MossaicFS
import MossaicMaintenance
import MossaicMeta
import MossaicObjectStore
import Testing

/// Text-like bytes (a small vocabulary of words): zstd shrinks them several times.
private func text(_ count: Int, seed: UInt64) -> [UInt8] {
    let words = ["chunk", "store", "the", "filesystem", "metadata", "read", "write", "bucket", "\n"]
    var state = seed | 1, out: [UInt8] = []
    while out.count < count {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        out += Array(words[Int(state >> 33) % words.count].utf8) + [0x20]
    }
    return Array(out.prefix(count))
}

/// Compression as ChunkStore applies it and every reader undoes it (ARCHITECTURE.md §10).
@Suite struct CompressionTests {
    /// A file of 3 MiB of text and 1 MiB of noise on a `zstd` filesystem.
    private func compressedFile(writeback: Bool = false) throws -> (f: Fixture, ino: InodeNumber, data: [UInt8]) {
        let f = try Fixture(writeback: writeback, compression: .zstd(level: 3))
        let (ino, h) = try f.createFile("a")
        let data = text(3 * MiB, seed: 1) + randomBytes(MiB, seed: 2)
        try f.write(ino, h, 0, data)
        try f.fs.release(ino, handle: h)
        return (f, ino, data)
    }

    /// A cache over the same store that has seen nothing: every read is a GET and a decode.
    private func emptyCache(_ f: Fixture) throws -> BlobCache {
        try BlobCache(store: f.store, configuration: .init(memoryLimit: 0), transform: f.fs.chunks.transform, logger: Logger(label: "test"))
    }

    @Test func textChunksAreStoredCompressedAndNoiseRawAndBothReadBack() throws {
        let (f, ino, data) = try compressedFile()
        let refs = try f.fs.metadata.chunkRefs(ino, indexes: 0...3)
        #expect(refs.map(\.location.codec) == [.zstd, .zstd, .zstd, .none])
        let stored = try f.store.list(prefix: "packs/").reduce(0) { $0 + $1.size } + f.store.list(prefix: "chunks/").reduce(0) { $0 + $1.size }
        #expect(stored < UInt64(MiB + MiB / 2))  // 3 MiB of text in well under half a MiB, plus the raw MiB
        let usage = try f.fs.metadata.usageDetails()
        #expect(usage.storedBytes == stored && usage.uncompressedBytes == UInt64(4 * MiB))
        #expect(usage.compressionSavedBytes == UInt64(4 * MiB) - stored)

        let cache = try emptyCache(f)
        for ref in refs {
            let page = Array(data[(Int(ref.index.rawValue) * MiB)...].prefix(MiB))
            #expect(try cache.read(ref.hash, at: ref.location) == page)
            // Ranges of a compressed chunk come from its plaintext, never from the frame's bytes.
            #expect(Array(try cache.read(ref.hash, at: ref.location, range: 1000..<5096)) == Array(page[1000..<5096]))
        }
        // Through the filesystem too (its own cache, which kept nothing of a large write).
        let h = try f.fs.open(ino, mode: .init(writable: false))
        #expect(try f.fs.read(ino, handle: h, offset: 0, size: data.count) == data)
        try f.fs.release(ino, handle: h)
    }

    @Test func aDamagedCompressedChunkIsAChecksumErrorForReadersAndFsck() throws {
        let (f, ino, _) = try compressedFile()
        let ref = try #require(try f.fs.metadata.chunkRefs(ino, indexes: 1...1).first)
        let pack = try #require(ref.location.pack)
        let path = f.root + "/store/" + pack.packKey
        var bytes = try PosixFiles.read(path)
        let range = ref.location.objectRange(0..<100)
        bytes[Int(range.lowerBound) + 50] ^= 0xFF  // inside chunk 1's zstd frame
        try PosixFiles.writeAtomically(bytes, to: path, tempDirectory: f.root, durable: false)

        let cache = try emptyCache(f)
        #expect { try cache.read(ref.hash, at: ref.location) } throws: { error in
            if case CacheError.corrupt(let hash, _) = error { return hash == ref.hash } else { return false }
        }
        #expect(cache.statistics.corrupt == 1)
        let report = try FilesystemChecker.run(store: f.store, metadata: f.fs.metadata, options: .init(
            verify: true, repair: false, blobsDirectory: nil, transform: f.fs.chunks.transform), progress: { _ in })
        #expect(report.corrupt.map(\.hash) == [ref.hash])
        #expect(report.checkedChunks == 4 && !report.isClean)
    }

    /// Write-back stages the stored form (`<hash>.zst`), serves the plaintext from it, and
    /// uploads exactly those bytes.
    @Test func writeBackStagesTheCompressedFormAndUploadsIt() throws {
        let f = try Fixture(writeback: true, compression: .zstd(level: 3))
        f.putControl.failing.store(true, ordering: .relaxed)
        let (ino, h) = try f.createFile("a")
        let data = text(2 * MiB, seed: 3)
        try f.write(ino, h, 0, data)
        try f.fs.release(ino, handle: h)
        let staging = f.cacheDirectory.path + "/staging"
        let staged = try FileManager.default.contentsOfDirectory(atPath: staging).filter { $0.hasSuffix(".zst") }.sorted()
        #expect(staged.count == 2)
        let stagedBytes = try staged.map { try PosixFiles.read(staging + "/" + $0) }
        #expect(stagedBytes.allSatisfy { $0.count < MiB / 2 })
        let r = try f.fs.open(ino, mode: .init(writable: false))
        #expect(try f.fs.read(ino, handle: r, offset: 0, size: data.count) == data)  // decoded from staging
        try f.fs.release(ino, handle: r)

        // A staging area opened anew (a restart) finds the files by name, codec included.
        let reopened = try StagingArea(directory: staging, limit: 1 << 30, transform: f.fs.chunks.transform, logger: Logger(label: "test"))
        #expect(reopened.pending.chunks == 2)
        let first = try #require(ChunkHash(hex: staged[0].dropLast(4)))
        #expect(reopened.read(first).map(ChunkHash.of) == first)

        f.putControl.failing.store(false, ordering: .relaxed)
        #expect(f.fs.shutdown().isEmpty)
        for (name, bytes) in zip(staged, stagedBytes) {
            let hash = try #require(ChunkHash(hex: name.dropLast(4)))
            #expect(try f.store.get(hash.objectKey) == bytes)
        }
        let refs = try f.fs.metadata.chunkRefs(ino, indexes: 0...1)
        #expect(refs.allSatisfy { $0.location == ChunkLocation(.object, codec: .zstd) })
        let cache = try emptyCache(f)
        #expect(try refs.flatMap { try cache.read($0.hash, at: $0.location) } == data)
    }

    /// Small writes patch the decoded plaintext of a compressed page, and compaction stores
    /// the patched page compressed again.
    @Test func patchesLieOverTheDecodedChunk() throws {
        let f = try Fixture(compression: .zstd(level: 3))
        let (ino, h) = try f.createFile("db")
        var model = text(2 * MiB, seed: 4)
        try f.write(ino, h, 0, model)
        try f.fs.fsync(ino, handle: h)
        for i in 0..<8 {
            let offset = 5000 + i * 99_991
            try SmallWriteTests.writeSynced(f, ino, h, offset, randomBytes(4096, seed: UInt64(60 + i)), into: &model)
        }
        let refs = try SmallWriteTests.refs(f, ino)
        #expect(refs.contains { !$0.patches.isEmpty } && refs.allSatisfy { $0.location.codec == .zstd })
        #expect(try SmallWriteTests.content(f, ino, h) == model)
        // Past the patch bounds each page is folded into one chunk: compressed again.
        for i in 0..<200 {
            let offset = (i * 10_007) % (2 * MiB - 4096)
            try SmallWriteTests.writeSynced(f, ino, h, offset, Array(text(4096, seed: UInt64(900 + i))), into: &model)
        }
        try f.fs.release(ino, handle: h)
        let compacted = try SmallWriteTests.refs(f, ino)
        #expect(compacted.allSatisfy { $0.location.codec == .zstd })
        let cache = try emptyCache(f)
        for ref in compacted where ref.patches.isEmpty {
            #expect(try cache.read(ref.hash, at: ref.location) == Array(model[(Int(ref.index.rawValue) * MiB)...].prefix(ref.chunkLength)))
        }
        let r = try f.fs.open(ino, mode: .init(writable: false))
        #expect(try SmallWriteTests.content(f, ino, r) == model)
        try f.fs.release(ino, handle: r)
    }

    @Test func theSuperblockSaysTheCompressionAndTheVersionOnlyRisesWithIt() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("sb-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        let plain = try DirectoryObjectStore(root: root + "/plain", create: true)
        let zipped = try DirectoryObjectStore(root: root + "/zipped", create: true)
        _ = try Superblock.format(plain, inlineMax: 4096, force: false)
        _ = try Superblock.format(zipped, inlineMax: 4096, compression: .zstd(level: 7), force: false)
        let p = try Superblock.load(from: plain), z = try Superblock.load(from: zipped)
        #expect(p.formatVersion == 1 && p.compression == .none && p.transform(for: plain).compression == .none && p.transform(for: plain).cipher == nil)
        #expect(!String(decoding: try plain.get(Superblock.key), as: UTF8.self).contains("compression"))
        #expect(z.formatVersion == 2 && z.compression == .zstd(level: 7))
        #expect(String(decoding: try zipped.get(Superblock.key), as: UTF8.self).contains("\"compression\" : \"zstd:7\""))

        // A compression this build does not know is refused in one line, not taken for none.
        let edited = String(decoding: try zipped.get(Superblock.key), as: UTF8.self).replacingOccurrences(of: "zstd:7", with: "lz4")
        try zipped.put(Superblock.key, Array(edited.utf8))
        #expect { try Superblock.load(from: zipped) } throws: { error in
            "\(error)".contains("unknown compression 'lz4'") && !"\(error)".contains("\n")
        }
    }
}
