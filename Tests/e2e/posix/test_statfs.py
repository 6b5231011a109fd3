"""statfs(2)/statvfs(3): name length, block and inode counts that move with use."""
import os

from posixlib import CHUNK, pattern, write_file


def test_statvfs_limits_and_consistency(px):
    st = os.statvfs(px.mnt)
    assert st.f_namemax == 255
    assert st.f_bsize > 0 and st.f_frsize > 0
    assert 0 < st.f_bavail <= st.f_bfree <= st.f_blocks, st
    assert 0 < st.f_favail <= st.f_ffree <= st.f_files, st
    assert os.statvfs(px.mnt / ".") == os.statvfs(px.fs.mnt)


def test_fstatvfs_matches_statvfs(px):
    write_file(px.mnt / "f", b"x")
    fd = os.open(px.mnt / "f", os.O_RDONLY)
    try:
        a = os.fstatvfs(fd)
    finally:
        os.close(fd)
    b = os.statvfs(px.mnt / "f")
    assert (a.f_namemax, a.f_bsize, a.f_blocks, a.f_files) == (b.f_namemax, b.f_bsize, b.f_blocks, b.f_files)


def test_used_inodes_follow_creates_and_removes(px):
    def used():
        s = os.statvfs(px.mnt)
        return s.f_files - s.f_ffree
    u0 = used()
    for i in range(200):
        write_file(px.mnt / f"f{i}", b"")
    u1 = used()
    # u0 may still count a file an earlier case closed and removed: the kernel sends the
    # RELEASE of a close(2) without waiting for it, so the daemon may purge that file only now
    # (with PostgreSQL, a few round trips later). 200 created must show as (nearly) 200.
    assert u1 - u0 >= 195, (u0, u1)
    for i in range(200):
        os.unlink(px.mnt / f"f{i}")
    u2 = used()
    # The kernel tells the filesystem that it dropped an unlinked inode (FORGET) a little
    # later, so a few may still count for a moment; 200 removed must show as (nearly) 200.
    assert u1 - u2 >= 190, (u0, u1, u2)


def test_used_blocks_follow_stored_data(px):
    def used_bytes():
        s = os.statvfs(px.mnt)
        return (s.f_blocks - s.f_bfree) * s.f_frsize
    b0 = used_bytes()
    write_file(px.mnt / "data", pattern(16 * CHUNK, seed=60))
    b1 = used_bytes()
    assert b1 - b0 >= 15 * CHUNK, f"16 MiB of new data, used space grew by {b1 - b0} bytes"


def test_statvfs_of_a_path_inside_and_flags(px):
    os.mkdir(px.mnt / "d")
    st = os.statvfs(px.mnt / "d")
    assert st.f_namemax == 255
    assert not st.f_flag & os.ST_RDONLY
