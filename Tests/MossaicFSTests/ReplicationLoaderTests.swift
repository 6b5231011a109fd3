import Foundation
import Logging
import MossaicCore
import MossaicFS
import MossaicMount
import MossaicObjectStore
import MossaicReplication
import Testing

/// FilesystemLoader with metadata snapshots, without FUSE: restore from the store alone, the
/// writer lease, read-only opens. (The mounted acceptance tests are in Tests/e2e/test_snapshots.py.)
@Suite struct ReplicationLoaderTests {
    let logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })

    func open(_ store: any ObjectStore, _ cache: String, readOnly: Bool = false, snapshot: String? = nil) throws(FormatError) -> FilesystemLoader.Opened {
        var options = MountConfiguration()
        options.cacheDirectory = cache
        options.readOnly = readOnly
        options.snapshot = snapshot
        return try FilesystemLoader.open(store: store, settings: .init(options: options), logger: logger)
    }

    /// A temp directory and a filesystem formatted in `root/store`.
    func formattedStore() throws -> (root: String, store: DirectoryObjectStore) {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("loader-\(UUID().uuidString)").path
        let store = try DirectoryObjectStore(root: root + "/store", create: true)
        _ = try Superblock.format(store, inlineMax: 16 << 10, force: false)
        return (root, store)
    }

    func write(_ fs: MossaicFilesystem, _ name: String, _ bytes: [UInt8]) throws {
        let (attrs, h) = try fs.create(parent: .root, name: Array(name.utf8), permissions: 0o640, caller: .root)
        _ = try bytes.withUnsafeBytes { try fs.write(attrs.ino, handle: h, offset: 0, data: $0) }
        try fs.release(attrs.ino, handle: h)
    }

    func read(_ fs: MossaicFilesystem, _ name: String) throws -> [UInt8] {
        let attrs = try fs.lookup(parent: .root, name: Array(name.utf8))
        let h = try fs.open(attrs.ino, mode: .init(writable: false))
        defer { try? fs.release(attrs.ino, handle: h) }
        return try fs.read(attrs.ino, handle: h, offset: 0, size: Int(attrs.size))
    }

    /// Both control channels (ioctl, control socket) end in `control`: a stranger is refused
    /// every request, the mount's owner and root are served.
    @Test func controlRequestsServeOnlyTheOwnerAndRoot() throws {
        let (root, store) = try formattedStore()
        let opened = try open(store, root + "/a")
        defer { opened.stopBackground(finalSnapshot: false) }
        let stranger = Caller(uid: getuid() &+ 4242, gid: 4242)
        for request in ControlRequest.allCases {
            #expect(throws: FSError.notPermitted) { try opened.filesystem.control(request, caller: stranger) }
        }
        try write(opened.filesystem, "f", Array("x".utf8))
        let owner = Caller(uid: getuid(), gid: getgid())
        #expect(try !opened.filesystem.control(.snapshot, caller: owner).isEmpty)
        #expect(try opened.filesystem.control(.status, caller: .root).contains("\"mounted\" : true"))
    }

    @Test func theStoreAloneRestoresAndOneWriterAtATime() throws {
        let (root, store) = try formattedStore()
        let big = (0..<(3 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 7) }

        var first: FilesystemLoader.Opened? = try open(store, root + "/a")
        try write(first!.filesystem, "small", Array("hello".utf8))
        try write(first!.filesystem, "big", big)
        // A second writer is refused, naming the first; a reader is not.
        #expect(throws: FormatError.self) { try open(store, root + "/b") }
        do { _ = try open(store, root + "/b") } catch {
            guard case .replication(.leaseHeld) = error else { Issue.record("\(error)"); return }
            #expect(error.description.contains("cache_dir \(root)/a"))
        }
        let reader = try open(store, root + "/r", readOnly: true)
        #expect(throws: FSError.notFound) { try reader.filesystem.lookup(parent: .root, name: Array("small".utf8)) }  // not snapshotted yet
        let id = try #require(try first!.filesystem.snapshotMetadata())
        #expect(try reader.follower!.poll() == id)
        #expect(try read(reader.filesystem, "small") == Array("hello".utf8))
        #expect(throws: FSError.readOnly) { try reader.filesystem.snapshotMetadata() }

        #expect(first!.stopBackground(finalSnapshot: true) == nil)
        first = nil  // releases the cache_dir lock
        try FileManager.default.removeItem(atPath: root + "/a")
        let again = try open(store, root + "/a")
        #expect(try read(again.filesystem, "small") == Array("hello".utf8))
        #expect(try read(again.filesystem, "big") == big)
        let pinned = try open(store, root + "/p", readOnly: true, snapshot: id)
        #expect(try read(pinned.filesystem, "big") == big)
        #expect(pinned.follower == nil)
        again.stopBackground(finalSnapshot: true)
    }
}

extension ReplicationLoaderTests {
    @Test func readOnlyBeforeTheFirstSnapshotShowsAnEmptyRootAndFollows() throws {
        let (root, store) = try formattedStore()
        let reader = try open(store, root + "/r", readOnly: true)
        let h = try reader.filesystem.opendir(.root)
        #expect(try reader.filesystem.readdir(.root, handle: h, offset: 0, limit: 100).filter { !$0.isDotOrDotDot }.isEmpty)
        reader.filesystem.releasedir(h)
        #expect(try reader.filesystem.getattr(.root).kind == .directory)
        #expect(throws: FormatError.self) { try open(store, root + "/p", readOnly: true, snapshot: "1") }
        let writer = try open(store, root + "/w")  // publishes the first snapshot at once
        try write(writer.filesystem, "x", [1, 2, 3])
        _ = try writer.filesystem.snapshotMetadata()
        #expect(try reader.follower!.poll() != nil)
        #expect(try read(reader.filesystem, "x") == [1, 2, 3])
        writer.stopBackground(finalSnapshot: true)
    }
}

extension ReplicationLoaderTests {
    @Test func aMountWhoseLeaseWasTakenRefusesChanges() throws {
        let (root, store) = try formattedStore()
        let writer = try open(store, root + "/w")
        try write(writer.filesystem, "before", [1])
        // Another host takes the lease by force (its owner is believed dead).
        _ = try WriterLease.acquire(store: store, identity: HostIdentity(hostname: "other", machineID: "m-other", bootID: "b"),
                                    cacheDirectory: "/elsewhere", duration: 60, force: true, logger: logger)
        #expect(throws: FSError.self) { try writer.filesystem.snapshotMetadata() }
        #expect(throws: FSError.readOnly) { try write(writer.filesystem, "after", [2]) }
        // The unmount's final snapshot fails, and the new holder's lease stays.
        #expect(writer.stopBackground(finalSnapshot: true) != nil)
        #expect(try store.head(MetadataLayout.lease) != nil)
    }
}
