"""`-o writeback`: commits stage chunks in cache_dir/staging; background threads store them.

The store's outage is a fault proxy in front of moto switched to answer every request with 503
(SlowDown): writes and fsync go on, reads of staged data work, and when the proxy lets requests
through again everything drains without intervention -- at unmount at the latest, and at the
next mount after a crash. A mount on an empty cache_dir (the bucket alone) then reads it all.
"""
import hashlib
import os
import subprocess
import threading
import uuid

import boto3
import pytest

from fault_proxy import FaultProxy
from mossaic import BIN, Filesystem, Mount, s3_env, wait_until, write_fsynced
from s3server import MotoServer

MiB = 1 << 20


@pytest.fixture(scope="module")
def moto():
    with MotoServer(bucket="mossaic-writeback") as server:
        yield server


@pytest.fixture
def proxy(moto):
    with FaultProxy(moto.endpoint, rate=0.0) as p:
        yield p


def outage(proxy, on):
    proxy.pattern = ["before"] if on else []


def chunk_keys(server, prefix):
    client = boto3.client("s3", endpoint_url=server.endpoint, region_name=server.region,
                          aws_access_key_id=server.access_key, aws_secret_access_key=server.secret_key)
    keys = set()
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=server.bucket, Prefix=prefix + "/chunks/"):
        keys |= {o["Key"].rsplit("/", 1)[1] for o in page.get("Contents", [])}
    return keys


def staged(fs):
    d = fs.cache / "staging"
    return {p.name for p in d.iterdir() if p.is_file() and len(p.name) == 64} if d.exists() else set()


def chunk_names(data):
    """Names of the chunk objects `data` needs (chunks up to 16 KiB are inline in SQLite)."""
    pieces = (data[i:i + MiB].rstrip(b"\0") for i in range(0, len(data), MiB))
    return {hashlib.sha256(p).hexdigest() for p in pieces if len(p) > 16 << 10}


@pytest.fixture
def wfs(tmp_path, moto, proxy):
    prefix = f"wb-{uuid.uuid4().hex[:8]}"
    f = Filesystem(tmp_path, options=["writeback", "meta_interval=1"], source=f"s3://{moto.bucket}/{prefix}",
                   env=s3_env(moto, AWS_ENDPOINT_URL=proxy.endpoint))
    f.prefix = prefix
    try:
        yield f.start()
    finally:
        outage(proxy, False)  # lets a failing test's daemon drain and exit
        f.stop()


def fresh_mount_reads(fs, tmp_path, files):
    """Mounts the bucket on an empty cache_dir and checks every file."""
    m = Mount(fs.source, tmp_path / "fresh-mnt", tmp_path / "fresh-cache", log=tmp_path / "fresh.log", env=fs.env).start()
    try:
        for name, data in files.items():
            assert (tmp_path / "fresh-mnt" / name).read_bytes() == data, name
    finally:
        m.stop()


def test_writes_go_on_during_an_outage_and_drain_at_unmount(wfs, moto, proxy, tmp_path):
    outage(proxy, True)
    files = {f"f{i}": os.urandom(2 * MiB + 1000 * i) for i in range(3)}
    for name, data in files.items():
        write_fsynced(wfs.path(name), data)
    # Durable locally, readable, and not in the store yet.
    wanted = set().union(*(chunk_names(d) for d in files.values()))
    assert wanted <= staged(wfs)
    assert not wanted & chunk_keys(moto, wfs.prefix)
    for name, data in files.items():
        assert wfs.path(name).read_bytes() == data
    outage(proxy, False)
    wfs.stop()  # unmount drains the staging queue before the daemon exits 0
    assert staged(wfs) == set()
    assert wanted <= chunk_keys(moto, wfs.prefix)
    # The final snapshot names only stored chunks: the bucket alone restores every file.
    fresh_mount_reads(wfs, tmp_path, files)


def test_staged_chunks_survive_a_crash_and_upload_at_the_next_mount(wfs, moto, proxy, tmp_path):
    outage(proxy, True)
    files = {f"g{i}": os.urandom(3 * MiB - 77 * i) for i in range(2)}
    for name, data in files.items():
        write_fsynced(wfs.path(name), data)
    wanted = set().union(*(chunk_names(d) for d in files.values()))
    assert wanted <= staged(wfs)
    wfs.mount.kill()
    outage(proxy, False)
    # fsck counts staged chunks as pending, not missing.
    check = subprocess.run([BIN, "fsck", wfs.source, "-o", f"cache_dir={wfs.cache}"], env=wfs.env,
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert f"{len(wanted)} write-back staged" in check.stdout
    # A mount without writeback still replays what an earlier mount staged, before serving.
    wfs.options = ["meta_interval=1"]
    wfs.start()
    assert staged(wfs) == set()
    assert wanted <= chunk_keys(moto, wfs.prefix)
    for name, data in files.items():
        assert wfs.path(name).read_bytes() == data
    wfs.stop()
    check = subprocess.run([BIN, "fsck", wfs.source, "-o", f"cache_dir={wfs.cache}"], env=wfs.env,
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    fresh_mount_reads(wfs, tmp_path, files)


def test_writers_wait_while_staging_is_full(tmp_path, moto, proxy):
    prefix = f"wb-{uuid.uuid4().hex[:8]}"
    fs = Filesystem(tmp_path, options=["writeback", "staging_size=4M"], source=f"s3://{moto.bucket}/{prefix}",
                    env=s3_env(moto, AWS_ENDPOINT_URL=proxy.endpoint))
    fs.start()
    try:
        outage(proxy, True)
        files = {f"h{i}": os.urandom(MiB) for i in range(7)}
        done = []

        def writer():
            for name, data in files.items():
                write_fsynced(fs.path(name), data)
                done.append(name)

        thread = threading.Thread(target=writer)
        thread.start()
        try:
            # Four 1 MiB chunks fill the staging area; the fifth commit must wait for room.
            wait_until(lambda: len(staged(fs)) >= 4, 30, "staging filled")
            assert thread.is_alive()
            assert len(done) <= 4
            assert sum((fs.cache / "staging" / n).stat().st_size for n in staged(fs)) <= 4 * MiB
        finally:
            outage(proxy, False)
            thread.join(timeout=120)
        assert not thread.is_alive()
        assert done == list(files)
        for name, data in files.items():
            assert fs.path(name).read_bytes() == data
    finally:
        outage(proxy, False)
        fs.stop()
    assert staged(fs) == set()


def test_gc_stores_staged_chunks_before_it_publishes_a_snapshot(wfs, moto, proxy, tmp_path):
    outage(proxy, True)
    files = {"k": os.urandom(2 * MiB + 5)}
    write_fsynced(wfs.path("k"), files["k"])
    wanted = chunk_names(files["k"])
    wfs.mount.kill()
    outage(proxy, False)
    gc = subprocess.run([BIN, "gc", wfs.source, "-o", f"cache_dir={wfs.cache}", "--grace", "0"], env=wfs.env,
                        capture_output=True, text=True)
    assert gc.returncode == 0, gc.stdout + gc.stderr
    assert staged(wfs) == set()
    assert wanted <= chunk_keys(moto, wfs.prefix)
    # gc's snapshot is what the bucket alone restores.
    fresh_mount_reads(wfs, tmp_path, files)


def test_fsck_repair_uploads_staged_chunks(wfs, moto, proxy):
    outage(proxy, True)
    data = os.urandom(2 * MiB + 5)
    write_fsynced(wfs.path("r"), data)
    wanted = chunk_names(data)
    assert wanted <= staged(wfs)
    wfs.mount.kill()
    outage(proxy, False)
    check = subprocess.run([BIN, "fsck", wfs.source, "-o", f"cache_dir={wfs.cache}", "--repair"], env=wfs.env,
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert f"{len(wanted)} write-back staged uploaded" in check.stdout, check.stdout
    assert f"{len(wanted)} restored" in check.stdout, check.stdout
    # Uploaded from the staged files, which are then gone, as after a mount's replay.
    assert staged(wfs) == set()
    assert wanted <= chunk_keys(moto, wfs.prefix)
