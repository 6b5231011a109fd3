import Logging

/// One `-o` option of `mount` as declared in `MountConfiguration.declarations`: its name, the
/// field it sets with the range a value must be in, and its line in `mount --help`. The `-o`
/// parser and the help table are both read off these declarations, so an option cannot be
/// accepted without help or helped without being accepted.
public struct MountOption: Sendable {
    /// How the value is read, and into which field of `MountConfiguration`.
    public enum Kind: Sendable {
        /// No value (`ro`): sets the flag.
        case flag(WritableKeyPath<MountConfiguration, Bool> & Sendable)
        /// A size with an optional K, M, G or T suffix (`cache_size=20G`).
        case size(WritableKeyPath<MountConfiguration, Int> & Sendable, ClosedRange<Int>)
        /// A whole number, of `unit` when given (`read_ahead=8`: chunks).
        case count(WritableKeyPath<MountConfiguration, Int> & Sendable, ClosedRange<Int>, unit: String? = nil)
        /// Seconds, fractions allowed; `why` explains the range in its error.
        case seconds(WritableKeyPath<MountConfiguration, Double> & Sendable, ClosedRange<Double>, why: String? = nil)
        /// A duration in seconds, written with an optional unit s, m, h or d (`meta_keep_age=7d`),
        /// as `gc --grace` takes it; a bare number is seconds.
        case duration(WritableKeyPath<MountConfiguration, Double> & Sendable, ClosedRange<Double>)
        /// A size as `.size` takes it, or a percentage (`meta_keep_size=50%`), each in its range.
        case sizeOrPercent(WritableKeyPath<MountConfiguration, RetentionSize> & Sendable, ClosedRange<Int>, percent: ClosedRange<Int>)
        /// Any non-empty text.
        case text(WritableKeyPath<MountConfiguration, String?> & Sendable)
        /// An absolute path.
        case absolutePath(WritableKeyPath<MountConfiguration, String?> & Sendable)
        /// `stderr`, `syslog` or an absolute file path.
        case logDestination(WritableKeyPath<MountConfiguration, LogDestination?> & Sendable)
        /// One of swift-log's level names.
        case logLevel(WritableKeyPath<MountConfiguration, Logger.Level?> & Sendable)
    }

    /// The part of `mount --help` (and of mossaicfs(8)) the option is listed in.
    public enum Section: Sendable {
        case mount
        /// Metadata snapshots and the single-writer lease.
        case metadata
        /// The key of an encrypted filesystem (also taken by fsck, gc, status, snapshots).
        case encryption
    }

    public let name: String
    public let kind: Kind
    /// The value's placeholder in help (`SIZE` in `cache_size=SIZE`); nil for flags.
    public let placeholder: String?
    /// One line of help (wrapped when shown): `{default}`, `{min}` and `{max}` stand for the
    /// field's default and the range's bounds, written as the option takes them, so a default
    /// is written once, on its field.
    public let help: String
    public let section: Section

    public init(_ name: String, _ kind: Kind, value placeholder: String? = nil, section: Section = .mount, _ help: String) {
        self.name = name; self.kind = kind; self.help = help; self.section = section
        switch kind {
        case .flag: self.placeholder = placeholder
        case .size: self.placeholder = placeholder ?? "SIZE"
        case .count: self.placeholder = placeholder ?? "N"
        case .seconds: self.placeholder = placeholder ?? "S"
        case .duration: self.placeholder = placeholder ?? "DURATION"
        case .sizeOrPercent: self.placeholder = placeholder ?? "SIZE|N%"
        case .text, .absolutePath, .logDestination, .logLevel: self.placeholder = placeholder ?? "VALUE"
        }
    }
}
