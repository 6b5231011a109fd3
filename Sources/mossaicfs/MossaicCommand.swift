import ArgumentParser

/// `mossaicfs`: the root command. `mossaicfs SOURCE MOUNTPOINT -o opts` (what
/// `mount -t fuse.mossaicfs` and fstab run through mount.fuse3) is `mount` by default.
struct MossaicCommand: ParsableCommand {
    static let version = "0.1.0"

    static let configuration = CommandConfiguration(
        commandName: "mossaicfs",
        abstract: "A POSIX filesystem on S3-compatible object storage or a local directory, over FUSE.",
        discussion: """
        Files are cut into 1 MiB chunks named by their SHA-256 (identical chunks are stored once);
        the metadata lives in SQLite under cache_dir. A file's data is durable when close(2) or
        fsync(2) returns successfully.

        SOURCE is a local directory (the embedded store). See mossaicfs(8) for every option.

        Examples:
          mossaicfs format /srv/mossaic
          mossaicfs mount /srv/mossaic /mnt/data
          mount -t fuse.mossaicfs /srv/mossaic /mnt/data -o cache_dir=/var/cache/mossaicfs/data
          umount /mnt/data
        """,
        version: "mossaicfs \(version)",
        subcommands: [MountCommand.self, FormatCommand.self],
        defaultSubcommand: MountCommand.self
    )
}
