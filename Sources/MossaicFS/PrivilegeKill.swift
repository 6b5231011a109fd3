import MossaicCore
import MossaicMeta

/// Linux clears setuid and setgid when a file changes owner or contents ("kills privileges"),
/// and mossaicfs must end with the mode ext4 would have. libfuse 3.14 cannot ask the kernel for
/// FUSE_HANDLE_KILLPRIV(_V2), so the kernel computes the new mode itself and sends it as part of
/// a setattr — with three gaps this repairs:
///
/// - Without `default_permissions` the kernel keeps its copy of the mode without the sticky
///   bit (so that its own sticky-directory check stays out of the way), so the mode it computes
///   for a kill has lost the sticky bit.
/// - It clears setgid only together with group-execute; since 6.0 Linux also clears it when the
///   writer is neither in the file's group nor privileged. Then the kernel sends a setattr that
///   changes nothing, on behalf of the writer.
/// - A truncating open (atomic O_TRUNC) never sends its kill.
///
/// So the bits are computed here, from the stored mode and the caller, whenever a setattr is a
/// kill: a chown, a size change, an empty setattr, or a mode change of kill shape (below).
enum PrivilegeKill {
    static let setuid: UInt32 = 0o4000
    static let setgid: UInt32 = 0o2000
    static let sticky: UInt32 = 0o1000

    /// What Linux clears (setattr_should_drop_suidgid): setuid; setgid if the file is
    /// group-executable, or if the caller is neither root nor in the file's group.
    static func bits(of attrs: FileAttributes, caller: Caller) -> UInt32 {
        var kill = attrs.permissions & setuid
        if attrs.permissions & setgid != 0,
           attrs.permissions & 0o010 != 0 || (!caller.isRoot && !caller.isMember(of: attrs.gid)) {
            kill |= setgid
        }
        return kill
    }

    /// Rewrites the mode of `changes` when the setattr is a kill, and returns true if the mode
    /// change it now carries is one (allowed to whoever could make the change behind it, not
    /// only the owner). `kernelHidesSticky`: mounted without `default_permissions`. `isOpen`:
    /// the file has open handles, as while a write is being served.
    static func interpret(_ changes: inout AttributeChanges, attrs: FileAttributes, caller: Caller,
                          kernelHidesSticky: Bool, isOpen: Bool) -> Bool {
        // chown(2) never kills on a directory; a mode there is always a chmod.
        guard attrs.kind != .directory else { return false }
        let kill = bits(of: attrs, caller: caller)
        if changes.uid != nil || changes.gid != nil || changes.isEmpty {
            // chown, chown(f, -1, -1), or a write's kill the kernel found nothing to send for.
            // chmod never comes with an owner, so any mode here is the kernel's kill.
            changes.permissions = kill != 0 ? attrs.permissions & ~kill : nil
            return kill != 0
        }
        if changes.size != nil {
            // truncate: root keeps the bits (CAP_FSETID), as on a write.
            guard !caller.isRoot else { return false }
            changes.permissions = kill != 0 ? attrs.permissions & ~kill : nil
            return kill != 0
        }
        guard let mode = changes.permissions else { return false }
        // A write's (or chown(f, -1, -1)'s) kill comes as a mode alone: the kernel's view of
        // the mode less what the kernel clears — setuid, and setgid with group-execute.
        let kernelKill = attrs.permissions & setuid | (attrs.permissions & (setgid | 0o010) == setgid | 0o010 ? setgid : 0)
        let hidden = kernelHidesSticky ? attrs.permissions & sticky : 0
        guard kernelKill != 0, mode == attrs.permissions & ~hidden & ~kernelKill else { return false }
        // chmod(2) to that very mode is possible too; both readings give the same mode unless
        // the sticky bit is hidden. Taken for a kill: from a caller who could not chmod (neither
        // owner nor root); with the sticky bit hidden, from root (whose writes never kill, but
        // whose chown(f, -1, -1) does) and from an owner while the file is open (a write).
        let isKill = caller.uid != attrs.uid && !caller.isRoot || hidden != 0 && (caller.isRoot || isOpen)
        guard isKill else { return false }
        changes.permissions = attrs.permissions & ~(kernelKill | kill)
        return true
    }
}
