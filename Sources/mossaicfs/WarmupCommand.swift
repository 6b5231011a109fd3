import ArgumentParser
import Foundation
import MossaicCore
import MossaicFS

/// `mossaicfs warmup PATH…`: fetches the chunks of files (directories: of every file below)
/// into the mount's cache ahead of their readers. The daemon fetches, so the cache warmed is
/// the one its reads use.
struct WarmupCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "warmup",
        abstract: "Fetch files' chunks into the mount's local cache (directories recursively).",
        discussion: """
        The mount's daemon reads every chunk the files name into its disk cache (cache_dir/blobs, \
        bounded by cache_size: warming more than it holds evicts what was warmed first), one \
        ranged GET per run of chunks in one pack, in parallel. Chunks cached already are not \
        fetched again. A local-directory store has no cache to warm. Shows progress on a \
        terminal; ends with one summary line, exit status 1 if a chunk could not be fetched. \
        The daemon answers only the user who mounted it and root.
        """)

    @Argument(help: "Files or directories on a mounted mossaicfs.")
    var paths: [String]

    @Flag(name: .long, help: "Print sizes as exact byte counts.")
    var bytes = false

    func run() throws {
        var failed = false
        do {
            for daemon in try MountedPath.group(paths) {
                let bar = ProgressBar(unit: .bytes)
                let reply = try ControlClient.request(.warmup, arguments: daemon.paths.map { "\($0.inode)" }, socket: daemon.socket,
                                                      target: daemon.paths[0].path) { bar.show($0) }
                bar.finish()
                guard let report = try? JSONDecoder().decode(MossaicFilesystem.WarmupReport.self, from: Data(reply.utf8)) else {
                    throw OptionError("\(daemon.paths[0].path): the daemon's answer is not a warmup report: \(String(reply.prefix(200)).trimmingWhitespace())")
                }
                for error in report.errors { Console.out("error: \(error)") }
                Console.out(Self.summary(daemon.paths.map(\.path), report, exactBytes: bytes))
                failed = failed || report.failed > 0
            }
        } catch {
            Console.error("\(error)")
            throw ExitCode.failure
        }
        if failed { throw ExitCode.failure }
    }

    static func summary(_ paths: [String], _ r: MossaicFilesystem.WarmupReport, exactBytes: Bool) -> String {
        let size = exactBytes ? "\(r.bytes) bytes" : ByteSize.human(UInt64(r.bytes))
        let what = paths.count == 1 ? paths[0] : "\(paths.count) paths"
        var line = "warmup \(what): \(r.files) files, \(r.chunks) chunks (\(size))"
        if r.localStore { return line + ": the store is a local directory, read directly; nothing to cache" }
        line += ": \(r.fetched) fetched, \(r.cachedBefore) cached already"
        if r.failed > 0 { line += ", \(r.failed) failed" }
        return line
    }
}
