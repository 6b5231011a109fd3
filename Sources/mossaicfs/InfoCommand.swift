import ArgumentParser
import Foundation
import MossaicCore
import MossaicFS

/// `mossaicfs info PATH…`: what a file or directory on a mounted mossaicfs holds — its size,
/// chunks, the bytes it takes in the store and how many of them are shared — asked of the
/// daemon serving it (like `juicefs info`).
struct InfoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "info",
        abstract: "Show a file's or directory's inode, size, chunks, stored and deduplicated bytes.",
        discussion: """
        For a directory the figures are totals over its whole tree (hard links counted once). \
        stored: the bytes of the distinct chunks its files name (in objects, or inline in the \
        metadata). deduplicated: chunk bytes it names that are shared with files elsewhere or \
        named more than once, so stored only once. exclusive: stored bytes nothing outside it \
        names (what deleting it frees, once no metadata snapshot keeps them). Figures are of \
        the data committed (close, fsync). Asked of the mount's daemon, which answers only the \
        user who mounted it and root.
        """)

    @Argument(help: "Files or directories on a mounted mossaicfs.")
    var paths: [String]

    @Flag(name: .long, help: "Print sizes as exact byte counts.")
    var bytes = false

    @Flag(name: .long, help: "Print JSON instead of text.")
    var json = false

    func run() throws {
        do {
            var results: [(path: String, info: MossaicFilesystem.InodeInfo)] = []
            for daemon in try MountedPath.group(paths) {
                let reply = try ControlClient.request(.info, arguments: daemon.paths.map { "\($0.inode)" }, socket: daemon.socket,
                                                      target: daemon.paths[0].path)
                guard let infos = try? JSONDecoder().decode([MossaicFilesystem.InodeInfo].self, from: Data(reply.utf8)),
                      infos.count == daemon.paths.count else {
                    throw OptionError("\(daemon.paths[0].path): the daemon's answer is not an info: \(String(reply.prefix(200)).trimmingWhitespace())")
                }
                results += zip(daemon.paths.map(\.path), infos).map { ($0, $1) }
            }
            // In the order given, whichever daemon answered.
            let ordered = paths.compactMap { path in results.first { $0.path == path } }
            if json {
                Console.out(Self.json(ordered))
            } else {
                Console.out(ordered.map { Self.text($0.path, $0.info, exactBytes: bytes) }.joined(separator: "\n"))
            }
        } catch {
            Console.error("\(error)")
            throw ExitCode.failure
        }
    }

    static func text(_ path: String, _ info: MossaicFilesystem.InodeInfo, exactBytes: Bool) -> String {
        let size = { (n: UInt64) in exactBytes ? "\(n)" : ByteSize.human(n) }
        let u = info.usage
        var rows: [(String, String)] = [("inode", "\(info.inode)"), ("type", info.type)]
        if info.type == "directory" {
            rows.append(("files", "\(u.files) files, \(u.directories) directories (itself included)" + (u.others > 0 ? ", \(u.others) others" : "")))
            rows.append(("size", size(u.size)))
        } else {
            rows.append(("size", size(info.size)))
        }
        rows.append(("chunks", "\(u.chunkReferences) (\(u.chunks) distinct)"))
        rows.append(("stored", size(u.storedBytes) + (u.inlineBytes > 0 ? " (\(size(u.inlineBytes)) inline in the metadata)" : "")))
        rows.append(("deduplicated", size(u.deduplicatedBytes)))
        rows.append(("exclusive", size(u.exclusiveBytes)))
        let width = rows.map(\.0.count).max() ?? 0
        return "\(path):\n" + rows.map { "  " + $0.0.padding(toLength: width + 2, withPad: " ", startingAt: 0) + $0.1 }.joined(separator: "\n")
    }

    /// The daemon's figures with the path each was asked as.
    static func json(_ results: [(path: String, info: MossaicFilesystem.InodeInfo)]) -> String {
        struct Entry: Encodable { var path: String; var info: MossaicFilesystem.InodeInfo }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return String(decoding: (try? encoder.encode(results.map { Entry(path: $0.path, info: $0.info) })) ?? Data(), as: UTF8.self)
    }
}
