"""open(2)/creat(2): O_CREAT, O_EXCL, O_TRUNC, O_DIRECTORY, O_NOFOLLOW, modes, owners, errors."""
import errno
import os
import stat

from posixlib import ALICE, BOB, err, ok, pattern, read_file, write_file


def opened(path, flags, mode=0o666):
    os.close(os.open(path, flags, mode))


def created(path, flags=os.O_CREAT | os.O_WRONLY, mode=0o666):
    opened(path, flags, mode)
    st = os.lstat(path)
    return stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_size, st.st_nlink


def test_creat_applies_umask_and_caller_owner(px):
    px.expect(lambda d: created(d / "f", mode=0o666), ok((stat.S_IFREG, 0o644, 0, 0, 0, 1)))
    px.expect(lambda d: created(d / "g", mode=0o777), ok((stat.S_IFREG, 0o750, 0, 0, 0, 1)), umask=0o027)


def test_creat_as_unprivileged_user_owns_the_file(px):
    px.setup(lambda d: os.chmod(d, 0o777))
    px.expect(lambda d: created(d / "f", mode=0o640), ok((stat.S_IFREG, 0o640, ALICE.uid, ALICE.gid, 0, 1)), user=ALICE)


def test_creat_with_mode_zero_still_returns_a_writable_descriptor(px):
    px.setup(lambda d: os.chmod(d, 0o777))

    def op(d):
        fd = os.open(d / "f", os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o000)
        try:
            n = os.write(fd, b"abc")
        finally:
            os.close(fd)
        return n, stat.S_IMODE(os.stat(d / "f").st_mode)
    px.expect(op, ok((3, 0)), user=ALICE)
    # root reads it back although nobody has read permission
    px.expect(lambda d: read_file(d / "f"), ok(b"abc"))


def test_o_excl_on_existing_file_is_eexist(px):
    px.setup(lambda d: write_file(d / "f", b"x"))
    px.expect(lambda d: opened(d / "f", os.O_CREAT | os.O_EXCL | os.O_WRONLY), err(errno.EEXIST))
    px.expect(lambda d: read_file(d / "f"), ok(b"x"))


def test_o_excl_on_dangling_symlink_is_eexist_and_creates_nothing(px):
    px.setup(lambda d: os.symlink("target", d / "link"))
    px.expect(lambda d: opened(d / "link", os.O_CREAT | os.O_EXCL | os.O_WRONLY), err(errno.EEXIST))
    px.expect(lambda d: sorted(os.listdir(d)), ok(["link"]))


def test_o_creat_through_dangling_symlink_creates_the_target(px):
    px.setup(lambda d: os.symlink("target", d / "link"))
    px.expect(lambda d: (opened(d / "link", os.O_CREAT | os.O_WRONLY), stat.S_IFMT(os.stat(d / "target").st_mode))[1],
              ok(stat.S_IFREG))
    px.expect(lambda d: sorted(os.listdir(d)), ok(["link", "target"]))


def test_o_creat_on_existing_file_keeps_contents_and_mode(px):
    px.setup(lambda d: write_file(d / "f", b"keep", mode=0o600))
    px.expect(lambda d: created(d / "f", mode=0o777)[:5], ok((stat.S_IFREG, 0o600, 0, 0, 4)))


def test_o_trunc_truncates_to_zero(px):
    px.setup(lambda d: write_file(d / "f", pattern(100_000)))
    px.expect(lambda d: created(d / "f", os.O_WRONLY | os.O_TRUNC)[4], ok(0))
    px.expect(lambda d: read_file(d / "f"), ok(b""))


def test_o_trunc_with_o_rdonly_truncates_as_linux_does(px):
    px.setup(lambda d: write_file(d / "f", b"data"))
    px.same(lambda d: (opened(d / "f", os.O_RDONLY | os.O_TRUNC), os.stat(d / "f").st_size))


def test_o_trunc_of_empty_file_then_write_persists(px):
    def op(d):
        write_file(d / "f", b"")
        fd = os.open(d / "f", os.O_WRONLY | os.O_TRUNC)
        os.write(fd, b"after")
        os.close(fd)
    px.setup(op)
    px.remount()
    px.expect(lambda d: read_file(d / "f"), ok(b"after"))


def test_open_missing_file_without_o_creat_is_enoent(px):
    px.expect(lambda d: opened(d / "missing", os.O_RDONLY), err(errno.ENOENT))
    px.expect(lambda d: opened(d / "nodir" / "f", os.O_CREAT | os.O_WRONLY), err(errno.ENOENT))


def test_open_through_a_file_component_is_enotdir(px):
    px.setup(lambda d: write_file(d / "f", b"x"))
    px.expect(lambda d: opened(d / "f" / "g", os.O_RDONLY), err(errno.ENOTDIR))
    px.expect(lambda d: opened(d / "f" / "g", os.O_CREAT | os.O_WRONLY), err(errno.ENOTDIR))
    px.expect(lambda d: opened(str(d / "f") + "/", os.O_RDONLY), err(errno.ENOTDIR))


def test_open_directory_for_writing_is_eisdir(px):
    px.setup(lambda d: os.mkdir(d / "sub"))
    px.expect(lambda d: opened(d / "sub", os.O_WRONLY), err(errno.EISDIR))
    px.expect(lambda d: opened(d / "sub", os.O_RDWR), err(errno.EISDIR))
    px.expect(lambda d: opened(d / "sub", os.O_CREAT | os.O_WRONLY), err(errno.EISDIR))
    px.expect(lambda d: opened(d / "sub", os.O_RDONLY), ok(None))
    px.expect(lambda d: opened(d / "sub", os.O_RDONLY | os.O_DIRECTORY), ok(None))


def test_o_creat_of_a_name_with_trailing_slash_is_eisdir(px):
    px.expect(lambda d: opened(str(d / "new") + "/", os.O_CREAT | os.O_WRONLY), err(errno.EISDIR))


def test_o_directory_on_a_file_is_enotdir(px):
    px.setup(lambda d: write_file(d / "f", b"x"))
    px.expect(lambda d: opened(d / "f", os.O_RDONLY | os.O_DIRECTORY), err(errno.ENOTDIR))


def test_o_nofollow_on_symlink_is_eloop(px):
    px.setup(lambda d: (write_file(d / "f", b"x"), os.symlink("f", d / "l")))
    px.expect(lambda d: opened(d / "l", os.O_RDONLY | os.O_NOFOLLOW), err(errno.ELOOP))
    px.expect(lambda d: opened(d / "f", os.O_RDONLY | os.O_NOFOLLOW), ok(None))


def test_o_path_and_o_noatime_open(px):
    px.setup(lambda d: write_file(d / "f", b"x"))
    px.expect(lambda d: opened(d / "f", os.O_PATH), ok(None))
    px.expect(lambda d: opened(d / "f", os.O_RDONLY | os.O_NOATIME), ok(None))


def test_name_of_255_bytes_is_fine_and_256_is_enametoolong(px):
    px.expect(lambda d: opened(d / ("a" * 255), os.O_CREAT | os.O_WRONLY), ok(None))
    px.expect(lambda d: opened(d / ("b" * 256), os.O_CREAT | os.O_WRONLY), err(errno.ENAMETOOLONG))
    px.expect(lambda d: opened(d / ("b" * 256), os.O_RDONLY), err(errno.ENAMETOOLONG))
    # 255 bytes of UTF-8 that are fewer characters
    px.expect(lambda d: opened(d / ("é" * 127 + "x"), os.O_CREAT | os.O_WRONLY), ok(None))
    px.expect(lambda d: opened(d / ("é" * 128), os.O_CREAT | os.O_WRONLY), err(errno.ENAMETOOLONG))


def test_names_are_bytes_not_text(px):
    name = b"\xff\xfe-not-utf8\x01"
    px.expect(lambda d: opened(os.fsencode(d) + b"/" + name, os.O_CREAT | os.O_WRONLY), ok(None))
    px.expect(lambda d: os.listdir(os.fsencode(d)), ok([name]))


def test_empty_file_created_and_closed_persists_with_mode_and_owner(px):
    px.setup(lambda d: (opened(d / "e", os.O_CREAT | os.O_WRONLY, 0o640), os.chown(d / "e", 1234, 5678)))
    px.remount()
    px.expect(lambda d: created(d / "e", os.O_RDONLY), ok((stat.S_IFREG, 0o640, 1234, 5678, 0, 1)))


def test_open_permission_checks_as_unprivileged_user(px):
    px.setup(lambda d: os.chmod(d, 0o777))
    px.setup(lambda d: [write_file(d / n, b"secret", mode=m) for n, m in
                        (("r", 0o444), ("w", 0o222), ("none", 0o000), ("own600", 0o600))])
    px.setup(lambda d: os.chown(d / "own600", ALICE.uid, ALICE.gid))
    px.expect(lambda d: opened(d / "r", os.O_RDONLY), ok(None), user=BOB)
    px.expect(lambda d: opened(d / "r", os.O_WRONLY), err(errno.EACCES), user=BOB)
    px.expect(lambda d: opened(d / "r", os.O_RDWR), err(errno.EACCES), user=BOB)
    px.expect(lambda d: opened(d / "r", os.O_RDONLY | os.O_TRUNC), err(errno.EACCES), user=BOB)
    px.expect(lambda d: opened(d / "w", os.O_RDONLY), err(errno.EACCES), user=BOB)
    px.expect(lambda d: opened(d / "w", os.O_WRONLY), ok(None), user=BOB)
    px.expect(lambda d: opened(d / "none", os.O_RDONLY), err(errno.EACCES), user=BOB)
    px.expect(lambda d: opened(d / "own600", os.O_RDWR), ok(None), user=ALICE)
    px.expect(lambda d: opened(d / "own600", os.O_RDONLY), err(errno.EACCES), user=BOB)
    # O_CREAT of an existing file still needs the access the flags ask for
    px.expect(lambda d: opened(d / "r", os.O_CREAT | os.O_WRONLY), err(errno.EACCES), user=BOB)
    # root is not subject to read/write permission bits
    px.expect(lambda d: read_file(d / "none"), ok(b"secret"))
    px.expect(lambda d: opened(d / "none", os.O_RDWR), ok(None))


def test_create_in_directory_without_write_or_search_permission(px):
    px.setup(lambda d: (os.mkdir(d / "ro", 0o555), os.mkdir(d / "nox", 0o666), os.mkdir(d / "open", 0o777)))
    px.setup(lambda d: [os.chmod(d / n, m) for n, m in (("ro", 0o555), ("nox", 0o666), ("open", 0o777))])
    px.expect(lambda d: opened(d / "ro" / "f", os.O_CREAT | os.O_WRONLY), err(errno.EACCES), user=ALICE)
    px.expect(lambda d: opened(d / "nox" / "f", os.O_CREAT | os.O_WRONLY), err(errno.EACCES), user=ALICE)
    px.expect(lambda d: opened(d / "open" / "f", os.O_CREAT | os.O_WRONLY), ok(None), user=ALICE)
    px.expect(lambda d: sorted(os.listdir(d / "ro")) + sorted(os.listdir(d / "nox")), ok([]))


def test_two_descriptors_of_one_file_see_each_others_writes(px):
    def op(d):
        a = os.open(d / "f", os.O_CREAT | os.O_RDWR, 0o644)
        b = os.open(d / "f", os.O_RDWR)
        try:
            os.pwrite(a, b"hello", 0)
            first = os.pread(b, 100, 0)
            os.pwrite(b, b"J", 0)
            second = os.pread(a, 100, 0)
            return first, second, os.fstat(a).st_size, os.fstat(b).st_size
        finally:
            os.close(a)
            os.close(b)
    px.expect(op, ok((b"hello", b"Jello", 5, 5)))
