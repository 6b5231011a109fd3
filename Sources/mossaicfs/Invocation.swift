/// How mossaicfs was called, decided before ArgumentParser sees the arguments: subcommands are
/// explicit, so a typo is an error instead of a mount of a store named like the typo.
///
/// The rule (README, mossaicfs(8), --help):
/// - called as `mount.fuse.mossaicfs` or `mount.mossaicfs` (the helper mount(8) runs for type
///   fuse.mossaicfs): `mount`; as `umount.fuse.mossaicfs` or `umount.mossaicfs` (the helper
///   umount(8) runs): `umount`;
/// - a first word that is a subcommand, or an option (--help, --version): as given;
/// - `SOURCE MOUNTPOINT [options]` — exactly two words that are not options, the first an
///   absolute path or a URL (s3://…): `mount`. This is what mount.fuse3 runs for fstab lines
///   and `mount -t fuse.mossaicfs`;
/// - anything else is an unknown command: one line, naming the nearest subcommand.
enum Invocation {
    static let mountHelpers: Set<String> = ["mount.fuse.mossaicfs", "mount.mossaicfs"]
    static let umountHelpers: Set<String> = ["umount.fuse.mossaicfs", "umount.mossaicfs"]
    /// Options of the helper form that take the next word as their value.
    static let valued: Set<String> = ["-o", "-t", "-N", "--ready-fd"]

    /// The arguments for MossaicCommand (without argv[0]), or the one-line error.
    static func arguments(_ argv: [String], commands: [String]) -> Result<[String], UnknownCommand> {
        let name = argv.first.map { String($0.split(separator: "/").last ?? "") } ?? ""
        let args = Array(argv.dropFirst())
        if mountHelpers.contains(name) { return .success(["mount"] + args) }
        if umountHelpers.contains(name) { return .success(["umount"] + args) }
        guard let first = args.first, !first.hasPrefix("-"), !commands.contains(first), first != "help" else { return .success(args) }
        let words = positionals(args)
        if words.count == 2, first.hasPrefix("/") || first.contains("://") { return .success(["mount"] + args) }
        return .failure(UnknownCommand(word: first, commands: commands))
    }

    /// The words of `args` that are neither options nor option values.
    static func positionals(_ args: [String]) -> [String] {
        var words: [String] = [], skipNext = false
        for arg in args {
            if skipNext { skipNext = false; continue }
            if arg.hasPrefix("-") { skipNext = valued.contains(arg); continue }
            words.append(arg)
        }
        return words
    }
}

/// A first word that is not a subcommand, with the nearest one if it is near enough.
struct UnknownCommand: Error, CustomStringConvertible {
    var word: String
    var commands: [String]

    var description: String {
        if let near = Self.nearest(word, among: commands) { return "unknown command '\(word)'; did you mean '\(near)'?" }
        return "unknown command '\(word)' (commands: \(commands.joined(separator: ", ")); see mossaicfs --help)"
    }

    /// The command within two edits (a swap of neighbours counts as one) and fewer edits than
    /// the word has letters, the first of the nearest.
    static func nearest(_ word: String, among commands: [String]) -> String? {
        let scored = commands.map { ($0, distance(word, $0)) }.filter { $0.1 <= 2 && $0.1 < word.count }
        return scored.min { $0.1 < $1.1 }?.0
    }

    /// Optimal-string-alignment distance: insertions, deletions, substitutions and swaps of
    /// adjacent letters ("stauts" is one from "status").
    static func distance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        if a.isEmpty || b.isEmpty { return max(a.count, b.count) }
        var d = [[Int]](repeating: [Int](repeating: 0, count: b.count + 1), count: a.count + 1)
        for i in 0...a.count { d[i][0] = i }
        for j in 0...b.count { d[0][j] = j }
        for i in 1...a.count {
            for j in 1...b.count {
                let cost = a[i - 1] == b[j - 1] ? 0 : 1
                d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
                if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] {
                    d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
                }
            }
        }
        return d[a.count][b.count]
    }
}
