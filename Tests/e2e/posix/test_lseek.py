"""lseek(2): SEEK_SET/CUR/END, and SEEK_DATA/SEEK_HOLE over chunk-aligned holes (holes of
whole 1 MiB chunks are reported exactly as on ext4; finer holes may be reported as data)."""
import os
import subprocess

from posixlib import CHUNK, GiB, errname, ok, pattern, read_file, write_file


def seeks(path, queries):
    """[(whence name, offset) -> result or errno] for each query, on one read-only descriptor."""
    fd = os.open(path, os.O_RDONLY)
    out = []
    try:
        for whence, offset in queries:
            try:
                out.append(os.lseek(fd, offset, {"SET": os.SEEK_SET, "CUR": os.SEEK_CUR, "END": os.SEEK_END,
                                                 "DATA": os.SEEK_DATA, "HOLE": os.SEEK_HOLE}[whence]))
            except OSError as e:
                out.append(errname(e.errno))
    finally:
        os.close(fd)
    return out


def sparse(d, name="f"):
    """data [0, 1 MiB) · hole [1, 3 MiB) · data [3, 4 MiB) · hole [4, 6 MiB) — size 6 MiB."""
    with open(d / name, "wb") as f:
        f.write(pattern(CHUNK, seed=40))
        f.seek(3 * CHUNK)
        f.write(pattern(CHUNK, seed=41))
        f.truncate(6 * CHUNK)


def test_set_cur_end(px):
    px.setup(lambda d: write_file(d / "f", b"0123456789"))
    px.expect(lambda d: seeks(d / "f", [("SET", 3), ("CUR", 2), ("CUR", -5), ("END", 0), ("END", -4), ("SET", 100),
                                        ("END", 5), ("SET", -1), ("CUR", -1000)]),
              ok([3, 5, 0, 10, 6, 100, 15, "EINVAL", "EINVAL"]))


def test_seek_data_and_hole_on_a_dense_file(px):
    px.setup(lambda d: write_file(d / "f", pattern(2 * CHUNK + 10, seed=42)))
    n = 2 * CHUNK + 10
    px.expect(lambda d: seeks(d / "f", [("DATA", 0), ("HOLE", 0), ("DATA", CHUNK + 3), ("HOLE", CHUNK + 3),
                                        ("DATA", n), ("HOLE", n), ("DATA", n + 1), ("DATA", -1)]),
              ok([0, n, CHUNK + 3, n, "ENXIO", "ENXIO", "ENXIO", "ENXIO"]))


def test_seek_data_and_hole_on_an_empty_file(px):
    px.setup(lambda d: write_file(d / "f", b""))
    px.expect(lambda d: seeks(d / "f", [("DATA", 0), ("HOLE", 0)]), ok(["ENXIO", "ENXIO"]))


def test_seek_data_and_hole_over_chunk_aligned_holes(px):
    px.setup(sparse)
    queries = [("DATA", 0), ("HOLE", 0), ("HOLE", 100), ("DATA", CHUNK), ("DATA", 2 * CHUNK + 5), ("HOLE", 3 * CHUNK),
               ("DATA", 4 * CHUNK), ("HOLE", 4 * CHUNK), ("HOLE", 6 * CHUNK - 1)]
    want = [0, CHUNK, CHUNK, 3 * CHUNK, 3 * CHUNK, 4 * CHUNK, "ENXIO", 4 * CHUNK, 6 * CHUNK - 1]
    px.expect(lambda d: seeks(d / "f", queries), ok(want))
    px.remount()
    px.expect(lambda d: seeks(d / "f", queries), ok(want))


def test_seek_data_after_a_hole_made_by_truncate_and_write_past_4_gib(px):
    def setup(d):
        with open(d / "f", "wb") as f:
            f.truncate(5 * GiB)
            f.write(b"x")          # at 0
            f.seek(5 * GiB - CHUNK)
            f.write(pattern(CHUNK, seed=43))
    px.setup(setup)
    # One byte at 0: ext4 reports the hole from 4 KiB; mossaicfs documents that the zeros after
    # a chunk's last non-zero byte are not stored and count as a hole, so anywhere in (0, 1 MiB].
    hole, data_from_1m, data_from_4g, hole_at_end = seeks(
        px.mnt / "f", [("HOLE", 0), ("DATA", CHUNK), ("DATA", 4 * GiB), ("HOLE", 5 * GiB - CHUNK)])
    assert 1 <= hole <= CHUNK, hole
    assert (data_from_1m, data_from_4g, hole_at_end) == (5 * GiB - CHUNK, 5 * GiB - CHUNK, 5 * GiB)
    with open(px.mnt / "f", "rb") as f:
        f.seek(hole)
        assert f.read(CHUNK - hole) == bytes(CHUNK - hole)


def test_seek_data_sees_unflushed_writes(px):
    def op(d):
        fd = os.open(d / "f", os.O_CREAT | os.O_RDWR, 0o644)
        try:
            os.ftruncate(fd, 4 * CHUNK)
            os.pwrite(fd, pattern(CHUNK, seed=44), 2 * CHUNK)
            return os.lseek(fd, 0, os.SEEK_DATA), os.lseek(fd, 2 * CHUNK, os.SEEK_HOLE)
        finally:
            os.close(fd)
    px.expect(op, ok((2 * CHUNK, 3 * CHUNK)))


def test_seek_hole_after_punch_hole(px):
    from posixlib import FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, fallocate
    px.setup(lambda d: write_file(d / "f", pattern(4 * CHUNK, seed=45)))

    def op(d):
        fd = os.open(d / "f", os.O_RDWR)
        try:
            fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, CHUNK, 2 * CHUNK)
        finally:
            os.close(fd)
        return seeks(d / "f", [("HOLE", 0), ("DATA", CHUNK), ("HOLE", 3 * CHUNK)])
    px.expect(op, ok([CHUNK, 3 * CHUNK, 4 * CHUNK]))


def test_cp_keeps_a_sparse_file_sparse(px):
    px.setup(sparse)
    px.expect(lambda d: (subprocess.run(["cp", "--sparse=auto", str(d / "f"), str(d / "copy")], check=True),
                         read_file(d / "copy") == read_file(d / "f"))[1], ok(True))
    st = os.stat(px.mnt / "copy")
    assert st.st_blocks * 512 <= 2 * CHUNK + 64 * 1024, f"the copy of 2 MiB of data in 6 MiB uses {st.st_blocks * 512} bytes"
    assert seeks(px.mnt / "copy", [("HOLE", 0), ("DATA", CHUNK)]) == [CHUNK, 3 * CHUNK]
