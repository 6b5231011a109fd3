import ArgumentParser
import Logging
import MossaicCore
import MossaicFS
import MossaicMeta
import MossaicObjectStore

/// `mossaicfs fsck SOURCE`: checks an unmounted filesystem — refcounts against chunk lists,
/// link counts against directory entries, orphan and unreachable inodes, references to chunks
/// the metadata or the store lacks — and with --verify re-hashes every object.
struct FsckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fsck",
        abstract: "Check an unmounted filesystem's metadata and objects; --repair fixes what can be fixed.",
        discussion: "Exit status 0 when everything is consistent (after repairs), 1 when something is still wrong.")

    @Argument(help: "The filesystem: a local directory or s3://bucket/prefix.")
    var source: String

    @Flag(name: .long, help: "Download every object and check that its bytes hash to its name.")
    var verify = false

    @Flag(name: .long, help: "Fix the metadata (recount, relink into /lost+found) and restore bad objects from the disk cache.")
    var repair = false

    @Option(name: .customShort("o"), help: ArgumentHelp("cache_dir= and store options, comma-separated.", valueName: "options"))
    var options: [String] = []

    func run() throws {
        do {
            let parsed = try MountOptions(options)
            let store = try StoreFactory.open(source, options: parsed.store, create: false)
            let superblock = try Superblock.load(from: store)
            // Taking the cache_dir's lock makes sure no daemon has the filesystem mounted.
            let cacheDirectory = try CacheDirectory(path: parsed.cacheDirectory ?? CacheDirectory.defaultRoot + "/" + superblock.uuid)
            guard PosixFiles.exists(cacheDirectory.metadataPath) else {
                throw OptionError("no metadata at \(cacheDirectory.metadataPath) (give -o cache_dir= of the machine that mounts it)")
            }
            let metadata = try SQLiteMetaStore(path: cacheDirectory.metadataPath)
            let bar = ProgressBar()
            let report = try FilesystemChecker.run(store: store, metadata: metadata, options: .init(
                verify: verify, repair: repair, blobsDirectory: store.isLocal ? nil : cacheDirectory.blobsPath,
                stagingDirectory: cacheDirectory.stagingPath),
                progress: { bar.show($0, $1, $2) })
            bar.finish()
            for line in report.problems { Console.out("problem: \(line)") }
            for hash in report.missing { Console.out("missing object: \(hash.objectKey)\(report.restored.contains(hash) ? " (restored from the disk cache)" : "")") }
            for hash in report.corrupt { Console.out("corrupt object: \(hash.objectKey)\(report.restored.contains(hash) ? " (restored from the disk cache)" : "")") }
            var summary = "fsck \(store.displayName): \(report.problems.count) metadata problems"
            if repair { summary += " (\(report.repairedRows) rows repaired, \(report.remaining.count) left)" }
            summary += ", \(report.missing.count) missing and \(report.corrupt.count) corrupt of \(report.referencedObjects) referenced objects"
            if verify { summary += " (\(report.checkedObjects) verified)" }
            if !report.staged.isEmpty {
                summary += repair ? ", \(report.staged.count) write-back staged uploaded"
                                  : ", \(report.staged.count) write-back staged (uploaded at the next mount)"
            }
            if !report.restored.isEmpty { summary += ", \(report.restored.count) restored" }
            summary += ", \(report.unreferencedObjects) unreferenced objects (for gc)"
            summary += report.isClean ? ": clean" : ": NOT clean"
            Console.out(summary)
            withExtendedLifetime(cacheDirectory) {}
            if !report.isClean { throw ExitCode.failure }
        } catch let exit as ExitCode {
            throw exit
        } catch {
            Console.error("\(error)")
            throw ExitCode.failure
        }
    }
}
