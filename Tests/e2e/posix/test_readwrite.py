"""read(2)/write(2)/pread/pwrite, O_APPEND, holes, files beyond 4 GiB, unlinked-but-open files,
mmap, fsync."""
import errno
import mmap
import os

from posixlib import CHUNK, GiB, MiB, err, ok, pattern, read_file, write_file


def test_pwrite_pread_at_offsets_and_read_past_eof(px):
    def op(d):
        fd = os.open(d / "f", os.O_CREAT | os.O_RDWR, 0o644)
        try:
            os.pwrite(fd, b"abcdef", 0)
            os.pwrite(fd, b"XY", 2)
            out = [os.pread(fd, 100, 0), os.pread(fd, 3, 4), os.pread(fd, 10, 6), os.pread(fd, 10, 1000)]
            os.lseek(fd, 0, os.SEEK_SET)
            out.append(os.read(fd, 4))
            out.append(os.read(fd, 100))
            out.append(os.read(fd, 100))
            return out, os.fstat(fd).st_size
        finally:
            os.close(fd)
    px.expect(op, ok(([b"abXYef", b"ef", b"", b"", b"abXY", b"ef", b""], 6)))


def test_write_across_chunk_boundaries_reads_back(px):
    data = pattern(3 * CHUNK + 12345, seed=1)

    def op(d):
        fd = os.open(d / "f", os.O_CREAT | os.O_RDWR, 0o644)
        try:
            os.pwrite(fd, data, 0)
            os.pwrite(fd, b"#" * 10, CHUNK - 5)
            os.pwrite(fd, b"%" * 10, 2 * CHUNK - 5)
            return os.pread(fd, 20, CHUNK - 10), os.pread(fd, 20, 2 * CHUNK - 10)
        finally:
            os.close(fd)
    px.same(op)
    px.expect(lambda d: read_file(d / "f") == read_file(px.ref / "f"), ok(True))
    px.remount()
    px.expect(lambda d: read_file(d / "f") == read_file(px.ref / "f"), ok(True))


def test_o_append_writes_at_end_whatever_the_offset(px):
    def op(d):
        write_file(d / "f", b"0123456789")
        fd = os.open(d / "f", os.O_WRONLY | os.O_APPEND)
        try:
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, b"AB")
            pos = os.lseek(fd, 0, os.SEEK_CUR)
            os.pwrite(fd, b"CD", 0)  # Linux: pwrite on O_APPEND appends too
            return pos
        finally:
            os.close(fd)
    px.expect(op, ok(12))
    px.expect(lambda d: read_file(d / "f"), ok(b"0123456789ABCD"))


def test_o_append_from_two_descriptors_interleaves_without_overwriting(px):
    def op(d):
        a = os.open(d / "f", os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o644)
        b = os.open(d / "f", os.O_WRONLY | os.O_APPEND)
        try:
            for i in range(50):
                os.write(a, b"a%02d|" % i)
                os.write(b, b"b%02d|" % i)
        finally:
            os.close(a)
            os.close(b)
        return read_file(d / "f")
    px.same(op)
    px.expect(lambda d: len(read_file(d / "f")), ok(400))


def test_o_append_after_remount_appends_to_committed_data(px):
    px.setup(lambda d: write_file(d / "f", pattern(CHUNK + 7, seed=2)))
    px.remount()

    def op(d):
        with open(d / "f", "ab") as f:
            f.write(b"tail")
        return len(read_file(d / "f")), read_file(d / "f")[-8:]
    px.same(op)
    px.expect(lambda d: os.stat(d / "f").st_size, ok(CHUNK + 11))


def test_read_on_write_only_and_write_on_read_only_descriptor_are_ebadf(px):
    px.setup(lambda d: write_file(d / "f", b"data"))

    def read_wronly(d):
        fd = os.open(d / "f", os.O_WRONLY)
        try:
            return os.read(fd, 4)
        finally:
            os.close(fd)

    def write_rdonly(d):
        fd = os.open(d / "f", os.O_RDONLY)
        try:
            return os.write(fd, b"x")
        finally:
            os.close(fd)
    px.expect(read_wronly, err(errno.EBADF))
    px.expect(write_rdonly, err(errno.EBADF))


def test_write_past_end_leaves_a_hole_of_zeros(px):
    def op(d):
        fd = os.open(d / "f", os.O_CREAT | os.O_RDWR, 0o644)
        try:
            os.pwrite(fd, b"start", 0)
            os.pwrite(fd, b"end", 3 * CHUNK + 100)
            return os.fstat(fd).st_size, os.pread(fd, 10, CHUNK), os.pread(fd, 8, 3 * CHUNK + 98)
        finally:
            os.close(fd)
    px.expect(op, ok((3 * CHUNK + 103, b"\0" * 10, b"\0\0end")))
    px.remount()
    px.expect(lambda d: read_file(d / "f") == b"start" + b"\0" * (3 * CHUNK + 95) + b"end", ok(True))


def test_sparse_file_holes_take_no_storage(px):
    def op(d):
        with open(d / "f", "wb") as f:
            f.truncate(256 * MiB)
            f.seek(100 * MiB)
            f.write(b"x")
    px.setup(op)
    px.remount()
    st = os.stat(px.mnt / "f")
    assert st.st_size == 256 * MiB
    assert st.st_blocks * 512 <= CHUNK, f"a 256 MiB file holding one byte uses {st.st_blocks * 512} bytes"
    with open(px.mnt / "f", "rb") as f:
        f.seek(100 * MiB - 3)
        assert f.read(6) == b"\0\0\0x\0\0"


def test_file_larger_than_4_gib(px):
    """Offsets and sizes past 2^32 (a sparse file, so nothing big is written)."""
    def op(d):
        fd = os.open(d / "big", os.O_CREAT | os.O_RDWR, 0o644)
        try:
            os.pwrite(fd, b"head", 0)
            os.pwrite(fd, b"<across>", 4 * GiB - 4)       # straddles 2^32
            os.pwrite(fd, b"far", 5 * GiB + 12345)
            return (os.fstat(fd).st_size, os.pread(fd, 8, 4 * GiB - 4), os.pread(fd, 10, 5 * GiB + 12340),
                    os.pread(fd, 4, 2 * GiB))
        finally:
            os.close(fd)
    want = (5 * GiB + 12348, b"<across>", b"\0" * 5 + b"far", b"\0" * 4)
    px.expect(op, ok(want))
    px.remount()

    def reread(d):
        with open(d / "big", "rb") as f:
            f.seek(4 * GiB - 4)
            a = f.read(8)
            f.seek(5 * GiB + 12340)
            return os.stat(d / "big").st_size, a, f.read(100)
    px.expect(reread, ok((5 * GiB + 12348, b"<across>", b"\0" * 5 + b"far")))
    st = os.stat(px.mnt / "big")
    assert st.st_blocks * 512 <= 4 * CHUNK, f"a sparse 5 GiB file uses {st.st_blocks * 512} bytes"


def test_unlinked_open_file_stays_readable_and_writable_until_last_close(px):
    def op(d):
        fd = os.open(d / "f", os.O_CREAT | os.O_RDWR, 0o644)
        try:
            os.write(fd, pattern(2 * CHUNK, seed=3))
            os.fsync(fd)
            os.unlink(d / "f")
            gone = not os.path.exists(d / "f")
            os.pwrite(fd, b"after-unlink", 2 * CHUNK + 10)
            st = os.fstat(fd)
            data = os.pread(fd, 30, 2 * CHUNK)
            return gone, st.st_nlink, st.st_size, data, os.pread(fd, 16, 0) == pattern(16, seed=3)
        finally:
            os.close(fd)
    px.expect(op, ok((True, 0, 2 * CHUNK + 22, b"\0" * 10 + b"after-unlink", True)))
    px.expect(lambda d: os.listdir(d), ok([]))


def test_unlinked_file_open_by_two_descriptors_survives_the_first_close(px):
    px.setup(lambda d: write_file(d / "f", b"shared bytes"))

    def op(d):
        a = os.open(d / "f", os.O_RDONLY)
        b = os.open(d / "f", os.O_RDWR)
        os.unlink(d / "f")
        os.close(a)
        try:
            os.pwrite(b, b"S", 0)
            return os.pread(b, 100, 0)
        finally:
            os.close(b)
    px.expect(op, ok(b"Shared bytes"))


def test_file_replaced_by_rename_stays_readable_through_old_descriptor(px):
    px.setup(lambda d: (write_file(d / "old", b"old contents"), write_file(d / "new", b"new")))

    def op(d):
        fd = os.open(d / "old", os.O_RDONLY)
        try:
            os.rename(d / "new", d / "old")
            return os.read(fd, 100), os.fstat(fd).st_nlink, read_file(d / "old")
        finally:
            os.close(fd)
    px.expect(op, ok((b"old contents", 0, b"new")))


def test_fsync_and_fdatasync_succeed_and_data_survives_remount(px):
    def op(d):
        fd = os.open(d / "f", os.O_CREAT | os.O_WRONLY, 0o644)
        try:
            os.write(fd, pattern(CHUNK + 1, seed=4))
            os.fsync(fd)
            os.write(fd, b"more")
            os.fdatasync(fd)
        finally:
            os.close(fd)
    px.expect(op, ok(None))
    px.remount()
    px.expect(lambda d: read_file(d / "f") == pattern(CHUNK + 1, seed=4) + b"more", ok(True))


def test_shared_writable_mmap_persists(px):
    px.setup(lambda d: write_file(d / "f", b"\x01" * (2 * CHUNK)))

    def op(d):
        with open(d / "f", "r+b") as f:
            m = mmap.mmap(f.fileno(), 0)
            m[10:15] = b"mmap!"
            m[CHUNK + 1:CHUNK + 3] = b"ok"
            m.flush()
            m.close()
        return read_file(d / "f")[8:17], read_file(d / "f")[CHUNK:CHUNK + 4]
    px.expect(op, ok((b"\x01\x01mmap!\x01\x01", b"\x01ok\x01")))
    px.remount()
    px.expect(lambda d: read_file(d / "f")[10:15], ok(b"mmap!"))


def test_private_mmap_reads_file_and_writes_stay_private(px):
    px.setup(lambda d: write_file(d / "f", pattern(CHUNK + 100, seed=5)))

    def op(d):
        with open(d / "f", "rb") as f:
            m = mmap.mmap(f.fileno(), 0, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ | mmap.PROT_WRITE)
            head = bytes(m[CHUNK - 2:CHUNK + 2])
            m[0:4] = b"PRIV"
            m.close()
        return head, read_file(d / "f")[:4]
    px.same(op)


def test_zero_length_read_and_write(px):
    def op(d):
        fd = os.open(d / "f", os.O_CREAT | os.O_RDWR, 0o644)
        try:
            return os.write(fd, b""), os.read(fd, 0), os.fstat(fd).st_size
        finally:
            os.close(fd)
    px.expect(op, ok((0, b"", 0)))


def test_overwrite_in_place_keeps_other_bytes(px):
    base = pattern(2 * CHUNK + 500, seed=6)
    px.setup(lambda d: write_file(d / "f", base))
    px.remount()

    def op(d):
        with open(d / "f", "r+b") as f:
            f.seek(CHUNK - 1)
            f.write(b"XYZ")
        return read_file(d / "f") == base[:CHUNK - 1] + b"XYZ" + base[CHUNK + 2:]
    px.expect(op, ok(True))
