"""O_TMPFILE files that are never linked take nothing: the inode and its data go at the last
close, and after a crash at the next mount (the POSIX suite's test_tmpfile.py compares the
rest with ext4)."""
import os


def used_inodes(fs):
    st = os.statvfs(fs.mnt)
    return st.f_files - st.f_ffree


def unlinked_tmpfile(fs, size):
    fd = os.open(fs.mnt, os.O_TMPFILE | os.O_RDWR, 0o600)
    os.write(fd, os.urandom(size))
    os.fsync(fd)
    return fd


def test_a_tmpfile_never_linked_is_reclaimed_at_its_last_close(fs):
    fs.path("kept").write_bytes(b"kept")
    before = used_inodes(fs)
    fds = [unlinked_tmpfile(fs, 3 << 20) for _ in range(3)]
    assert used_inodes(fs) == before + 3
    for fd in fds:
        os.close(fd)
    fs.remount()
    assert used_inodes(fs) == before
    assert sorted(os.listdir(fs.mnt)) == ["kept"]


def test_a_tmpfile_open_at_a_crash_is_reclaimed_by_the_next_mount(fs):
    before = used_inodes(fs)
    fd = unlinked_tmpfile(fs, 2 << 20)
    assert used_inodes(fs) == before + 1
    fs.mount.kill()          # SIGKILL: the daemon never sees the close
    try:
        os.close(fd)
    except OSError:
        pass                 # the connection is gone; the descriptor is closed all the same
    fs.start()
    assert used_inodes(fs) == before
    assert os.listdir(fs.mnt) == []
