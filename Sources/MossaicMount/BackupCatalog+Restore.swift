#if canImport(Glibc)
import Glibc
#endif
import MossaicCore
import MossaicMeta
import MossaicObjectStore

extension BackupCatalog {
    /// A restore's progress, for the command to show.
    public struct RestoreFetch: Sendable, Equatable {
        public var objects = 0
        public var chunks = 0
        public var bytes: Int64 = 0
    }

    /// The dump of backup `id`, for `MetadataDump.load…`, with its inline chunks' bytes.
    ///
    /// A backup of format 2 is read twice. The first pass checks the whole dump (to its
    /// trailer) and collects where each inline chunk is; then the data objects are fetched,
    /// `width` at a time (memory: that many objects of up to 8 MiB), every chunk decoded and
    /// checked against its SHA-256, and its bytes written to an unlinked spool file in
    /// `spoolDirectory`, in the order the dump names them; the second pass reads them back from
    /// the spool, in that order, for the load. So a data object missing or damaged stops the
    /// restore before the load has begun (nothing is half loaded), and memory does not grow
    /// with the inline data: it holds the plan (about 80 bytes per inline chunk) and `width`
    /// objects. A whole object is fetched even if the backup names only part of it (writers
    /// stop reusing objects less than half named, `BackupDataPacker`). `fetched` is told what
    /// was fetched.
    public static func restoreReader(_ id: String, manifest: Manifest, in store: any ObjectStore, spoolDirectory: String,
                                     width: Int = 8, fetched: (RestoreFetch) -> Void = { _ in }) throws -> DumpReader {
        guard (manifest.format ?? 1) >= 2 else { return DumpReader(source: source(id, manifest: manifest, in: store)) }
        // Pass 1: where each chunk is, and where it goes in the spool.
        var objectIndex: [String: Int] = [:]
        var plan: [[RestoreSpool.Piece]] = []
        var spoolBytes: Int64 = 0
        var chunks = 0
        let first = DumpReader(source: source(id, manifest: manifest, in: store))
        first.dataSource = { reference, hash, length in
            let i = objectIndex[reference.object] ?? {
                objectIndex[reference.object] = plan.count
                plan.append([])
                return plan.count - 1
            }()
            plan[i].append(RestoreSpool.Piece(hash: hash, offset: reference.offset, storedLength: reference.length,
                                              codec: reference.codec, length: length, spoolOffset: spoolBytes))
            spoolBytes += Int64(length)
            chunks += 1
            return []
        }
        _ = try first.header()
        try first.readToEnd()
        let names = objectIndex.sorted { $0.value < $1.value }.map(\.key)

        let spool = try RestoreSpool(directory: spoolDirectory)
        let work = plan
        try WorkerPool.forEach(count: names.count, width: width, name: "mossaicfs-restore") { (i) throws(DumpError) in
            let key = dataPrefix + names[i]
            let bytes: [UInt8]
            do throws(ObjectStoreError) { bytes = try store.get(key) } catch {
                if case .notFound = error {
                    throw DumpError.io("backup \(prefix)\(id) names \(store.displayName)/\(key), which is not in the store: this backup cannot be restored (nothing was loaded)")
                }
                throw DumpError.io("\(store.displayName)/\(key): \(error) (nothing was loaded)")
            }
            for piece in work[i] {
                guard piece.offset + piece.storedLength <= Int64(bytes.count) else {
                    throw DumpError.io("\(store.displayName)/\(key) is \(bytes.count) bytes, too short for chunk \(piece.hash) at \(piece.offset)+\(piece.storedLength): the object is damaged (nothing was loaded)")
                }
                let stored = Array(bytes[Int(piece.offset)..<Int(piece.offset + piece.storedLength)])
                let plaintext: [UInt8]
                do { plaintext = try ChunkTransform.identity.decode(stored, codec: piece.codec, hash: piece.hash) } catch {
                    throw DumpError.io("\(store.displayName)/\(key): chunk \(piece.hash) at offset \(piece.offset) does not match its SHA-256 (\(error)): the object is damaged (nothing was loaded)")
                }
                guard plaintext.count == piece.length else {
                    throw DumpError.io("\(store.displayName)/\(key): chunk \(piece.hash) is \(plaintext.count) bytes, its line says \(piece.length) (nothing was loaded)")
                }
                try spool.write(plaintext, at: piece.spoolOffset)
            }
        }
        fetched(RestoreFetch(objects: names.count, chunks: chunks, bytes: spoolBytes))

        // Pass 2: the same lines, the same order of chunks, their bytes from the spool.
        let second = DumpReader(source: source(id, manifest: manifest, in: store))
        var cursor: Int64 = 0
        second.dataSource = { _, hash, length in
            let bytes = try spool.read(length, at: cursor)
            cursor += Int64(length)
            guard ChunkHash.of(bytes) == hash else {
                throw DumpError.io("backup \(prefix)\(id) read differently the second time (chunk \(hash)): nothing was loaded")
            }
            return bytes
        }
        return second
    }
}

/// An unlinked file holding a restore's inline chunks between fetching and loading: gone when
/// the last reference to it is (or the process is), whatever happens.
final class RestoreSpool: Sendable {
    struct Piece: Sendable {
        var hash: ChunkHash
        var offset: Int64
        var storedLength: Int64
        var codec: ChunkCodec
        var length: Int
        var spoolOffset: Int64
    }

    private let fd: Int32

    init(directory: String) throws(DumpError) {
        var template = Array((directory + "/mossaicfs-restore-XXXXXX").utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else { throw DumpError.io("cannot create a spool file in \(directory): \(String(cString: strerror(errno)))") }
        template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
        self.fd = fd
    }

    deinit { close(fd) }

    private static let name = "the restore's spool file"

    /// pwrite is safe from several threads at once on distinct ranges.
    func write(_ bytes: [UInt8], at offset: Int64) throws(DumpError) {
        do {
            try PosixFiles.withBytes(bytes) { (raw) throws(SystemError) in try PosixFiles.write(fd: fd, raw, offset: UInt64(offset), path: Self.name) }
        } catch {
            throw .io("cannot write \(Self.name): \(error)")
        }
    }

    func read(_ count: Int, at offset: Int64) throws(DumpError) -> [UInt8] {
        let bytes: [UInt8]
        do { bytes = try PosixFiles.read(fd: fd, offset: UInt64(offset), count: count, path: Self.name) } catch {
            throw .io("cannot read \(Self.name) back: \(error)")
        }
        guard bytes.count == count else { throw .io("cannot read \(Self.name) back: it ends early") }
        return bytes
    }
}
