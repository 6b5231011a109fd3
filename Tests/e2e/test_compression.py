"""`format --compress zstd` end to end (issue 23): what the store really holds, on a local
directory and on S3 (moto); reading back with an empty cache; damage caught by fsck and by
readers (EIO); the format option's checks."""
import errno
import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import boto3
import pytest

from mossaic import CHUNK, Filesystem, random_file, run, s3_env, sha256_file, write_fsynced
from s3server import MotoServer

DOC = Path("/usr/share/doc")
# Already compressed formats: zstd cannot shrink them, so they are left out of the ratio.
COMPRESSED = (".gz", ".xz", ".bz2", ".zst", ".lz", ".lzma", ".zip", ".png", ".jpg", ".jpeg", ".gif", ".svgz", ".woff", ".woff2")


@pytest.fixture(scope="module")
def doc_tree(tmp_path_factory):
    """A `cp -a` of /usr/share/doc without its already-compressed files, and its regular
    files' total size."""
    if not DOC.is_dir():
        pytest.skip("/usr/share/doc is missing")
    root = tmp_path_factory.mktemp("doc")
    subprocess.run(["cp", "-a", str(DOC), str(root)], check=True)
    logical = 0
    for path in (root / "doc").rglob("*"):
        if path.is_symlink() or not path.is_file():
            continue
        if path.name.endswith(COMPRESSED):
            path.unlink()
        else:
            logical += path.stat().st_size
    assert logical > 10 * CHUNK, "too little text in /usr/share/doc to measure"
    return root / "doc", logical


@pytest.fixture(scope="module")
def moto():
    with MotoServer(bucket="compression-e2e") as server:
        yield server


class Bucket:
    """Object sizes under a filesystem's root, as the store holds them: a local directory's
    files or an S3 prefix's objects."""

    def __init__(self, fs, server=None, prefix=None):
        self.fs, self.server, self.prefix = fs, server, prefix

    def sizes(self):
        if self.server is None:
            return {str(p.relative_to(self.fs.store)): p.stat().st_size for p in self.fs.store.rglob("*") if p.is_file()}
        s = self.server
        client = boto3.client("s3", endpoint_url=s.upstream_endpoint, region_name=s.region,
                              aws_access_key_id=s.access_key, aws_secret_access_key=s.secret_key)
        out = {}
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=s.bucket, Prefix=self.prefix + "/"):
            out.update({o["Key"][len(self.prefix) + 1:]: o["Size"] for o in page.get("Contents", [])})
        return out

    def data_bytes(self):
        """Bytes of the chunk objects and packs: file data only."""
        return sum(n for k, n in self.sizes().items() if k.startswith(("chunks/", "packs/")))

    def total_bytes(self):
        """Everything: file data, metadata snapshots (inline small files among them), superblock."""
        return sum(self.sizes().values())


def make_fs(tmp_path, store, moto_server, *format_args):
    if store == "local":
        fs = Filesystem(tmp_path, format_args=format_args)
        return fs, Bucket(fs)
    prefix = f"zstd-{uuid.uuid4().hex[:8]}"
    fs = Filesystem(tmp_path, source=f"s3://{moto_server.bucket}/{prefix}", env=s3_env(moto_server), format_args=format_args)
    return fs, Bucket(fs, moto_server, prefix)


def tree_digests(root):
    """Regular files by relative path with their SHA-256, and symlinks with their targets."""
    out = {}
    for path in sorted(Path(root).rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            out[rel] = "-> " + os.readlink(path)
        elif path.is_file():
            out[rel] = sha256_file(path)
    return out


@pytest.mark.parametrize("store", ["local", "s3"])
def test_text_is_stored_compressed_random_data_raw_and_both_read_back(tmp_path, doc_tree, store, request):
    source, logical = doc_tree
    server = request.getfixturevalue("moto") if store == "s3" else None
    fs, bucket = make_fs(tmp_path, store, server, "--compress", "zstd")
    fs.start()
    try:
        subprocess.run(["cp", "-a", str(source), str(fs.path())], check=True)
        status = json.loads(run("status", str(fs.mnt), "--json", env=fs.env).stdout)["usage"]
    finally:
        fs.stop()
    # The whole bucket, metadata snapshots with their inline small files included.
    stored = bucket.total_bytes()
    print(f"{fs.source}: {logical} logical bytes of text stored in {stored} bytes ({stored / logical:.1%}); "
          f"data objects {bucket.data_bytes()}, compression saved {status['compressionSavedBytes']}")
    assert stored <= 0.45 * logical
    assert status["storedBytes"] < status["uncompressedBytes"]
    assert status["compressionSavedBytes"] == status["uncompressedBytes"] - status["storedBytes"]

    # Random data: stored as it is, with at most 1 % more bytes.
    before = bucket.data_bytes()
    noise = random_file(8 * CHUNK + 300_000)  # the tail too big to be inline
    fs.start()
    try:
        write_fsynced(fs.path("noise.bin"), noise)
    finally:
        fs.stop()
    grown = bucket.data_bytes() - before
    assert len(noise) <= grown <= 1.01 * len(noise), grown

    # Read back on an empty cache: a new cache_dir, so metadata restored from the store and
    # every chunk fetched and decoded.
    fs.cache = tmp_path / "fresh-cache"
    fs.start()
    try:
        assert tree_digests(fs.path("doc")) == tree_digests(source)
        with open(fs.path("noise.bin"), "rb") as f:
            assert f.read() == noise
    finally:
        fs.stop()
    r = run("fsck", fs.source, "-o", f"cache_dir={fs.cache}", "--verify", check=False, env=fs.env)
    assert r.returncode == 0 and ": clean" in r.stdout, r.stdout + r.stderr


def compressible(size, seed):
    words = [b"chunk ", b"store ", b"zstd ", b"metadata ", b"bucket ", b"\n"]
    state, out = seed | 1, bytearray()
    while len(out) < size:
        state = (state * 6364136223846793005 + 1442695040888963407) % (1 << 64)
        out += words[(state >> 33) % len(words)]
    return bytes(out[:size])


def test_a_damaged_compressed_chunk_fails_fsck_and_reads_with_eio(tmp_path):
    fs = Filesystem(tmp_path, format_args=["--compress", "zstd:5"])
    data = compressible(3 * CHUNK, seed=9)
    fs.start()
    try:
        write_fsynced(fs.path("text"), data)
    finally:
        fs.stop()
    objects = [p for d in ("chunks", "packs") for p in (fs.store / d).rglob("*") if p.is_file()]
    stored = sum(p.stat().st_size for p in objects)
    assert stored < len(data) // 4, stored  # three zstd frames, not three MiB
    target = max(objects, key=lambda p: p.stat().st_size)
    damaged = bytearray(target.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    target.write_bytes(bytes(damaged))

    r = run("fsck", fs.source, "-o", f"cache_dir={fs.cache}", "--verify", check=False)
    assert r.returncode != 0 and "corrupt object" in r.stdout and "NOT clean" in r.stdout, r.stdout + r.stderr

    fs.start()  # a local store has no disk cache: the damaged bytes are what a read gets
    try:
        with pytest.raises(OSError) as raised:
            with open(fs.path("text"), "rb") as f:
                f.read()
        assert raised.value.errno == errno.EIO
    finally:
        fs.stop()


def test_format_records_compression_and_raises_the_version_only_with_it(tmp_path):
    run("format", str(tmp_path / "plain"))
    plain = json.loads((tmp_path / "plain" / "mossaicfs.json").read_text())
    assert plain["format_version"] == 1 and "compression" not in plain
    r = run("format", "--compress", "zstd:12", str(tmp_path / "zipped"))
    assert "compression zstd:12" in r.stdout
    zipped = json.loads((tmp_path / "zipped" / "mossaicfs.json").read_text())
    assert zipped["format_version"] == 2 and zipped["compression"] == "zstd:12"
    run("format", "--compress", "zstd", str(tmp_path / "default"))
    assert json.loads((tmp_path / "default" / "mossaicfs.json").read_text())["compression"] == "zstd:3"

    for bad, says in [("zstd:0", "1 to 19"), ("zstd:20", "1 to 19"), ("lz4", "expected none, zstd or zstd:LEVEL")]:
        r = run("format", "--compress", bad, str(tmp_path / f"bad-{bad}"), check=False)
        assert r.returncode != 0 and says in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert not (tmp_path / f"bad-{bad}").exists()  # refused before anything was created

    # A superblock newer than this build (as a compressed filesystem is to a build before
    # compression) is refused in one line.
    sb = tmp_path / "zipped" / "mossaicfs.json"
    sb.write_text(sb.read_text().replace('"format_version" : 2', '"format_version" : 9'))
    os.makedirs(tmp_path / "mnt")
    r = run("mount", str(tmp_path / "zipped"), str(tmp_path / "mnt"), "-o", f"cache_dir={tmp_path / 'cache'}", check=False)
    assert r.returncode != 0 and "format version 9" in r.stderr and "upgrade mossaicfs" in r.stderr, r.stderr
    shutil.rmtree(tmp_path / "mnt")
