"""Failures reach the application where POSIX says, and nothing is reported durable early."""
import errno
import os
import shutil

import pytest

MiB = 1 << 20


def break_uploads(fs):
    """Makes every chunk and pack upload fail: their directories become plain files."""
    for name in ("chunks", "packs"):
        shutil.rmtree(fs.store / name, ignore_errors=True)
        (fs.store / name).write_bytes(b"")


def test_close_returns_the_commit_error_and_the_file_stays_failed(fs):
    break_uploads(fs)
    fd = os.open(fs.path("f"), os.O_CREAT | os.O_WRONLY)
    os.write(fd, os.urandom(2 * MiB))
    with pytest.raises(OSError) as e:
        os.fsync(fd)
    assert e.value.errno == errno.EIO
    # A failed file stays failed: later writes and close report it too.
    with pytest.raises(OSError) as e:
        os.write(fd, b"more")
    assert e.value.errno == errno.EIO
    with pytest.raises(OSError) as e:
        os.close(fd)
    assert e.value.errno == errno.EIO
    # Nothing was published: the file is still empty.
    assert os.path.getsize(fs.path("f")) == 0


def test_a_failed_file_shows_its_committed_state_while_other_handles_are_open(fs):
    fs.path("f").write_bytes(b"committed")
    break_uploads(fs)
    reader = os.open(fs.path("f"), os.O_RDONLY)  # keeps the open file alive past the failure
    try:
        fd = os.open(fs.path("f"), os.O_WRONLY)
        os.pwrite(fd, os.urandom(2 * MiB), 0)
        with pytest.raises(OSError) as e:
            os.fsync(fd)
        assert e.value.errno == errno.EIO
        with pytest.raises(OSError):
            os.close(fd)
        # The lost writes are not shown as if they were stored.
        assert os.fstat(reader).st_size == len(b"committed")
        assert os.pread(reader, 100, 0) == b"committed"
    finally:
        os.close(reader)  # a read-only descriptor lost nothing: its close succeeds


def test_a_chunk_whose_bytes_do_not_match_its_hash_reads_as_eio(fs):
    data = os.urandom(3 * MiB)
    fs.path("victim").write_bytes(data)
    fs.remount()  # nothing of it in memory any more
    objects = sorted(p for d in ("chunks", "packs") for p in (fs.store / d).rglob("*") if p.is_file())
    target = objects[0]
    size = target.stat().st_size
    target.write_bytes(os.urandom(size))
    with pytest.raises(OSError) as e:
        fs.path("victim").read_bytes()
    assert e.value.errno == errno.EIO


def test_one_damaged_chunk_in_a_pack_fails_only_its_own_reads(fs):
    # A chunk's trailing zeros are not stored: every chunk here ends in a non-zero byte, so the
    # pack is exactly the file's 4 MiB (random data ended a chunk in 0x00 one run in 64).
    data = bytearray(os.urandom(4 * MiB))
    for end in range(MiB - 1, 4 * MiB, MiB):
        data[end] |= 1
    data = bytes(data)
    fs.path("victim").write_bytes(data)  # four new chunks: one pack
    fs.remount()
    packs = [p for p in (fs.store / "packs").rglob("*") if p.is_file()]
    assert len(packs) == 1 and packs[0].stat().st_size == 4 * MiB
    with open(packs[0], "r+b") as f:  # one byte of the third chunk
        f.seek(2 * MiB + 4097)
        b = f.read(1)
        f.seek(2 * MiB + 4097)
        f.write(bytes([b[0] ^ 0xFF]))
    with open(fs.path("victim"), "rb", buffering=0) as f:
        assert os.pread(f.fileno(), MiB, 3 * MiB) == data[3 * MiB:]
        assert os.pread(f.fileno(), MiB, 0) == data[:MiB]
        with pytest.raises(OSError) as e:
            os.pread(f.fileno(), 4096, 2 * MiB)
        assert e.value.errno == errno.EIO
        # A sequential reader (read-ahead fetches the pack's run) gets the good chunks and
        # EIO where the damage is, never the damaged bytes.
        f.seek(0)
        assert f.read(2 * MiB) == data[:2 * MiB]
        with pytest.raises(OSError) as e:
            f.read(MiB)
        assert e.value.errno == errno.EIO
