import ArgumentParser
import MossaicCore

/// `mossaicfs keygen FILE`: a new random master key for `format --encrypt --key-file FILE`.
struct KeygenCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keygen",
        abstract: "Create a key file for an encrypted filesystem (format --encrypt --key-file FILE).",
        discussion: """
        Writes 32 random bytes as 64 hex digits and a newline to FILE, created with mode 0600; \
        an existing FILE is never overwritten. Keep a copy apart from the store: a lost key \
        cannot be recovered, and neither can the filesystem.
        """)

    @Argument(help: "The key file to create.")
    var file: String

    func run() throws {
        let path = StoreFactory.absolutePath(file)
        do {
            try MasterKey.generate(keyFile: path)
        } catch {
            Console.error("\(error)")
            throw ExitCode.failure
        }
        Console.out("created key file \(path)")
    }
}
