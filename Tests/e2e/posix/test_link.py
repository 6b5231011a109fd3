"""link(2)/unlink(2): hard links, nlink accounting, links across directories, errors."""
import errno
import os
import stat

from posixlib import ALICE, BOB, changed_times, err, ok, read_file, write_file


def nlinks(d, *names):
    return tuple(os.lstat(d / n).st_nlink for n in names)


def test_link_shares_the_inode_and_counts(px):
    px.setup(lambda d: write_file(d / "a", b"contents"))
    px.expect(lambda d: (os.link(d / "a", d / "b"), nlinks(d, "a", "b"))[1], ok((2, 2)))
    assert os.stat(px.mnt / "a").st_ino == os.stat(px.mnt / "b").st_ino

    def write_through_b(d):
        with open(d / "b", "r+b") as f:
            f.write(b"C")
        return read_file(d / "a")
    px.expect(write_through_b, ok(b"Contents"))
    px.expect(lambda d: (os.unlink(d / "a"), nlinks(d, "b"), read_file(d / "b"))[1:], ok(((1,), b"Contents")))


def test_links_across_directories_survive_remount(px):
    def setup(d):
        os.makedirs(d / "x" / "y")
        os.mkdir(d / "z")
        write_file(d / "x" / "y" / "f", b"data")
        os.link(d / "x" / "y" / "f", d / "z" / "g")
        os.link(d / "z" / "g", d / "h")
    px.setup(setup)
    px.remount()
    px.expect(lambda d: nlinks(d, "x/y/f", "z/g", "h"), ok((3, 3, 3)))
    inos = {os.stat(px.mnt / n).st_ino for n in ("x/y/f", "z/g", "h")}
    assert len(inos) == 1
    px.expect(lambda d: (os.unlink(d / "z" / "g"), nlinks(d, "x/y/f", "h"))[1], ok((2, 2)))
    px.remount()
    px.expect(lambda d: (nlinks(d, "x/y/f", "h"), read_file(d / "h")), ok(((2, 2), b"data")))


def test_many_links(px):
    px.setup(lambda d: write_file(d / "f", b"x"))
    px.expect(lambda d: ([os.link(d / "f", d / f"l{i}") for i in range(100)], nlinks(d, "f", "l99"))[1], ok((101, 101)))
    px.expect(lambda d: ([os.unlink(d / f"l{i}") for i in range(0, 100, 2)], nlinks(d, "f"))[1], ok((51,)))


def test_link_errors(px):
    px.setup(lambda d: (write_file(d / "f", b"x"), write_file(d / "g", b"y"), os.mkdir(d / "dir")))
    px.expect(lambda d: os.link(d / "f", d / "g"), err(errno.EEXIST))
    px.expect(lambda d: os.link(d / "f", d / "dir"), err(errno.EEXIST))
    px.expect(lambda d: os.link(d / "dir", d / "dir2"), err(errno.EPERM))
    px.expect(lambda d: os.link(d / "missing", d / "new"), err(errno.ENOENT))
    px.expect(lambda d: os.link(d / "f", d / "nodir" / "new"), err(errno.ENOENT))
    px.expect(lambda d: os.link(d / "f", d / "g" / "new"), err(errno.ENOTDIR))
    px.expect(lambda d: os.link(d / "f", d / ("n" * 256)), err(errno.ENAMETOOLONG))
    px.expect(lambda d: nlinks(d, "f", "g"), ok((1, 1)))


def test_link_to_a_symlink_links_the_symlink_itself(px):
    px.setup(lambda d: (write_file(d / "f", b"x"), os.symlink("f", d / "s")))
    px.expect(lambda d: (os.link(d / "s", d / "s2", follow_symlinks=False), nlinks(d, "s", "s2", "f"),
                         os.readlink(d / "s2"))[1:], ok(((2, 2, 1), "f")))


def test_link_updates_ctime_of_the_file_and_mtime_ctime_of_the_directory(px):
    px.setup(lambda d: (write_file(d / "f", b"x"), os.mkdir(d / "dir")))
    px.expect(lambda d: changed_times(d / "f", lambda: os.link(d / "f", d / "dir" / "g"))[2], ok(True))
    px.expect(lambda d: changed_times(d / "dir", lambda: os.link(d / "f", d / "dir" / "h"))[1:], ok((True, True)))


def test_unlink_of_one_link_updates_ctime_of_the_remaining(px):
    px.setup(lambda d: (write_file(d / "f", b"x"), os.link(d / "f", d / "g")))
    px.expect(lambda d: changed_times(d / "g", lambda: os.unlink(d / "f"))[1:], ok((False, True)))


def test_unlink_errors(px):
    px.setup(lambda d: (os.mkdir(d / "dir"), write_file(d / "f", b"x")))
    px.expect(lambda d: os.unlink(d / "missing"), err(errno.ENOENT))
    px.expect(lambda d: os.unlink(d / "dir"), err(errno.EISDIR))
    px.expect(lambda d: os.unlink(d / "f" / "x"), err(errno.ENOTDIR))
    px.expect(lambda d: os.unlink(d / ("n" * 256)), err(errno.ENAMETOOLONG))


def test_unlink_updates_directory_mtime_and_ctime(px):
    px.setup(lambda d: write_file(d / "f", b"x"))
    px.expect(lambda d: changed_times(d, lambda: os.unlink(d / "f"))[1:], ok((True, True)))


def test_unlink_and_link_need_write_and_search_permission_on_the_directory(px):
    # f belongs to ALICE: linking another user's file is refused by fs.protected_hardlinks
    px.setup(lambda d: (os.mkdir(d / "ro"), write_file(d / "ro" / "f", b"x"), os.chown(d / "ro" / "f", ALICE.uid, ALICE.gid),
                        os.chmod(d / "ro", 0o555)))
    px.setup(lambda d: (os.mkdir(d / "rw"), os.chmod(d / "rw", 0o777)))
    px.expect(lambda d: os.unlink(d / "ro" / "f"), err(errno.EACCES), user=ALICE)
    px.expect(lambda d: os.link(d / "ro" / "f", d / "ro" / "g"), err(errno.EACCES), user=ALICE)
    px.expect(lambda d: os.link(d / "ro" / "f", d / "rw" / "g"), ok(None), user=ALICE)
    px.expect(lambda d: os.unlink(d / "rw" / "g"), ok(None), user=BOB)
    px.expect(lambda d: nlinks(d, "ro/f"), ok((1,)))
    px.setup(lambda d: os.chown(d / "ro" / "f", 0, 0))
    px.expect(lambda d: os.link(d / "ro" / "f", d / "rw" / "h"), err(errno.EPERM), user=ALICE)


def test_unlink_of_the_last_link_of_a_file_removes_it_after_remount(px):
    px.setup(lambda d: write_file(d / "f", b"x" * 100000))
    px.expect(lambda d: os.unlink(d / "f"), ok(None))
    px.remount()
    px.expect(lambda d: os.listdir(d), ok([]))


def test_hard_links_in_the_same_directory_list_both_names(px):
    px.setup(lambda d: (write_file(d / "a", b"1"), os.link(d / "a", d / "b"), os.link(d / "a", d / "c")))
    px.expect(lambda d: sorted(os.listdir(d)), ok(["a", "b", "c"]))

    def kinds(d):
        return sorted((e.name, e.is_file(follow_symlinks=False), e.stat(follow_symlinks=False).st_nlink)
                      for e in os.scandir(d))
    px.expect(kinds, ok([("a", True, 3), ("b", True, 3), ("c", True, 3)]))


def test_link_of_special_files(px):
    px.setup(lambda d: os.mkfifo(d / "fifo", 0o600))
    px.expect(lambda d: (os.link(d / "fifo", d / "fifo2"), nlinks(d, "fifo", "fifo2"),
                         stat.S_ISFIFO(os.lstat(d / "fifo2").st_mode))[1:], ok(((2, 2), True)))
