#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Foundation
import MossaicCore
import MossaicFS
import MossaicMeta
import MossaicMount
import MossaicObjectStore

/// `mossaicfs dump SOURCE`: the filesystem's metadata as engine-neutral JSON lines
/// (`MetadataDump`), from either engine, read-only, while mounted too.
struct DumpCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dump",
        abstract: "Write a filesystem's metadata as JSON lines (for mossaicfs load: backups, SQLite <-> PostgreSQL).",
        discussion: """
        The dump holds the whole tree: every inode with all its attributes (times in \
        nanoseconds), directory entries, symlink targets, xattrs, chunk lists with the chunks' \
        hashes and places in the store, small files' data, fallocate reservations and small-write \
        patches — not the file data in the store's chunks. It is read in one transaction (a \
        consistent snapshot), so it may be taken while the filesystem is mounted, and streamed: \
        memory stays flat whatever the size. Byte strings (names, targets, xattrs, data) are \
        always base64; the last line is a trailer with the counts, without which load refuses \
        the dump as truncated.

        A filesystem whose metadata is in PostgreSQL is dumped from its database. One in SQLite \
        is dumped from the meta.db of its cache_dir on this machine (-o cache_dir=, else the \
        default one) — the newest state, also while mounted — and without one, from the store's \
        newest metadata snapshot.
        """)

    @Argument(help: "The filesystem: a local directory or s3://bucket/prefix.")
    var source: String

    @Option(name: .long, help: ArgumentHelp("Where the dump goes; - for standard output (the default). A file is written whole or not at all.", valueName: "file"))
    var output = "-"

    @Option(name: .customShort("o"), help: ArgumentHelp("cache_dir= and store options, comma-separated.", valueName: "options"))
    var options: [String] = []

    func run() throws {
        var temporaryFile: String?
        do {
            let parsed = try MountOptions.parse(options)
            let (store, superblock) = try StoreFactory.openFilesystem(source, options: parsed, writes: false)
            let sink = try DumpOutput(output)
            temporaryFile = sink.temporary
            let created = ISO8601DateFormatter().string(from: Date())
            let summary: MetadataDump.Summary
            if let url = superblock.postgres {
                let metadata = try FilesystemLoader.openPostgres(url, superblock: superblock, store: store, readOnly: true)
                summary = try metadata.dump(fsUUID: superblock.uuid, created: created, sink: sink.write)
            } else {
                let (path, temporary) = try TemporaryCacheDirectory.choose(given: parsed.cacheDirectory, uuid: superblock.uuid, command: "dump")
                defer { temporary?.remove() }
                let database = path + "/meta.db"
                if temporary != nil {
                    let manifest = try FilesystemLoader.restoreNewestSnapshot(store: store, superblock: superblock, to: database)
                    do { _ = try SQLiteMetaStore(path: database) }  // brought to this build's schema
                    Console.error("dumping the store's newest metadata snapshot \(manifest.id) (taken \(manifest.created) on \(manifest.host)): no cache_dir here holds this filesystem's meta.db")
                }
                summary = try MetadataDump.dumpSQLite(path: database, fsUUID: superblock.uuid, created: created, sink: sink.write)
            }
            try sink.finish()
            temporaryFile = nil
            Console.error("dumped \(Self.describe(summary)) of filesystem \(superblock.uuid) (\(summary.header.engine))\(output == "-" ? "" : " to \(output)")")
        } catch {
            if let temporaryFile { unlink(temporaryFile) }
            Console.error("\(error)")
            throw ExitCode.failure
        }
    }

    static func describe(_ summary: MetadataDump.Summary) -> String {
        "\(summary.records) records (\(summary.count("inode")) inodes, \(summary.count("dentry")) entries, "
            + "\(summary.count("chunk")) chunks, \(summary.count("xattr")) xattrs)"
    }
}

/// Standard output, or a file written as FILE.tmp-PID and renamed over FILE once complete.
final class DumpOutput {
    let fd: Int32
    let path: String?
    let temporary: String?

    init(_ output: String) throws {
        if output == "-" {
            fd = 1; path = nil; temporary = nil
            return
        }
        let absolute = StoreFactory.absolutePath(output)
        let temporary = absolute + ".tmp-\(getpid())"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw OptionError("cannot create \(temporary): \(String(cString: strerror(errno)))") }
        self.fd = fd; path = absolute; self.temporary = temporary
    }

    func write(_ bytes: [UInt8]) throws {
        var done = 0
        while done < bytes.count {
            let n = bytes[done...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw OptionError("cannot write the dump to \(path ?? "standard output"): \(String(cString: strerror(errno)))")
            }
            done += n
        }
    }

    func finish() throws {
        guard let path, let temporary else { return }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw OptionError("cannot write the dump to \(path): \(String(cString: strerror(errno)))") }
        guard rename(temporary, path) == 0 else { throw OptionError("cannot rename \(temporary) to \(path): \(String(cString: strerror(errno)))") }
    }
}
