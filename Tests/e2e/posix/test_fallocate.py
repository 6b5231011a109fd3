"""fallocate(2): mode 0, FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE|FALLOC_FL_KEEP_SIZE and
FALLOC_FL_ZERO_RANGE (with and without KEEP_SIZE) behave as on ext4 — contents, size, times and
st_blocks (what `du` shows: fallocated blocks count, punched ones do not). COLLAPSE_RANGE,
INSERT_RANGE and UNSHARE_RANGE are EOPNOTSUPP (documented; ext4 has them)."""
import errno
import os

import pytest

from posixlib import (CHUNK, FALLOC_FL_COLLAPSE_RANGE, FALLOC_FL_INSERT_RANGE, FALLOC_FL_KEEP_SIZE,
                      FALLOC_FL_PUNCH_HOLE, FALLOC_FL_UNSHARE_RANGE, FALLOC_FL_ZERO_RANGE, GiB, err, fallocate, ok,
                      pattern, read_file, write_file)

PUNCH = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE


def on_fd(path, fn, flags=os.O_RDWR):
    fd = os.open(path, flags)
    try:
        return fn(fd)
    finally:
        os.close(fd)


def test_mode_0_extends_with_zeros(px):
    px.setup(lambda d: write_file(d / "f", b"abc"))
    px.expect(lambda d: (on_fd(d / "f", lambda fd: fallocate(fd, 0, 0, 3 * CHUNK)), os.stat(d / "f").st_size)[1], ok(3 * CHUNK))
    px.expect(lambda d: read_file(d / "f") == b"abc" + b"\0" * (3 * CHUNK - 3), ok(True))
    px.expect(lambda d: (on_fd(d / "f", lambda fd: fallocate(fd, 0, 5 * CHUNK, 100)), os.stat(d / "f").st_size)[1],
              ok(5 * CHUNK + 100))
    px.remount()
    px.expect(lambda d: (os.stat(d / "f").st_size, read_file(d / "f")[:4], read_file(d / "f")[-10:]),
              ok((5 * CHUNK + 100, b"abc\0", b"\0" * 10)))


def test_mode_0_inside_the_file_changes_nothing(px):
    data = pattern(2 * CHUNK + 5, seed=30)
    px.setup(lambda d: write_file(d / "f", data))
    px.expect(lambda d: (on_fd(d / "f", lambda fd: fallocate(fd, 0, 100, CHUNK)), read_file(d / "f") == data)[1], ok(True))


def test_mode_0_beyond_4_gib(px):
    px.setup(lambda d: write_file(d / "f", b"x"))
    px.expect(lambda d: (on_fd(d / "f", lambda fd: fallocate(fd, 0, 5 * GiB, 10)), os.stat(d / "f").st_size)[1], ok(5 * GiB + 10))


def test_mode_0_updates_times_like_ext4(px):
    from posixlib import changed_times
    px.setup(lambda d: write_file(d / "f", b"x"))
    px.same(lambda d: on_fd(d / "f", lambda fd: changed_times(d / "f", lambda: fallocate(fd, 0, 0, 2 * CHUNK))))


def test_punch_hole_zeroes_the_range_and_keeps_the_size(px):
    data = pattern(4 * CHUNK + 100, seed=31)
    px.setup(lambda d: write_file(d / "f", data))
    ranges = [(10, 20), (CHUNK - 5, 10), (CHUNK, CHUNK), (3 * CHUNK + 50, CHUNK)]   # past EOF at the end

    def op(d):
        for off, length in ranges:
            on_fd(d / "f", lambda fd: fallocate(fd, PUNCH, off, length))
        return os.stat(d / "f").st_size, read_file(d / "f") == bytes(want)
    want = bytearray(data)
    for off, length in ranges:
        end = min(off + length, len(want))
        want[off:end] = b"\0" * (end - off)
    px.expect(op, ok((len(data), True)))
    px.remount()
    px.expect(lambda d: read_file(d / "f") == bytes(want), ok(True))


def test_punch_hole_at_or_past_the_end_changes_nothing(px):
    data = pattern(CHUNK + 10, seed=34)
    px.setup(lambda d: write_file(d / "f", data))
    for off, length in ((CHUNK + 10, 5), (CHUNK + 11, CHUNK), (5 * CHUNK, 3 * CHUNK)):
        px.expect(lambda d: (on_fd(d / "f", lambda fd: fallocate(fd, PUNCH, off, length)), os.stat(d / "f").st_size,
                             read_file(d / "f") == data)[1:], ok((CHUNK + 10, True)))


def test_punch_hole_of_whole_chunks_frees_their_storage(px):
    write_file(px.mnt / "f", pattern(8 * CHUNK, seed=32))
    before = os.stat(px.mnt / "f").st_blocks * 512
    on_fd(px.mnt / "f", lambda fd: fallocate(fd, PUNCH, CHUNK, 6 * CHUNK))
    px.remount()
    after = os.stat(px.mnt / "f").st_blocks * 512
    assert os.stat(px.mnt / "f").st_size == 8 * CHUNK
    assert before >= 8 * CHUNK, f"8 MiB of data but st_blocks says {before} bytes"
    assert after <= 2 * CHUNK + 64 * 1024, f"after punching 6 of 8 MiB, st_blocks still says {after} bytes"


def test_punch_hole_without_keep_size_is_eopnotsupp(px):
    # (the kernel refuses it before any filesystem sees it, ext4 included)
    px.setup(lambda d: write_file(d / "f", b"x" * 100))
    px.expect(lambda d: on_fd(d / "f", lambda fd: fallocate(fd, FALLOC_FL_PUNCH_HOLE, 0, 10)), err(errno.EOPNOTSUPP))


def test_collapse_insert_and_unshare_are_eopnotsupp(px):
    data = pattern(4 * CHUNK, seed=33)
    write_file(px.mnt / "f", data)
    for mode in (FALLOC_FL_COLLAPSE_RANGE, FALLOC_FL_INSERT_RANGE, FALLOC_FL_UNSHARE_RANGE):
        got = px.run(lambda d: on_fd(d / "f", lambda fd: fallocate(fd, mode, CHUNK, CHUNK)))[1]
        assert got == err(errno.EOPNOTSUPP), f"fallocate mode {mode:#x}: {got}"
    assert read_file(px.mnt / "f") == data


def usage(path):
    """What a case compares of a file after fallocate: size, st_blocks (du) and a digest of the
    contents (which must read as zeros where nothing was written)."""
    import hashlib
    st = os.stat(path)
    return st.st_size, st.st_blocks, hashlib.sha256(read_file(path)).hexdigest()


def fallocated(path, *calls, data=None):
    """Opens `path` (created, with `data` written first if given), makes each fallocate call
    (mode, offset, length), closes it, and returns `usage(path)`."""
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        if data is not None:
            os.write(fd, data)
        for mode, offset, length in calls:
            fallocate(fd, mode, offset, length)
    finally:
        os.close(fd)
    return usage(path)


KEEP = FALLOC_FL_KEEP_SIZE
ZERO = FALLOC_FL_ZERO_RANGE


def test_mode_0_counts_the_allocated_blocks(px):
    # The case: a fallocated file counted 0 blocks, and 2 bytes written into it 8 KiB.
    px.same(lambda d: fallocated(d / "f", (0, 0, 3 * CHUNK)))
    px.same(lambda d: (on_fd(d / "f", lambda fd: os.pwrite(fd, b"ab", 4096)), usage(d / "f"))[1])
    px.same(lambda d: (on_fd(d / "f", lambda fd: os.pwrite(fd, b"x" * 5000, CHUNK + 100)), usage(d / "f"))[1])
    px.same(lambda d: fallocated(d / "g", (0, 100, 10_000), (0, 3 * CHUNK + 5, 7)))
    px.remount()
    px.same(lambda d: (usage(d / "f"), usage(d / "g")))


def test_keep_size_reserves_without_growing(px):
    px.same(lambda d: fallocated(d / "f", (KEEP, 0, 2 * CHUNK)))
    px.same(lambda d: fallocated(d / "g", (KEEP, CHUNK, 3 * CHUNK + 10), data=pattern(CHUNK + 300, seed=40)))
    px.same(lambda d: fallocated(d / "h", (KEEP, 10, 100), data=pattern(5000, seed=41)))
    # Writing into the reservation, past the size, grows the size and not st_blocks.
    px.same(lambda d: (on_fd(d / "g", lambda fd: os.pwrite(fd, b"tail", 2 * CHUNK)), usage(d / "g"))[1])
    px.remount()
    px.same(lambda d: (usage(d / "f"), usage(d / "g"), usage(d / "h")))


def test_truncation_frees_what_keep_size_reserved_past_the_end(px):
    px.same(lambda d: fallocated(d / "f", (KEEP, 0, 4 * CHUNK), data=pattern(CHUNK, seed=42)))
    px.same(lambda d: (os.truncate(d / "f", CHUNK), usage(d / "f"))[1])         # same size: frees past it
    px.same(lambda d: fallocated(d / "g", (KEEP, 0, 4 * CHUNK), data=pattern(CHUNK, seed=43)))
    px.same(lambda d: (os.truncate(d / "g", 2 * CHUNK + 10), usage(d / "g"))[1])  # growing: keeps them
    px.same(lambda d: (os.truncate(d / "g", 100), usage(d / "g"))[1])
    px.remount()
    px.same(lambda d: (usage(d / "f"), usage(d / "g")))


def test_punch_hole_frees_fallocated_blocks_inside_the_file_only(px):
    px.same(lambda d: fallocated(d / "f", (0, 0, 4 * CHUNK), (PUNCH, CHUNK + 100, CHUNK)))
    px.same(lambda d: fallocated(d / "g", (KEEP, 0, 4 * CHUNK), (PUNCH, 0, 8 * CHUNK), data=pattern(CHUNK + 10, seed=44)))
    # (The data's end: a hole inside a chunk's data is not counted out — see the man page.)
    px.same(lambda d: fallocated(d / "h", (PUNCH, 3 * 4096 + 10, 3 * 4096), data=pattern(6 * 4096, seed=45)))
    px.remount()
    px.same(lambda d: (usage(d / "f"), usage(d / "g"), usage(d / "h")))


def test_zero_range_zeroes_and_keeps_the_range_allocated(px):
    data = pattern(3 * CHUNK + 100, seed=46)
    px.same(lambda d: fallocated(d / "f", (ZERO, 100, 5000), (ZERO, CHUNK, CHUNK), data=data))
    px.same(lambda d: fallocated(d / "g", (ZERO, 2 * CHUNK, 2 * CHUNK), data=data))                 # grows the file
    px.same(lambda d: fallocated(d / "h", (ZERO | KEEP, 2 * CHUNK, 2 * CHUNK), data=data))          # does not
    px.same(lambda d: fallocated(d / "e", (ZERO | KEEP, 0, CHUNK)))
    px.expect(lambda d: read_file(d / "f")[:5200] == data[:100] + bytes(5000) + data[5100:5200], ok(True))
    px.remount()
    px.same(lambda d: (usage(d / "f"), usage(d / "g"), usage(d / "h"), usage(d / "e")))


@pytest.mark.parametrize("mode", [PUNCH, ZERO], ids=["punch_hole", "zero_range"])
def test_zeroing_over_unflushed_writes(px, mode):
    def op(d):
        fd = os.open(d / "f", os.O_CREAT | os.O_RDWR, 0o644)
        try:
            os.write(fd, b"A" * (2 * CHUNK))
            fallocate(fd, mode, CHUNK - 10, 20)
            os.pwrite(fd, b"B", CHUNK)
            return os.pread(fd, 30, CHUNK - 15)
        finally:
            os.close(fd)
    want = b"A" * 5 + b"\0" * 10 + b"B" + b"\0" * 9 + b"A" * 5
    px.expect(op, ok(want))
    px.same(lambda d: usage(d / "f"))
    px.remount()
    px.expect(lambda d: read_file(d / "f")[CHUNK - 15:CHUNK + 15], ok(want))


def test_each_mode_updates_times_like_ext4(px):
    from posixlib import changed_times
    for i, (mode, offset, length) in enumerate(((0, 0, 100), (0, 0, 2 * CHUNK), (KEEP, 0, 3 * CHUNK), (PUNCH, 10, 100),
                                                (PUNCH, 5 * CHUNK, 100), (ZERO, 10, 100), (ZERO | KEEP, 4 * CHUNK, 100),
                                                (ZERO, 0, 3 * CHUNK))):
        px.setup(lambda d: write_file(d / f"f{i}", pattern(CHUNK + 7, seed=47)))
        px.same(lambda d: on_fd(d / f"f{i}", lambda fd: changed_times(d / f"f{i}", lambda: fallocate(fd, mode, offset, length))))


def test_invalid_arguments(px):
    px.setup(lambda d: write_file(d / "f", b"x" * 100))
    px.expect(lambda d: on_fd(d / "f", lambda fd: fallocate(fd, 0, 0, 0)), err(errno.EINVAL))
    px.expect(lambda d: on_fd(d / "f", lambda fd: fallocate(fd, 0, -1, 10)), err(errno.EINVAL))
    px.expect(lambda d: on_fd(d / "f", lambda fd: fallocate(fd, PUNCH, 0, 0)), err(errno.EINVAL))
    px.expect(lambda d: on_fd(d / "f", lambda fd: fallocate(fd, 0, 0, 10), flags=os.O_RDONLY), err(errno.EBADF))
    px.expect(lambda d: on_fd(d / "f", lambda fd: fallocate(fd, PUNCH, 0, 10), flags=os.O_RDONLY), err(errno.EBADF))


def test_fallocate_on_a_fifo_is_espipe(px):
    px.setup(lambda d: os.mkfifo(d / "p"))
    px.expect(lambda d: on_fd(d / "p", lambda fd: fallocate(fd, 0, 0, 10), flags=os.O_RDWR | os.O_NONBLOCK), err(errno.ESPIPE))


def test_fallocate_on_append_only_descriptor(px):
    px.setup(lambda d: write_file(d / "f", b"x" * 100))
    px.expect(lambda d: (on_fd(d / "f", lambda fd: fallocate(fd, 0, 0, 1000), flags=os.O_WRONLY | os.O_APPEND),
                         os.stat(d / "f").st_size)[1], ok(1000))
