/// Numbers fixed by the on-store format. Changing one needs a new format version.
public enum FormatConstants {
    /// This build's version, as `--version` prints it and a PostgreSQL session records it.
    public static let softwareVersion = "0.1.0"
    /// Chunk size: a file's bytes are cut at multiples of this (1 MiB).
    public static let chunkSize = 1 << 20
    /// Default largest chunk kept inline in SQLite instead of as an object (16 KiB).
    public static let defaultInlineMax = 16 << 10
    /// The newest superblock format version this build reads. A superblock says the oldest
    /// version that can read its filesystem, so builds before a feature keep reading the
    /// filesystems that do not use it, and refuse, in one line, those that do:
    /// 1: the original format; 2: chunks may be compressed or encrypted (the superblock's
    /// `compression`, `encryption`); 3: the metadata is in PostgreSQL (the superblock's `meta`).
    public static let formatVersion = 3
    /// Longest name of a directory entry, as on ext4.
    public static let maxNameLength = 255
    /// Longest symlink target (PATH_MAX - 1).
    public static let maxSymlinkLength = 4095
}
