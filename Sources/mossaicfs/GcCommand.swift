import ArgumentParser
import Logging
import MossaicCore
import MossaicFS
import MossaicMaintenance
import MossaicObjectStore

/// `mossaicfs gc SOURCE`: deletes objects that neither the metadata nor any metadata snapshot
/// in the store references, once they are older than the grace period.
struct GcCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gc",
        abstract: "Delete objects nothing references any more (deleted files' chunks, old snapshot pieces).",
        // Written out on two lines: ArgumentParser does not wrap usage lines (80 columns).
        usage: "mossaicfs gc <source> [--dry-run] [--grace <duration>] [--bytes]\n[-o <options> ...]",
        discussion: """
        Deletes chunk objects and packs (objects holding several chunks) in which no file in the \
        metadata and no metadata snapshot in the store references a chunk, and snapshot pieces \
        (meta/chunks/) no snapshot lists, once they are older than --grace. Chunks of deleted files \
        stay while a retained snapshot still has the file; they go in a gc after retention \
        (meta_keep, meta_keep_age, meta_keep_size) pruned that snapshot. A pack with one chunk \
        still in use stays whole (gc does not repack). Like a read-write mount, gc takes the \
        cache_dir's lock and the writer lease, so it refuses to run while the filesystem is \
        mounted read-write, and no mount starts while it runs. Without a cache_dir holding the \
        filesystem's meta.db here, gc restores the store's \
        newest metadata snapshot into a temporary directory and removes it afterwards; a gc that \
        deletes from there publishes a new snapshot, so the mounting machine must then mount once \
        with -o discard_local. A filesystem whose metadata is in PostgreSQL is collected against \
        its database, with no lease and no snapshot: gc is refused while a host has it mounted \
        read-write (a live session, as status lists them; --dry-run is not), and cleans up the \
        sessions of dead hosts. Shows progress with \
        rate and time left on a terminal; ends with one summary line; exit status 1 if something could not be deleted or gc could not run.
        """)

    @Argument(help: "The filesystem: a local directory or s3://bucket/prefix.")
    var source: String

    @Flag(name: .long, help: "Report what would be deleted; delete nothing.")
    var dryRun = false

    @Flag(name: .long, help: "Print sizes as exact numbers of bytes (for scripts), not 1.5 GiB.")
    var bytes = false

    @Option(name: .long, help: ArgumentHelp("Keep unreferenced objects younger than this: a number with s, m, h or d.", valueName: "duration"))
    var grace = "1h"

    @Option(name: .customShort("o"), help: ArgumentHelp("cache_dir=, lease_time=, force_lease, discard_local and store options, comma-separated.", valueName: "options"))
    var options: [String] = []

    func run() throws {
        do {
            guard let graceSeconds = GraceDuration.parse(grace) else {
                throw OptionError("--grace: '\(grace)' is not a duration (e.g. 90s, 30m, 1h, 2d)")
            }
            let parsed = try MountOptions.parse(options)
            let logger = Console.logger(.warning)
            let (store, superblock) = try StoreFactory.openFilesystem(source, options: parsed, writes: !dryRun)
            let (path, temporary) = try TemporaryCacheDirectory.choose(given: parsed.cacheDirectory, uuid: superblock.uuid, command: "gc",
                                                                       sharedMetadata: superblock.postgres != nil)
            defer { temporary?.remove() }
            let bar = ProgressBar()
            let report = try GarbageCollector.run(
                store: store, cacheDirectory: path,
                options: .init(dryRun: dryRun, grace: graceSeconds, mount: parsed),
                logger: logger, waiting: Console.waitingForPreviousDaemon, progress: { bar.show($0) })
            bar.finish()
            // Said once gc has run: a refusal (the lease held by a mount) stays one line.
            if temporary != nil {
                Console.error("no cache_dir here holds this filesystem's meta.db: gc used the store's newest metadata snapshot")
            }
            for line in report.errors { Console.out("error: \(line)") }
            let verb = report.dryRun ? "would delete" : "deleted"
            var summary = "gc \(store.displayName): \(report.scanned) objects scanned, \(report.deleted) \(verb)"
            summary += " (\(report.deletedChunks) chunks, \(report.deletedPacks) packs, \(report.deletedPieces) snapshot pieces"
            summary += report.deletedBackupData > 0 ? ", \(report.deletedBackupData) backup data objects)" : ")"
            summary += ", \(ByteSize.printed(report.bytesFreed, exact: bytes))"
            summary += report.dryRun ? " to free" : " freed"
            summary += "; kept \(report.keptForSnapshots) for \(report.snapshots) snapshots, \(report.keptYoung) younger than \(grace)"
            if report.unreferencedInLivePacks > 0 {
                summary += ", \(report.unreferencedInLivePacks) unreferenced chunks in packs still in use (not repacked)"
            }
            if !report.errors.isEmpty { summary += "; \(report.errors.count) errors" }
            Console.out(summary)
            if !report.errors.isEmpty { throw ExitCode.failure }
        } catch let exit as ExitCode {
            throw exit
        } catch {
            Console.error("\(error)")
            throw ExitCode.failure
        }
    }
}
