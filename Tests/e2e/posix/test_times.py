"""utimensat(2)/futimens(3) and the time rules: explicit, UTIME_NOW, UTIME_OMIT, 64-bit and
pre-1970 times, nanoseconds, permissions; which of atime/mtime/ctime each operation changes."""
import errno
import os
import time

from posixlib import (ALICE, BOB, CHUNK, UTIME_NOW, UTIME_OMIT, changed_times, err, futimens, ok, pattern, read_file,
                      renameat2, RENAME_EXCHANGE, times, utimensat, wait_clock_past, write_file)

NS = 10**9


def am(path, follow=True):
    return times(path, follow)[:2]


def test_explicit_times_with_nanoseconds(px):
    px.setup(lambda d: write_file(d / "f", b"x"))
    px.expect(lambda d: (utimensat(d / "f", 1_000_000_000 * NS + 123_456_789, 1_100_000_000 * NS + 987_654_321), am(d / "f"))[1],
              ok((1_000_000_000 * NS + 123_456_789, 1_100_000_000 * NS + 987_654_321)))
    px.remount()
    px.expect(lambda d: am(d / "f"), ok((1_000_000_000 * NS + 123_456_789, 1_100_000_000 * NS + 987_654_321)))


def test_64_bit_and_pre_1970_times(px):
    px.setup(lambda d: write_file(d / "f", b"x"))
    # ext4 holds 1901..2446; 2**33 s is in 2242
    cases = [(2**32 + 5) * NS + 1, (2**33) * NS + 999_999_999, -1 * NS, -(2**31) * NS, 0]
    for t in cases:
        px.expect(lambda d: (utimensat(d / "f", t, t), am(d / "f"))[1], ok((t, t)))
    px.setup(lambda d: utimensat(d / "f", (2**33) * NS + 7, -5 * NS + 3))
    px.remount()
    px.expect(lambda d: am(d / "f"), ok(((2**33) * NS + 7, -5 * NS + 3)))


def test_utime_now_sets_the_current_time(px):
    px.setup(lambda d: (write_file(d / "f", b"x"), utimensat(d / "f", 1000 * NS, 2000 * NS)))

    def op(d, which):
        before = time.clock_gettime_ns(time.CLOCK_REALTIME) - 10_000_000
        utimensat(d / "f", *which)
        after = time.clock_gettime_ns(time.CLOCK_REALTIME) + 10_000_000
        a, m = am(d / "f")
        return [("now" if before <= t <= after else t) for t in (a, m)]
    px.expect(lambda d: op(d, (UTIME_NOW, UTIME_OMIT)), ok(["now", 2000 * NS]))
    px.expect(lambda d: op(d, (3000 * NS, UTIME_NOW)), ok([3000 * NS, "now"]))
    px.expect(lambda d: op(d, (UTIME_NOW, UTIME_NOW)), ok(["now", "now"]))
    px.expect(lambda d: (utimensat(d / "f"), op(d, (UTIME_OMIT, UTIME_OMIT)))[1], ok(["now", "now"]))


def test_utime_omit_keeps_the_time(px):
    px.setup(lambda d: (write_file(d / "f", b"x"), utimensat(d / "f", 1000 * NS, 2000 * NS)))
    px.expect(lambda d: (utimensat(d / "f", UTIME_OMIT, 5000 * NS), am(d / "f"))[1], ok((1000 * NS, 5000 * NS)))
    px.expect(lambda d: (utimensat(d / "f", 7000 * NS, UTIME_OMIT), am(d / "f"))[1], ok((7000 * NS, 5000 * NS)))
    px.expect(lambda d: changed_times(d / "f", lambda: utimensat(d / "f", UTIME_OMIT, UTIME_OMIT)), ok((False, False, False)))


def test_utimensat_changes_ctime(px):
    px.setup(lambda d: write_file(d / "f", b"x"))
    px.expect(lambda d: changed_times(d / "f", lambda: utimensat(d / "f", 5 * NS, 6 * NS)), ok((True, True, True)))
    px.expect(lambda d: changed_times(d / "f", lambda: utimensat(d / "f", UTIME_OMIT, 9 * NS)), ok((False, True, True)))


def test_utimensat_nofollow_sets_the_symlink_times(px):
    px.setup(lambda d: (write_file(d / "f", b"x"), utimensat(d / "f", 10 * NS, 20 * NS), os.symlink("f", d / "l")))
    px.expect(lambda d: (utimensat(d / "l", 30 * NS, 40 * NS, follow=False), am(d / "l", follow=False), am(d / "f"))[1:],
              ok(((30 * NS, 40 * NS), (10 * NS, 20 * NS))))
    px.expect(lambda d: (utimensat(d / "l", 50 * NS, 60 * NS), am(d / "f"))[1], ok((50 * NS, 60 * NS)))


def test_utimensat_on_directories(px):
    px.setup(lambda d: os.mkdir(d / "dir"))
    px.expect(lambda d: (utimensat(d / "dir", 11 * NS, 12 * NS), am(d / "dir"))[1], ok((11 * NS, 12 * NS)))


def test_utimensat_permissions(px):
    def setup(d):
        write_file(d / "writable", b"x")
        os.chmod(d / "writable", 0o666)
        write_file(d / "readonly", b"x")
        os.chmod(d / "readonly", 0o644)
        write_file(d / "alices", b"x")
        os.chown(d / "alices", ALICE.uid, ALICE.gid)
        os.chmod(d / "alices", 0o400)
    px.setup(setup)
    # times=NULL or both UTIME_NOW: owner, or anyone with write permission
    px.expect(lambda d: utimensat(d / "writable"), ok(0), user=BOB)
    px.expect(lambda d: utimensat(d / "writable", UTIME_NOW, UTIME_NOW), ok(0), user=BOB)
    px.expect(lambda d: utimensat(d / "readonly"), err(errno.EACCES), user=BOB)
    px.expect(lambda d: utimensat(d / "alices"), ok(0), user=ALICE)
    # explicit times: only the owner (or root)
    px.expect(lambda d: utimensat(d / "writable", NS, NS), err(errno.EPERM), user=BOB)
    px.expect(lambda d: utimensat(d / "writable", UTIME_NOW, UTIME_OMIT), err(errno.EPERM), user=BOB)
    px.expect(lambda d: utimensat(d / "alices", NS, 2 * NS), ok(0), user=ALICE)
    px.expect(lambda d: utimensat(d / "alices", 3 * NS, 4 * NS), ok(0))
    px.expect(lambda d: am(d / "alices"), ok((3 * NS, 4 * NS)))


def test_write_sets_mtime_and_ctime_not_atime(px):
    px.setup(lambda d: write_file(d / "f", b"abc"))

    def op(d):
        with open(d / "f", "r+b") as f:
            return changed_times(d / "f", lambda: (f.write(b"X"), f.flush()))
    px.expect(op, ok((False, True, True)))


def test_mtime_is_the_time_of_the_write_not_of_the_close(px):
    """make and rsync compare mtimes: closing a file must not move its mtime past the write."""
    def op(d):
        fd = os.open(d / "f", os.O_CREAT | os.O_WRONLY, 0o644)
        try:
            os.write(fd, pattern(CHUNK + 10, seed=20))
            during = os.fstat(fd).st_mtime_ns
            wait_clock_past(during)
            wait_clock_past(time.clock_gettime_ns(time.CLOCK_REALTIME) + 20_000_000)
        finally:
            os.close(fd)
        return os.stat(d / "f").st_mtime_ns == during
    px.expect(op, ok(True))


def test_times_set_on_an_open_file_survive_its_close(px):
    """cp -p and tar set times through the descriptor before closing it."""
    def op(d):
        fd = os.open(d / "f", os.O_CREAT | os.O_WRONLY, 0o644)
        try:
            os.write(fd, pattern(CHUNK + 10, seed=21))
            futimens(fd, 1_234_567_890 * NS + 5, 1_234_567_891 * NS + 6)
        finally:
            os.close(fd)
        return am(d / "f")
    px.expect(op, ok((1_234_567_890 * NS + 5, 1_234_567_891 * NS + 6)))
    px.remount()
    px.expect(lambda d: am(d / "f"), ok((1_234_567_890 * NS + 5, 1_234_567_891 * NS + 6)))


def test_cp_preserve_keeps_times(px):
    import subprocess
    px.setup(lambda d: (write_file(d / "src", pattern(300_000, seed=22)), utimensat(d / "src", 1_500_000_000 * NS, 1_400_000_000 * NS)))
    px.expect(lambda d: (subprocess.run(["cp", "-p", str(d / "src"), str(d / "dst")], check=True), am(d / "dst"))[1],
              ok((1_500_000_000 * NS, 1_400_000_000 * NS)))


def test_read_updates_atime_when_it_is_older_than_mtime(px):
    """POSIX: read marks atime for update. Linux's default relatime does it too when atime is
    not newer than mtime (so this holds on ext4's relatime and on strictatime)."""
    px.setup(lambda d: (write_file(d / "f", b"data"), utimensat(d / "f", 1000 * NS, 2000 * NS)))

    def op(d):
        before = time.clock_gettime_ns(time.CLOCK_REALTIME) - 10_000_000
        read_file(d / "f")
        return os.stat(d / "f").st_atime_ns >= before, os.stat(d / "f").st_mtime_ns
    px.expect(op, ok((True, 2000 * NS)))


def test_readdir_updates_directory_atime_when_it_is_older_than_mtime(px):
    px.setup(lambda d: (os.mkdir(d / "dir"), write_file(d / "dir" / "f", b""), utimensat(d / "dir", 1000 * NS, 2000 * NS)))

    def op(d):
        before = time.clock_gettime_ns(time.CLOCK_REALTIME) - 10_000_000
        os.listdir(d / "dir")
        return os.stat(d / "dir").st_atime_ns >= before
    px.expect(op, ok(True))


def test_read_and_stat_leave_mtime_and_ctime_alone(px):
    px.setup(lambda d: write_file(d / "f", b"data"))
    px.expect(lambda d: changed_times(d / "f", lambda: (read_file(d / "f"), os.stat(d / "f")))[1:], ok((False, False)))


def test_ctime_changes_on_metadata_operations(px):
    def setup(d):
        write_file(d / "f", b"x")
        os.mkdir(d / "dir")
        os.mkdir(d / "other")
    px.setup(setup)
    ops = {
        "chmod": lambda d: os.chmod(d / "f", 0o600),
        "chown": lambda d: os.chown(d / "f", 10, 10),
        "link": lambda d: os.link(d / "f", d / "f2"),
        "unlink-other-link": lambda d: os.unlink(d / "f2"),
        "rename": lambda d: (os.rename(d / "f", d / "g"), os.rename(d / "g", d / "f")),
        "setxattr": lambda d: os.setxattr(d / "f", "user.k", b"v"),
        "replace-xattr": lambda d: os.setxattr(d / "f", "user.k", b"w"),
        "removexattr": lambda d: os.removexattr(d / "f", "user.k"),
        "truncate": lambda d: os.truncate(d / "f", 5),
        "utimens": lambda d: utimensat(d / "f", NS, NS),
    }
    for name, op in ops.items():
        px.expect(lambda d: (name, changed_times(d / "f", lambda: op(d))[2]), ok((name, True)))
    px.expect(lambda d: changed_times(d / "dir", lambda: os.rename(d / "dir", d / "other" / "dir"),
                                      after_path=d / "other" / "dir")[2], ok(True))
    px.expect(lambda d: changed_times(d / "other", lambda: renameat2(d / "other", d / "f", RENAME_EXCHANGE),
                                      after_path=d / "f")[2], ok(True))


def test_directory_mtime_and_ctime_change_with_its_entries(px):
    px.setup(lambda d: (os.mkdir(d / "dir"), write_file(d / "x", b"x")))
    ops = {
        "create": lambda d: write_file(d / "dir" / "f", b""),
        "mkdir": lambda d: os.mkdir(d / "dir" / "sub"),
        "symlink": lambda d: os.symlink("f", d / "dir" / "l"),
        "mknod": lambda d: os.mkfifo(d / "dir" / "fifo"),
        "link": lambda d: os.link(d / "x", d / "dir" / "x2"),
        "rename-within": lambda d: os.rename(d / "dir" / "f", d / "dir" / "g"),
        "rename-in": lambda d: os.rename(d / "x", d / "dir" / "x"),
        "unlink": lambda d: os.unlink(d / "dir" / "x2"),
        "rmdir": lambda d: os.rmdir(d / "dir" / "sub"),
        "rename-out": lambda d: os.rename(d / "dir" / "g", d / "g"),
    }
    for name, op in ops.items():
        px.expect(lambda d: (name, changed_times(d / "dir", lambda: op(d))[1:]), ok((name, (True, True))))
    # changing an entry's own attributes or contents does not touch the directory
    px.expect(lambda d: changed_times(d / "dir", lambda: (os.chmod(d / "dir" / "x", 0o600), write_file(d / "dir" / "x", b"y")))[1:],
              ok((False, False)))


def test_times_of_new_files_are_now_and_equal(px):
    def op(d):
        before = time.clock_gettime_ns(time.CLOCK_REALTIME) - 10_000_000
        write_file(d / "f", b"")
        os.mkdir(d / "dir")
        after = time.clock_gettime_ns(time.CLOCK_REALTIME) + 10_000_000
        a, m, c = times(d / "f")
        da, dm, dc = times(d / "dir")
        return all(before <= t <= after for t in (a, m, c, da, dm, dc)), m == c, dm == dc
    px.expect(op, ok((True, True, True)))
