import ArgumentParser
import Logging
import MossaicCore
import MossaicFS
import MossaicObjectStore
import MossaicReplication

/// `mossaicfs snapshots SOURCE`: the metadata snapshots in the store, oldest first.
struct SnapshotsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "snapshots",
        abstract: "List the metadata snapshots in SOURCE (id, time, files, logical bytes).",
        // Written out on two lines: ArgumentParser does not wrap usage lines (80 columns).
        usage: "mossaicfs snapshots <source> [--bytes] [-o <options> ...]\nmossaicfs snapshots <source> --set-head <ID> [-o <options> ...]",
        discussion: """
        Each line is one snapshot: its id (for `mount -o ro,snapshot=ID`; the generation number, \
        the id's first part, works too), when it was taken (UTC), how many regular files it has \
        and the sum of their sizes, and the host that took it. The newest one, which read-write \
        and read-only mounts start from, is marked HEAD.

        --set-head ID repairs a store whose meta/HEAD is missing or unreadable (mounts refuse \
        such a store rather than take it for an empty filesystem): HEAD then names snapshot ID, \
        normally the newest listed. It never moves an existing, readable HEAD, and it takes the \
        writer lease while it works, so it fails while a read-write mount is live.
        """)

    @Argument(help: "The filesystem: a local directory or s3://bucket/prefix.")
    var source: String

    @Option(name: .customShort("o"), help: ArgumentHelp("Store options for s3:// sources (endpoint=, region=, credentials=, …), comma-separated.", valueName: "options"))
    var options: [String] = []

    @Flag(name: .long, help: "Print sizes as exact numbers of bytes (for scripts), not 1.5 GiB.")
    var bytes = false

    @Option(name: .customLong("set-head"), help: ArgumentHelp("Point a missing or unreadable meta/HEAD at this snapshot (an id or a generation).", valueName: "ID"))
    var setHead: String?

    func run() throws {
        do {
            let parsed = try MountOptions.parse(options)
            let (store, superblock) = try StoreFactory.openFilesystem(source, options: parsed, writes: setHead != nil)
            if let url = superblock.postgres {
                throw OptionError("\(store.displayName) keeps its metadata in PostgreSQL (\(url)): it has no metadata snapshots (back the database up instead)")
            }
            if let setHead {
                let logger = Console.logger(.warning)
                let manifest = try HeadRepair.setHead(store: store, fsUUID: superblock.uuid, to: setHead,
                                                      leaseDuration: parsed.leaseTime, logger: logger)
                Console.out("HEAD of \(store.displayName) now names snapshot \(manifest.id) (generation \(manifest.generation), taken \(manifest.created) on \(manifest.host))")
                return
            }
            let catalog = SnapshotCatalog(store: store)
            let head = try catalog.head()
            let manifests = try catalog.manifests()
            guard !manifests.isEmpty else {
                Console.out("no metadata snapshots in \(store.displayName) yet (a read-write mount takes the first)")
                return
            }
            let rows = [["ID", "CREATED", "FILES", bytes ? "BYTES" : "SIZE", "HOST", ""]] + manifests.map { m in
                [m.id, m.created, String(m.files), ByteSize.printed(UInt64(clamping: m.logicalBytes), exact: bytes), m.host, m.id == head?.pointer.snapshot ? "HEAD" : ""]
            }
            let widths = (0..<6).map { c in rows.map { $0[c].count }.max() ?? 0 }
            for row in rows {
                let cells = row.enumerated().map { c, text in
                    // Numbers right-aligned, text left-aligned.
                    let pad = String(repeating: " ", count: widths[c] - text.count)
                    return (c == 2 || c == 3) ? pad + text : text + pad
                }
                Console.out(cells.joined(separator: "  ").trimmingWhitespace())
            }
        } catch {
            Console.error("\(error)")
            throw ExitCode.failure
        }
    }
}
