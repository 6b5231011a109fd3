import ArgumentParser
import Logging
import MossaicCore
import MossaicFS
import MossaicMaintenance
import MossaicMeta
import MossaicMount
import MossaicObjectStore
import MossaicReplication

/// `mossaicfs fsck SOURCE`: checks an unmounted filesystem — refcounts against chunk lists,
/// link counts against directory entries, orphan and unreachable inodes, references to chunks
/// the metadata or the store lacks — and with --verify re-hashes every referenced chunk (each
/// object, chunk or pack, downloaded once).
struct FsckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fsck",
        abstract: "Check an unmounted filesystem's metadata and objects; --repair fixes what can be fixed.",
        discussion: """
        Without a cache_dir holding the filesystem's meta.db here (-o cache_dir=, else the default \
        one), fsck restores the store's newest metadata snapshot into a temporary directory \
        ($TMPDIR, default /var/tmp), checks it and removes it: the bucket alone is enough \
        (--repair then is refused). A filesystem whose metadata is in PostgreSQL is checked \
        in its database; --repair is refused while a host has it mounted read-write (a live \
        session, as status lists them), and cleans up the sessions of dead hosts. Shows progress with rate \
        and time left on a terminal. Exit status 0 when everything is consistent (after repairs), 1 when something is still wrong.
        """)

    @Argument(help: "The filesystem: a local directory or s3://bucket/prefix.")
    var source: String

    @Flag(name: .long, help: "Download every object holding a referenced chunk and check that each chunk's bytes hash to its name.")
    var verify = false

    @Flag(name: .long, help: "Fix the metadata (recount, relink into /lost+found) and restore bad chunks from the disk cache or write-back staging.")
    var repair = false

    @Option(name: .customShort("o"), help: ArgumentHelp("cache_dir= and store options, comma-separated.", valueName: "options"))
    var options: [String] = []

    func run() throws {
        do {
            let parsed = try MountOptions.parse(options)
            let (store, superblock) = try StoreFactory.openFilesystem(source, options: parsed, writes: repair)
            let (path, temporary) = try TemporaryCacheDirectory.choose(given: parsed.cacheDirectory, uuid: superblock.uuid, command: "fsck",
                                                                       sharedMetadata: superblock.postgres != nil)
            defer { temporary?.remove() }
            if temporary != nil && repair {
                // Repairs made to a copy would be thrown away with it.
                throw OptionError("--repair needs the metadata itself: give -o cache_dir= of the machine that mounts \(store.displayName) (\(parsed.cacheDirectory ?? CacheDirectory.defaultRoot + "/" + superblock.uuid) has no meta.db)")
            }
            // Taking the cache_dir's lock makes sure no daemon has the filesystem mounted; one
            // still finishing after its unmount is waited for.
            let cacheDirectory = try CacheDirectory(path: path, claimant: .command("fsck"), waiting: Console.waitingForPreviousDaemon)
            let bar = ProgressBar()
            if temporary != nil {
                let manifest = try FilesystemLoader.restoreNewestSnapshot(store: store, superblock: superblock, to: cacheDirectory.metadataPath) { bar.show($0) }
                bar.finish()
                Console.error("checking the store's newest metadata snapshot \(manifest.id) (taken \(manifest.created) on \(manifest.host)): no cache_dir here holds this filesystem's meta.db")
                if let lease = try? SnapshotCatalog(store: store).lease(), lease.expiresNanoseconds > Timestamp.now().nanoseconds {
                    Console.error("note: \(lease.hostname) has it mounted read-write (cache_dir \(lease.cacheDirectory)); changes since that snapshot are not checked")
                }
            }
            let metadata: any MetaStore = try superblock.postgres.map { (url) throws in
                try FilesystemLoader.openPostgres(url, superblock: superblock, store: store, readOnly: !repair)
            } ?? SQLiteMetaStore(path: cacheDirectory.metadataPath)
            if let sessions = metadata as? any SessionTable {
                // Dead hosts' sessions: their locks and open files, and what only they kept.
                if repair {
                    // Repairs recount and relink from one reading of the tables: a host writing
                    // meanwhile would be "repaired" back to that reading. A check alone may run
                    // beside hosts (what changes under it may show as problems).
                    let cleanup = try FilesystemLoader.requireUnmountedCleaningUp(
                        sessions, store: store, why: "fsck --repair rewrites metadata that their writes are changing")
                    if !cleanup.isEmpty {
                        Console.out("cleaned up \(cleanup.sessions) dead sessions, reclaimed \(cleanup.reclaimed) unlinked inodes nobody had open")
                    }
                } else if case let dead = try sessions.sessions().filter({ !$0.alive }), !dead.isEmpty {
                    Console.out("note: \(dead.count) dead sessions (\(dead.map { "\($0.host) pid \($0.pid)" }.joined(separator: ", "))): any mount's heartbeat, fsck --repair or gc cleans them up")
                }
            }
            let report = try FilesystemChecker.run(store: store, metadata: metadata, options: .init(
                verify: verify, repair: repair, blobsDirectory: store.isLocal ? nil : cacheDirectory.blobsPath,
                stagingDirectory: cacheDirectory.stagingPath, transform: superblock.transform(for: store)),
                progress: { bar.show($0) })
            bar.finish()
            for line in report.problems { Console.out("problem: \(line)") }
            for chunk in report.missing { Console.out("missing object: \(describe(chunk, report))") }
            for chunk in report.corrupt { Console.out("corrupt object: \(describe(chunk, report))") }
            var summary = "fsck \(store.displayName): \(report.problems.count) metadata problems"
            if repair { summary += " (\(report.repairedRows) rows repaired, \(report.remaining.count) left)" }
            summary += ", \(report.missing.count) missing and \(report.corrupt.count) corrupt of \(report.referencedChunks) referenced chunks"
            summary += " in \(report.referencedObjects) objects"
            if verify { summary += " (\(report.checkedChunks) verified, in \(report.checkedObjects) objects)" }
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

    /// The object the chunk's bytes should be in (naming the chunk when that is a pack), and
    /// whether a good copy was put back. A chunk object's copy can only have come from the disk
    /// cache (a good staged copy makes it "staged", not missing); a packed chunk's may also come
    /// from staging, and it now has its own object.
    private func describe(_ chunk: LocatedChunk, _ report: FilesystemChecker.Report) -> String {
        var line = chunk.key
        if chunk.location.pack != nil { line += " (chunk \(chunk.hash))" }
        if report.restored.contains(chunk.hash) {
            line += chunk.location.pack == nil ? " (restored from the disk cache)" : " (restored from a local copy as \(chunk.hash.objectKey))"
        }
        return line
    }
}
