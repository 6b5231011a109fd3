import ArgumentParser
import MossaicCore
import MossaicFS
import MossaicObjectStore

/// `mossaicfs format SOURCE`: writes the superblock that makes SOURCE a filesystem.
struct FormatCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "format",
        abstract: "Create a new, empty filesystem in SOURCE (a local directory, created if missing, or s3://bucket/prefix).",
        // Written out on two lines: ArgumentParser does not wrap usage lines (80 columns).
        usage: "mossaicfs format <source> [--compress none|zstd[:level]]\n[--inline-max <bytes>] [--force] [-o <options> ...]",
        discussion: """
        Refuses a SOURCE that already holds a filesystem, and a local directory that holds \
        anything else, unless --force is given. A local directory is created with mode 0700, or \
        its mode is set to 0700 (said in one line): whoever can write the store can delete the \
        filesystem.

        --compress zstd compresses each 1 MiB chunk with zstd before it is stored (level 3 \
        unless zstd:LEVEL, 1 fastest to 19 smallest); a chunk that shrinks by less than 1/32 \
        is stored as it is. Chunks keep their names and dedup: only the stored bytes change. \
        The choice is fixed for the filesystem's life, and mossaicfs releases older than \
        compression refuse to mount a compressed filesystem.
        """)

    @Argument(help: "Where the filesystem's objects live: a local directory or s3://bucket/prefix.")
    var source: String

    @Option(name: .long, help: ArgumentHelp("Chunks up to this many bytes are kept inside the metadata instead of as objects (0 to 1048576).", valueName: "bytes"))
    var inlineMax: Int = FormatConstants.defaultInlineMax

    @Option(name: .long, help: ArgumentHelp("Compress each chunk before it is stored: none, zstd (level 3) or zstd:LEVEL (1 to 19).", valueName: "none|zstd[:level]"))
    var compress = "none"

    @Flag(name: .long, help: "Format even if SOURCE already holds a filesystem (its files become unreachable) or is a local directory holding other files (they stay).")
    var force = false

    @Option(name: .customShort("o"), help: ArgumentHelp("Store options for s3:// sources (endpoint=, region=, credentials=, profile=, …), comma-separated.", valueName: "options"))
    var options: [String] = []

    func validate() throws {
        guard (0...FormatConstants.chunkSize).contains(inlineMax) else {
            throw ValidationError("--inline-max must be between 0 and \(FormatConstants.chunkSize)")
        }
    }

    func run() throws {
        let compression: Compression
        do { compression = try Compression(parsing: compress) } catch {
            Console.error("--compress: \(error)")
            throw ExitCode.failure
        }
        do {
            let parsed = try MountOptions.parse(options)
            // A local directory is checked, and made private, before the store creates anything
            // in it; a refusal leaves it as it was.
            if let path = try StoreFactory.localPath(source, options: parsed.store),
               let formerMode = try StoreDirectory.prepare(path, force: force) {
                Console.out("\(path): mode changed from 0\(String(formerMode, radix: 8)) to 0700 (only its owner may enter a store)")
            }
            let store = try StoreFactory.open(source, options: parsed.store, create: true)
            let superblock = try Superblock.format(store, inlineMax: inlineMax, compression: compression, force: force)
            let compressed = compression == .none ? "" : " (compression \(compression))"
            Console.out("formatted \(store.displayName): mossaicfs filesystem \(superblock.uuid)\(compressed)")
        } catch {
            Console.error("\(error)")
            throw ExitCode.failure
        }
    }
}
