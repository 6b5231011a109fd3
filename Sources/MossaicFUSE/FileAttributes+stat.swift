#if canImport(Glibc)
import Glibc
#endif
import MossaicCore

extension FileAttributes {
    /// The `struct stat` the kernel gets.
    var stat: stat {
        var st = Glibc.stat()
        st.st_ino = __ino_t(ino.rawValue)
        st.st_mode = mode
        st.st_nlink = __nlink_t(nlink)
        st.st_uid = uid
        st.st_gid = gid
        st.st_rdev = __dev_t(rdev)
        st.st_size = __off_t(bitPattern: UInt(size))
        st.st_blksize = 1 << 20
        st.st_blocks = __blkcnt_t(blocks512)
        st.st_atim = atime.timespec
        st.st_mtim = mtime.timespec
        st.st_ctim = ctime.timespec
        return st
    }
}

extension Timestamp {
    var timespec: Glibc.timespec {
        Glibc.timespec(tv_sec: Int(seconds), tv_nsec: Int(subsecondNanoseconds))
    }

    init(_ ts: Glibc.timespec) {
        self.init(seconds: Int64(ts.tv_sec), nanoseconds: Int64(ts.tv_nsec))
    }
}
