import Foundation
import MossaicCore
import MossaicFS
import Testing

/// `format`'s checks of a local directory: only an empty one or a filesystem, made 0700.
@Suite struct StoreDirectoryTests {
    func directory(_ entries: [String], mode: mode_t) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("storedir-\(UUID().uuidString)").path
        try PosixFiles.makeDirectories(path)
        for name in entries { try PosixFiles.makeDirectories(path + "/" + name) }
        chmod(path, mode)
        return path
    }

    func mode(_ path: String) -> mode_t {
        var st = stat()
        stat(path, &st)
        return st.st_mode & 0o7777
    }

    @Test func aDirectoryWithOtherEntriesIsRefusedUnchangedUnlessForced() throws {
        let path = try directory(["etc"], mode: 0o777)
        #expect(throws: FormatError.notEmpty(path)) { try StoreDirectory.prepare(path, force: false) }
        #expect(mode(path) == 0o777)
        #expect(try PosixFiles.listDirectory(path) == ["etc"])
        #expect(try StoreDirectory.prepare(path, force: true) == 0o777)
        #expect(mode(path) == 0o700)
    }

    @Test func aFilesystemIsRefusedUnchangedUnlessForced() throws {
        let path = try directory([Superblock.key], mode: 0o755)
        #expect(throws: FormatError.alreadyFormatted(path)) { try StoreDirectory.prepare(path, force: false) }
        #expect(mode(path) == 0o755)
        #expect(try StoreDirectory.prepare(path, force: true) == 0o755)
    }

    @Test func emptyLostAndFoundOnlyAndMissingDirectoriesBecomePrivate() throws {
        let empty = try directory([], mode: 0o700)
        #expect(try StoreDirectory.prepare(empty, force: false) == nil)
        let fresh = try directory(["lost+found"], mode: 0o1777)
        #expect(try StoreDirectory.prepare(fresh, force: false) == 0o1777)
        #expect(mode(fresh) == 0o700)
        let missing = empty + "/a/b"
        #expect(try StoreDirectory.prepare(missing, force: false) == nil)
        #expect(mode(missing) == 0o700)
    }
}
