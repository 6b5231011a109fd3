import MossaicCore
import MossaicMeta

/// File handles (NFS and Samba re-export, `open_by_handle_at`). A handle is the inode number
/// and generation the kernel got in an entry reply; both are stored, so a handle stays valid
/// across dropped caches, remounts and reboots, until the inode is deleted. When the kernel no
/// longer has the inode in memory it asks `lookup(ino, ".")` to rebuild it, and
/// `lookup(dir, "..")` to reconnect a directory to the tree; a path walk never sends either
/// (the kernel resolves "." and ".." itself), so they mean exactly this.
extension MossaicFilesystem {
    /// `lookup(ino, ".")` (`parentOf: false`) or `lookup(dir, "..")`; the kernel holds a
    /// reference to the answer, as after any lookup. Any inode number in the metadata is
    /// answered, not only ones the kernel still knows (the inode table holds only those). A
    /// deleted inode is `.notFound`, which the kernel turns into ESTALE.
    ///
    /// No permission check: the kernel sends these only while decoding a handle, which needs
    /// CAP_DAC_READ_SEARCH (open_by_handle_at) or is nfsd's own, and the answer names no file.
    func lookupByHandle(_ ino: InodeNumber, parentOf: Bool) throws(FSError) -> FileAttributes {
        var attrs = try meta { () throws(MetaError) in
            parentOf ? try metadata.parentDirectory(of: ino) : try metadata.inode(byHandle: ino)
        }
        overlay(&attrs)
        inodes.remember(attrs.ino)
        return attrs
    }
}
