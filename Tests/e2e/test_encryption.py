"""Encrypted filesystems (format --encrypt, issue 23), on a local directory and on S3 (moto):
the store holds neither contents, nor names, nor plaintext hashes; identical data still
deduplicates; a wrong or missing key is refused in one line; the store alone and the key
restore the filesystem on a new machine (a new cache_dir)."""
import hashlib
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import boto3
import pytest

from mossaic import CHUNK, Mount, is_mounted, random_file, run, s3_env, sha256_file
from s3server import MotoServer

MARKER = b"Zq7-MOSSAIC-PLAINTEXT-MARKER-4k2"
NAMES = ["quarterly-report.ods", "Zq7-MOSSAIC-PLAINTEXT-MARKER-name.txt", "holiday-photos", "inline-note.txt"]


@pytest.fixture(scope="module")
def moto():
    with MotoServer(bucket="mossaic-encryption") as server:
        yield server


class Store:
    """Where the filesystem's objects are: a local directory or a prefix of moto's bucket."""

    def __init__(self, tmp_path, server=None):
        self.server = server
        if server is None:
            self.source, self.env = str(tmp_path / "store"), None
        else:
            self.prefix = f"fs-{uuid.uuid4().hex[:8]}"
            self.source, self.env = f"s3://{server.bucket}/{self.prefix}", s3_env(server)
            self.client = boto3.client("s3", endpoint_url=server.upstream_endpoint, region_name=server.region,
                                       aws_access_key_id=server.access_key, aws_secret_access_key=server.secret_key)

    def objects(self):
        """Every object: {key relative to the store: bytes}."""
        if self.server is None:
            root = Path(self.source)
            return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}
        out = {}
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.server.bucket, Prefix=self.prefix + "/"):
            for o in page.get("Contents", []):
                body = self.client.get_object(Bucket=self.server.bucket, Key=o["Key"])["Body"].read()
                out[o["Key"][len(self.prefix) + 1:]] = body
        return out

    def data_objects(self):
        return {k for k in self.objects() if k.startswith(("chunks/", "packs/"))}


def write_tree(root):
    """Files whose contents and names carry MARKER, an inline file, and the known file."""
    tree = root / "tree"
    (tree / NAMES[2]).mkdir(parents=True)
    body = bytearray(random_file(3 * CHUNK + 12345))
    for at in range(0, len(body) - len(MARKER), CHUNK // 3):
        body[at:at + len(MARKER)] = MARKER
    (tree / NAMES[0]).write_bytes(bytes(body))
    (tree / NAMES[1]).write_bytes(MARKER * 40000)  # compressible text, ~1.3 MiB
    (tree / NAMES[2] / "known.bin").write_bytes(random_file(2 * CHUNK + 777) + MARKER)
    (tree / NAMES[3]).write_bytes(b"small " + MARKER)  # inline: in the metadata snapshot
    return tree


def hashes_of(tree):
    """The SHA-256 hex of every file, and of every 1 MiB chunk of it (the chunk names)."""
    out = set()
    for p in tree.rglob("*"):
        if p.is_file():
            data = p.read_bytes()
            out.add(hashlib.sha256(data).hexdigest())
            for at in range(0, len(data), CHUNK):
                out.add(hashlib.sha256(data[at:at + CHUNK].rstrip(b"\0")).hexdigest())
    return out


def same_tree(a, b):
    r = subprocess.run(["diff", "-r", "--no-dereference", str(a), str(b)], capture_output=True, text=True)
    return r.returncode == 0


def refused_mount(store, mnt, options):
    """A background `mount` that must fail: its exit status and its one line."""
    r = run("mount", store.source, str(mnt), "-o", options, check=False, env=store.env)
    assert not is_mounted(mnt)
    return r.returncode, r.stderr.strip()


@pytest.mark.parametrize("where", ["local", "s3"])
def test_the_store_learns_nothing_and_the_key_restores_everything(tmp_path, where, request):
    store = Store(tmp_path, request.getfixturevalue("moto") if where == "s3" else None)
    key = tmp_path / "fs.key"
    r = run("keygen", str(key))
    assert oct(os.stat(key).st_mode & 0o777) == "0o600", r.stdout
    run("format", store.source, "--encrypt", "--key-file", str(key), env=store.env)
    keyed = f"key_file={key}"
    source_tree = write_tree(tmp_path / "src")
    mnt = tmp_path / "mnt"

    m = Mount(store.source, mnt, tmp_path / "cache", [keyed], log=tmp_path / "daemon.log", env=store.env).start()
    try:
        subprocess.run(["cp", "-a", str(source_tree), str(mnt / "tree")], check=True)
    finally:
        m.stop()
    before = store.data_objects()
    assert before, "no chunk was stored"

    # The known file once more: identical chunks deduplicate under convergent encryption.
    m = Mount(store.source, mnt, tmp_path / "cache", [keyed], log=tmp_path / "daemon.log", env=store.env).start()
    try:
        shutil.copyfile(source_tree / NAMES[2] / "known.bin", mnt / "second-copy.bin")
    finally:
        m.stop()
    assert store.data_objects() == before, "the second copy stored new chunk objects"
    shutil.copyfile(source_tree / NAMES[2] / "known.bin", tmp_path / "src" / "second-copy.bin")

    # Every byte of every object: no marker, no name, no plaintext hash (keys included).
    objects = store.objects()
    everything = b"".join(objects.values()) + "\n".join(objects).encode()
    assert MARKER not in everything
    for name in NAMES + ["known.bin", "second-copy.bin"]:
        assert name.encode() not in everything, name
    for digest in hashes_of(tmp_path / "src"):
        assert digest.encode() not in everything, digest
        assert bytes.fromhex(digest) not in everything, digest

    # A wrong key and no key: refused in one line, before anything is read or written.
    other = tmp_path / "other.key"
    run("keygen", str(other))
    cache2 = tmp_path / "cache-new"
    code, line = refused_mount(store, mnt, f"cache_dir={cache2},key_file={other}")
    assert code != 0 and "\n" not in line and "wrong key file" in line, line
    code, line = refused_mount(store, mnt, f"cache_dir={cache2}")
    assert code != 0 and "\n" not in line and "is encrypted" in line and "key_file=" in line, line
    assert not cache2.exists()
    assert store.objects() == objects
    r = run("fsck", store.source, "-o", f"key_file={other}", check=False, env=store.env)
    assert r.returncode != 0 and "wrong key file" in r.stderr and r.stderr.strip().count("\n") == 0, r.stderr

    # fsck --verify with the key reads every object back through its GCM tag.
    r = run("fsck", store.source, "--verify", "-o", keyed, check=False, env=store.env)
    assert r.returncode == 0 and "clean" in r.stdout, r.stdout + r.stderr

    # A new machine: a fresh cache_dir, the store and the key.
    m = Mount(store.source, mnt, cache2, [keyed], log=tmp_path / "daemon.log", env=store.env).start()
    try:
        assert same_tree(source_tree, mnt / "tree")
        assert sha256_file(mnt / "second-copy.bin") == sha256_file(source_tree / NAMES[2] / "known.bin")
    finally:
        m.stop()


def test_a_passphrase_from_a_file_or_the_environment_never_the_command_line(tmp_path):
    store = tmp_path / "store"
    secret = tmp_path / "passphrase"
    secret.write_text("correct horse battery staple\n")
    os.chmod(secret, 0o600)
    run("format", str(store), "--encrypt", "--passphrase-file", str(secret))
    assert b"correct horse" not in (store / "mossaicfs.json").read_bytes()
    assert '"kdf"' in (store / "mossaicfs.json").read_text()
    mnt, cache = tmp_path / "mnt", tmp_path / "cache"
    m = Mount(store, mnt, cache, [f"passphrase_file={secret}"]).start()
    try:
        (mnt / "f").write_bytes(MARKER)
    finally:
        m.stop()
    env = dict(os.environ, MOSSAICFS_PASSPHRASE="correct horse battery staple")
    m = Mount(store, mnt, cache, [], env=env).start()
    try:
        assert (mnt / "f").read_bytes() == MARKER
    finally:
        m.stop()
    wrong = dict(os.environ, MOSSAICFS_PASSPHRASE="incorrect horse")
    r = run("fsck", str(store), check=False, env=wrong, stdin=subprocess.DEVNULL)
    assert r.returncode != 0 and "wrong passphrase" in r.stderr, r.stderr
    # An open key file is refused: a key readable by others is a key given away.
    os.chmod(secret, 0o644)
    r = run("fsck", str(store), "-o", f"passphrase_file={secret}", check=False)
    assert r.returncode != 0 and "chmod 600" in r.stderr, r.stderr


def test_format_refuses_key_options_without_encrypt_and_never_overwrites_a_key(tmp_path):
    key = tmp_path / "k"
    run("keygen", str(key))
    before = key.read_bytes()
    r = run("keygen", str(key), check=False)
    assert r.returncode != 0 and "never overwritten" in r.stderr
    r = run("format", str(tmp_path / "s"), "--encrypt", "--key-file", str(key), "--create-key", check=False)
    assert r.returncode != 0 and "never overwritten" in r.stderr
    assert key.read_bytes() == before
    r = run("format", str(tmp_path / "s2"), "--key-file", str(key), check=False)
    assert r.returncode != 0 and "--encrypt" in r.stderr
    # A key for a filesystem stored in the clear is a mistake, said so.
    run("format", str(tmp_path / "plain"))
    r = run("fsck", str(tmp_path / "plain"), "-o", f"key_file={key}", check=False)
    assert r.returncode != 0 and "not encrypted" in r.stderr
