"""Failures reach the application where POSIX says, and nothing is reported durable early."""
import errno
import os
import shutil

import pytest

MiB = 1 << 20


def test_close_returns_the_commit_error_and_the_file_stays_failed(fs):
    # Make every chunk upload fail: the chunks directory becomes a plain file.
    shutil.rmtree(fs.store / "chunks", ignore_errors=True)
    (fs.store / "chunks").write_bytes(b"")
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
    shutil.rmtree(fs.store / "chunks", ignore_errors=True)
    (fs.store / "chunks").write_bytes(b"")
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
    objects = sorted((fs.store / "chunks").rglob("*"))
    target = next(p for p in objects if p.is_file())
    size = target.stat().st_size
    target.write_bytes(os.urandom(size))
    with pytest.raises(OSError) as e:
        fs.path("victim").read_bytes()
    assert e.value.errno == errno.EIO
