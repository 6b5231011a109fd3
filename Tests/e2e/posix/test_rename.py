"""rename(2)/renameat2(2): files and non-empty directories, replacement rules, RENAME_NOREPLACE,
RENAME_EXCHANGE, subtree checks, inode numbers, nlink of parents, times, permissions."""
import errno
import os
import stat

from posixlib import (ALICE, BOB, RENAME_EXCHANGE, RENAME_NOREPLACE, RENAME_WHITEOUT, changed_times, err, ok,
                      read_file, renameat2, write_file)


def tree(d):
    """Relative paths with kind and contents (files) or target (symlinks)."""
    out = []
    for root, dirs, files in os.walk(d):
        for n in sorted(dirs + files):
            p = os.path.join(root, n)
            rel = os.path.relpath(p, d)
            st = os.lstat(p)
            if stat.S_ISREG(st.st_mode):
                out.append((rel, "f", read_file(p)))
            elif stat.S_ISLNK(st.st_mode):
                out.append((rel, "l", os.readlink(p)))
            else:
                out.append((rel, "d", st.st_nlink))
    return sorted(out)


def test_rename_file_keeps_inode_and_contents(px):
    px.setup(lambda d: write_file(d / "a", b"A"))
    ino = os.stat(px.mnt / "a").st_ino
    px.expect(lambda d: (os.rename(d / "a", d / "b"), tree(d))[1], ok([("b", "f", b"A")]))
    assert os.stat(px.mnt / "b").st_ino == ino
    px.remount()
    assert os.stat(px.mnt / "b").st_ino == ino
    px.expect(tree, ok([("b", "f", b"A")]))


def test_rename_over_existing_file_replaces_it(px):
    px.setup(lambda d: (write_file(d / "a", b"A"), write_file(d / "b", b"B"), os.link(d / "b", d / "b2")))
    ino = os.stat(px.mnt / "a").st_ino
    px.expect(lambda d: (os.rename(d / "a", d / "b"), tree(d), os.stat(d / "b2").st_nlink)[1:],
              ok(([("b", "f", b"A"), ("b2", "f", b"B")], 1)))
    assert os.stat(px.mnt / "b").st_ino == ino


def test_rename_of_non_empty_directory_across_parents(px):
    def setup(d):
        os.makedirs(d / "src" / "tree" / "sub")
        os.mkdir(d / "dst")
        write_file(d / "src" / "tree" / "f", b"F")
        write_file(d / "src" / "tree" / "sub" / "g", b"G")
        os.symlink("../f", d / "src" / "tree" / "sub" / "l")
    px.setup(setup)
    ino = os.stat(px.mnt / "src" / "tree").st_ino
    px.expect(lambda d: (os.rename(d / "src" / "tree", d / "dst" / "moved"),
                         os.stat(d / "src").st_nlink, os.stat(d / "dst").st_nlink)[1:], ok((2, 3)))
    assert os.stat(px.mnt / "dst" / "moved").st_ino == ino
    assert os.stat(px.mnt / "dst" / "moved" / "..").st_ino == os.stat(px.mnt / "dst").st_ino
    px.expect(lambda d: read_file(d / "dst" / "moved" / "sub" / "l"), ok(b"F"))
    px.remount()
    px.same(tree)
    px.expect(lambda d: sorted(os.listdir(d / "src")), ok([]))
    assert os.stat(px.mnt / "dst" / "moved").st_ino == ino


def test_rename_directory_over_empty_directory_and_not_over_non_empty(px):
    def setup(d):
        os.makedirs(d / "a" / "inner")
        os.mkdir(d / "empty")
        os.makedirs(d / "full" / "x")
    px.setup(setup)
    px.expect(lambda d: os.rename(d / "a", d / "full"), err(errno.ENOTEMPTY))
    px.expect(lambda d: (os.rename(d / "a", d / "empty"), sorted(os.listdir(d)), os.stat(d).st_nlink)[1:],
              ok((["empty", "full"], 4)))


def test_rename_type_mismatches(px):
    px.setup(lambda d: (write_file(d / "f", b"x"), os.mkdir(d / "dir"), os.mkdir(d / "dir2")))
    px.expect(lambda d: os.rename(d / "f", d / "dir"), err(errno.EISDIR))
    px.expect(lambda d: os.rename(d / "dir", d / "f"), err(errno.ENOTDIR))
    px.expect(lambda d: os.rename(d / "f", str(d / "g") + "/"), err(errno.ENOTDIR))
    px.expect(lambda d: (os.rename(str(d / "dir") + "/", str(d / "dir3") + "/"), sorted(os.listdir(d)))[1],
              ok(["dir2", "dir3", "f"]))


def test_rename_into_own_subtree_is_einval(px):
    px.setup(lambda d: os.makedirs(d / "p" / "q" / "r"))
    px.expect(lambda d: os.rename(d / "p", d / "p" / "q" / "r" / "s"), err(errno.EINVAL))
    px.expect(lambda d: os.rename(d / "p", d / "p" / "x"), err(errno.EINVAL))
    px.expect(lambda d: renameat2(d / "p", d / "p" / "q", RENAME_EXCHANGE), err(errno.EINVAL))
    px.expect(lambda d: renameat2(d / "p" / "q", d / "p", RENAME_EXCHANGE), err(errno.EINVAL))
    px.same(tree)


def test_rename_of_dot_and_dotdot(px):
    px.setup(lambda d: os.makedirs(d / "a" / "b"))
    # (pathlib drops "." components, so these paths are strings)
    px.expect(lambda d: os.rename(str(d / "a") + "/.", d / "x"), err(errno.EBUSY))
    px.expect(lambda d: os.rename(str(d / "a" / "b") + "/..", d / "x"), err(errno.EBUSY))
    px.expect(lambda d: os.rename(d / "a" / "b", str(d / "a") + "/."), err(errno.EBUSY))
    px.expect(lambda d: sorted(os.listdir(d / "a")), ok(["b"]))


def test_rename_to_itself_and_between_hard_links_is_a_no_op(px):
    px.setup(lambda d: (write_file(d / "a", b"A"), os.link(d / "a", d / "b"), os.mkdir(d / "dir")))
    px.expect(lambda d: (os.rename(d / "a", d / "a"), os.rename(d / "dir", d / "dir"), tree(d))[2],
              ok([("a", "f", b"A"), ("b", "f", b"A"), ("dir", "d", 2)]))
    # POSIX: if old and new are links to the same file, rename does nothing and succeeds.
    px.expect(lambda d: (os.rename(d / "a", d / "b"), sorted(os.listdir(d)), os.stat(d / "a").st_nlink)[1:],
              ok((["a", "b", "dir"], 2)))


def test_rename_errors(px):
    px.setup(lambda d: write_file(d / "f", b"x"))
    px.expect(lambda d: os.rename(d / "missing", d / "x"), err(errno.ENOENT))
    px.expect(lambda d: os.rename(d / "f", d / "nodir" / "x"), err(errno.ENOENT))
    px.expect(lambda d: os.rename(d / "f", d / ("n" * 256)), err(errno.ENAMETOOLONG))
    px.expect(lambda d: os.rename(d / ("n" * 256), d / "x"), err(errno.ENAMETOOLONG))
    px.expect(lambda d: os.rename(d / "f", d / "f" / "x"), err(errno.ENOTDIR))


def test_rename_noreplace(px):
    px.setup(lambda d: (write_file(d / "a", b"A"), write_file(d / "b", b"B"), os.mkdir(d / "dir")))
    px.expect(lambda d: renameat2(d / "a", d / "b", RENAME_NOREPLACE), err(errno.EEXIST))
    px.expect(lambda d: renameat2(d / "a", d / "dir", RENAME_NOREPLACE), err(errno.EEXIST))
    px.expect(lambda d: (renameat2(d / "a", d / "c", RENAME_NOREPLACE), tree(d))[1],
              ok([("b", "f", b"B"), ("c", "f", b"A"), ("dir", "d", 2)]))
    px.expect(lambda d: renameat2(d / "missing", d / "x", RENAME_NOREPLACE), err(errno.ENOENT))


def test_rename_exchange_files_and_directories(px):
    def setup(d):
        write_file(d / "a", b"A")
        os.makedirs(d / "x" / "inside")
        os.mkdir(d / "y")
        write_file(d / "y" / "b", b"B")
    px.setup(setup)
    ino_a, ino_x = os.stat(px.mnt / "a").st_ino, os.stat(px.mnt / "x").st_ino
    # a file and a directory in different parents trade places
    px.expect(lambda d: (renameat2(d / "a", d / "y" / "b", RENAME_EXCHANGE), tree(d))[1],
              ok([("a", "f", b"B"), ("x", "d", 3), ("x/inside", "d", 2), ("y", "d", 2), ("y/b", "f", b"A")]))
    assert os.stat(px.mnt / "y" / "b").st_ino == ino_a
    px.expect(lambda d: (renameat2(d / "x", d / "a", RENAME_EXCHANGE), tree(d), os.stat(d).st_nlink)[1:],
              ok(([("a", "d", 3), ("a/inside", "d", 2), ("x", "f", b"B"), ("y", "d", 2), ("y/b", "f", b"A")], 4)))
    assert os.stat(px.mnt / "a").st_ino == ino_x
    # a directory moved by exchange into another parent: nlink of both parents and its ".."
    px.expect(lambda d: (renameat2(d / "a", d / "y" / "b", RENAME_EXCHANGE),
                         os.stat(d).st_nlink, os.stat(d / "y").st_nlink,
                         os.stat(d / "y" / "b" / "..").st_ino == os.stat(d / "y").st_ino)[1:], ok((3, 3, True)))
    px.remount()
    px.same(tree)


def test_rename_exchange_errors(px):
    px.setup(lambda d: (write_file(d / "a", b"A"), write_file(d / "b", b"B")))
    px.expect(lambda d: renameat2(d / "a", d / "missing", RENAME_EXCHANGE), err(errno.ENOENT))
    px.expect(lambda d: renameat2(d / "missing", d / "a", RENAME_EXCHANGE), err(errno.ENOENT))
    px.expect(lambda d: renameat2(d / "a", d / "b", RENAME_EXCHANGE | RENAME_NOREPLACE), err(errno.EINVAL))
    px.expect(lambda d: renameat2(d / "a", d / "b", 1 << 10), err(errno.EINVAL))
    px.expect(lambda d: (renameat2(d / "a", d / "a", RENAME_EXCHANGE), tree(d))[1], ok([("a", "f", b"A"), ("b", "f", b"B")]))


def test_rename_whiteout_is_refused_or_supported_as_on_ext4(px):
    px.setup(lambda d: write_file(d / "a", b"A"))
    r, m = px.run(lambda d: renameat2(d / "a", d / "b", RENAME_WHITEOUT))
    # ext4 supports whiteouts (for overlayfs); a FUSE filesystem may refuse them with EINVAL.
    assert m in (r, err(errno.EINVAL)), m


def test_rename_updates_ctime_of_moved_inode_and_mtime_ctime_of_parents(px):
    px.setup(lambda d: (write_file(d / "f", b"x"), os.mkdir(d / "src"), os.mkdir(d / "dst"), write_file(d / "src" / "g", b"y")))
    px.expect(lambda d: changed_times(d / "f", lambda: os.rename(d / "f", d / "f2"), after_path=d / "f2")[1:], ok((False, True)))
    px.expect(lambda d: changed_times(d / "src", lambda: os.rename(d / "src" / "g", d / "dst" / "g"))[1:], ok((True, True)))
    px.expect(lambda d: changed_times(d / "dst", lambda: os.rename(d / "dst" / "g", d / "dst" / "h"))[1:], ok((True, True)))
    px.expect(lambda d: changed_times(d / "src", lambda: renameat2(d / "dst", d / "src", RENAME_EXCHANGE))[2], ok(True))


def test_rename_over_open_file_keeps_the_old_one_readable(px):
    px.setup(lambda d: (write_file(d / "victim", b"victim data"), write_file(d / "new", b"new")))

    def op(d):
        with open(d / "victim", "rb") as f:
            os.rename(d / "new", d / "victim")
            return f.read(), read_file(d / "victim")
    px.expect(op, ok((b"victim data", b"new")))


def test_rename_permissions(px):
    def setup(d):
        os.chmod(d, 0o777)
        os.mkdir(d / "ro")
        write_file(d / "ro" / "f", b"x")
        os.chmod(d / "ro", 0o555)
        os.mkdir(d / "rw")
        os.chmod(d / "rw", 0o777)
        write_file(d / "rw" / "f", b"y")
        os.mkdir(d / "rw" / "rootdir", 0o755)        # root's directory, not writable by ALICE
    px.setup(setup)
    px.expect(lambda d: os.rename(d / "ro" / "f", d / "rw" / "g"), err(errno.EACCES), user=ALICE)
    px.expect(lambda d: os.rename(d / "rw" / "f", d / "ro" / "g"), err(errno.EACCES), user=ALICE)
    px.expect(lambda d: os.rename(d / "rw" / "f", d / "rw" / "g"), ok(None), user=ALICE)
    # moving a directory to another parent rewrites its "..": needs write permission on it
    px.expect(lambda d: os.rename(d / "rw" / "rootdir", d / "moved"), err(errno.EACCES), user=ALICE)
    # renaming it within its parent does not
    px.expect(lambda d: os.rename(d / "rw" / "rootdir", d / "rw" / "rootdir2"), ok(None), user=ALICE)


def test_rename_in_sticky_directory(px):
    def setup(d):
        os.chmod(d, 0o1777)
        write_file(d / "alice", b"a")
        os.chown(d / "alice", ALICE.uid, ALICE.gid)
        os.chmod(d / "alice", 0o666)
        write_file(d / "bob", b"b")
        os.chown(d / "bob", BOB.uid, BOB.gid)
    px.setup(setup)
    px.expect(lambda d: os.rename(d / "alice", d / "x"), err(errno.EPERM), user=BOB)
    px.expect(lambda d: os.rename(d / "bob", d / "alice"), err(errno.EPERM), user=BOB)
    px.expect(lambda d: os.rename(d / "alice", d / "alice2"), ok(None), user=ALICE)
    px.expect(lambda d: renameat2(d / "bob", d / "alice2", RENAME_EXCHANGE), err(errno.EPERM), user=BOB)
    px.expect(lambda d: sorted(os.listdir(d)), ok(["alice2", "bob"]))


def test_many_renames_in_a_cycle_then_remount(px):
    def op(d):
        for i in range(20):
            write_file(d / f"f{i}", b"%d" % i)
        for _ in range(3):
            os.rename(d / "f0", d / "tmp")
            for i in range(1, 20):
                os.rename(d / f"f{i}", d / f"f{i - 1}")
            os.rename(d / "tmp", d / "f19")
        return tree(d)
    px.same(op)
    px.remount()
    px.same(tree)
