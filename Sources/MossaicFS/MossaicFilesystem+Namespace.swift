import MossaicCore
import MossaicMeta

/// Creating, linking, removing and renaming names.
extension MossaicFilesystem {
    private func create(parent: InodeNumber, name: [UInt8], _ node: NewNode, caller: Caller) throws(FSError) -> FileAttributes {
        try checkWritable()
        try Self.checkName(name)
        if permissions.enabled { try permissions.check(try getattr(parent), caller, [.write, .execute]) }
        let attrs = try meta { () throws(MetaError) in try metadata.create(parent: parent, name: name, node, now: .now()) }
        inodes.remember(attrs.ino)
        return attrs
    }

    /// The gid a new inode gets: the caller's, or the directory's if it is setgid (BSD
    /// semantics, as ext4 does); a new directory in a setgid directory is setgid too.
    private func ownership(parent: InodeNumber, caller: Caller, permissions: UInt32, isDirectory: Bool) throws(FSError) -> (gid: UInt32, permissions: UInt32) {
        let dir = try meta { () throws(MetaError) in try metadata.attributes(of: parent) }
        guard dir.permissions & 0o2000 != 0 else { return (caller.gid, permissions) }
        return (dir.gid, isDirectory ? permissions | 0o2000 : permissions)
    }

    public func mknod(parent: InodeNumber, name: [UInt8], kind: FileKind, permissions: UInt32, rdev: UInt64, caller: Caller) throws(FSError) -> FileAttributes {
        guard kind != .directory, kind != .symlink else { throw .invalidArgument }
        let (gid, requested) = try ownership(parent: parent, caller: caller, permissions: permissions, isDirectory: false)
        let (perms, xattrs) = try initialPermissions(parent: parent, kind: kind, permissions: requested, caller: caller)
        return try create(parent: parent, name: name,
                          .init(kind: kind, permissions: perms, uid: caller.uid, gid: gid,
                                rdev: kind == .characterDevice || kind == .blockDevice ? rdev : 0, xattrs: xattrs), caller: caller)
    }

    public func mkdir(parent: InodeNumber, name: [UInt8], permissions: UInt32, caller: Caller) throws(FSError) -> FileAttributes {
        let (gid, requested) = try ownership(parent: parent, caller: caller, permissions: permissions, isDirectory: true)
        let (perms, xattrs) = try initialPermissions(parent: parent, kind: .directory, permissions: requested, caller: caller)
        return try create(parent: parent, name: name, .init(kind: .directory, permissions: perms, uid: caller.uid, gid: gid, xattrs: xattrs),
                          caller: caller)
    }

    public func symlink(target: [UInt8], parent: InodeNumber, name: [UInt8], caller: Caller) throws(FSError) -> FileAttributes {
        guard !target.isEmpty else { throw .notFound }
        guard target.count <= FormatConstants.maxSymlinkLength else { throw .nameTooLong }
        let (gid, _) = try ownership(parent: parent, caller: caller, permissions: 0o777, isDirectory: false)
        return try create(parent: parent, name: name, .init(kind: .symlink, permissions: 0o777, uid: caller.uid, gid: gid, symlinkTarget: target), caller: caller)
    }

    public func readlink(_ ino: InodeNumber) throws(FSError) -> [UInt8] {
        try meta { () throws(MetaError) in try metadata.readSymlink(ino) }
    }

    public func link(_ ino: InodeNumber, newParent: InodeNumber, newName: [UInt8], caller: Caller = .root) throws(FSError) -> FileAttributes {
        try checkWritable()
        try Self.checkName(newName)
        if permissions.enabled {
            // The source first, as Linux: its EPERM wins over the directory's EACCES.
            try permissions.checkLinkSource(try getattr(ino), caller)
            try permissions.check(try getattr(newParent), caller, [.write, .execute])
        }
        let attrs: FileAttributes
        do {
            attrs = try metadata.link(ino, parent: newParent, name: newName, now: .now())
        } catch .isDirectory {
            throw .notPermitted  // link(2): EPERM for directories
        } catch {
            throw error.fsError
        }
        inodes.relinked(attrs.ino)
        inodes.remember(attrs.ino)
        return try getattr(attrs.ino)
    }

    /// open(dir, O_TMPFILE): a regular file with no name, open for writing (and reading unless
    /// `readable` is false). It is an orphan from the start: its last close purges it unless
    /// linkat(2) named it first; after a crash the next mount purges it. The kernel holds a
    /// reference to it, as after create.
    public func tmpfile(parent: InodeNumber, permissions mode: UInt32, readable: Bool, caller: Caller) throws(FSError) -> (FileAttributes, HandleID) {
        try checkWritable()
        if permissions.enabled { try permissions.check(try getattr(parent), caller, [.write, .execute]) }
        let (gid, requested) = try ownership(parent: parent, caller: caller, permissions: mode, isDirectory: false)
        let (perms, xattrs) = try initialPermissions(parent: parent, kind: .regular, permissions: requested, caller: caller)
        let attrs = try meta { () throws(MetaError) in
            try metadata.createUnnamed(in: parent, .init(kind: .regular, permissions: perms, uid: caller.uid, gid: gid, xattrs: xattrs), now: .now())
        }
        inodes.remember(attrs.ino)
        _ = inodes.orphaned(attrs.ino)
        do {
            return (attrs, try open(attrs.ino, mode: OpenMode(readable: readable, writable: true)))
        } catch {
            forget(attrs.ino, count: 1)  // unreferenced and unopened: purged
            throw error
        }
    }

    public func unlink(parent: InodeNumber, name: [UInt8], caller: Caller = .root) throws(FSError) {
        try checkWritable()
        guard name.count <= FormatConstants.maxNameLength else { throw .nameTooLong }
        try checkRemoval(parent: parent, name: name, caller: caller)
        let result = try meta { () throws(MetaError) in try metadata.unlink(parent: parent, name: name, now: .now()) }
        if result.orphaned { orphaned(result.ino) }
    }

    public func rmdir(parent: InodeNumber, name: [UInt8], caller: Caller = .root) throws(FSError) {
        try checkWritable()
        guard name.count <= FormatConstants.maxNameLength else { throw .nameTooLong }
        if name == [0x2e] { throw .invalidArgument }
        if name == [0x2e, 0x2e] { throw .notEmpty }
        try checkRemoval(parent: parent, name: name, caller: caller)
        _ = try meta { () throws(MetaError) in try metadata.rmdir(parent: parent, name: name, now: .now()) }
    }

    /// Flags of rename(2)'s renameat2 form, with its bit values.
    public struct RenameFlags: OptionSet, Sendable {
        public let rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }
        /// RENAME_NOREPLACE: fail with EEXIST if the target exists.
        public static let noReplace = RenameFlags(rawValue: 1)
        /// RENAME_EXCHANGE: swap source and target atomically.
        public static let exchange = RenameFlags(rawValue: 2)
    }

    /// rename(2) and renameat2(2). Returns the name the kernel must drop once it has the reply
    /// (MossaicFilesystem+NameCaching).
    @discardableResult
    public func rename(parent: InodeNumber, name: [UInt8], newParent: InodeNumber, newName: [UInt8], flags: RenameFlags,
                       caller: Caller = .root) throws(FSError) -> StaleNames {
        // RENAME_WHITEOUT (overlayfs) has no meaning here, nor any flag Linux may add later.
        guard flags.isSubset(of: [.noReplace, .exchange]) else { throw .invalidArgument }
        try checkWritable()
        guard name.count <= FormatConstants.maxNameLength else { throw .nameTooLong }
        try Self.checkName(newName)
        if flags.contains(.exchange) && flags.contains(.noReplace) { throw .invalidArgument }
        if permissions.enabled {
            let source = try checkRemoval(parent: parent, name: name, caller: caller)
            // The target is looked up once and judged as found: on an engine for many hosts
            // another host may replace or remove it meanwhile, and a second lookup's ENOENT
            // would fail a rename that must simply replace what is there when it runs.
            let target = try? meta { () throws(MetaError) in try metadata.lookup(parent: newParent, name: newName) }
            if let target {
                let dir = try getattr(newParent)
                try permissions.check(dir, caller, .execute)
                try permissions.checkRemoval(of: target, in: dir, caller)
            } else {
                try permissions.check(try getattr(newParent), caller, [.write, .execute])
            }
            // Moving a directory elsewhere rewrites its "..": that needs write on it (as Linux).
            if let source, source.kind == .directory, parent != newParent { try permissions.check(source, caller, .write) }
            if flags.contains(.exchange), let target, target.kind == .directory, parent != newParent {
                try permissions.check(target, caller, .write)
            }
        }
        let replaced = try meta { () throws(MetaError) in
            try metadata.rename(parent: parent, name: name, newParent: newParent, newName: newName, flags: flags.meta, now: .now())
        }
        if let replaced, replaced.orphaned { orphaned(replaced.ino) }
        return renamedNameToForget(in: newParent, name: newName)
    }

    /// Permission to remove `name` from `parent` (write+search, sticky rule). Returns the
    /// victim's attributes when checks are on.
    @discardableResult
    private func checkRemoval(parent: InodeNumber, name: [UInt8], caller: Caller) throws(FSError) -> FileAttributes? {
        guard permissions.enabled else { return nil }
        let dir = try getattr(parent)
        try permissions.check(dir, caller, .execute)
        let victim = try meta { () throws(MetaError) in try metadata.lookup(parent: parent, name: name) }
        try permissions.checkRemoval(of: victim, in: dir, caller)
        return victim
    }

    /// `ino` lost its last name: purge it now unless the kernel or an open handle still has it.
    /// The unlink or rename that orphaned it has committed, so a failed purge does not fail
    /// it (the caller would be told its change did not happen): the inode stays in the
    /// orphans table, reclaimed at unmount or at the next mount.
    private func orphaned(_ ino: InodeNumber) {
        let unreferenced = inodes.orphaned(ino)
        guard unreferenced && openFiles.withLock({ $0[ino] == nil }) else { return }
        do {
            try purge(ino)
        } catch {
            logger.warning("cannot reclaim an unlinked file now (it is reclaimed at unmount or at the next mount)",
                           metadata: ["ino": "\(ino.rawValue)", "error": "\(error)"])
        }
    }
}

extension MossaicFilesystem.RenameFlags {
    /// The same flags, as the metadata takes them.
    var meta: MossaicMeta.RenameFlags {
        var flags = MossaicMeta.RenameFlags()
        if contains(.noReplace) { flags.insert(.noReplace) }
        if contains(.exchange) { flags.insert(.exchange) }
        return flags
    }
}
