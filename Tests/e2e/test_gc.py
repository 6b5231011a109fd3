"""`mossaicfs gc` deletes what nothing references once it is older than the grace period, keeps
what the metadata or any metadata snapshot still references, and refuses to run while the
filesystem is mounted read-write — on the local store and on S3 (moto)."""
import hashlib
import os
import uuid

import pytest

from mossaic import Filesystem, Mount, random_file, run, s3_env, sha256_file
from s3server import MotoServer

MiB = 1 << 20
HOUR = 3600


@pytest.fixture(scope="module")
def moto():
    with MotoServer(bucket="gc-e2e") as server:
        yield server


class Store:
    """The objects of one filesystem's store, local directory or S3, by key."""

    def __init__(self, fs, server=None, prefix=None):
        self.fs, self.server, self.prefix = fs, server, prefix
        if server:
            import boto3
            self.client = boto3.client("s3", endpoint_url=server.upstream_endpoint, region_name=server.region,
                                       aws_access_key_id=server.access_key, aws_secret_access_key=server.secret_key)

    def keys(self, under):
        if self.server is None:
            base = self.fs.store
            return {str(p.relative_to(base)) for p in (base / under).rglob("*") if p.is_file()}
        keys = set()
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.server.bucket, Prefix=f"{self.prefix}/{under}"):
            keys |= {o["Key"][len(self.prefix) + 1:] for o in page.get("Contents", [])}
        return keys

    def put(self, key, data):
        if self.server is None:
            path = self.fs.store / key
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        else:
            self.client.put_object(Bucket=self.server.bucket, Key=f"{self.prefix}/{key}", Body=data)

    def age(self, keys, seconds):
        """Makes objects look `seconds` old (local store only: S3 sets LastModified itself)."""
        for key in keys:
            path = self.fs.store / key
            t = path.stat().st_mtime - seconds
            os.utime(path, (t, t))


def chunk_key(data):
    h = hashlib.sha256(data).hexdigest()
    return f"chunks/{h[:2]}/{h}"


def make(tmp_path, kind, moto, extra=()):
    options = ["meta_interval=3600", *extra]   # snapshots only at mount, unmount and `mossaicfs snapshot`
    if kind == "local":
        fs = Filesystem(tmp_path, options)
        return fs, Store(fs)
    prefix = f"gc-{uuid.uuid4().hex[:8]}"
    fs = Filesystem(tmp_path, options, source=f"s3://{moto.bucket}/{prefix}", env=s3_env(moto))
    return fs, Store(fs, moto, prefix)


def gc(fs, *args, options=()):
    return run("gc", fs.source, "-o", ",".join([f"cache_dir={fs.cache}", *options]), *args, check=False, env=fs.env)


def data_keys(store):
    """Keys of the objects holding file data: chunk objects and packs."""
    return store.keys("chunks/") | store.keys("packs/")


def written(fs, store, name, data):
    """Writes a file through the mount; returns the objects it added (one pack: its new
    chunks are stored together)."""
    before = data_keys(store)
    fs.path(name).write_bytes(data)
    return data_keys(store) - before


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_gc_deletes_only_unreferenced_old_objects(kind, tmp_path, moto):
    fs, store = make(tmp_path, kind, moto)
    keep_data = random_file(3 * MiB + 100_000)
    fs.start()
    try:
        keep = written(fs, store, "keep", keep_data)
        gone = written(fs, store, "gone", random_file(2 * MiB))
        fs.path("gone").unlink()                     # no snapshot ever had it
        snap = written(fs, store, "snap", random_file(MiB + 50_000))
        run("snapshot", str(fs.mnt), env=fs.env)     # this snapshot has it ...
        fs.path("snap").unlink()                     # ... the live metadata no longer
        assert len(keep) == 1 and len(gone) == 1 and len(snap) == 1
        assert all(k.startswith("packs/") for k in keep | gone | snap)

        # Refused while mounted: by the cache_dir's lock, and by the writer lease (another cache_dir).
        r = gc(fs, "--grace", "0")
        assert r.returncode == 1 and "in use" in r.stderr, r.stderr
        r = run("gc", fs.source, "-o", f"cache_dir={tmp_path / 'other-cache'}", "--grace", "0", check=False, env=fs.env)
        assert r.returncode == 1 and "already mounted read-write" in r.stderr, r.stderr
    finally:
        fs.stop()

    orphan_data = os.urandom(5000)
    orphan = chunk_key(orphan_data)                  # an object no chunk row knows (a crashed upload)
    store.put(orphan, orphan_data)
    piece_data = os.urandom(3000)
    h = hashlib.sha256(piece_data).hexdigest()
    piece = f"meta/chunks/{h[:2]}/{h}"               # a snapshot piece no manifest lists
    store.put(piece, piece_data)
    everything = store.keys("")
    garbage = gone | {orphan, piece}

    r = gc(fs, "--dry-run", "--grace", "0")
    assert r.returncode == 0, r.stdout + r.stderr
    assert store.keys("") == everything, "--dry-run deleted something"
    assert f"{len(garbage)} would delete (1 chunks, {len(gone)} packs, 1 snapshot pieces)" in r.stdout, r.stdout

    r = gc(fs)                                       # default grace 1 h: all of it is young
    assert r.returncode == 0 and store.keys("") == everything, r.stdout + r.stderr
    assert f"{len(garbage)} younger than 1h" in r.stdout, r.stdout

    if kind == "local":
        # Aged past the grace: the deleted file's chunks and the piece; the orphan stays young.
        store.age(gone | {piece}, 2 * HOUR)
        r = gc(fs)
        assert r.returncode == 0, r.stdout + r.stderr
        assert data_keys(store) == keep | snap | {orphan}
        assert piece not in store.keys("meta/")
        assert ", 0 B freed" not in r.stdout and "1 younger than 1h" in r.stdout, r.stdout

    r = gc(fs, "--grace", "0")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip().splitlines()[-1].startswith(f"gc {fs.source}: ")
    assert data_keys(store) == keep | snap, "snapshot-referenced or live objects deleted, or garbage kept"
    assert piece not in store.keys("meta/")

    # Once retention pruned the snapshot that had "snap", its chunks go too.
    fs.options.append("meta_keep=1")
    fs.start()
    try:
        fs.path("touch").write_bytes(b"x")           # a change, so the unmount snapshots (and prunes)
    finally:
        fs.stop()
    r = gc(fs, "--grace", "0")
    assert r.returncode == 0, r.stdout + r.stderr
    assert data_keys(store) == keep

    r = run("fsck", fs.source, "-o", f"cache_dir={fs.cache}", "--verify", check=False, env=fs.env)
    assert r.returncode == 0 and r.stdout.strip().endswith(": clean"), r.stdout + r.stderr
    assert "0 unreferenced objects" in r.stdout
    # The store alone (a fresh cache_dir restores HEAD) reads every file back byte for byte.
    fresh = Mount(fs.source, fs.mnt, tmp_path / "fresh-cache", fs.options, log=tmp_path / "fresh.log", env=fs.env).start()
    try:
        assert sha256_file(fs.path("keep")) == hashlib.sha256(keep_data).hexdigest()
        assert not fs.path("gone").exists() and not fs.path("snap").exists()
    finally:
        fresh.stop()


def test_gc_options_are_checked(tmp_path):
    fs = Filesystem(tmp_path)
    r = gc(fs, "--grace", "soon")
    assert r.returncode == 1 and "--grace" in r.stderr
    # A store that was never mounted has no metadata to tell garbage from data: gc refuses.
    r = gc(fs, "--grace", "0")
    assert r.returncode == 1 and "no metadata" in r.stderr
