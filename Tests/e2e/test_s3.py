"""mossaicfs on an S3 bucket: moto on 127.0.0.1 with authentication (signatures really
checked), started and stopped by PID by these tests."""
import contextlib
import hashlib
import os
import random
import shutil
import subprocess
import time
import uuid

import boto3
import pytest

from mossaic import Filesystem, is_mounted, run, sha256_file
from s3server import MotoServer

MiB = 1 << 20
TREE = "/usr/include/linux"


@pytest.fixture(scope="module")
def moto():
    with MotoServer(bucket="mossaic-e2e") as server:
        yield server


@pytest.fixture(scope="module")
def faulty_moto():
    # 10% of requests answered 503 by a loopback proxy in front of moto.
    with MotoServer(bucket="mossaic-faults", fault_rate=0.10, fault_seed=7) as server:
        yield server


def s3_env(server, **overrides):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ACCESS_KEY_ID=server.access_key, AWS_SECRET_ACCESS_KEY=server.secret_key,
               AWS_ENDPOINT_URL=server.endpoint, AWS_REGION=server.region)
    env.update(overrides)
    return env


def s3_keys(server, prefix):
    client = boto3.client("s3", endpoint_url=server.upstream_endpoint, region_name=server.region,
                          aws_access_key_id=server.access_key, aws_secret_access_key=server.secret_key)
    keys = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=server.bucket, Prefix=prefix):
        keys += [o["Key"] for o in page.get("Contents", [])]
    return client, keys


def make_fs(tmp_path, server, options=()):
    prefix = f"fs-{uuid.uuid4().hex[:8]}"
    f = Filesystem(tmp_path, options=options, source=f"s3://{server.bucket}/{prefix}", env=s3_env(server))
    f.prefix = prefix
    return f


@contextlib.contextmanager
def mounted(tmp_path, server, options=()):
    """A new filesystem under a fresh prefix of `server`'s bucket, mounted; unmounted on exit."""
    f = make_fs(tmp_path, server, options)
    try:
        yield f.start()
    finally:
        f.stop()


def write_and_read_back_from_s3(f, tmp_path, mib=16, seed=11):
    """A file of `mib` random MiB written, then read back after a remount with the blob cache
    removed, i.e. from S3 alone."""
    local = tmp_path / "big.bin"
    rng = random.Random(seed)
    with open(local, "wb") as out:
        for _ in range(mib):
            out.write(rng.randbytes(MiB))
    shutil.copyfile(local, f.path("big.bin"))
    f.stop()
    shutil.rmtree(f.cache / "blobs")
    f.start()
    assert sha256_file(f.path("big.bin")) == sha256_file(local)


def roundtrip(f, tmp_path):
    """A tree and a 256 MiB file in, then read back from S3 alone (no blob cache)."""
    subprocess.run(["cp", "-a", TREE, str(f.path("tree"))], check=True)
    write_and_read_back_from_s3(f, tmp_path, mib=256, seed=3)
    r = subprocess.run(["diff", "-r", "--no-dereference", TREE, str(f.path("tree"))], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-2000:]


def test_tree_and_big_file_roundtrip_from_s3_alone(tmp_path, moto):
    with mounted(tmp_path, moto) as f:
        roundtrip(f, tmp_path)
        client, chunks = s3_keys(moto, f.prefix + "/chunks/")
        _, packs = s3_keys(moto, f.prefix + "/packs/")
        # The 256 MiB file went out in packs of 4 chunks (one PUT each), not 256 objects.
        assert len(packs) >= 64, (len(chunks), len(packs))
        # A chunk object is named by the SHA-256 of its bytes; a pack by the SHA-256 of
        # "mossaicfs-pack:" and its chunks' hashes (the big file's packs: whole 1 MiB chunks).
        mib = 1 << 20
        for key in random.Random(1).sample(chunks, min(10, len(chunks))):
            body = client.get_object(Bucket=moto.bucket, Key=key)["Body"].read()
            assert hashlib.sha256(body).hexdigest() == key.rsplit("/", 1)[1]
        checked = 0
        for key in random.Random(2).sample(packs, 20):
            body = client.get_object(Bucket=moto.bucket, Key=key)["Body"].read()
            if len(body) % mib:
                continue
            members = b"".join(hashlib.sha256(body[i:i + mib]).digest() for i in range(0, len(body), mib))
            assert hashlib.sha256(b"mossaicfs-pack:" + members).hexdigest() == key.rsplit("/", 1)[1]
            checked += 1
        assert checked >= 10, checked


def test_roundtrip_with_ten_percent_503s(tmp_path, faulty_moto):
    with mounted(tmp_path, faulty_moto) as f:
        roundtrip(f, tmp_path)


def timed_mount_failure(tmp_path, source, env):
    mnt = tmp_path / "mnt"
    mnt.mkdir(exist_ok=True)
    start = time.monotonic()
    r = run("mount", source, str(mnt), "-o", f"cache_dir={tmp_path}/cache", check=False, env=env, timeout=60)
    elapsed = time.monotonic() - start
    assert r.returncode != 0
    assert not is_mounted(mnt)
    assert r.stderr.count("\n") == 1, r.stderr
    return r.stderr, elapsed


def test_wrong_secret_is_a_signature_error(tmp_path, moto):
    f = make_fs(tmp_path, moto)
    message, elapsed = timed_mount_failure(tmp_path, f.source, s3_env(moto, AWS_SECRET_ACCESS_KEY="wrong-secret"))
    assert "signature" in message.lower() and "wrong-secret" not in message
    assert elapsed < 15


def test_missing_bucket_is_named(tmp_path, moto):
    message, elapsed = timed_mount_failure(tmp_path, "s3://no-such-bucket-here/x", s3_env(moto))
    assert "no-such-bucket-here" in message
    assert elapsed < 15


def test_unreachable_endpoint_is_named(tmp_path, moto):
    dead = "http://127.0.0.1:9"  # discard port: nothing listens
    message, elapsed = timed_mount_failure(tmp_path, f"s3://{moto.bucket}/x", s3_env(moto, AWS_ENDPOINT_URL=dead))
    assert "127.0.0.1:9" in message
    assert elapsed < 15


def test_prefix_without_a_filesystem_says_to_format(tmp_path, moto):
    message, _ = timed_mount_failure(tmp_path, f"s3://{moto.bucket}/never-formatted", s3_env(moto))
    assert "mossaicfs format" in message


def test_format_refuses_an_existing_filesystem(tmp_path, moto):
    f = make_fs(tmp_path, moto)
    r = run("format", f.source, check=False, env=f.env)
    assert r.returncode != 0 and "already holds" in r.stderr


def test_a_pack_damaged_on_the_way_is_refused_by_s3_and_sent_again(tmp_path):
    # The proxy flips one byte of the first pack PUT; the server checks the CRC-32C header as S3
    # does (BadDigest), and the daemon sends that pack again, signed whole.
    with MotoServer(bucket="mossaic-damage", upload_fault="corrupt-checksummed") as server:
        with mounted(tmp_path, server) as f:
            write_and_read_back_from_s3(f, tmp_path)
        assert "checksum did not match" in (tmp_path / "daemon.log").read_text()


def test_upload_checksum_sha256_streams_signed_chunks(tmp_path, moto):
    with mounted(tmp_path, moto, ["upload_checksum=sha256"]) as f:
        write_and_read_back_from_s3(f, tmp_path)


def cached_chunk_files(f):
    blobs = f.cache / "blobs"
    return [p for p in blobs.rglob("*") if p.is_file() and ".tmp" not in p.relative_to(blobs).parts]


@pytest.mark.parametrize("option", [None, "cache_large_writes"])
def test_large_writes_reach_the_disk_cache_only_when_asked(tmp_path, moto, option):
    # 8 MiB written in one go travels as packs; by default (as JuiceFS) their chunks are not
    # copied into the disk cache, so a big copy does not evict what is being read. A chunk
    # stored alone (the tail, at most one here) still is.
    data = random.Random(5).randbytes(8 * MiB)
    with mounted(tmp_path, moto, [option] if option else []) as f:
        f.path("big.bin").write_bytes(data)
        cached = len(cached_chunk_files(f))
        assert cached == 8 if option else cached <= 1, cached
        # Read back in a fresh mount (no kernel or memory cache): from the disk cache or S3.
        f.remount()
        assert hashlib.sha256(f.path("big.bin").read_bytes()).digest() == hashlib.sha256(data).digest()


def test_invalid_upload_checksum_is_named(tmp_path, moto):
    f = make_fs(tmp_path, moto)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    r = run("mount", f.source, str(mnt), "-o", f"cache_dir={tmp_path}/cache,upload_checksum=md5", check=False,
            env=s3_env(moto), timeout=60)
    assert r.returncode != 0 and not is_mounted(mnt)
    assert "upload_checksum=md5" in r.stderr and r.stderr.count("\n") == 1, r.stderr
