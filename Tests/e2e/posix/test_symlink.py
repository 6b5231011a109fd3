"""symlink(2)/readlink(2)/lstat(2): targets, dangling links, length limits, owners, loops."""
import errno
import os
import stat

from posixlib import ALICE, err, ok, read_file, write_file


def lstat_of(path):
    st = os.lstat(path)
    return stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_size, st.st_nlink, st.st_uid, st.st_gid


def test_symlink_readlink_and_lstat(px):
    px.setup(lambda d: write_file(d / "target", b"payload"))
    px.expect(lambda d: (os.symlink("target", d / "l"), os.readlink(d / "l"), lstat_of(d / "l"))[1:],
              ok(("target", (stat.S_IFLNK, 0o777, 6, 1, 0, 0))))
    px.expect(lambda d: read_file(d / "l"), ok(b"payload"))
    px.expect(lambda d: stat.S_IFMT(os.stat(d / "l").st_mode), ok(stat.S_IFREG))


def test_dangling_symlink(px):
    px.setup(lambda d: os.symlink("nowhere/at/all", d / "l"))
    px.expect(lambda d: os.stat(d / "l"), err(errno.ENOENT))
    px.expect(lambda d: os.readlink(d / "l"), ok("nowhere/at/all"))
    px.expect(lambda d: lstat_of(d / "l")[:3], ok((stat.S_IFLNK, 0o777, 14)))
    px.expect(lambda d: sorted(os.listdir(d)), ok(["l"]))


def test_targets_up_to_4095_bytes_and_no_longer(px):
    long = ("x" * 200 + "/") * 21
    long = long[:4095]
    px.expect(lambda d: (os.symlink(long, d / "l4095"), os.readlink(d / "l4095") == long, os.lstat(d / "l4095").st_size)[1:],
              ok((True, 4095)))
    px.expect(lambda d: os.symlink(long + "y", d / "l4096"), err(errno.ENAMETOOLONG))
    px.remount()
    px.expect(lambda d: os.readlink(d / "l4095") == long, ok(True))


def test_target_bytes_are_kept_exactly(px):
    target = b"\xff\xfe/../odd name\t\x01/"
    px.expect(lambda d: (os.symlink(target, os.fsencode(d / "l")), os.readlink(os.fsencode(d / "l")))[1], ok(target))
    px.remount()
    px.expect(lambda d: os.readlink(os.fsencode(d / "l")), ok(target))


def test_symlink_errors(px):
    px.setup(lambda d: (write_file(d / "f", b"x"), os.mkdir(d / "dir")))
    px.expect(lambda d: os.symlink("t", d / "f"), err(errno.EEXIST))
    px.expect(lambda d: os.symlink("t", d / "dir"), err(errno.EEXIST))
    px.expect(lambda d: os.symlink("", d / "empty"), err(errno.ENOENT))
    px.expect(lambda d: os.symlink("t", d / "nodir" / "l"), err(errno.ENOENT))
    px.expect(lambda d: os.symlink("t", d / ("n" * 256)), err(errno.ENAMETOOLONG))
    px.expect(lambda d: os.readlink(d / "f"), err(errno.EINVAL))
    px.expect(lambda d: os.readlink(d / "dir"), err(errno.EINVAL))
    px.expect(lambda d: os.readlink(d / "missing"), err(errno.ENOENT))


def test_symlink_loops_are_eloop(px):
    px.setup(lambda d: (os.symlink("b", d / "a"), os.symlink("a", d / "b"), os.symlink("self", d / "self")))
    px.expect(lambda d: os.stat(d / "a"), err(errno.ELOOP))
    px.expect(lambda d: open(d / "self", "rb"), err(errno.ELOOP))
    px.expect(lambda d: os.open(d / "a", os.O_CREAT | os.O_WRONLY), err(errno.ELOOP))


def test_relative_and_absolute_targets_resolve_through_directories(px):
    def setup(d):
        os.makedirs(d / "a" / "b")
        write_file(d / "a" / "b" / "f", b"deep")
        os.symlink("a/b", d / "ab")
        os.symlink("../b/f", d / "a" / "b" / "up")
        os.symlink(str(d / "a" / "b" / "f"), d / "abs")
    px.setup(setup)
    px.expect(lambda d: (read_file(d / "ab" / "f"), read_file(d / "ab" / "up"), read_file(d / "abs")),
              ok((b"deep", b"deep", b"deep")))
    px.expect(lambda d: sorted(os.listdir(d / "ab")), ok(["f", "up"]))


def test_symlink_owner_is_the_caller_and_lchown_changes_the_link_only(px):
    px.setup(lambda d: (os.chmod(d, 0o777), write_file(d / "f", b"x")))
    px.expect(lambda d: (os.symlink("f", d / "l"), lstat_of(d / "l")[4:])[1], ok((ALICE.uid, ALICE.gid)), user=ALICE)
    px.expect(lambda d: (os.lchown(d / "l", 7, 8), lstat_of(d / "l")[4:], lstat_of(d / "f")[4:])[1:],
              ok(((7, 8), (0, 0))))
    px.expect(lambda d: (os.chown(d / "l", 9, 10), lstat_of(d / "l")[4:], lstat_of(d / "f")[4:])[1:],
              ok(((7, 8), (9, 10))))


def test_symlink_survives_remount_with_its_attributes(px):
    px.setup(lambda d: (os.symlink("some/target", d / "l"), os.lchown(d / "l", 1234, 4321)))
    px.remount()
    px.expect(lambda d: (os.readlink(d / "l"), lstat_of(d / "l")),
              ok(("some/target", (stat.S_IFLNK, 0o777, 11, 1, 1234, 4321))))


def test_o_nofollow_path_and_readlink_through_symlinked_directory(px):
    px.setup(lambda d: (os.mkdir(d / "real"), os.symlink("real", d / "dl"), os.symlink("x", d / "real" / "inner")))
    px.expect(lambda d: os.readlink(d / "dl" / "inner"), ok("x"))
    px.expect(lambda d: os.rmdir(d / "dl"), err(errno.ENOTDIR))
    px.expect(lambda d: (os.unlink(d / "dl"), sorted(os.listdir(d)))[1], ok(["real"]))
