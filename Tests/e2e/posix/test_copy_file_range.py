"""copy_file_range(2): results as on ext4 for any range; chunk-aligned ranges share chunks —
no bytes are read or written and nothing new is stored — and the copies stay independent."""
import errno
import os
import shutil
import subprocess

from posixlib import CHUNK, GiB, MiB, err, ok, pattern, read_file, stored_objects, write_file


def cfr(src, dst, count, off_src=None, off_dst=None, src_flags=os.O_RDONLY, dst_flags=os.O_WRONLY | os.O_CREAT):
    """Copies until `count` bytes are done or a call returns 0; returns the total and the sizes."""
    a = os.open(src, src_flags)
    b = os.open(dst, dst_flags, 0o644)
    try:
        done = 0
        while done < count:
            n = os.copy_file_range(a, b, count - done,
                                   None if off_src is None else off_src + done,
                                   None if off_dst is None else off_dst + done)
            if n == 0:
                break
            done += n
        return done, os.lseek(a, 0, os.SEEK_CUR), os.lseek(b, 0, os.SEEK_CUR)
    finally:
        os.close(a)
        os.close(b)


def test_unaligned_copies_like_ext4(px):
    data = pattern(3 * CHUNK + 777, seed=50)
    px.setup(lambda d: (write_file(d / "src", data), write_file(d / "dst", pattern(CHUNK // 2, seed=51))))
    cases = [(100, 0, 10), (3 * CHUNK, 5, CHUNK - 3), (CHUNK + 1, CHUNK - 1, 2 * CHUNK + 9), (500, 3 * CHUNK + 700, 0)]
    for count, off_src, off_dst in cases:
        px.expect(lambda d: cfr(d / "src", d / "dst", count, off_src, off_dst, dst_flags=os.O_WRONLY)[0],
                  ok(min(count, len(data) - off_src)))
    px.same(lambda d: (read_file(d / "dst") == read_file(px.ref / "dst"), os.stat(d / "dst").st_size))
    px.remount()
    px.expect(lambda d: read_file(d / "dst") == read_file(px.ref / "dst"), ok(True))


def test_copy_with_file_offsets_advances_them(px):
    px.setup(lambda d: write_file(d / "src", b"0123456789"))

    def op(d):
        a = os.open(d / "src", os.O_RDONLY)
        b = os.open(d / "dst", os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            os.lseek(a, 2, os.SEEK_SET)
            n = os.copy_file_range(a, b, 5)
            return n, os.lseek(a, 0, os.SEEK_CUR), os.lseek(b, 0, os.SEEK_CUR)
        finally:
            os.close(a)
            os.close(b)
    px.expect(op, ok((5, 7, 5)))
    px.expect(lambda d: read_file(d / "dst"), ok(b"23456"))


def test_copy_at_and_past_end_of_source(px):
    px.setup(lambda d: write_file(d / "src", b"abc"))
    px.expect(lambda d: cfr(d / "src", d / "dst", 100, 1, 0)[0], ok(2))
    px.expect(lambda d: cfr(d / "src", d / "dst2", 100, 3, 0)[0], ok(0))
    px.expect(lambda d: cfr(d / "src", d / "dst3", 100, 50, 0)[0], ok(0))


def test_copy_errors(px):
    px.setup(lambda d: (write_file(d / "a", pattern(1000, seed=52)), write_file(d / "b", b"x"), os.mkdir(d / "dir")))
    px.expect(lambda d: cfr(d / "a", d / "b", 10, 0, 0, dst_flags=os.O_RDONLY), err(errno.EBADF))
    px.expect(lambda d: cfr(d / "a", d / "b", 10, 0, 0, src_flags=os.O_WRONLY), err(errno.EBADF))
    px.expect(lambda d: cfr(d / "a", d / "b", 10, 0, 0, dst_flags=os.O_WRONLY | os.O_APPEND), err(errno.EBADF))
    px.expect(lambda d: cfr(d / "a", d / "a", 100, 0, 50, dst_flags=os.O_WRONLY), err(errno.EINVAL))
    px.expect(lambda d: cfr(d / "dir", d / "b", 10, 0, 0, dst_flags=os.O_WRONLY), err(errno.EISDIR))

    def with_flags(d):
        a, b = os.open(d / "a", os.O_RDONLY), os.open(d / "b", os.O_WRONLY)
        try:
            import ctypes
            from posixlib import libc
            r = libc.copy_file_range(a, None, b, None, ctypes.c_size_t(10), ctypes.c_uint(1))
            if r < 0:
                e = ctypes.get_errno()
                raise OSError(e, os.strerror(e))
            return r
        finally:
            os.close(a)
            os.close(b)
    px.expect(with_flags, err(errno.EINVAL))


def test_copy_within_one_file_non_overlapping(px):
    data = pattern(4 * CHUNK, seed=53)
    px.setup(lambda d: write_file(d / "f", data))
    px.expect(lambda d: cfr(d / "f", d / "f", CHUNK, 0, 2 * CHUNK, dst_flags=os.O_WRONLY)[0], ok(CHUNK))
    px.expect(lambda d: read_file(d / "f") == data[:2 * CHUNK] + data[:CHUNK] + data[3 * CHUNK:], ok(True))


def test_copy_sees_unflushed_writes_of_the_source(px):
    def op(d):
        fd = os.open(d / "src", os.O_CREAT | os.O_RDWR, 0o644)
        try:
            os.write(fd, pattern(2 * CHUNK, seed=54))
            os.pwrite(fd, b"DIRTY", CHUNK)
            n = cfr(d / "src", d / "dst", 2 * CHUNK, 0, 0)[0]
        finally:
            os.close(fd)
        return n, read_file(d / "dst") == read_file(d / "src"), read_file(d / "dst")[CHUNK:CHUNK + 5]
    px.expect(op, ok((2 * CHUNK, True, b"DIRTY")))


def test_copies_stay_independent(px):
    data = pattern(4 * CHUNK + 10, seed=55)
    px.setup(lambda d: write_file(d / "src", data))

    def op(d):
        cfr(d / "src", d / "dst", len(data), 0, 0)
        with open(d / "src", "r+b") as f:
            f.seek(CHUNK + 5)
            f.write(b"changed-src")
        with open(d / "dst", "r+b") as f:
            f.seek(2 * CHUNK + 5)
            f.write(b"changed-dst")
        s, t = read_file(d / "src"), read_file(d / "dst")
        return s[CHUNK:CHUNK + 20] == data[CHUNK:CHUNK + 5] + b"changed-src" + data[CHUNK + 16:CHUNK + 20], \
            t[CHUNK:CHUNK + 20] == data[CHUNK:CHUNK + 20], t[2 * CHUNK + 5:2 * CHUNK + 16], s[2 * CHUNK + 5:2 * CHUNK + 16] == \
            data[2 * CHUNK + 5:2 * CHUNK + 16]
    px.expect(op, ok((True, True, b"changed-dst", True)))
    px.expect(lambda d: (os.unlink(d / "src"), read_file(d / "dst")[:CHUNK] == data[:CHUNK])[1], ok(True))
    px.remount()
    px.expect(lambda d: (len(read_file(d / "dst")), read_file(d / "dst")[3 * CHUNK:] == data[3 * CHUNK:]), ok((len(data), True)))


def test_aligned_copy_into_the_middle_of_an_existing_file(px):
    a, b = pattern(3 * CHUNK, seed=56), pattern(5 * CHUNK + 3, seed=57)
    px.setup(lambda d: (write_file(d / "a", a), write_file(d / "b", b)))
    px.expect(lambda d: (cfr(d / "a", d / "b", 2 * CHUNK, CHUNK, 2 * CHUNK, dst_flags=os.O_WRONLY)[0],
                         read_file(d / "b") == b[:2 * CHUNK] + a[CHUNK:] + b[4 * CHUNK:])[1], ok(True))
    px.expect(lambda d: (cfr(d / "a", d / "b", 3 * CHUNK, 0, 6 * CHUNK, dst_flags=os.O_WRONLY)[0], os.stat(d / "b").st_size)[1],
              ok(9 * CHUNK))
    px.remount()
    px.expect(lambda d: (read_file(d / "b")[5 * CHUNK + 3:6 * CHUNK] == b"\0" * (CHUNK - 3), read_file(d / "b")[6 * CHUNK:] == a),
              ok((True, True)))


def without_store_reads(fs, action):
    """Runs `action()` on a fresh mount of `fs` that cannot have read a chunk: the blob cache
    is emptied, and a local store's chunk and pack directories are moved away for the
    duration, so any chunk read would fail (EIO) and any chunk written would appear in a new
    directory. Returns (action's result, objects written meanwhile, chunks in the blob cache)."""
    fs.stop()
    shutil.rmtree(fs.cache / "blobs", ignore_errors=True)
    os.mkdir(fs.cache / "blobs", 0o700)
    local = not fs.source.startswith("s3://")
    before = stored_objects(fs)
    dirs = [(fs.store / name, fs.store / (name + ".away")) for name in ("chunks", "packs")]
    if local:
        for d, away in dirs:
            if d.exists():
                os.rename(d, away)
    try:
        fs.start()
        result = action()
        if local:
            new = {p.name for d, _ in dirs if d.exists() for p in d.rglob("*") if p.is_file()}
        else:
            new = set(stored_objects(fs)) - set(before)
        cached = [p.name for p in (fs.cache / "blobs").rglob("*") if p.is_file()]
        fs.stop()
    finally:
        if local:
            for d, away in dirs:
                if d.exists():  # written during the action: keep them, it is a failure anyway
                    for p in d.rglob("*"):
                        if p.is_file():
                            (away / p.parent.name).mkdir(parents=True, exist_ok=True)
                            os.replace(p, away / p.parent.name / p.name)
                    shutil.rmtree(d)
                if away.exists():
                    os.rename(away, d)
        if fs.mount is None:
            fs.start()
    return result, new, cached


def test_chunk_aligned_copy_shares_chunks_and_moves_no_bytes(px):
    data = pattern(8 * CHUNK + 123, seed=58)
    write_file(px.mnt / "src", data)
    before = stored_objects(px.fs)
    result, new, cached = without_store_reads(px.fs, lambda: cfr(px.mnt / "src", px.mnt / "dst", len(data), 0, 0))
    assert result == (len(data), 0, 0), result
    assert not new, f"copy_file_range stored {len(new)} new chunk objects"
    assert not cached, f"copy_file_range read {len(cached)} chunks of the source"
    assert read_file(px.mnt / "dst") == data
    assert stored_objects(px.fs) == before
    # shared chunks keep the copy alive when the original goes
    os.unlink(px.mnt / "src")
    px.remount()
    assert read_file(px.mnt / "dst") == data


def test_cp_reflink_auto_of_a_1_gib_file_stores_nothing_new(fs):
    """A 1 GiB file of distinct chunks copied with cp --reflink=auto on a local store whose
    chunks are out of reach during the copy: it can only succeed by sharing chunks."""
    with open(fs.path("big"), "wb") as f:
        for i in range(1024):
            f.write(os.urandom(MiB))
    size = os.stat(fs.path("big")).st_size
    assert size == GiB
    before = fs.chunk_objects()
    result, new, cached = without_store_reads(
        fs, lambda: subprocess.run(["cp", "--reflink=auto", str(fs.path("big")), str(fs.path("copy"))],
                                   capture_output=True, text=True))
    assert result.returncode == 0, result.stderr
    assert not new, f"cp stored {len(new)} new chunk objects"
    assert fs.chunk_objects() == before
    assert os.stat(fs.path("copy")).st_size == GiB
    r = subprocess.run(["cmp", str(fs.path("big")), str(fs.path("copy"))], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
