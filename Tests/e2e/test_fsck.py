"""`mossaicfs fsck` finds what is wrong, names it, and --repair fixes what can be fixed."""
import os
import shutil
import sqlite3
import uuid

from mossaic import Filesystem, run

MiB = 1 << 20


def populated(tmp_path, **kw):
    f = Filesystem(tmp_path, **kw)
    f.start()
    try:
        f.path("d").mkdir()
        # Three commits of one new chunk each: three chunk objects (chunks stored together
        # would be one pack, see test_a_lost_pack_...).
        for _ in range(3):
            with open(f.path("d", "big"), "ab") as out:
                out.write(os.urandom(MiB))
        f.path("small").write_bytes(b"s" * 100)
        os.link(f.path("small"), f.path("d", "hard"))
        # fsck refuses a mounted filesystem (the daemon holds cache_dir).
        r = run("fsck", f.source, "-o", f"cache_dir={f.cache}", check=False, env=f.env)
        assert r.returncode != 0 and "in use" in r.stderr
    finally:
        f.stop()
    return f


def fsck(f, *flags):
    return run("fsck", f.source, "-o", f"cache_dir={f.cache}", *flags, check=False, env=f.env)


def test_clean_filesystem_is_clean(tmp_path):
    f = populated(tmp_path)
    r = fsck(f, "--verify")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip().splitlines()[-1].endswith(": clean")
    assert "3 verified" in r.stdout


def test_missing_and_corrupt_objects_are_named(tmp_path):
    f = populated(tmp_path)
    objects = sorted(p for p in (f.store / "chunks").rglob("*") if p.is_file())
    assert len(objects) == 3
    objects[0].unlink()
    objects[1].write_bytes(os.urandom(objects[1].stat().st_size))
    r = fsck(f)
    assert r.returncode == 1
    assert f"missing object: chunks/{objects[0].parent.name}/{objects[0].name}" in r.stdout
    assert "corrupt object:" not in r.stdout  # only --verify downloads
    r = fsck(f, "--verify")
    assert r.returncode == 1
    assert f"corrupt object: chunks/{objects[1].parent.name}/{objects[1].name}" in r.stdout
    assert "NOT clean" in r.stdout


def test_repair_recounts_and_relinks(tmp_path):
    f = populated(tmp_path)
    db = sqlite3.connect(f.cache / "meta.db")
    with db:
        db.execute("UPDATE chunks SET refcount = refcount + 5 WHERE state = 2")
        db.execute("UPDATE inodes SET nlink = 7 WHERE kind = 32768")   # every regular file
        hard = db.execute("SELECT ino FROM dentries WHERE name = CAST('hard' AS BLOB)").fetchone()[0]
        big = db.execute("SELECT ino FROM dentries WHERE name = CAST('big' AS BLOB)").fetchone()[0]
        db.execute("DELETE FROM dentries WHERE ino = ?", (big,))        # an inode with no name
        # Directories: the root (with a subdirectory) and d (without) both counted wrong, d's
        # parent wrong; an inline chunk nothing references with a refcount.
        d = db.execute("SELECT ino FROM dentries WHERE parent = 1 AND name = CAST('d' AS BLOB)").fetchone()[0]
        db.execute("UPDATE inodes SET nlink = 9 WHERE kind = 16384")
        db.execute("UPDATE inodes SET parent = 999 WHERE ino = ?", (d,))
        db.execute("INSERT INTO chunks(hash, length, refcount, state, data) VALUES(randomblob(32), 1, 4, 1, x'00')")
        db.execute("UPDATE usage SET bytes = bytes + 12345")  # statfs's totals, kept by triggers
    db.close()
    r = fsck(f)
    assert r.returncode == 1
    assert "wrong chunk refcount" in r.stdout and "wrong link count" in r.stdout and "inode with links but no name" in r.stdout
    assert "wrong usage totals" in r.stdout
    r = fsck(f, "--repair")
    assert r.returncode == 0, r.stdout
    assert fsck(f, "--verify").returncode == 0
    db = sqlite3.connect(f.cache / "meta.db")
    try:
        assert db.execute("SELECT nlink FROM inodes WHERE ino = 1").fetchone()[0] == 4   # ., .., d, lost+found
        assert db.execute("SELECT nlink, parent FROM inodes WHERE ino = ?", (d,)).fetchone() == (2, 1)
        assert db.execute("SELECT count(*) FROM chunks WHERE length = 1 AND data = x'00'").fetchone()[0] == 0
    finally:
        db.close()
    # The nameless file is in /lost+found, whole.
    f.start()
    try:
        found = f.path("lost+found", f"#{big}")
        assert found.stat().st_size == 3 * MiB
        assert os.stat(f.path("small")).st_nlink == 2 and hard
    finally:
        f.stop()


def test_repair_restores_missing_objects_from_the_disk_cache(tmp_path):
    from s3server import MotoServer
    from test_s3 import s3_env, s3_keys
    with MotoServer(bucket="fsck-e2e") as server:
        prefix = f"fs-{uuid.uuid4().hex[:8]}"
        f = populated(tmp_path, source=f"s3://{server.bucket}/{prefix}", env=s3_env(server))
        client, keys = s3_keys(server, prefix + "/chunks/")
        client.delete_object(Bucket=server.bucket, Key=keys[0])
        r = fsck(f)
        assert r.returncode == 1 and "missing object" in r.stdout
        r = fsck(f, "--repair")
        assert r.returncode == 0 and "restored from the disk cache" in r.stdout, r.stdout
        assert fsck(f, "--verify").returncode == 0


def test_a_lost_pack_is_named_per_chunk_and_restored_as_chunk_objects(tmp_path):
    from s3server import MotoServer
    from test_s3 import s3_env, s3_keys
    with MotoServer(bucket="fsck-packs") as server:
        prefix = f"fs-{uuid.uuid4().hex[:8]}"
        # cache_large_writes: the pack's chunks stay in the writer's disk cache, the local copy
        # fsck restores from (by default only chunks read, or stored alone, are kept there).
        f = Filesystem(tmp_path, options=["cache_large_writes"], source=f"s3://{server.bucket}/{prefix}", env=s3_env(server))
        data = os.urandom(4 * MiB)
        f.start()
        try:
            f.path("packed").write_bytes(data)  # four new chunks in one commit: one pack
        finally:
            f.stop()
        client, packs = s3_keys(server, prefix + "/packs/")
        assert len(packs) == 1
        client.delete_object(Bucket=server.bucket, Key=packs[0])
        r = fsck(f)
        assert r.returncode == 1
        pack_key = packs[0][len(prefix) + 1:]
        assert r.stdout.count(f"missing object: {pack_key} (chunk ") == 4, r.stdout
        r = fsck(f, "--repair")
        assert r.returncode == 0 and r.stdout.count("restored from a local copy as chunks/") == 4, r.stdout
        _, chunks = s3_keys(server, prefix + "/chunks/")
        assert len(chunks) == 4  # each chunk is its own object now, and its row says so
        assert fsck(f, "--verify").returncode == 0
        shutil.rmtree(f.cache / "blobs")  # read back from the store alone
        f.start()
        try:
            assert f.path("packed").read_bytes() == data
        finally:
            f.stop()
