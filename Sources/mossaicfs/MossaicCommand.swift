import ArgumentParser
import MossaicCore

/// `mossaicfs`: the root command. Subcommands are explicit; the forms mount(8), umount(8) and
/// fstab use are recognised by how mossaicfs is called (Invocation).
struct MossaicCommand: ParsableCommand {
    static let version = FormatConstants.softwareVersion

    // Help texts: prose lines end in `\` so ArgumentParser, which wraps to the terminal, gets
    // whole paragraphs; a hard newline inside a paragraph would be wrapped again, raggedly.
    // Tables and examples keep their newlines and stay within 79 columns (80-column terminals).
    static let configuration = CommandConfiguration(
        commandName: "mossaicfs",
        abstract: "A POSIX filesystem on S3-compatible object storage or a local directory, over FUSE.",
        discussion: """
        Files are cut into 1 MiB chunks named by their SHA-256 (identical chunks are stored once); \
        the metadata lives in SQLite under cache_dir and is snapshotted into the store, so the \
        store alone restores the filesystem. A file's data is durable when close(2) or fsync(2) \
        returns successfully.

        SOURCE is a local directory (the embedded store) or s3://bucket/prefix. For S3, the \
        credentials come from -o credentials=FILE (AWS shared-credentials format, profile=NAME), \
        -o profile=NAME, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or AWS_PROFILE with \
        ~/.aws/credentials; the endpoint from -o endpoint=URL, AWS_ENDPOINT_URL_S3 or \
        AWS_ENDPOINT_URL; the region from -o region=, AWS_REGION or AWS_DEFAULT_REGION. \
        See mossaicfs(8) for every option.

        The subcommand is always named, with one exception for mount(8) and fstab: \
        `mossaicfs SOURCE MOUNTPOINT [-o opts]` mounts when SOURCE is an absolute path or a URL \
        (s3://…) and there are exactly these two words besides options; called as \
        mount.fuse.mossaicfs it mounts, as umount.fuse.mossaicfs it unmounts. Any other first \
        word that is not a subcommand is an error.

        Examples:
          mossaicfs format /srv/mossaic
          mossaicfs mount /srv/mossaic /mnt/data
          mossaicfs format s3://bucket/prefix -o endpoint=https://s3.example.net
          mossaicfs mount s3://bucket/prefix /mnt/data \\
              -o endpoint=https://s3.example.net,credentials=/etc/mossaicfs/key
          mount -t fuse.mossaicfs /srv/mossaic /mnt/data \\
              -o cache_dir=/var/cache/mossaicfs/data
          mossaicfs snapshot /mnt/data          # publish the metadata to the store now
          mossaicfs snapshots /srv/mossaic      # list the metadata snapshots
          mossaicfs gc /srv/mossaic --dry-run   # what deleted files still hold
          mossaicfs info /mnt/data/projects     # size, chunks, stored, deduplicated
          mossaicfs warmup /mnt/data/projects   # fetch into the local cache
          mossaicfs mount /srv/mossaic /mnt/old -o ro,snapshot=0000000042-3fa9c1d2
          mossaicfs umount /mnt/data            # returns once everything is stored
          mossaicfs dump /srv/mossaic --output m.jsonl  # metadata, JSON lines
          mossaicfs load m.jsonl --into /srv/mossaic --meta postgres://db/fs
        """,
        version: "mossaicfs \(version)",
        subcommands: [MountCommand.self, UmountCommand.self, FormatCommand.self, StatusCommand.self, InfoCommand.self,
                      WarmupCommand.self, FsckCommand.self, GcCommand.self, SnapshotsCommand.self, SnapshotCommand.self,
                      DumpCommand.self, LoadCommand.self, KeygenCommand.self]
    )

    /// Runs the command `argv` (CommandLine.arguments) names.
    static func run(_ argv: [String]) {
        let commands = configuration.subcommands.compactMap { $0.configuration.commandName }
        switch Invocation.arguments(argv, commands: commands) {
        case .success(let arguments):
            main(arguments)
        case .failure(let unknown):
            Console.error(unknown.description)
            Foundation_exit(1)
        }
    }
}
