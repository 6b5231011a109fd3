import Foundation
import Logging
import MossaicCache
import MossaicCore
import MossaicFS
import MossaicMeta
import MossaicMount
import MossaicObjectStore
import MossaicTestSupport
import Synchronization
import Testing

/// Test control over a fixture's store: PUTs fail while `failing` is set; the others are counted.
final class PutControl: Sendable {
    let failing = Atomic<Bool>(false)
    let puts = Atomic<Int>(0)
}

/// A formatted filesystem on a directory store in a temp dir, opened without FUSE.
struct Fixture {
    let root: String
    let store: PutInterceptingObjectStore
    let putControl = PutControl()
    let fs: MossaicFilesystem
    let cacheDirectory: CacheDirectory

    /// `beforePut`: runs before each PUT, with its key (a test holding PUTs back).
    init(writeback: Bool = false, posixACL: Bool = false, selinuxLabels: Bool = false, maxDirtyBytes: Int? = nil, writeMemoryBytes: Int? = nil,
         compression: Compression = .none, beforePut: (@Sendable (String) -> Void)? = nil) throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("fs-\(UUID().uuidString)").path
        let directory = try DirectoryObjectStore(root: root + "/store", create: true)
        _ = try Superblock.format(directory, inlineMax: 16 << 10, compression: compression, force: false)
        store = PutInterceptingObjectStore(directory) { [putControl] key, data, condition, base throws(ObjectStoreError) in
            if putControl.failing.load(ordering: .relaxed) { throw .failed("injected PUT failure") }
            beforePut?(key)
            putControl.puts.add(1, ordering: .relaxed)
            return try base.put(key, data, condition: condition)
        }
        var options = MountConfiguration()
        options.cacheDirectory = root + "/cache"
        options.writeback = writeback
        options.posixACL = posixACL
        options.selinuxLabels = selinuxLabels
        if let maxDirtyBytes { options.maxDirtyBytesPerFile = maxDirtyBytes }
        if let writeMemoryBytes { options.writeMemoryBytes = writeMemoryBytes }
        let opened = try FilesystemLoader.open(store: store, settings: .init(options: options), logger: Logger(label: "test"))
        fs = opened.filesystem
        cacheDirectory = opened.cacheDirectory
    }

    /// Chunk objects and packs.
    func objects() throws -> Set<String> {
        Set(try (store.list(prefix: "chunks/") + store.list(prefix: "packs/")).map(\.key))
    }

    func createFile(_ name: String) throws -> (InodeNumber, HandleID) {
        let (attrs, handle) = try fs.create(parent: .root, name: Array(name.utf8), permissions: 0o644, caller: .root)
        return (attrs.ino, handle)
    }

    func write(_ ino: InodeNumber, _ h: HandleID, _ offset: UInt64, _ bytes: [UInt8]) throws {
        _ = try bytes.withUnsafeBytes { try fs.write(ino, handle: h, offset: offset, data: $0) }
    }
}

let MiB = 1 << 20

func randomBytes(_ count: Int, seed: UInt64) -> [UInt8] {
    var state = seed &+ 0x9E3779B97F4A7C15
    return (0..<count).map { _ in
        state ^= state << 13; state ^= state >> 7; state ^= state << 17
        return UInt8(truncatingIfNeeded: state)
    }
}

@Suite struct WritePathTests {
    @Test func readsSeeBufferedWritesThenCommittedChunks() throws {
        let f = try Fixture()
        let (ino, h) = try f.createFile("a")
        let data = randomBytes(3 * MiB + 100, seed: 1)
        try f.write(ino, h, 0, data)
        #expect(try f.objects().isEmpty)  // writes never touch the store
        #expect(try f.fs.read(ino, handle: h, offset: 0, size: data.count + 10) == data)
        #expect(try f.fs.getattr(ino).size == UInt64(data.count))
        try f.fs.flush(ino, handle: h)
        // The three full chunks are one pack (stored with one PUT); the 100-byte tail is an
        // inline chunk.
        #expect(try f.objects().count == 1)
        #expect(try f.store.list(prefix: "packs/").map(\.size) == [UInt64(3 * MiB)])
        #expect(try f.fs.read(ino, handle: h, offset: UInt64(MiB) - 5, size: 10) == Array(data[(MiB - 5)..<(MiB + 5)]))
        try f.fs.release(ino, handle: h)
    }

    /// A sequential writer's full pages go out as packs of 4 consecutive chunks while it
    /// writes (one PUT each); what is left at close is stored by the commit.
    @Test func aSequentialWritersPagesAreStoredAsPacks() throws {
        let f = try Fixture()
        let (ino, h) = try f.createFile("a")
        var data = randomBytes(9 * MiB + 10, seed: 4)
        for end in stride(from: MiB - 1, to: data.count, by: MiB) { data[end] = 1 }  // no trailing zeros to drop
        for start in stride(from: 0, to: data.count, by: 256 << 10) {
            try f.write(ino, h, UInt64(start), Array(data[start..<min(start + (256 << 10), data.count)]))
        }
        let putsBefore = f.putControl.puts.load(ordering: .relaxed)
        try f.fs.flush(ino, handle: h)
        // Pages 0-3 and 4-7 as two packs; page 8 alone, as its own object; the tail inline.
        let packSizes = try f.store.list(prefix: "packs/").map(\.size)
        #expect(packSizes == [UInt64(4 * MiB), UInt64(4 * MiB)])
        #expect(try f.store.list(prefix: "chunks/").map(\.size) == [UInt64(MiB)])
        #expect(f.putControl.puts.load(ordering: .relaxed) - putsBefore <= 3)
        #expect(try f.fs.read(ino, handle: h, offset: 0, size: data.count) == data)  // from the store: nothing is dirty
        try f.fs.release(ino, handle: h)
    }

    /// The commits that only bound a file's buffer (past `maxDirtyBytesPerFile`) leave a
    /// sequential writer's last pages — completed ones still gathering into a pack, and the one
    /// being written — for later, instead of storing them now and again once their pack or
    /// page is complete.
    @Test func bufferBoundingCommitsLeaveASequentialWritersTailForLater() throws {
        let f = try Fixture(maxDirtyBytes: 6 * MiB)
        let (ino, h) = try f.createFile("a")
        var data = randomBytes(21 * MiB + 10, seed: 5)
        for end in stride(from: MiB - 1, to: data.count, by: MiB) { data[end] = 1 }  // no trailing zeros to drop
        let step = 300 << 10  // most writes end inside a page
        for start in stride(from: 0, to: data.count, by: step) {
            try f.write(ino, h, UInt64(start), Array(data[start..<min(start + step, data.count)]))
        }
        // 21 MiB went past the 6 MiB bound three times: those commits published whole packs only.
        #expect(try f.store.list(prefix: "chunks/").isEmpty)
        #expect(try f.store.list(prefix: "packs/").allSatisfy { $0.size == UInt64(4 * MiB) })
        try f.fs.flush(ino, handle: h)
        // Pages 0-19 as five packs; page 20 alone; the 10-byte tail inline. Nothing stored twice.
        #expect(try f.store.list(prefix: "packs/").map(\.size) == Array(repeating: UInt64(4 * MiB), count: 5))
        #expect(try f.store.list(prefix: "chunks/").map(\.size) == [UInt64(MiB)])
        try f.fs.release(ino, handle: h)
        let r = try f.fs.open(ino, mode: .init(writable: false))
        #expect(try f.fs.read(ino, handle: r, offset: 0, size: data.count + 1) == data)
        try f.fs.release(ino, handle: r)
    }

    /// A random writer's buffer is bounded all the same: its pages are not a tail to defer.
    @Test func bufferBoundingCommitsStoreARandomWritersPages() throws {
        let f = try Fixture(maxDirtyBytes: 2 * MiB)
        let (ino, h) = try f.createFile("a")
        var data = [UInt8](repeating: 0, count: 8 * MiB - 3996)  // ends where the write to page 7 ends
        for (n, page) in [6, 1, 4, 0, 7].enumerated() {  // parts of pages, never a whole one
            let piece = randomBytes(MiB - 4096, seed: UInt64(10 + n))
            data.replaceSubrange((page * MiB + 100)..<(page * MiB + 100 + piece.count), with: piece)
            try f.write(ino, h, UInt64(page * MiB + 100), piece)
        }
        // Past 2 MiB buffered the pages were committed: stored although no page is complete.
        #expect(try !f.objects().isEmpty)
        try f.fs.release(ino, handle: h)
        let r = try f.fs.open(ino, mode: .init(writable: false))
        #expect(try f.fs.read(ino, handle: r, offset: 0, size: data.count) == data)
        try f.fs.release(ino, handle: r)
    }

    @Test func partialOverwriteRebuildsOnlyTheTouchedChunk() throws {
        let f = try Fixture()
        let (ino, h) = try f.createFile("a")
        var data = randomBytes(4 * MiB, seed: 2)
        try f.write(ino, h, 0, data)
        try f.fs.flush(ino, handle: h)
        let before = try f.objects()
        let patch = randomBytes(4096, seed: 3)
        try f.write(ino, h, UInt64(2 * MiB + 77), patch)
        data.replaceSubrange((2 * MiB + 77)..<(2 * MiB + 77 + 4096), with: patch)
        // Read of a partially written dirty page merges it with the committed chunk.
        #expect(try f.fs.read(ino, handle: h, offset: UInt64(2 * MiB), size: MiB) == Array(data[(2 * MiB)..<(3 * MiB)]))
        try f.fs.flush(ino, handle: h)
        // A small write is a patch over the chunk: no object (SmallWriteTests).
        #expect(try f.objects().subtracting(before).count == 0)
        #expect(try f.fs.read(ino, handle: h, offset: 0, size: 4 * MiB) == data)
        // A large one rebuilds the chunk it touches, and only that one.
        let large = randomBytes(300_000, seed: 5)
        try f.write(ino, h, UInt64(MiB + 5), large)
        data.replaceSubrange((MiB + 5)..<(MiB + 5 + large.count), with: large)
        try f.fs.flush(ino, handle: h)
        #expect(try f.objects().subtracting(before).count == 1)
        #expect(try f.fs.read(ino, handle: h, offset: 0, size: 4 * MiB) == data)
        try f.fs.release(ino, handle: h)
    }

    @Test func identicalChunksAreStoredOnce() throws {
        let f = try Fixture()
        // Opening took the writer lease and published the first metadata snapshot.
        let putsAtOpen = f.putControl.puts.load(ordering: .relaxed)
        let block = randomBytes(MiB, seed: 4)
        let (a, ha) = try f.createFile("a")
        try f.write(a, ha, 0, block + block)
        try f.fs.release(a, handle: ha)
        let (b, hb) = try f.createFile("b")
        try f.write(b, hb, 0, block)
        try f.fs.release(b, handle: hb)
        #expect(try f.objects().count == 1)
        #expect(f.putControl.puts.load(ordering: .relaxed) - putsAtOpen == 1)
    }

    @Test func smallFilesStayInlineAndZeroPagesAreHoles() throws {
        let f = try Fixture()
        let (ino, h) = try f.createFile("small")
        try f.write(ino, h, 0, Array("hello".utf8))
        try f.write(ino, h, UInt64(5 * MiB), [1])
        try f.fs.release(ino, handle: h)
        #expect(try f.objects().isEmpty)  // both chunks are tiny: inline
        let h2 = try f.fs.open(ino, mode: .init(writable: false))
        let all = try f.fs.read(ino, handle: h2, offset: 0, size: 6 * MiB)
        #expect(all.count == 5 * MiB + 1)
        #expect(Array(all.prefix(5)) == Array("hello".utf8))
        #expect(all[5..<(5 * MiB)].allSatisfy { $0 == 0 })
        #expect(all.last == 1)
        try f.fs.release(ino, handle: h2)
    }

    @Test func truncateThenExtendReadsZeros() throws {
        let f = try Fixture()
        let (ino, h) = try f.createFile("t")
        try f.write(ino, h, 0, randomBytes(2 * MiB, seed: 5))
        try f.fs.flush(ino, handle: h)
        _ = try f.fs.setattr(ino, .init(size: 1000))
        _ = try f.fs.setattr(ino, .init(size: UInt64(2 * MiB)))
        let back = try f.fs.read(ino, handle: h, offset: 1000, size: 2 * MiB)
        #expect(back.count == 2 * MiB - 1000 && back.allSatisfy { $0 == 0 })
        try f.fs.release(ino, handle: h)
    }

    @Test func aFailedCommitIsReportedAndTheFileStaysFailed() throws {
        let f = try Fixture()
        let (ino, h) = try f.createFile("f")
        f.putControl.failing.store(true, ordering: .relaxed)
        try f.write(ino, h, 0, randomBytes(MiB, seed: 6))
        #expect(throws: FSError.self) { try f.fs.flush(ino, handle: h) }
        f.putControl.failing.store(false, ordering: .relaxed)
        // The store works again, but nothing is reported durable that was not stored.
        #expect(throws: FSError.self) { try f.fs.write(ino, handle: h, offset: 0, data: UnsafeRawBufferPointer(start: nil, count: 0)) }
        #expect(throws: FSError.self) { try f.fs.fsync(ino, handle: h) }
        #expect(throws: FSError.self) { try f.fs.release(ino, handle: h) }
        #expect(try f.fs.getattr(ino).size == 0)
        // A new open starts clean.
        let h2 = try f.fs.open(ino, mode: .init(writable: true))
        try f.write(ino, h2, 0, [1, 2, 3])
        try f.fs.release(ino, handle: h2)
        #expect(try f.fs.getattr(ino).size == 3)
    }
}

@Suite struct NamespaceAPITests {
    @Test func lookupCountsKeepUnlinkedInodesUntilForgotten() throws {
        let f = try Fixture()
        let (ino, h) = try f.createFile("ghost")  // one kernel reference from create
        try f.write(ino, h, 0, Array("boo".utf8))
        try f.fs.flush(ino, handle: h)
        try f.fs.unlink(parent: .root, name: Array("ghost".utf8))
        #expect(try f.fs.read(ino, handle: h, offset: 0, size: 10) == Array("boo".utf8))
        try f.fs.release(ino, handle: h)
        #expect(try f.fs.getattr(ino).nlink == 0)  // still referenced by the kernel
        f.fs.forget(ino, count: 1)
        #expect(throws: FSError.stale) { try f.fs.getattr(ino) }
    }

    @Test func readdirListsDotEntriesThenNamesInOrder() throws {
        let f = try Fixture()
        for name in ["b", "a", "c"] { _ = try f.fs.mkdir(parent: .root, name: Array(name.utf8), permissions: 0o755, caller: .root) }
        let h = try f.fs.opendir(.root)
        let all = try f.fs.readdir(.root, handle: h, offset: 0, limit: 100)
        #expect(all.map { String(decoding: $0.name, as: UTF8.self) } == [".", "..", "a", "b", "c"])
        let rest = try f.fs.readdir(.root, handle: h, offset: all[2].nextOffset, limit: 100)
        #expect(rest.map { String(decoding: $0.name, as: UTF8.self) } == ["b", "c"])
        f.fs.releasedir(h)
    }

    /// A listing read a few entries at a time while names come and go: every name that was
    /// there throughout appears exactly once, whichever offset of a reply the reader resumes
    /// from; a seekdir back to an earlier reply's offset continues after the same name.
    @Test func readdirPagesStayExactUnderCreatesAndUnlinks() throws {
        let f = try Fixture()
        func n(_ i: Int) -> [UInt8] { Array(String(format: "f%04d", i).utf8) }
        let dir = try f.fs.mkdir(parent: .root, name: Array("d".utf8), permissions: 0o755, caller: .root)
        for i in stride(from: 0, to: 200, by: 2) { _ = try f.fs.mknod(parent: dir.ino, name: n(i), kind: .regular, permissions: 0o644, rdev: 0, caller: .root) }
        let h = try f.fs.opendir(dir.ino)
        var seen: [[UInt8]] = []
        var offset: UInt64 = 0
        var offsets: [UInt64: [UInt8]] = [:]
        var round = 0
        while true {
            let page = try f.fs.readdir(dir.ino, handle: h, offset: offset, limit: 7)
            if page.isEmpty { break }
            // The reader takes only part of each reply, as when its buffer is smaller.
            let taken = page.prefix(round % 3 == 0 ? page.count : 3)
            for e in taken where !e.isDotOrDotDot { seen.append(e.name); offsets[e.nextOffset] = e.name }
            offset = taken.last!.nextOffset
            // Meanwhile: an odd name is created and one that was never there goes away.
            _ = try f.fs.mknod(parent: dir.ino, name: n(2 * round + 1), kind: .regular, permissions: 0o644, rdev: 0, caller: .root)
            if round > 0 { try f.fs.unlink(parent: dir.ino, name: n(2 * round - 1), caller: .root) }
            round += 1
        }
        let evens = seen.filter { ($0.last! - 0x30) % 2 == 0 }
        #expect(evens == (0..<100).map { n(2 * $0) })
        #expect(Set(seen).count == seen.count)

        let (back, name) = offsets.filter { $0.key < offset - 40 }.max { $0.key < $1.key }!
        let after = try f.fs.readdir(dir.ino, handle: h, offset: back, limit: 1)
        #expect(after.count == 1 && after[0].name.lexicographicallyPrecedes(name) == false && after[0].name != name)
        f.fs.releasedir(h)
    }

    @Test func ownPermissionChecksFollowModeOwnerAndStickyBit() throws {
        let f = try Fixture()
        let user = Caller(uid: 1000, gid: 1000)
        let sticky = try f.fs.mkdir(parent: .root, name: Array("tmp".utf8), permissions: 0o1777, caller: .root)
        let rootFile = try f.fs.mknod(parent: sticky.ino, name: Array("r".utf8), kind: .regular, permissions: 0o644, rdev: 0, caller: .root)
        #expect(throws: FSError.notPermitted) { try f.fs.unlink(parent: sticky.ino, name: Array("r".utf8), caller: user) }
        #expect(throws: FSError.permissionDenied) { try f.fs.open(rootFile.ino, mode: .init(writable: true), caller: user) }
        #expect(throws: FSError.notPermitted) { try f.fs.setattr(rootFile.ino, .init(permissions: 0o777), caller: user) }
        #expect(throws: FSError.permissionDenied) {
            try f.fs.mkdir(parent: .root, name: Array("x".utf8), permissions: 0o755, caller: user)
        }
        // The kernel clearing setuid after an unprivileged write is always allowed.
        _ = try f.fs.setattr(rootFile.ino, .init(permissions: 0o4644), caller: .root)
        #expect(try f.fs.setattr(rootFile.ino, .init(permissions: 0o644), caller: user).attributes.permissions == 0o644)
        let mine = try f.fs.mknod(parent: sticky.ino, name: Array("m".utf8), kind: .regular, permissions: 0o600, rdev: 0, caller: user)
        #expect(mine.uid == 1000)
        try f.fs.unlink(parent: sticky.ino, name: Array("m".utf8), caller: user)
    }

    /// The kernel's kills of setuid/setgid, as they arrive without default_permissions.
    @Test func privilegeKillsEndWithExt4sMode() throws {
        let f = try Fixture()
        let user = Caller(uid: 1000, gid: 1000)
        func file(_ name: String, _ mode: UInt32, owner: Caller = .root) throws -> InodeNumber {
            let ino = try f.fs.mknod(parent: .root, name: Array(name.utf8), kind: .regular, permissions: 0, rdev: 0, caller: .root).ino
            _ = try f.fs.setattr(ino, .init(uid: owner.uid, gid: owner.gid), caller: .root)
            return try f.fs.setattr(ino, .init(permissions: mode), caller: .root).attributes.ino
        }
        // chown: the kernel's mode lacks the sticky bit, which stays.
        let a = try file("a", 0o5744)
        #expect(try f.fs.setattr(a, .init(permissions: 0o744, uid: 0, gid: 7), caller: .root).attributes.permissions == 0o1744)
        // A non-member's write of a setgid file without group-exec: an empty setattr.
        let b = try file("b", 0o2666)
        #expect(try f.fs.setattr(b, .init(), caller: user).attributes.permissions == 0o666)
        // A non-owner's write of a setuid sticky file.
        let c = try file("c", 0o7777)
        #expect(try f.fs.setattr(c, .init(permissions: 0o777), caller: user).attributes.permissions == 0o1777)
        // An owner's chmod of a closed file is a chmod.
        let d = try file("d", 0o5777, owner: user)
        #expect(try f.fs.setattr(d, .init(permissions: 0o777), caller: user).attributes.permissions == 0o777)
        // Truncation by root keeps the bits.
        let e = try file("e", 0o6755)
        #expect(try f.fs.setattr(e, .init(size: 0), caller: .root).attributes.permissions == 0o6755)
    }

    /// Rules the FUSE bridge hands over as they come: utimensat's "now" needs only write
    /// permission where given times need ownership; renameat2's flags; ACL attributes without
    /// `-o acl`; the names the kernel must drop when a directory stops being searchable by all.
    /// Without `-o selinux`, security.selinux is not supported, answered before any metadata
    /// read (an inode that does not exist gets the same answer); the rest of security.* is
    /// stored. With it, the label is an attribute like any other.
    @Test func selinuxLabelsOnlyWithTheOption() throws {
        func n(_ s: String) -> [UInt8] { Array(s.utf8) }
        let plain = try Fixture()
        let file = try plain.fs.mknod(parent: .root, name: n("f"), kind: .regular, permissions: 0o644, rdev: 0, caller: .root)
        #expect(throws: FSError.notSupported) { try plain.fs.getxattr(file.ino, name: n("security.selinux")) }
        #expect(throws: FSError.notSupported) { try plain.fs.getxattr(InodeNumber(999_999), name: n("security.selinux")) }
        #expect(throws: FSError.notSupported) { try plain.fs.setxattr(file.ino, name: n("security.selinux"), value: n("l"), mode: .any) }
        #expect(throws: FSError.notSupported) { try plain.fs.removexattr(file.ino, name: n("security.selinux")) }
        try plain.fs.setxattr(file.ino, name: n("security.capability"), value: [1, 2], mode: .any)
        #expect(try plain.fs.getxattr(file.ino, name: n("security.capability")) == [1, 2])
        #expect(throws: FSError.noAttribute) { try plain.fs.getxattr(file.ino, name: n("security.ima")) }

        let labelled = try Fixture(selinuxLabels: true)
        let other = try labelled.fs.mknod(parent: .root, name: n("f"), kind: .regular, permissions: 0o644, rdev: 0, caller: .root)
        #expect(throws: FSError.noAttribute) { try labelled.fs.getxattr(other.ino, name: n("security.selinux")) }
        try labelled.fs.setxattr(other.ino, name: n("security.selinux"), value: n("system_u:object_r:fusefs_t:s0"), mode: .any)
        #expect(try labelled.fs.getxattr(other.ino, name: n("security.selinux")) == n("system_u:object_r:fusefs_t:s0"))
        #expect(try labelled.fs.listxattr(other.ino) == n("security.selinux") + [0])
    }

    @Test func setattrAndRenameRulesAreTheFilesystems() throws {
        let f = try Fixture()
        let user = Caller(uid: 1000, gid: 1000)
        func n(_ s: String) -> [UInt8] { Array(s.utf8) }
        let file = try f.fs.mknod(parent: .root, name: n("f"), kind: .regular, permissions: 0o666, rdev: 0, caller: .root)
        let given = Timestamp(nanoseconds: 1_000_000_000)
        #expect(try f.fs.setattr(file.ino, .init(atime: .now, mtime: .now), caller: user).attributes.mtime > given)
        #expect(throws: FSError.notPermitted) { try f.fs.setattr(file.ino, .init(atime: .now, mtime: .at(given)), caller: user) }
        #expect(try f.fs.setattr(file.ino, .init(atime: .now, mtime: .at(given)), caller: .root).attributes.mtime == given)

        #expect(throws: FSError.invalidArgument) {  // RENAME_WHITEOUT
            try f.fs.rename(parent: .root, name: n("f"), newParent: .root, newName: n("g"), flags: .init(rawValue: 4))
        }
        #expect(throws: FSError.invalidArgument) {
            try f.fs.rename(parent: .root, name: n("f"), newParent: .root, newName: n("g"), flags: [.noReplace, .exchange])
        }
        #expect(throws: FSError.notSupported) { try f.fs.getxattr(file.ino, name: n("system.posix_acl_access")) }
        #expect(throws: FSError.notSupported) { try f.fs.setxattr(file.ino, name: n("system.posix_acl_default"), value: [2, 0, 0, 0], mode: .any) }

        let dir = try f.fs.mkdir(parent: .root, name: n("d"), permissions: 0o755, caller: .root)
        _ = try f.fs.mknod(parent: dir.ino, name: n("c"), kind: .regular, permissions: 0o644, rdev: 0, caller: .root)
        #expect(try f.fs.setattr(dir.ino, .init(permissions: 0o750), caller: .root).staleNames.names == [n("c")])
        #expect(try f.fs.setattr(dir.ino, .init(permissions: 0o700), caller: .root).staleNames.names.isEmpty)
        let moved = try f.fs.rename(parent: .root, name: n("f"), newParent: dir.ino, newName: n("g"), flags: [])
        #expect(moved.directory == dir.ino && moved.names == [n("g")])
        #expect(try f.fs.rename(parent: dir.ino, name: n("g"), newParent: .root, newName: n("f"), flags: []).names.isEmpty)
    }

    @Test func aclsKeepTheModeInStepAndAreInherited() throws {
        let f = try Fixture(posixACL: true)
        let access = Array("system.posix_acl_access".utf8), inheritable = Array("system.posix_acl_default".utf8)
        func acl(_ entries: [(UInt16, UInt16, UInt32)]) -> [UInt8] {
            func le(_ v: UInt32, _ n: Int) -> [UInt8] { (0..<n).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
            return le(2, 4) + entries.flatMap { le(UInt32($0.0), 2) + le(UInt32($0.1), 2) + le($0.2, 4) }
        }
        let none = UInt32.max
        let user = Caller(uid: 1000, gid: 1000, umask: 0o022)
        let ino = try f.fs.mknod(parent: .root, name: Array("f".utf8), kind: .regular, permissions: 0o600, rdev: 0, caller: .root).ino
        try f.fs.setxattr(ino, name: access, value: acl([(1, 6, none), (2, 4, 1000), (4, 0, none), (0x10, 4, none), (0x20, 0, none)]), mode: .any)
        #expect(try f.fs.getattr(ino).permissions == 0o640)
        _ = try f.fs.setattr(ino, .init(permissions: 0o600))
        #expect(Array(try f.fs.getxattr(ino, name: access)[28..<32]) == [0x10, 0, 0, 0])  // the mask entry: ---
        try f.fs.setxattr(ino, name: access, value: acl([(1, 6, none), (4, 4, none), (0x20, 4, none)]), mode: .any)
        #expect(try f.fs.getattr(ino).permissions == 0o644)
        #expect(throws: FSError.noAttribute) { try f.fs.getxattr(ino, name: access) }
        // Without a default ACL the umask applies; with one it does not.
        let dir = try f.fs.mkdir(parent: .root, name: Array("d".utf8), permissions: 0o777, caller: Caller(uid: 0, gid: 0, umask: 0o022))
        #expect(dir.permissions == 0o755)
        _ = try f.fs.setattr(dir.ino, .init(permissions: 0o777))
        let rules = acl([(1, 7, none), (2, 5, 2000), (4, 5, none), (0x10, 7, none), (0x20, 1, none)])
        try f.fs.setxattr(dir.ino, name: inheritable, value: rules, mode: .any)
        let child = try f.fs.mknod(parent: dir.ino, name: Array("g".utf8), kind: .regular, permissions: 0o666, rdev: 0, caller: user)
        #expect(child.permissions == 0o660)
        #expect(try f.fs.getxattr(child.ino, name: access) == acl([(1, 6, none), (2, 5, 2000), (4, 5, none), (0x10, 6, none), (0x20, 0, none)]))
        let sub = try f.fs.mkdir(parent: dir.ino, name: Array("s".utf8), permissions: 0o777, caller: user)
        #expect(try f.fs.getxattr(sub.ino, name: inheritable) == rules)
    }

    @Test func badNamesAreRefused() throws {
        let f = try Fixture()
        #expect(throws: FSError.nameTooLong) { try f.createFile(String(repeating: "x", count: 256)) }
        #expect(throws: FSError.invalidArgument) { try f.createFile("a/b") }
        #expect(throws: FSError.notPermitted) {
            let d = try f.fs.mkdir(parent: .root, name: Array("d".utf8), permissions: 0o755, caller: .root)
            _ = try f.fs.link(d.ino, newParent: .root, newName: Array("e".utf8))
        }
    }

    @Test func setgidDirectoriesPassTheirGroupOn() throws {
        let f = try Fixture()
        let d = try f.fs.mkdir(parent: .root, name: Array("shared".utf8), permissions: 0o2777, caller: Caller(uid: 0, gid: 50))
        let sub = try f.fs.mkdir(parent: d.ino, name: Array("sub".utf8), permissions: 0o755, caller: Caller(uid: 7, gid: 8))
        #expect(sub.gid == 50 && sub.permissions & 0o2000 != 0)
        let file = try f.fs.mknod(parent: d.ino, name: Array("f".utf8), kind: .regular, permissions: 0o644, rdev: 0, caller: Caller(uid: 7, gid: 8))
        #expect(file.gid == 50 && file.permissions & 0o2000 == 0)
    }
}

/// Issue 24: file handles, O_TMPFILE and fallocate's reservations, without FUSE.
@Suite struct ExportTmpfileAllocationTests {
    @Test func dotAndDotDotResolveAnyStoredInodeAndADeletedOneIsNotFound() throws {
        let f = try Fixture()
        let d = try f.fs.mkdir(parent: .root, name: Array("d".utf8), permissions: 0o755, caller: .root)
        let e = try f.fs.mkdir(parent: d.ino, name: Array("e".utf8), permissions: 0o755, caller: .root)
        let (ino, h) = try f.createFile("file")
        try f.fs.release(ino, handle: h)
        f.fs.forget(ino, count: 1)  // the kernel dropped it: "." must still find it
        let dot = try f.fs.lookup(parent: ino, name: [0x2e], caller: Caller(uid: 1000, gid: 1000))
        #expect(dot.ino == ino && dot.generation != 0)
        #expect(try f.fs.lookup(parent: e.ino, name: [0x2e, 0x2e]).ino == d.ino)
        #expect(try f.fs.lookup(parent: .root, name: [0x2e, 0x2e]).ino == .root)
        #expect(throws: FSError.notDirectory) { try f.fs.lookup(parent: ino, name: [0x2e, 0x2e]) }
        try f.fs.unlink(parent: .root, name: Array("file".utf8))
        f.fs.forget(ino, count: 1)  // the reference the "." lookup took: now purged
        #expect(throws: FSError.notFound) { try f.fs.lookup(parent: ino, name: [0x2e]) }
        try f.fs.rmdir(parent: d.ino, name: Array("e".utf8))
        #expect(throws: FSError.notFound) { try f.fs.lookup(parent: e.ino, name: [0x2e]) }
    }

    @Test func aTmpfileIsPurgedAtItsLastCloseUnlessLinked() throws {
        let f = try Fixture()
        let (gone, h1) = try f.fs.tmpfile(parent: .root, permissions: 0o600, readable: true, caller: .root)
        #expect(gone.nlink == 0)
        try f.write(gone.ino, h1, 0, Array("gone".utf8))
        try f.fs.release(gone.ino, handle: h1)
        f.fs.forget(gone.ino, count: 1)
        #expect(throws: FSError.stale) { try f.fs.getattr(gone.ino) }

        let (kept, h2) = try f.fs.tmpfile(parent: .root, permissions: 0o600, readable: true, caller: .root)
        try f.write(kept.ino, h2, 0, Array("kept".utf8))
        #expect(try f.fs.link(kept.ino, newParent: .root, newName: Array("named".utf8)).nlink == 1)
        try f.fs.release(kept.ino, handle: h2)
        f.fs.forget(kept.ino, count: 2)
        #expect(try f.fs.lookup(parent: .root, name: Array("named".utf8)).size == 4)
    }

    @Test func fallocateReservationsCountInBlocksUntilPunchedOrTruncated() throws {
        let f = try Fixture()
        let (ino, h) = try f.createFile("f")
        try f.fs.fallocate(ino, handle: h, mode: .allocate(keepSize: true), offset: 0, length: UInt64(4 * MiB))
        #expect(try f.fs.getattr(ino).size == 0)
        #expect(try f.fs.getattr(ino).blocks512 == UInt64(4 * MiB / 512))
        try f.write(ino, h, 4096, [1, 2])
        try f.fs.flush(ino, handle: h)
        #expect(try f.fs.getattr(ino).blocks512 == UInt64(4 * MiB / 512))  // written inside the reservation
        // Punching frees whole blocks up to the end's block (4098 bytes: two), not beyond.
        try f.fs.fallocate(ino, handle: h, mode: .punchHole, offset: 0, length: UInt64(MiB))
        #expect(try f.fs.getattr(ino).blocks512 == UInt64((4 * MiB - 8192) / 512))
        try f.fs.fallocate(ino, handle: h, mode: .zeroRange(keepSize: false), offset: UInt64(3 * MiB), length: UInt64(2 * MiB))
        #expect(try f.fs.getattr(ino).size == UInt64(5 * MiB))
        #expect(try f.fs.getattr(ino).blocks512 == UInt64((5 * MiB - 8192) / 512))
        _ = try f.fs.setattr(ino, .init(size: UInt64(2 * MiB)), handle: h)
        #expect(try f.fs.getattr(ino).blocks512 == UInt64((2 * MiB - 8192) / 512))
        try f.fs.release(ino, handle: h)
    }
}
