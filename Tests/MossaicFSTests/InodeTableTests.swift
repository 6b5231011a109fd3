import MossaicCore
@testable import MossaicFS
import Testing

/// Memory follows what the kernel holds, not what it ever looked up: references counted per
/// entry reply are dropped by FORGET/BATCH_FORGET, and closed files leave nothing behind once
/// the kernel forgot them.
@Suite struct InodeTableTests {
    @Test func forgetDropsWhatTheKernelForgot() throws {
        let f = try Fixture()
        let before = f.fs.inodes.referencedCount
        var inodes: [InodeNumber] = []
        for i in 0..<50 {
            let a = try f.fs.mknod(parent: .root, name: Array("f\(i)".utf8), kind: .regular, permissions: 0o644, rdev: 0, caller: .root)
            inodes.append(a.ino)
            _ = try f.fs.lookup(parent: .root, name: Array("f\(i)".utf8))  // a second reference
        }
        #expect(f.fs.inodes.referencedCount == before + 50)
        for ino in inodes { f.fs.forget(ino, count: 1) }
        #expect(f.fs.inodes.referencedCount == before + 50)  // one reference each still held
        for ino in inodes { f.fs.forget(ino, count: 1) }
        #expect(f.fs.inodes.referencedCount == before)
        // A forget of more than is held, or of an inode not held, changes nothing else.
        f.fs.forget(inodes[0], count: 5)
        #expect(f.fs.inodes.referencedCount == before)
    }

    @Test func closedFilesLeaveNothingOnceForgotten() throws {
        let f = try Fixture()
        var inodes: [InodeNumber] = []
        for i in 0..<20 {
            let (ino, h) = try f.createFile("g\(i)")
            try f.write(ino, h, 0, Array("data".utf8))
            try f.fs.release(ino, handle: h)
            let again = try f.fs.open(ino, mode: .init(writable: false))
            try f.fs.release(ino, handle: again)
            inodes.append(ino)
        }
        #expect(f.fs.handles.count == 0)
        #expect(f.fs.openFiles.withLock { $0.isEmpty })
        #expect(f.fs.openedVersions.count == 20)  // the kernel may still cache their pages
        for ino in inodes { f.fs.forget(ino, count: 1) }
        #expect(f.fs.openedVersions.count == 0)
        #expect(f.fs.inodes.referencedCount == 0)
    }

    /// keep_cache's memory of versions at open is bounded however many files the kernel holds;
    /// a file opened again and again stays in it, one not opened for long falls out.
    @Test func openedVersionsStayBounded() {
        let versions = OpenedVersions(capacity: 8)
        let v1 = DataVersion(size: 1, mtime: Timestamp(nanoseconds: 1), ctime: Timestamp(nanoseconds: 1))
        let v2 = DataVersion(size: 2, mtime: Timestamp(nanoseconds: 2), ctime: Timestamp(nanoseconds: 2))
        let hot = InodeNumber(1), cold = InodeNumber(2)
        #expect(!versions.open(hot, v1))  // first open: nothing to keep
        #expect(versions.open(hot, v1))   // unchanged since
        #expect(!versions.open(hot, v2))  // changed since
        #expect(!versions.open(cold, v1))
        var largest = 0
        for i in UInt64(100)..<1_100 {
            _ = versions.open(InodeNumber(i), v1)
            #expect(versions.open(hot, v2))
            largest = max(largest, versions.count)
        }
        #expect(largest <= 8)
        #expect(!versions.open(cold, v1))  // dropped long ago: its pages are read again once
        versions.forget(hot)
        #expect(!versions.open(hot, v2))
    }

    @Test func directoryHandlesHoldOnePageNotTheDirectory() throws {
        let f = try Fixture()
        let d = try f.fs.mkdir(parent: .root, name: Array("d".utf8), permissions: 0o755, caller: .root)
        for i in 0..<300 { _ = try f.fs.mknod(parent: d.ino, name: Array(String(format: "e%03d", i).utf8), kind: .regular, permissions: 0o644, rdev: 0, caller: .root) }
        let h = try f.fs.opendir(d.ino)
        guard case .directory(let cursor) = try f.fs.handles.get(h) else { Issue.record("not a directory handle"); return }
        var offset: UInt64 = 0
        var listed = 0
        while true {
            let page = try f.fs.readdir(d.ino, handle: h, offset: offset, limit: 25)
            guard let last = page.last else { break }
            listed += page.filter { !$0.isDotOrDotDot }.count
            offset = last.nextOffset
            #expect(cursor.state.withLock { $0.replyCount } <= 25)
        }
        #expect(listed == 300)
        #expect(cursor.state.withLock { $0.marks.count } <= DirectoryCursor.maxMarks)
        f.fs.releasedir(h)
        #expect(f.fs.handles.count == 0)
    }

    /// A listing of many small replies keeps at most `maxMarks` names however long it is, and a
    /// seekdir to any offset handed out before resumes at the same entry, read as keyset pages.
    @Test func directoryCursorStaysBoundedAndSeeksBack() throws {
        let f = try Fixture()
        let d = try f.fs.mkdir(parent: .root, name: Array("d".utf8), permissions: 0o755, caller: .root)
        let n = 3_000
        for i in 0..<n { _ = try f.fs.mknod(parent: d.ino, name: Array(String(format: "e%05d", i).utf8), kind: .regular, permissions: 0o644, rdev: 0, caller: .root) }
        let h = try f.fs.opendir(d.ino)
        guard case .directory(let cursor) = try f.fs.handles.get(h) else { Issue.record("not a directory handle"); return }
        var offset: UInt64 = 0
        var seen: [(offset: UInt64, name: [UInt8])] = []
        var largest = 0
        while true {
            // Like the kernel when its reader's buffer filled: the reply's last entry or two
            // are not taken, and the next read continues from the last one taken.
            let page = try f.fs.readdir(d.ino, handle: h, offset: offset, limit: 7)
            guard !page.isEmpty else { break }
            let taken = page.count > 2 ? page.dropLast(seen.count % 3 == 0 ? 2 : 0) : page[...]
            for e in taken where !e.isDotOrDotDot { seen.append((e.nextOffset, e.name)) }
            offset = taken.last!.nextOffset
            largest = max(largest, cursor.state.withLock { $0.marks.count })
        }
        #expect(seen.count == n)
        #expect(seen.map(\.name) == (0..<n).map { Array(String(format: "e%05d", $0).utf8) })
        #expect(largest <= DirectoryCursor.maxMarks)
        // telldir/seekdir: an offset read before continues with the entry after it.
        for i in [0, 1, 17, 500, 1_999, 2_998, 1_234, 2, 2_999] {
            let page = try f.fs.readdir(d.ino, handle: h, offset: seen[i].offset, limit: 3)
            #expect(page.map(\.name) == seen[(i + 1)..<min(n, i + 4)].map(\.name), "after entry \(i)")
        }
        // Past the end, and from the start again.
        #expect(try f.fs.readdir(d.ino, handle: h, offset: UInt64(n) + 50, limit: 3).isEmpty)
        #expect(try f.fs.readdir(d.ino, handle: h, offset: 0, limit: 3).map(\.name) == [[0x2e], [0x2e, 0x2e], Array("e00000".utf8)])
        f.fs.releasedir(h)
        #expect(f.fs.handles.count == 0)
    }
}
