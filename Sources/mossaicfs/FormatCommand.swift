import ArgumentParser
import MossaicCore
import MossaicFS
import MossaicObjectStore

/// `mossaicfs format SOURCE`: writes the superblock that makes SOURCE a filesystem.
struct FormatCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "format",
        abstract: "Create a new, empty filesystem in SOURCE (a local directory, created if missing, or s3://bucket/prefix).",
        discussion: "Refuses a SOURCE that already holds a filesystem unless --force is given.")

    @Argument(help: "Where the filesystem's objects live: a local directory or s3://bucket/prefix.")
    var source: String

    @Option(name: .long, help: "Chunks up to this many bytes are kept inside the metadata instead of as objects (0 to 1048576).")
    var inlineMax: Int = FormatConstants.defaultInlineMax

    @Flag(name: .long, help: "Format even if SOURCE already holds a filesystem (its files become unreachable).")
    var force = false

    @Option(name: .customShort("o"), help: ArgumentHelp("Store options for s3:// sources (endpoint=, region=, credentials=, profile=, …), comma-separated.", valueName: "options"))
    var options: [String] = []

    func validate() throws {
        guard (0...FormatConstants.chunkSize).contains(inlineMax) else {
            throw ValidationError("--inline-max must be between 0 and \(FormatConstants.chunkSize)")
        }
    }

    func run() throws {
        do {
            let parsed = try MountOptions(options)
            let store = try StoreFactory.open(source, options: parsed.store, create: true)
            let superblock = try Superblock.format(store, inlineMax: inlineMax, force: force)
            Console.out("formatted \(store.displayName): mossaicfs filesystem \(superblock.uuid)")
        } catch {
            Console.error("\(error)")
            throw ExitCode.failure
        }
    }
}
