"""open(dir, O_TMPFILE) and linkat(2) of the result, as on ext4: a regular file with no name
(nlink 0) that a directory listing never shows, named later by linkat — with AT_EMPTY_PATH (as
root) or through /proc/self/fd with AT_SYMLINK_FOLLOW — unless it was opened O_EXCL. One never
linked is gone at its last close (test_tmpfile_reclaim.py beside this suite checks the reclaiming,
also after a crash)."""
import ctypes
import errno
import os
import stat

from posixlib import BOB, changed_times, err, libc, ok, read_file

AT_EMPTY_PATH = 0x1000
AT_SYMLINK_FOLLOW = 0x400
AT_FDCWD = -100
libc.linkat.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]


def link_fd(fd, path):
    """linkat(fd, "", AT_FDCWD, path, AT_EMPTY_PATH): names an open file (needs
    CAP_DAC_READ_SEARCH, so root)."""
    if libc.linkat(fd, b"", AT_FDCWD, os.fsencode(path), AT_EMPTY_PATH) < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def tmpfile(d, data=b"", flags=os.O_RDWR, mode=0o640):
    fd = os.open(d, os.O_TMPFILE | flags, mode)
    if data:
        os.write(fd, data)
    return fd


def test_a_tmpfile_has_no_name_until_linked(px):
    def op(d):
        fd = tmpfile(d, b"invisible")
        try:
            st = os.fstat(fd)
            before = (st.st_nlink, stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_size, sorted(os.listdir(d)))
            os.lseek(fd, 0, os.SEEK_SET)
            readback = os.read(fd, 100)
            link_fd(fd, d / "named")
            return before, readback, os.fstat(fd).st_nlink, os.stat(d / "named").st_ino == os.fstat(fd).st_ino, read_file(d / "named")
        finally:
            os.close(fd)
    px.expect(op, ok(((0, stat.S_IFREG, 0o640, 9, []), b"invisible", 1, True, b"invisible")))
    px.remount()
    px.expect(lambda d: (read_file(d / "named"), os.stat(d / "named").st_nlink, sorted(os.listdir(d))), ok((b"invisible", 1, ["named"])))


def test_writes_after_linking_and_a_second_link(px):
    def op(d):
        fd = tmpfile(d, b"first")
        try:
            link_fd(fd, d / "a")
            os.write(fd, b" second")
            os.link(d / "a", d / "b")
            return os.fstat(fd).st_nlink
        finally:
            os.close(fd)
    px.expect(op, ok(2))
    px.remount()
    px.expect(lambda d: (read_file(d / "a"), read_file(d / "b")), ok((b"first second", b"first second")))


def test_linking_through_proc_self_fd_like_ext4(px):
    # The classic idiom (open(2)'s manual page); whatever the machine's ext4 answers (some
    # sandboxes refuse the /proc link with EXDEV), the mount must answer the same.
    def op(d):
        fd = tmpfile(d, b"via proc")
        try:
            if libc.linkat(AT_FDCWD, f"/proc/self/fd/{fd}".encode(), AT_FDCWD, os.fsencode(d / "p"), AT_SYMLINK_FOLLOW) < 0:
                e = ctypes.get_errno()
                raise OSError(e, os.strerror(e))
            return read_file(d / "p")
        finally:
            os.close(fd)
    px.same(op)


def test_o_excl_tmpfile_cannot_be_linked(px):
    def op(d):
        fd = tmpfile(d, b"x", flags=os.O_WRONLY | os.O_EXCL)
        try:
            link_fd(fd, d / "never")
        finally:
            os.close(fd)
    px.expect(op, err(errno.ENOENT))
    px.expect(lambda d: sorted(os.listdir(d)), ok([]))


def test_an_unlinked_file_cannot_be_linked_back(px):
    def op(d):
        fd = os.open(d / "f", os.O_CREAT | os.O_RDWR, 0o644)
        try:
            os.unlink(d / "f")
            link_fd(fd, d / "back")
        finally:
            os.close(fd)
    px.expect(op, err(errno.ENOENT))


def test_tmpfile_mode_follows_the_umask_and_needs_write_permission(px):
    px.setup(lambda d: os.chmod(d, 0o777))
    px.expect(lambda d: (lambda fd: (stat.S_IMODE(os.fstat(fd).st_mode), os.fstat(fd).st_uid, os.close(fd))[:2])(tmpfile(d, mode=0o666)),
              ok((0o640, BOB.uid)), user=BOB, umask=0o027)
    px.setup(lambda d: os.chmod(d, 0o755))
    px.expect(lambda d: tmpfile(d), err(errno.EACCES), user=BOB)
    px.expect(lambda d: os.open(d, os.O_TMPFILE | os.O_RDONLY), err(errno.EINVAL))


def test_directory_times_change_at_the_link_not_at_the_tmpfile(px):
    def op(d):
        fds = []
        created = changed_times(d, lambda: fds.append(tmpfile(d, b"t")))
        try:
            linked = changed_times(d, lambda: link_fd(fds[0], d / "n"))
        finally:
            os.close(fds[0])
        return created, linked
    px.same(op)
