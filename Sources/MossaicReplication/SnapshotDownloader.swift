#if canImport(Glibc)
import Glibc
#endif
import MossaicCore
import MossaicMeta
import MossaicObjectStore
import Synchronization

/// Assembles a snapshot's database file from its pieces.
public enum SnapshotDownloader {
    public struct Statistics: Sendable, Equatable {
        public var pieces = 0
        public var piecesDownloaded = 0
        public var bytesDownloaded = 0
    }

    /// Parallel GETs of pieces (moto and S3 both serve several times the single-stream rate).
    static let width = 8

    /// The base copy is written 4 KiB at a time, not a piece (~1 MiB) per write. ext4 caches a
    /// large write as large folios (kernel 6.x), and every later 4 KiB write into such a folio
    /// walks all of its blocks: SQLite's random page writes into the copy (the changesets
    /// applied here, then the mounted daemon's WAL checkpoints) cost about 21 µs each instead
    /// of 3 (measured on this machine: random 4 KiB pwrites into a 1.2 GB file after a
    /// sequential pass, 20.9 µs; after small reads or nothing, 2.7–2.9 µs). The extra write
    /// calls cost about one syscall per page.
    static let pageWrite = 4096

    /// Writes the database of `manifest` to `path`: into a temp file beside it, fsynced, then
    /// renamed into place, so `path` is either absent/old or complete. The temp file is scratch
    /// until then (deleted on failure, and by the next restore or mount after a crash), which
    /// lets the changesets apply without a journal or syncs of their own
    /// (`SnapshotChangeApplier`) and one fsync at the end cover base and changes. Every piece
    /// is checked against its SHA-256; the changesets are fetched ahead of their application
    /// (`ChangesetPrefetcher`), from the start, while the base is downloaded. `reusing` is an
    /// earlier snapshot's file with its manifest: pieces it has are copied from it (and
    /// checked) instead of downloaded. `progress` gets the bytes of the database assembled so
    /// far (from the transfer threads).
    @discardableResult
    public static func download(_ manifest: SnapshotManifest, from store: any ObjectStore, to path: String,
                                reusing: (path: String, manifest: SnapshotManifest)? = nil,
                                progress: (@Sendable (ProgressEvent) -> Void)? = nil) throws(ReplicationError) -> Statistics {
        var local: [ChunkHash: UInt64] = [:]
        if let reusing {
            var offset: UInt64 = 0
            for piece in reusing.manifest.chunks {
                if let h = piece.hash, local[h] == nil { local[h] = offset }
                offset += UInt64(piece.size)
            }
        }
        let temp = path + ".download"
        SQLiteMetaStore.removeDatabaseFiles(temp)
        let fd = open(temp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw .local(SystemError("create", path: temp).description) }
        var closed = false
        defer { if !closed { close(fd) }; unlink(temp) }

        var offsets: [UInt64] = []
        var offset: UInt64 = 0
        for piece in manifest.chunks { offsets.append(offset); offset += UInt64(piece.size) }
        let changesets = manifest.format >= 2 ? ChangesetPrefetcher(manifest.changesets, of: manifest.id, from: store) : nil
        let downloaded = Mutex((count: 0, bytes: 0, written: 0))
        let total = Int(offset)
        progress?(ProgressEvent("restoring metadata", done: 0, total: total, unit: .bytes))
        let reusePath = reusing?.path
        let reusable = local, pieceOffsets = offsets
        let pieces = manifest.chunks
        let fetchPiece: @Sendable (Int) -> ReplicationError? = { i in
            let piece = pieces[i]
            guard let hash = piece.hash else { return .damaged("snapshot \(manifest.id): invalid piece name") }
            var bytes: [UInt8]?
            if let reusePath, let at = reusable[hash],
               let candidate = try? PosixFiles.read(reusePath, offset: at, count: piece.size),
               candidate.count == piece.size, ChunkHash.of(candidate) == hash {
                bytes = candidate
            }
            if bytes == nil {
                do throws(ReplicationError) { bytes = try fetch(hash, size: piece.size, of: manifest.id, from: store) } catch {
                    return error
                }
                downloaded.withLock { $0.count += 1; $0.bytes += piece.size }
            }
            do throws(SystemError) {
                try PosixFiles.withBytes(bytes!) { (raw) throws(SystemError) in
                    // One database page per write: see `pageWrite`.
                    var at = 0
                    while at < raw.count {
                        let n = min(Self.pageWrite, raw.count - at)
                        try PosixFiles.write(fd: fd, UnsafeRawBufferPointer(rebasing: raw[at..<(at + n)]), offset: pieceOffsets[i] + UInt64(at), path: temp)
                        at += n
                    }
                }
            } catch {
                return .local(error.description)
            }
            if let progress {
                let written = downloaded.withLock { $0.written += piece.size; return $0.written }
                progress(ProgressEvent("restoring metadata", done: written, total: total, unit: .bytes))
            }
            return nil
        }
        try WorkerPool.forEach(count: pieces.count, width: width, name: "mossaicfs-transfer") { (i) throws(ReplicationError) in
            if let error = fetchPiece(i) { throw error }
        }
        guard ftruncate(fd, off_t(manifest.databaseBytes)) == 0 else {
            throw .local(SystemError("truncate", path: temp).description)
        }
        if let changesets {
            let bytes = try applyChanges(of: manifest, from: changesets, to: temp)
            downloaded.withLock { $0.count += manifest.changesets.count; $0.bytes += bytes }
            MallocControl.releaseFreeMemory()  // the applier's page cache, freed with its connection
        }
        // The applier's connection is closed by now: closing `fd` earlier would have dropped
        // its POSIX locks. fsync of any descriptor writes back every write to the file.
        guard fsync(fd) == 0 else { throw .local(SystemError("fsync", path: temp).description) }
        close(fd)
        closed = true
        SQLiteMetaStore.removeDatabaseFiles(path)
        guard rename(temp, path) == 0 else { throw .local(SystemError("rename", path: path).description) }
        try? PosixFiles.syncDirectory(of: path)
        let d = downloaded.withLock { $0 }
        return Statistics(pieces: pieces.count + manifest.changesets.count, piecesDownloaded: d.count, bytesDownloaded: d.bytes)
    }

    /// GETs the piece `hash` of snapshot `snapshot` and checks it against its name and `size`.
    static func fetch(_ hash: ChunkHash, size: Int, of snapshot: String, from store: any ObjectStore) throws(ReplicationError) -> [UInt8] {
        let key = MetadataLayout.chunk(hash)
        let bytes: [UInt8]
        do throws(ObjectStoreError) { bytes = try store.get(key) } catch {
            if case .notFound = error { throw .damaged("snapshot \(snapshot) is incomplete: \(key) is missing") }
            throw .store(error)
        }
        guard bytes.count == size, ChunkHash.of(bytes) == hash else {
            throw .damaged("snapshot \(snapshot): \(key) does not match its name")
        }
        return bytes
    }

    /// Applies the snapshot's changesets to its base copy at `path`, in order, as the
    /// prefetcher hands them over (each already checked against its SHA-256), and labels the
    /// result (`SnapshotChangeApplier`). Returns the bytes downloaded.
    private static func applyChanges(of manifest: SnapshotManifest, from changesets: ChangesetPrefetcher,
                                     to path: String) throws(ReplicationError) -> Int {
        guard let inodeSequence = manifest.inodeSequence, let changeSequence = manifest.changeSequence else {
            throw .damaged("snapshot \(manifest.id) lacks change_seq or inode_seq")
        }
        let applier = try ReplicationError.wrapMeta { () throws(MetaError) in try SnapshotChangeApplier(path: path) }
        var total = 0
        while let bytes = try changesets.next() {
            do throws(MetaError) { try applier.apply(bytes) } catch {
                throw .damaged("snapshot \(manifest.id): \(error)")
            }
            total += bytes.count
        }
        do throws(MetaError) {
            try applier.finish(inodeSequence: inodeSequence, generation: manifest.generation, id: manifest.id, changeSequence: changeSequence)
        } catch {
            // The changes to `chunks` apply here, at the end (`ChunkChangeStaging`): one that
            // does not fit its base is the same damage as any other.
            if case .incompatible = error { throw .damaged("snapshot \(manifest.id): \(error)") }
            throw .metadata(error)
        }
        return total
    }
}
