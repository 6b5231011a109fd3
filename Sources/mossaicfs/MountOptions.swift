import Logging
import MossaicCore
import MossaicObjectStore

/// The `-o` options of `mount`, parsed and checked. Unknown options are an error that names
/// the option: a typo must not silently mount with defaults.
struct MountOptions: Equatable {
    var cacheDirectory: String?
    var readOnly = false
    var debug = false
    var allowOther = false
    /// Permission checks by the kernel (`default_permissions`) instead of by mossaicfs.
    var kernelPermissions = false
    var posixACL = false
    var noatime = false
    var memoryCacheBytes = 16 << 20
    /// Buffered write memory of all open files together (`MemoryLimiter`).
    var writeMemoryBytes = 256 << 20
    var diskCacheBytes = 10 << 30
    var cacheFreeBytes = 1 << 30
    var maxThreads = 16
    var entryTimeout = 1.0
    var attributeTimeout = 1.0
    var fsname: String?
    var syncInterval = 1.0
    var uploadThreads = 8
    var readAheadChunks = 8
    var packChunks = 4
    /// Keep the chunks of packs (large writes) in the disk cache as well.
    var cacheLargeWrites = false
    /// Write-back mode: commits stage chunks in cache_dir/staging, uploaded in the background.
    var writeback = false
    var stagingBytes = 1 << 30
    /// Metadata snapshots and the writer lease (see FilesystemLoader.ReplicationSettings).
    var metaInterval = 10.0
    var metaKeep = 30
    var leaseTime = 60.0
    var pollInterval = 10.0
    var snapshot: String?
    var discardLocal = false
    var forceLease = false
    /// `metrics=HOST:PORT`: Prometheus text endpoint on a loopback address.
    var metricsEndpoint: String?
    /// Mount over a non-empty directory or an existing mount (`nonempty`).
    var nonempty = false
    /// `log=`: nil for the default (LogDestination.resolve).
    var log: LogDestination?
    /// `log_level=`: nil for the default (info; debug with `debug`).
    var logLevel: Logger.Level?
    /// Options handed to libfuse and the kernel as they are.
    var passThrough: [String] = []
    /// Options of the S3 store (endpoint=, region=, …), for s3:// sources.
    var store: [String: String] = [:]

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
    /// Upper bounds of the ranges: a day for durations (a longer lease keeps a dead writer's
    /// filesystem locked that long; a longer interval is no longer periodic) but an hour for
    /// sync_interval (closes that stay undurable longer are write-back, which has its own
    /// option), 1 PiB for disk sizes and 1 TiB for memory: far above any real machine and far
    /// below Int overflow.
    static let day = 86_400.0
    static let sizeLimit = 1 << 50
    static let memoryLimit = 1 << 40

    init() {}

    /// Parses `-o` arguments (each a comma-separated list; `\,` is a literal comma).
    init(_ arguments: [String]) throws(OptionError) {
        for argument in arguments {
            for item in Self.split(argument) where !item.isEmpty {
                try apply(item)
            }
        }
        try validate()
    }

    private mutating func apply(_ item: String) throws(OptionError) {
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
        // Every number has a range: a value past what the code below it can hold (a lease of
        // 10^11 s overflowed nanoseconds and killed the daemon) or past any sensible setting is
        // refused here, naming the option and its range, before anything starts.
        func size(_ range: ClosedRange<Int>) throws(OptionError) -> Int {
            let v = try required()
            guard let n = ByteSize.parse(v), range.contains(n) else {
                throw OptionError("option '\(key)': '\(v)' is not a size from \(ByteSize.format(range.lowerBound)) to \(ByteSize.format(range.upperBound)) (e.g. 512M, 20G)")
            }
            return n
        }
        func integer(_ range: ClosedRange<Int>, of unit: String? = nil) throws(OptionError) -> Int {
            let v = try required()
            guard let n = Int(v), range.contains(n) else {
                throw OptionError("option '\(key)': '\(v)' is not a number\(unit.map { " of " + $0 } ?? "") from \(range.lowerBound) to \(range.upperBound)")
            }
            return n
        }
        func seconds(_ range: ClosedRange<Double>, why: String? = nil) throws(OptionError) -> Double {
            let v = try required()
            guard let s = Double(v), range.contains(s) else {
                throw OptionError("option '\(key)': '\(v)' is not a number of seconds from \(Self.secondsText(range.lowerBound)) to \(Self.secondsText(range.upperBound))\(why.map { " (" + $0 + ")" } ?? "")")
            }
            return s
        }
        func flag() throws(OptionError) {
            if value != nil { throw OptionError("option '\(key)' takes no value") }
        }

        switch key {
        case "cache_dir":
            let v = try required()
            guard v.hasPrefix("/") else { throw OptionError("option 'cache_dir' needs an absolute path, not '\(v)'") }
            cacheDirectory = v
        case "ro": try flag(); readOnly = true
        case "debug": try flag(); debug = true
        case "allow_other": try flag(); allowOther = true
        case "default_permissions": try flag(); kernelPermissions = true
        case "acl": try flag(); posixACL = true; kernelPermissions = true
        case "cache_size": diskCacheBytes = try size(0...Self.sizeLimit)
        case "mem_cache_size": memoryCacheBytes = try size(0...Self.memoryLimit)
        case "mem_buffer_size": writeMemoryBytes = try size((16 << 20)...Self.memoryLimit)
        case "cache_free": cacheFreeBytes = try size(0...Self.sizeLimit)
        case "cache_large_writes": try flag(); cacheLargeWrites = true
        case "threads": maxThreads = try integer(1...256)
        case "attr_timeout": attributeTimeout = try seconds(0...Self.day)
        case "sync_interval": syncInterval = try seconds(0...3600)
        case "upload_threads": uploadThreads = try integer(1...128)
        case "read_ahead": readAheadChunks = try integer(0...64, of: "chunks")
        case "pack_chunks": packChunks = try integer(1...16, of: "chunks")
        case "entry_timeout": entryTimeout = try seconds(0...Self.day)
        case "fsname": fsname = try required()
        case "meta_interval": metaInterval = try seconds(0.1...Self.day)
        case "meta_keep": metaKeep = try integer(1...100_000, of: "snapshots")
        case "lease_time": leaseTime = try seconds(3...Self.day, why: "it is renewed every third")
        case "poll_interval": pollInterval = try seconds(0.1...Self.day)
        case "snapshot": snapshot = try required()
        case "discard_local": try flag(); discardLocal = true
        case "force_lease": try flag(); forceLease = true
        case "metrics": metricsEndpoint = try required()
        case "writeback": try flag(); writeback = true
        case "nonempty": try flag(); nonempty = true
        case "log":
            let v = try required()
            guard let destination = LogDestination(option: v) else {
                throw OptionError("option 'log': '\(v)' is not stderr, syslog or an absolute file path")
            }
            log = destination
        case "log_level":
            let v = try required()
            guard let level = Logger.Level(rawValue: v) else {
                throw OptionError("option 'log_level': '\(v)' is not one of \(Logger.Level.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            logLevel = level
        case "staging_size": stagingBytes = try size(FormatConstants.chunkSize...Self.sizeLimit)
        case _ where Self.fuseFlags.contains(key):
            try flag()
            passThrough.append(key)
            if key == "noatime" { noatime = true }
        case _ where Self.fuseValued.contains(key): passThrough.append("\(key)=\(try required())")
        case _ where Self.ignored.contains(key): break
        case _ where key.hasPrefix("x-") || key == "comment": break
        case _ where Self.storeKeys.contains(key): store[key] = try required()
        default:
            throw OptionError("unknown option '\(key)' (see mossaicfs --help and mossaicfs(8))")
        }
    }

    /// Checks options against each other (after all are parsed).
    private func validate() throws(OptionError) {
        if snapshot != nil && !readOnly {
            throw OptionError("option 'snapshot' shows a past snapshot and needs a read-only mount: add 'ro'")
        }
        if readOnly && discardLocal { throw OptionError("option 'discard_local' applies to read-write mounts (a read-only mount never uses local metadata)") }
        if readOnly && writeback { throw OptionError("option 'writeback' applies to read-write mounts") }
        if readOnly && cacheLargeWrites { throw OptionError("option 'cache_large_writes' applies to read-write mounts") }
        if readOnly && forceLease { throw OptionError("option 'force_lease' applies to read-write mounts (a read-only mount takes no lease)") }
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
