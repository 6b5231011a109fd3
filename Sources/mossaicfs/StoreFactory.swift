#if canImport(Glibc)
import Glibc
#endif
import Logging
import MossaicCore
import MossaicFS
import MossaicObjectStore

/// Turns a SOURCE argument into an object store.
enum StoreFactory {
    /// A local directory SOURCE as an absolute path (relative paths are taken from the current
    /// directory, as mount(8) users expect).
    static func absolutePath(_ source: String) -> String {
        var path = source
        if !path.hasPrefix("/") {
            var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
            if getcwd(&buffer, buffer.count) != nil {
                path = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) + "/" + path
            }
        }
        while path.count > 1 && path.hasSuffix("/") { path.removeLast() }
        return path
    }

    /// A mountpoint as /proc/self/mountinfo names it: absolute, symbolic links resolved (as far
    /// as they resolve; a dead FUSE mount cannot be looked into).
    static func canonicalPath(_ path: String) -> String {
        let absolute = absolutePath(path)
        guard let resolved = realpath(absolute, nil) else { return absolute }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    /// The absolute path of a local directory SOURCE, nil for s3://; checks that the source
    /// is one of the two and that store options come only with s3://.
    static func localPath(_ source: String, options: [String: String]) throws(ObjectStoreError) -> String? {
        if source.hasPrefix("s3://") { return nil }
        if source.contains("://") {
            throw .invalidConfiguration("unsupported source \(source): use a local directory or s3://bucket/prefix")
        }
        if !options.isEmpty {
            throw .invalidConfiguration("option '\(options.keys.sorted()[0])' applies to s3:// sources only")
        }
        return absolutePath(source)
    }

    /// Opens the store SOURCE names. `create` makes a missing local directory (format).
    /// `logger` gets the store's retries and warnings: by default only its errors, for the
    /// commands that print their own one-line error (the mount daemon passes its own).
    /// `sweep`: this process is about to write the store (mount, gc, repairs), so temp files a
    /// crashed writer left in a local store go; a command that only reads leaves them, since a
    /// live mount may be writing them.
    static func open(_ source: String, options: [String: String], create: Bool, sweep: Bool = true,
                     logger: Logger = Console.logger(.error)) throws(ObjectStoreError) -> any ObjectStore {
        guard let path = try localPath(source, options: options) else {
            return try S3StoreFactory.open(source, options: options, logger: logger)
        }
        if !create && !PosixFiles.exists(path) {
            throw .invalidConfiguration("\(path): no such directory; create a filesystem there with: mossaicfs format \(path)")
        }
        return try DirectoryObjectStore(root: path, create: create, sweepTemporaries: sweep)
    }

    /// Opens the filesystem in SOURCE for a tool (status, snapshots, fsck, gc): the store and
    /// its superblock. Neither a missing directory nor one that holds no filesystem gets the
    /// advice to format it, which is the mount's: a tool pointed at the wrong place should
    /// say so and change nothing there (`writes`: the tool may write the store).
    /// An encrypted filesystem is unlocked with the key `options` name (`unlock`).
    static func openFilesystem(_ source: String, options: MountConfiguration, writes: Bool) throws -> (store: any ObjectStore, superblock: Superblock) {
        if let path = try localPath(source, options: options.store), !PosixFiles.exists(path) {
            throw OptionError("\(path): no such directory")
        }
        let store = try open(source, options: options.store, create: false, sweep: writes)
        let superblock: Superblock
        do {
            superblock = try Superblock.load(from: store)
        } catch FormatError.notFormatted(let name) {
            throw OptionError("\(name) is not a mossaicfs store")
        }
        return (try unlock(store, superblock: superblock, options: options), superblock)
    }

    /// `store` as the filesystem of `superblock` must be read and written: for an encrypted
    /// one, through its key (`FilesystemKey.unlock`), which comes from key_file=,
    /// passphrase_file=, the environment (`MOSSAICFS_PASSPHRASE`) or, for a passphrase and a
    /// terminal on stdin, a prompt.
    static func unlock(_ store: any ObjectStore, superblock: Superblock, options: MountConfiguration) throws(FormatError) -> any ObjectStore {
        var source = keySource(options)
        // The environment's passphrase is ambient (a shell may hold it for several
        // filesystems): a filesystem in the clear ignores it; a key option is refused there.
        if superblock.encryption == nil, case .passphrase = source { source = nil }
        if source == nil, superblock.encryption?.kdf != nil, isatty(0) == 1 {
            source = .passphrase(Console.readSecret("passphrase for \(store.displayName): "))
        }
        return try FilesystemKey.unlock(store, superblock: superblock, source: source)
    }

    /// The environment variable a passphrase may come in (never the command line, which `ps`
    /// shows to every user). Taken out of the environment once read, so that no process this
    /// one starts inherits it.
    static let passphraseVariable = "MOSSAICFS_PASSPHRASE"

    /// The key the options or the environment name, if any.
    static func keySource(_ options: MountConfiguration) -> KeySource? {
        if let path = options.keyFile { return .keyFile(path) }
        if let path = options.passphraseFile { return .passphraseFile(path) }
        if let value = getenv(passphraseVariable) {
            let passphrase = Array(String(cString: value).utf8)
            unsetenv(passphraseVariable)
            return .passphrase(passphrase)
        }
        return nil
    }
}
