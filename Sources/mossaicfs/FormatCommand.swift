#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import MossaicCore
import MossaicFS
import MossaicMeta
import MossaicMount
import MossaicObjectStore

/// `mossaicfs format SOURCE`: writes the superblock that makes SOURCE a filesystem.
struct FormatCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "format",
        abstract: "Create a new, empty filesystem in SOURCE (a local directory, created if missing, or s3://bucket/prefix).",
        // Written out on two lines: ArgumentParser does not wrap usage lines (80 columns).
        usage: "mossaicfs format <source> [--compress none|zstd[:level]]\n[--inline-max <bytes>] [--force] [-o <options> ...]\n[--encrypt [--key-file <file> [--create-key] | --passphrase-file <file>]]\n[--meta postgres://[user@]host[:port]/database[?parameters]]",
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

        --encrypt seals file contents, names, metadata snapshots and object names with \
        AES-256-GCM (convergently: identical chunks still deduplicate) under a master key from \
        --key-file (64 hex digits or 32 raw bytes, mode 0600; --create-key or `mossaicfs keygen` \
        makes one) or from a passphrase (--passphrase-file, MOSSAICFS_PASSPHRASE, or asked on \
        the terminal twice), stretched by scrypt. The store keeps only a key check value. The \
        store still sees object sizes, their number, and when they are written and read. A \
        LOST KEY OR PASSPHRASE IS UNRECOVERABLE: keep a copy of it apart from the store.

        --meta keeps the metadata (the tree, names, attributes, chunk lists, small files) in \
        a PostgreSQL database instead of each mount's local SQLite database, so that several \
        hosts may mount the filesystem read-write. The database must exist and hold no other \
        filesystem (CREATE DATABASE name); format creates the tables in it. The URL is kept in \
        the superblock and must not contain a password: libpq reads it from PGPASSWORD, the file \
        PGPASSFILE or the URL's passfile= parameter names, or ~/.pgpass, and takes what the URL \
        leaves out from PGHOST, PGPORT, PGUSER and the other PG* variables, at every mount. \
        mossaicfs releases before PostgreSQL refuse to mount such a filesystem. Not yet with \
        --encrypt. What holds across hosts today, and what does not yet: man mossaicfs.
        """)

    @Argument(help: "Where the filesystem's objects live: a local directory or s3://bucket/prefix.")
    var source: String

    @Option(name: .long, help: ArgumentHelp("Chunks up to this many bytes are kept inside the metadata instead of as objects (0 to 1048576).", valueName: "bytes"))
    var inlineMax: Int = FormatConstants.defaultInlineMax

    @Option(name: .long, help: ArgumentHelp("Compress each chunk before it is stored: none, zstd (level 3) or zstd:LEVEL (1 to 19).", valueName: "none|zstd[:level]"))
    var compress = "none"

    @Flag(name: .long, help: "Format even if SOURCE already holds a filesystem (its files become unreachable) or is a local directory holding other files (they stay).")
    var force = false

    @Flag(name: .long, help: "Encrypt everything written to the store (see above); mounting then needs the key.")
    var encrypt = false

    @Option(name: .long, help: ArgumentHelp("With --encrypt: the master key file (mode 0600).", valueName: "file"))
    var keyFile: String?

    @Flag(name: .long, help: "With --key-file: create it first (a new random key, mode 0600; refused if it exists).")
    var createKey = false

    @Option(name: .long, help: ArgumentHelp("With --encrypt: a file holding the passphrase (mode 0600), instead of a key file.", valueName: "file"))
    var passphraseFile: String?

    @Option(name: .long, help: ArgumentHelp("Keep the metadata in this PostgreSQL database (see above; never a password in it).", valueName: "postgres://…"))
    var meta: String?

    @Option(name: .customShort("o"), help: ArgumentHelp("Store options for s3:// sources (endpoint=, region=, credentials=, profile=, …), comma-separated.", valueName: "options"))
    var options: [String] = []

    func validate() throws {
        guard (0...FormatConstants.chunkSize).contains(inlineMax) else {
            throw ValidationError("--inline-max must be between 0 and \(FormatConstants.chunkSize)")
        }
        if !encrypt && (keyFile != nil || passphraseFile != nil || createKey) {
            throw ValidationError("--key-file, --create-key and --passphrase-file need --encrypt")
        }
        if keyFile != nil && passphraseFile != nil {
            throw ValidationError("give --key-file or --passphrase-file, not both")
        }
        if createKey && keyFile == nil {
            throw ValidationError("--create-key needs --key-file FILE (where the new key goes)")
        }
        if encrypt && meta != nil {
            // The database would hold names and small files' contents in the clear.
            throw ValidationError("--encrypt and --meta cannot be combined yet: the metadata in PostgreSQL would not be encrypted")
        }
    }

    /// The new filesystem's encryption, the key made or read before anything is written to
    /// the store. A key file is created here with --create-key.
    private func encryption() throws -> Superblock.Encryption? {
        guard encrypt else { return nil }
        if let keyFile {
            let path = StoreFactory.absolutePath(keyFile)
            if createKey {
                try MasterKey.generate(keyFile: path)
                Console.out("created key file \(path): keep a copy apart from the store; without it the filesystem cannot be read")
            }
            return try FilesystemKey.make(.keyFile(path))
        }
        if let passphraseFile { return try FilesystemKey.make(.passphraseFile(StoreFactory.absolutePath(passphraseFile))) }
        if case .passphrase(let passphrase)? = StoreFactory.keySource(MountConfiguration()) {
            return try FilesystemKey.make(.passphrase(passphrase))
        }
        guard isatty(0) == 1 else {
            throw OptionError("--encrypt needs a key: --key-file FILE (with --create-key to make one), --passphrase-file FILE, or \(StoreFactory.passphraseVariable)")
        }
        let first = Console.readSecret("new passphrase: ")
        guard first.count >= 8 else { throw OptionError("a passphrase must have at least 8 characters") }
        guard Console.readSecret("the same again: ") == first else { throw OptionError("the two passphrases differ") }
        return try FilesystemKey.make(.passphrase(first))
    }

    func run() throws {
        let compression: Compression
        do { compression = try Compression(parsing: compress) } catch {
            Console.error("--compress: \(error)")
            throw ExitCode.failure
        }
        do {
            let parsed = try MountOptions.parse(options)
            // The database is checked before anything is created, in it or in the store.
            let database = try meta.map { (url) throws in try PostgresURL(parsing: url) }
            if let database { try Self.requireFree(database) }
            let encryption = try self.encryption()
            // A local directory is checked, and made private, before the store creates anything
            // in it; a refusal leaves it as it was.
            if let path = try StoreFactory.localPath(source, options: parsed.store),
               let formerMode = try StoreDirectory.prepare(path, force: force) {
                Console.out("\(path): mode changed from 0\(String(formerMode, radix: 8)) to 0700 (only its owner may enter a store)")
            }
            let store = try StoreFactory.open(source, options: parsed.store, create: true)
            let superblock = try Superblock.format(store, inlineMax: inlineMax, compression: compression, encryption: encryption,
                                                   meta: database, force: force)
            var properties: [String] = []
            if let database {
                try Self.createMetadata(database, superblock: superblock)
                properties.append("metadata in PostgreSQL database \(database.database)")
            }
            if compression != .none { properties.append("compression \(compression)") }
            if encryption != nil { properties.append("encrypted, \(ConvergentCipher.scheme)") }
            let described = properties.isEmpty ? "" : " (\(properties.joined(separator: "; ")))"
            Console.out("formatted \(store.displayName): mossaicfs filesystem \(superblock.uuid)\(described)")
        } catch {
            Console.error("\(error)")
            throw ExitCode.failure
        }
    }

    /// Refuses a database that is unreachable or holds another filesystem's metadata (even
    /// with --force: format never empties a database). One whose schema a stopped format
    /// created, and that no filesystem claimed, is taken.
    private static func requireFree(_ database: PostgresURL) throws {
        let holding: PostgresMetaStore.Holding
        do { holding = try PostgresMetaStore.holding(url: database.string) } catch {
            throw OptionError("cannot reach the metadata database \(database): \(FilesystemLoader.oneLine(error))")
        }
        if case .filesystem(let uuid) = holding {
            throw OptionError("\(database) already holds the metadata of mossaicfs filesystem \(uuid): give a new, empty database (CREATE DATABASE …)")
        }
    }

    /// Creates the schema and the root directory, and makes the database this filesystem's.
    private static func createMetadata(_ database: PostgresURL, superblock: Superblock) throws {
        do {
            let metadata = try PostgresMetaStore(url: database.string, connections: 1)
            let owner = try metadata.claim(filesystem: superblock.uuid)
            guard owner == superblock.uuid else {
                throw OptionError("\(database) was taken meanwhile by mossaicfs filesystem \(owner): format again with another database (and --force)")
            }
            try metadata.createRootIfMissing(permissions: 0o755, uid: 0, gid: 0, now: .now())
        } catch let error as MetaError {
            throw OptionError("cannot create the metadata in \(database): \(FilesystemLoader.oneLine(error))")
        }
    }
}
