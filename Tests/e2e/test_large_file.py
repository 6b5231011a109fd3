"""A 100 MiB file overwritten in the middle, appended to and truncated behaves exactly like the
same operations on a local file, before and after remount; only touched chunks become new
objects, and a small write none (a patch in the metadata)."""
import os
import random

from mossaic import sha256_file

MiB = 1 << 20


def apply(path, op):
    with open(path, "r+b") as f:
        op(f)


def test_overwrite_append_truncate_like_local(fs, tmp_path):
    rng = random.Random(20261121)
    local = tmp_path / "reference"
    remote = fs.path("big")
    data = rng.randbytes(100 * MiB)
    for p in (local, remote):
        with open(p, "wb") as f:
            f.write(data)
    assert sha256_file(local) == sha256_file(remote)

    # 4 KiB in the middle: a patch over its chunk in the metadata, no new object.
    before = fs.chunk_objects()
    patch = rng.randbytes(4096)
    for p in (local, remote):
        apply(p, lambda f: (f.seek(50 * MiB + 12345), f.write(patch)))
    assert sha256_file(local) == sha256_file(remote)
    assert len(fs.chunk_objects() - before) == 0

    # 200 KiB in the middle: too much for a patch; exactly the two chunks it touches are rebuilt.
    before = fs.chunk_objects()
    middle = rng.randbytes(200 * 1024)
    for p in (local, remote):
        apply(p, lambda f: (f.seek(60 * MiB - 100 * 1024), f.write(middle)))
    assert sha256_file(local) == sha256_file(remote)
    assert len(fs.chunk_objects() - before) <= 2

    # Append 3 MiB + 5: the last partial chunk and the new ones.
    before = fs.chunk_objects()
    tail = rng.randbytes(3 * MiB + 5)
    for p in (local, remote):
        with open(p, "ab") as f:
            f.write(tail)
    assert sha256_file(local) == sha256_file(remote)
    assert len(fs.chunk_objects() - before) <= 4

    # Truncate inside a chunk, then extend past the old end: the cut bytes read as zeros.
    before = fs.chunk_objects()
    for p in (local, remote):
        os.truncate(p, 77 * MiB + 77)
    assert fs.chunk_objects() == before  # truncation rewrites no chunk
    for p in (local, remote):
        os.truncate(p, 90 * MiB)
    assert os.path.getsize(remote) == 90 * MiB
    assert sha256_file(local) == sha256_file(remote)

    fs.remount()
    assert sha256_file(local) == sha256_file(remote)
    with open(remote, "rb") as f:
        f.seek(77 * MiB + 77)
        assert f.read(MiB) == bytes(MiB)


def test_sparse_file_stores_only_written_chunks(fs):
    before = fs.chunk_objects()
    p = fs.path("sparse")
    with open(p, "wb") as f:
        f.seek(10 * MiB)
        f.write(os.urandom(MiB))
    assert len(fs.chunk_objects() - before) == 1
    assert os.path.getsize(p) == 11 * MiB
    with open(p, "rb") as f:
        assert f.read(10 * MiB) == bytes(10 * MiB)


def test_two_descriptors_see_each_others_writes(fs):
    p = fs.path("shared")
    with open(p, "wb") as w, open(p, "rb") as r:
        w.write(b"a" * 5000)
        w.flush()
        os.lseek(r.fileno(), 0, os.SEEK_SET)
        assert os.read(r.fileno(), 6000) == b"a" * 5000
