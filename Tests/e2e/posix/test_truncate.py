"""truncate(2)/ftruncate(2): shrink, grow, zeros, errors, times, privileges."""
import errno
import os
import stat

from posixlib import ALICE, BOB, CHUNK, GiB, changed_times, err, ok, pattern, read_file, write_file


def test_shrink_and_grow_read_back_zeros_not_old_bytes(px):
    data = pattern(3 * CHUNK, seed=10)
    px.setup(lambda d: write_file(d / "f", data))

    def op(d):
        os.truncate(d / "f", CHUNK + 100)       # inside the second chunk
        os.truncate(d / "f", 3 * CHUNK)          # grow again: the cut bytes must not come back
        return read_file(d / "f") == data[:CHUNK + 100] + b"\0" * (2 * CHUNK - 100)
    px.expect(op, ok(True))
    px.remount()
    px.expect(lambda d: read_file(d / "f") == data[:CHUNK + 100] + b"\0" * (2 * CHUNK - 100), ok(True))


def test_shrink_and_grow_through_an_open_descriptor_with_unflushed_writes(px):
    def op(d):
        fd = os.open(d / "f", os.O_CREAT | os.O_RDWR, 0o644)
        try:
            os.write(fd, b"A" * 5000)
            os.ftruncate(fd, 10)
            os.ftruncate(fd, 20)
            os.pwrite(fd, b"B", 25)
            return os.pread(fd, 100, 0), os.fstat(fd).st_size
        finally:
            os.close(fd)
    px.expect(op, ok((b"A" * 10 + b"\0" * 15 + b"B", 26)))
    px.remount()
    px.expect(lambda d: read_file(d / "f"), ok(b"A" * 10 + b"\0" * 15 + b"B"))


def test_truncate_to_zero_and_to_exact_chunk_boundaries(px):
    data = pattern(2 * CHUNK + 1, seed=11)
    px.setup(lambda d: write_file(d / "f", data))
    px.expect(lambda d: (os.truncate(d / "f", 2 * CHUNK), read_file(d / "f") == data[:2 * CHUNK])[1], ok(True))
    px.expect(lambda d: (os.truncate(d / "f", CHUNK), read_file(d / "f") == data[:CHUNK])[1], ok(True))
    px.expect(lambda d: (os.truncate(d / "f", 0), read_file(d / "f"))[1], ok(b""))


def test_truncate_beyond_4_gib(px):
    px.setup(lambda d: write_file(d / "f", b"abc"))

    def op(d):
        os.truncate(d / "f", 4 * GiB + 3)
        with open(d / "f", "rb") as f:
            f.seek(4 * GiB - 1)
            tail = f.read()
        return os.stat(d / "f").st_size, tail
    px.expect(op, ok((4 * GiB + 3, b"\0" * 4)))


def test_ftruncate_of_read_only_descriptor_is_einval(px):
    px.setup(lambda d: write_file(d / "f", b"abc"))

    def op(d):
        fd = os.open(d / "f", os.O_RDONLY)
        try:
            os.ftruncate(fd, 1)
        finally:
            os.close(fd)
    px.expect(op, err(errno.EINVAL))
    px.expect(lambda d: read_file(d / "f"), ok(b"abc"))


def test_truncate_errors(px):
    px.setup(lambda d: (write_file(d / "f", b"abc"), os.mkdir(d / "dir")))
    px.expect(lambda d: os.truncate(d / "f", -1), err(errno.EINVAL))
    px.expect(lambda d: os.truncate(d / "dir", 0), err(errno.EISDIR))
    px.expect(lambda d: os.truncate(d / "missing", 0), err(errno.ENOENT))


def test_truncate_needs_write_permission(px):
    px.setup(lambda d: (write_file(d / "f", b"abc", mode=0o644), write_file(d / "w", b"abc", mode=0o666)))
    px.expect(lambda d: os.truncate(d / "f", 0), err(errno.EACCES), user=ALICE)
    px.expect(lambda d: os.truncate(d / "w", 1), ok(None), user=ALICE)
    px.expect(lambda d: read_file(d / "w"), ok(b"a"))


def test_truncate_updates_mtime_and_ctime_when_the_size_changes(px):
    px.setup(lambda d: write_file(d / "f", b"abcdef"))
    px.expect(lambda d: changed_times(d / "f", lambda: os.truncate(d / "f", 2))[1:], ok((True, True)))
    px.same(lambda d: changed_times(d / "f", lambda: os.truncate(d / "f", 2))[1:])

    def ftrunc(d):
        fd = os.open(d / "f", os.O_WRONLY)
        try:
            return changed_times(d / "f", lambda: os.ftruncate(fd, 100))[1:]
        finally:
            os.close(fd)
    px.expect(ftrunc, ok((True, True)))


def test_truncate_by_unprivileged_writer_clears_setuid_and_setgid(px):
    px.setup(lambda d: write_file(d / "f", b"abcdef"))
    px.setup(lambda d: (os.chown(d / "f", ALICE.uid, ALICE.gid), os.chmod(d / "f", 0o6775)))
    px.expect(lambda d: (os.truncate(d / "f", 1), stat.S_IMODE(os.stat(d / "f").st_mode))[1], ok(0o775), user=ALICE)


def test_truncate_by_root_keeps_setuid(px):
    px.setup(lambda d: write_file(d / "f", b"abcdef", mode=0o4755))
    px.same(lambda d: (os.truncate(d / "f", 1), stat.S_IMODE(os.stat(d / "f").st_mode))[1])


def test_truncate_of_other_users_file_by_group_member(px):
    px.setup(lambda d: write_file(d / "f", b"abcdef"))
    px.setup(lambda d: (os.chown(d / "f", BOB.uid, ALICE.groups[0]), os.chmod(d / "f", 0o660)))
    px.expect(lambda d: (os.truncate(d / "f", 3), read_file(d / "f"))[1], ok(b"abc"), user=ALICE)
