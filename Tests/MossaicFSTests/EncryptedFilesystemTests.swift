import Foundation
import Logging
import MossaicCore
import MossaicFS
import MossaicMount
import MossaicObjectStore
import Testing

/// An encrypted filesystem without FUSE (the mounted acceptance test is
/// Tests/e2e/test_encryption.py): the key is checked before anything is read, the store alone
/// and the key restore it, chunks still deduplicate, and a changed chunk is an I/O error.
@Suite struct EncryptedFilesystemTests {
    let logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
    let helpers = ReplicationLoaderTests()

    func formatted() throws -> (root: String, base: DirectoryObjectStore, keyFile: String) {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("encrypted-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        let keyFile = root + "/key"
        try MasterKey.generate(keyFile: keyFile)
        let base = try DirectoryObjectStore(root: root + "/store", create: true)
        let encryption = try FilesystemKey.make(.keyFile(keyFile))
        _ = try Superblock.format(base, inlineMax: 16 << 10, encryption: encryption, force: false)
        return (root, base, keyFile)
    }

    @Test func theKeyIsCheckedFirst() throws {
        let (root, base, keyFile) = try formatted()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let superblock = try Superblock.load(from: base)
        #expect(superblock.formatVersion == Superblock.transformedFormatVersion)
        #expect(superblock.encryption?.scheme == ConvergentCipher.scheme)
        let key = try PosixFiles.read(keyFile)
        #expect(!String(decoding: try PosixFiles.read(root + "/store/mossaicfs.json"), as: UTF8.self)
            .contains(String(decoding: key, as: UTF8.self).trimmingWhitespace()))

        try MasterKey.generate(keyFile: root + "/other")
        for source: KeySource? in [nil, .keyFile(root + "/other"), .passphrase(Array("a passphrase".utf8))] {
            #expect(throws: FormatError.self) { try FilesystemKey.unlock(base, superblock: superblock, source: source) }
        }
        // Opened without its key, the loader refuses before making a cache_dir.
        #expect(throws: FormatError.self) { try helpers.open(base, root + "/cache") }
        #expect(!FileManager.default.fileExists(atPath: root + "/cache"))
        #expect(try FilesystemKey.unlock(base, superblock: superblock, source: .keyFile(keyFile)) is SealedObjectStore)
    }

    @Test func theStoreAndTheKeyRestoreItWithChunksDeduplicated() throws {
        let (root, base, keyFile) = try formatted()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let store = try FilesystemKey.unlock(base, superblock: try Superblock.load(from: base), source: .keyFile(keyFile))
        let marker = Array("MARKER-encrypted-test ".utf8)
        let big = Array(repeating: marker, count: 150_000).flatMap { $0 }  // ~3.2 MiB: a pack
        let first = try helpers.open(store, root + "/a")
        try helpers.write(first.filesystem, "big", big)
        let objects = try base.list(prefix: "").count
        try helpers.write(first.filesystem, "copy", big)
        try helpers.write(first.filesystem, "small", marker)
        #expect(first.stopBackground(finalSnapshot: true) == nil)
        let dataObjects = { (prefix: String) throws -> Int in try base.list(prefix: prefix).count }
        #expect(try dataObjects("chunks/") + dataObjects("packs/") == 1)  // the copy stored nothing new
        #expect(objects > 0)

        var everything: [UInt8] = []
        for info in try base.list(prefix: "") { everything += try base.get(info.key) }
        #expect(!Data(everything).contains(Data(marker)))

        let restored = try helpers.open(store, root + "/b")
        defer { restored.stopBackground(finalSnapshot: false) }
        #expect(try helpers.read(restored.filesystem, "big") == big)
        #expect(try helpers.read(restored.filesystem, "copy") == big)
        #expect(try helpers.read(restored.filesystem, "small") == marker)
    }

    @Test func aChangedChunkIsAnIOError() throws {
        let (root, base, keyFile) = try formatted()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let store = try FilesystemKey.unlock(base, superblock: try Superblock.load(from: base), source: .keyFile(keyFile))
        let bytes = (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 13 &+ 1) }
        let first = try helpers.open(store, root + "/a")
        try helpers.write(first.filesystem, "f", bytes)
        #expect(first.stopBackground(finalSnapshot: true) == nil)
        let stored = try #require(try base.list(prefix: "chunks/").first)
        var sealed = try base.get(stored.key)
        sealed[100] ^= 1
        try base.put(stored.key, sealed)
        let second = try helpers.open(store, root + "/b")
        defer { second.stopBackground(finalSnapshot: false) }
        do {
            _ = try helpers.read(second.filesystem, "f")
            Issue.record("a changed chunk was read")
        } catch let error as FSError {
            guard case .io = error else { Issue.record("\(error)"); return }
        }
    }
}
