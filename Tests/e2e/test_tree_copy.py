"""A real tree copied in, compared, remounted; the store is content-addressed and deduplicated."""
import hashlib
import subprocess

SOURCE_TREE = "/usr/include"


def diff_tree(a, b):
    r = subprocess.run(["diff", "-r", "--no-dereference", str(a), str(b)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]


def test_copy_tree_roundtrip_and_dedup(fs):
    subprocess.run(["cp", "-a", SOURCE_TREE, str(fs.path("include"))], check=True)
    diff_tree(SOURCE_TREE, fs.path("include"))

    fs.remount()
    diff_tree(SOURCE_TREE, fs.path("include"))

    # A chunk object is named by the SHA-256 of its bytes; a pack (here: consecutive 1 MiB
    # pages of one file, the last one possibly short) by the SHA-256 of "mossaicfs-pack:" and
    # its chunks' hashes.
    chunks = [p for p in (fs.store / "chunks").rglob("*") if p.is_file()]
    packs = [p for p in (fs.store / "packs").rglob("*") if p.is_file()]
    assert len(chunks) + len(packs) > 100  # headers above the inline limit became objects
    for p in chunks:
        assert hashlib.sha256(p.read_bytes()).hexdigest() == p.name
    mib = 1 << 20
    for p in packs:
        body = p.read_bytes()
        members = b"".join(hashlib.sha256(body[i:i + mib]).digest() for i in range(0, len(body), mib))
        assert hashlib.sha256(b"mossaicfs-pack:" + members).hexdigest() == p.name
        assert p.parent.name == p.name[:2]

    # The same data under other names stores nothing new.
    before = fs.chunk_objects()
    subprocess.run(["cp", "-a", str(fs.path("include")), str(fs.path("again"))], check=True)
    assert fs.chunk_objects() == before
    diff_tree(SOURCE_TREE, fs.path("again"))


def test_mode_owner_times_survive_remount(fs):
    p = fs.path("f")
    p.write_bytes(b"x" * 100)
    # chown clears setuid (as on ext4), so chmod comes after it.
    subprocess.run(["chown", "1234:5678", str(p)], check=True)
    subprocess.run(["chmod", "4751", str(p)], check=True)
    subprocess.run(["touch", "-m", "-d", "2001-02-03 04:05:06.123456789", str(p)], check=True)
    subprocess.run(["touch", "-a", "-d", "1999-12-31 23:59:59", str(p)], check=True)
    before = p.stat()
    fs.remount()
    after = p.stat()
    assert after.st_mode == before.st_mode and oct(after.st_mode & 0o7777) == "0o4751"
    assert (after.st_uid, after.st_gid) == (1234, 5678)
    assert after.st_mtime_ns == before.st_mtime_ns == 981173106123456789
    assert after.st_atime_ns == before.st_atime_ns
    assert after.st_size == 100
