import Logging
import MossaicCore
import MossaicObjectStore

/// The `-o` options of `mount` (and of the other commands that take cache_dir= and store
/// options), parsed and checked into a `MountConfiguration`, and their `--help` table: both
/// read off `MountConfiguration.declarations`. Unknown options are an error that names the
/// option: a typo must not silently mount with defaults.
enum MountOptions {
    /// libfuse's and the kernel's generic mount options, passed through unchanged.
    static let fuseFlags: Set<String> = [
        "allow_root", "auto_unmount", "blkdev", "dev", "nodev", "suid", "nosuid", "exec", "noexec",
        "atime", "noatime", "diratime", "nodiratime", "relatime", "norelatime", "strictatime", "nostrictatime",
        "lazytime", "nolazytime", "sync", "async", "dirsync",
    ]
    static let fuseValued: Set<String> = ["max_read", "blksize", "subtype", "context", "fscontext", "defcontext", "rootcontext"]
    /// Accepted and ignored: they mean something to mount(8), fstab or systemd, not to us.
    static let ignored: Set<String> = ["defaults", "auto", "noauto", "user", "users", "nouser", "owner", "group", "_netdev", "nofail", "rw"]
    /// Options of the S3 object store (endpoint=, region=, credentials=, …).
    static let storeKeys: Set<String> = S3Configuration.optionNames
    static let declared = Dictionary(uniqueKeysWithValues: MountConfiguration.declarations.map { ($0.name, $0) })

    /// Parses `-o` arguments (each a comma-separated list; `\,` is a literal comma).
    static func parse(_ arguments: [String]) throws(OptionError) -> MountConfiguration {
        var configuration = MountConfiguration()
        for argument in arguments {
            for item in split(argument) where !item.isEmpty {
                try apply(item, to: &configuration)
            }
        }
        try validate(configuration)
        return configuration
    }

    private static func apply(_ item: String, to c: inout MountConfiguration) throws(OptionError) {
        let key: String, value: String?
        if let eq = item.firstIndex(of: "=") {
            key = String(item[..<eq]); value = String(item[item.index(after: eq)...])
        } else {
            key = item; value = nil
        }
        func required() throws(OptionError) -> String {
            guard let value, !value.isEmpty else { throw OptionError("option '\(key)' needs a value (\(key)=…)") }
            return value
        }
        func flag() throws(OptionError) {
            if value != nil { throw OptionError("option '\(key)' takes no value") }
        }

        if let option = declared[key] {
            switch option.kind {
            case .flag(let field):
                try flag()
                c[keyPath: field] = true
            case .size(let field, let range):
                let v = try required()
                guard let n = ByteSize.parse(v), range.contains(n) else {
                    throw OptionError("option '\(key)': '\(v)' is not a size from \(ByteSize.format(range.lowerBound)) to \(ByteSize.format(range.upperBound)) (e.g. 512M, 20G)")
                }
                c[keyPath: field] = n
            case .count(let field, let range, let unit):
                let v = try required()
                guard let n = Int(v), range.contains(n) else {
                    throw OptionError("option '\(key)': '\(v)' is not a number\(unit.map { " of " + $0 } ?? "") from \(range.lowerBound) to \(range.upperBound)")
                }
                c[keyPath: field] = n
            case .seconds(let field, let range, let why):
                let v = try required()
                guard let s = Double(v), range.contains(s) else {
                    throw OptionError("option '\(key)': '\(v)' is not a number of seconds from \(secondsText(range.lowerBound)) to \(secondsText(range.upperBound))\(why.map { " (" + $0 + ")" } ?? "")")
                }
                c[keyPath: field] = s
            case .duration(let field, let range):
                let v = try required()
                guard let s = GraceDuration.parse(v), range.contains(s) else {
                    throw OptionError("option '\(key)': '\(v)' is not a duration from \(GraceDuration.format(range.lowerBound)) to \(GraceDuration.format(range.upperBound)) (a number with s, m, h or d, e.g. 12h, 7d)")
                }
                c[keyPath: field] = s
            case .sizeOrPercent(let field, let range, let percent):
                let v = try required()
                if v.hasSuffix("%") {
                    guard let p = Int(v.dropLast()), percent.contains(p) else {
                        throw OptionError("option '\(key)': '\(v)' is not a percentage from \(percent.lowerBound)% to \(percent.upperBound)%")
                    }
                    c[keyPath: field] = .percent(p)
                } else {
                    guard let n = ByteSize.parse(v), range.contains(n) else {
                        throw OptionError("option '\(key)': '\(v)' is not a size from \(ByteSize.format(range.lowerBound)) to \(ByteSize.format(range.upperBound)) or a percentage (e.g. 512M, 50%)")
                    }
                    c[keyPath: field] = .bytes(n)
                }
            case .text(let field):
                c[keyPath: field] = try required()
            case .absolutePath(let field):
                let v = try required()
                guard v.hasPrefix("/") else { throw OptionError("option '\(key)' needs an absolute path, not '\(v)'") }
                c[keyPath: field] = v
            case .logDestination(let field):
                let v = try required()
                guard let destination = LogDestination(option: v) else {
                    throw OptionError("option '\(key)': '\(v)' is not stderr, syslog or an absolute file path")
                }
                c[keyPath: field] = destination
            case .logLevel(let field):
                let v = try required()
                guard let level = Logger.Level(rawValue: v) else {
                    throw OptionError("option '\(key)': '\(v)' is not one of \(Logger.Level.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                c[keyPath: field] = level
            }
            return
        }
        switch key {
        case _ where fuseFlags.contains(key):
            try flag()
            c.passThrough.append(key)
            if key == "noatime" { c.noatime = true }
        case _ where fuseValued.contains(key): c.passThrough.append("\(key)=\(try required())")
        case _ where ignored.contains(key): break
        case _ where key.hasPrefix("x-") || key == "comment": break
        case _ where storeKeys.contains(key): c.store[key] = try required()
        default:
            throw OptionError("unknown option '\(key)' (see mossaicfs --help and mossaicfs(8))")
        }
    }

    /// Checks options against each other (after all are parsed).
    private static func validate(_ c: MountConfiguration) throws(OptionError) {
        if c.snapshot != nil && !c.readOnly {
            throw OptionError("option 'snapshot' shows a past snapshot and needs a read-only mount: add 'ro'")
        }
        if c.readOnly && c.discardLocal { throw OptionError("option 'discard_local' applies to read-write mounts (a read-only mount never uses local metadata)") }
        if c.readOnly && c.writeback { throw OptionError("option 'writeback' applies to read-write mounts") }
        if c.readOnly && c.cacheLargeWrites { throw OptionError("option 'cache_large_writes' applies to read-write mounts") }
        if c.sessionExpiry < 2 * c.sessionHeartbeat {
            throw OptionError("option 'session_expiry' (\(secondsText(c.sessionExpiry)) s) must be at least twice 'session_heartbeat' (\(secondsText(c.sessionHeartbeat)) s): one late heartbeat must not make a live mount look dead")
        }
        if c.readOnly && c.forceLease { throw OptionError("option 'force_lease' applies to read-write mounts (a read-only mount takes no lease)") }
    }

    /// A bound of a range of seconds as a user writes it: 3, not 3.0.
    private static func secondsText(_ s: Double) -> String {
        s == s.rounded() ? String(Int(s)) : String(s)
    }

    /// Splits at commas not escaped with a backslash.
    static func split(_ s: String) -> [String] {
        var out: [String] = [], current = "", escaped = false
        for c in s {
            if escaped { current.append(c); escaped = false }
            else if c == "\\" { escaped = true }
            else if c == "," { out.append(current); current = "" }
            else { current.append(c) }
        }
        out.append(current)
        return out
    }

    /// The option table of one section of `mount --help`, from the declarations: a line per
    /// option with its default and range bounds filled in, wrapped at 79 columns (80-column
    /// terminals; ArgumentParser does not rewrap lines that fit) under a description column.
    static func helpTable(_ section: MountOption.Section) -> String {
        let defaults = MountConfiguration()
        var lines: [String] = []
        for option in MountConfiguration.declarations where option.section == section {
            var text = option.help
            let filled: (value: String, min: String, max: String)?
            switch option.kind {
            case .size(let field, let range):
                filled = (ByteSize.format(defaults[keyPath: field]), ByteSize.format(range.lowerBound), ByteSize.format(range.upperBound))
            case .count(let field, let range, _):
                filled = (String(defaults[keyPath: field]), String(range.lowerBound), String(range.upperBound))
            case .seconds(let field, let range, _):
                filled = (secondsText(defaults[keyPath: field]), secondsText(range.lowerBound), secondsText(range.upperBound))
            case .duration(let field, let range):
                filled = (GraceDuration.format(defaults[keyPath: field]), GraceDuration.format(range.lowerBound),
                          GraceDuration.format(range.upperBound))
            case .sizeOrPercent(let field, let range, _):
                let value: String
                switch defaults[keyPath: field] {
                case .bytes(let n): value = ByteSize.format(n)
                case .percent(let p): value = "\(p)%"
                }
                filled = (value, ByteSize.format(range.lowerBound), ByteSize.format(range.upperBound))
            case .flag, .text, .absolutePath, .logDestination, .logLevel:
                filled = nil
            }
            if let filled {
                text = text.replacing("{default}", with: filled.value).replacing("{min}", with: filled.min)
                    .replacing("{max}", with: filled.max)
            }
            let name = option.name + (option.placeholder.map { "=" + $0 } ?? "")
            var line = "  " + name + String(repeating: " ", count: name.count <= 20 ? 22 - name.count : 3)
            var first = true
            for word in text.split(separator: " ") {
                if first {
                    line += word
                    first = false
                } else if line.count + 1 + word.count > 79 {
                    lines.append(line)
                    line = String(repeating: " ", count: 24) + word
                } else {
                    line += " " + word
                }
            }
            lines.append(line)
        }
        return lines.joined(separator: "\n")
    }
}

extension MountConfiguration {
    /// The option list for libfuse/the kernel.
    func fuseOptions(source: String) -> [String] {
        var out = ["fsname=" + (fsname ?? source).replacingCommas()]
        if kernelPermissions { out.append("default_permissions") }
        if !passThrough.contains(where: { $0.hasPrefix("subtype=") }) { out.append("subtype=mossaicfs") }
        if allowOther { out.append("allow_other") }
        if readOnly { out.append("ro") }
        return out + passThrough
    }
}

struct OptionError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

private extension String {
    /// libfuse splits -o at commas; a literal comma in a value must be escaped.
    func replacingCommas() -> String {
        var out = ""
        for c in self { if c == "," { out += "\\," } else { out.append(c) } }
        return out
    }
}
