"""Nothing acknowledged is ever lost: a missing metadata HEAD, a writer whose lease lapses,
a stalled store.

- A store whose meta/HEAD was deleted is refused by a mount on an empty cache_dir (it used to
  come up EMPTY, publish new snapshots and prune the real ones) and by gc, with nothing in the
  store changed; `snapshots --set-head` repairs it.
- A writer cut off from the store stops acknowledging changes before its lease expires, so
  nothing it acknowledged after another mount took the lease over exists only on it.
- A store that accepts connections and never answers fails close(2) with EIO within the
  request deadline (`timeout=`), and a process waiting in close(2) can be killed at once
  (FUSE interrupts are honoured).
Every mount is stopped by its PID, also when a test fails.
"""
import errno
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid

import boto3
import pytest

from fault_proxy import FaultProxy
from mossaic import Filesystem, Mount, run, s3_env, wait_pid_exit, wait_until, write_fsynced
from s3server import MotoServer

MiB = 1 << 20


def store_listing(store):
    """Every file of a local store with its size and mtime: what a mount or gc must not change."""
    out = {}
    for dirpath, _, files in os.walk(store):
        for name in files:
            path = os.path.join(dirpath, name)
            st = os.stat(path)
            out[os.path.relpath(path, store)] = (st.st_size, st.st_mtime_ns)
    return out


def refused_mount(*args, **kw):
    """Mounts that must be refused; one that comes up anyway is stopped before failing the test."""
    with pytest.raises(RuntimeError) as refused:
        m = Mount(*args, **kw).start()
        m.stop()
    return str(refused.value)


def test_a_missing_head_is_refused_and_nothing_is_deleted(tmp_path):
    fs = Filesystem(tmp_path, ["meta_interval=3600"])
    files = {f"f{i}": os.urandom(100_000 + i * 300_000) for i in range(4)}
    fs.start()
    try:
        fs.path("d").mkdir()
        for name, data in files.items():
            fs.path("d", name).write_bytes(data)
    finally:
        fs.stop()
    newest = run("snapshots", str(fs.store)).stdout.splitlines()[-1].split()[0]
    os.unlink(fs.store / "meta" / "HEAD")
    before = store_listing(fs.store)

    # A new machine (empty cache_dir): refused in one line naming the problem and the way out.
    message = refused_mount(fs.store, tmp_path / "m2", tmp_path / "cache2", log=tmp_path / "m2.log")
    assert "meta/HEAD is missing" in message and "--set-head" in message and newest in message, message
    assert store_listing(fs.store) == before
    # gc from an empty cache_dir refuses too, and deletes nothing.
    gc = run("gc", str(fs.store), "-o", f"cache_dir={tmp_path / 'cache3'}", "--grace", "0s", check=False)
    assert gc.returncode != 0 and "meta/HEAD is missing" in gc.stderr, gc.stdout + gc.stderr
    assert store_listing(fs.store) == before

    # The repair: HEAD names the newest snapshot again; a fresh machine sees every file.
    repaired = run("snapshots", str(fs.store), "--set-head", newest)
    assert newest in repaired.stdout
    # It never moves an existing HEAD.
    again = run("snapshots", str(fs.store), "--set-head", newest, check=False)
    assert again.returncode != 0 and "exists" in again.stderr
    m = Mount(fs.store, tmp_path / "m4", tmp_path / "cache4", log=tmp_path / "m4.log").start()
    try:
        for name, data in files.items():
            assert (tmp_path / "m4" / "d" / name).read_bytes() == data
    finally:
        m.stop()


def test_a_store_with_data_but_no_metadata_is_not_taken_for_a_new_filesystem(tmp_path):
    fs = Filesystem(tmp_path, ["meta_interval=3600"])
    fs.start()
    try:
        fs.path("big").write_bytes(os.urandom(3 * MiB))
    finally:
        fs.stop()
    for dirpath, _, names in os.walk(fs.store / "meta", topdown=False):
        for name in names:
            os.unlink(os.path.join(dirpath, name))
    before = store_listing(fs.store)
    message = refused_mount(fs.store, tmp_path / "m2", tmp_path / "cache2", log=tmp_path / "m2.log")
    assert "holds file data" in message, message
    assert store_listing(fs.store) == before


@pytest.fixture(scope="module")
def moto():
    with MotoServer(bucket="mossaic-reliability") as server:
        yield server


@pytest.fixture
def proxy(moto):
    p = FaultProxy(moto.endpoint, rate=0.0).start()
    try:
        yield p
    finally:
        p.stop()


def lease_record(server, prefix):
    client = boto3.client("s3", endpoint_url=server.endpoint, region_name=server.region,
                          aws_access_key_id=server.access_key, aws_secret_access_key=server.secret_key)
    return json.loads(client.get_object(Bucket=server.bucket, Key=f"{prefix}/meta/lease")["Body"].read())


def test_a_writer_that_cannot_renew_acknowledges_nothing_after_the_takeover(tmp_path, moto, proxy):
    prefix = f"lease-{uuid.uuid4().hex[:8]}"
    lease_time = 3
    old = Filesystem(tmp_path / "a", [f"lease_time={lease_time}", "meta_interval=3600"],
                     source=f"s3://{moto.bucket}/{prefix}", env=s3_env(moto, AWS_ENDPOINT_URL=proxy.endpoint))
    new = None
    results = []          # (monotonic time the call returned, errno or 0)
    stop = threading.Event()

    def writer():
        # Small files: inline in the metadata, so acknowledging them needs no store at all —
        # only the lease says whether this mount may.
        i = 0
        while not stop.is_set():
            try:
                write_fsynced(old.path(f"w{i}"), b"x" * 100)
                results.append((time.monotonic(), 0))
            except OSError as e:
                results.append((time.monotonic(), e.errno))
            i += 1

    old.start()
    thread = threading.Thread(target=writer, daemon=True)
    try:
        thread.start()
        wait_until(lambda: sum(1 for _, e in results if e == 0) >= 5, 30, "the writer's first acknowledged files")
        proxy.outage("stall")   # the old writer can no longer renew (nor reach the store at all)
        expires = lease_record(moto, prefix)["expires_ns"]
        # The lease's own expiry, as another machine would wait for it (a deadline, not a sync).
        time.sleep(max(0.0, (expires - time.time_ns()) / 1e9) + 0.2)
        takeover = time.monotonic()
        new = Mount(f"s3://{moto.bucket}/{prefix}", tmp_path / "b-mnt", tmp_path / "b-cache",
                    log=tmp_path / "b.log", env=s3_env(moto)).start()
        after = len(results)
        wait_until(lambda: len(results) >= after + 3, 60, "the old writer trying again after the takeover")
        stop.set()
        thread.join(60)
        acknowledged_late = [t - takeover for t, e in results if e == 0 and t >= takeover]
        assert not acknowledged_late, f"the old writer acknowledged {len(acknowledged_late)} changes after the takeover"
        refused = [e for t, e in results if t >= takeover]
        assert refused and all(e in (errno.EIO, errno.EROFS) for e in refused), refused
        # The new writer works.
        write_fsynced(tmp_path / "b-mnt" / "new", b"new writer")
    finally:
        stop.set()
        thread.join(60)
        proxy.restore()
        if new:
            new.stop()
        if old.mount:
            m, old.mount = old.mount, None
            m.stop(expect_exit=1)   # its final snapshot cannot be published: the lease is gone


def test_a_stalled_store_fails_close_in_time_and_the_writer_can_be_killed(tmp_path, moto, proxy):
    timeout = 8
    fs = Filesystem(tmp_path, [f"timeout={timeout}", "meta_interval=3600"],
                    source=f"s3://{moto.bucket}/stall-{uuid.uuid4().hex[:8]}",
                    env=s3_env(moto, AWS_ENDPOINT_URL=proxy.endpoint))
    fs.start()
    writer = None
    try:
        proxy.outage("stall")
        # close(2) of a file that needs uploads: EIO once the request deadline has passed
        # (documented: about timeout=, plus the file's queued uploads), not minutes later.
        started = time.monotonic()
        with pytest.raises(OSError) as failed:
            with open(fs.path("big"), "wb") as f:
                f.write(os.urandom(3 * MiB))
        took = time.monotonic() - started
        assert failed.value.errno == errno.EIO
        assert took < 6 * timeout, f"close took {took:.1f}s with timeout={timeout}"

        # A process waiting in close(2) on the stalled store dies at once when killed: the
        # daemon answers the kernel's INTERRUPT instead of waiting for the store.
        code = ("import os, sys\n"
                f"f = open({str(fs.path('killed'))!r}, 'wb'); f.write(os.urandom(3 << 20)); f.flush()\n"
                "print('closing', flush=True); f.close()\n")
        writer = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        assert writer.stdout.readline().strip() == "closing"

        def in_fuse_wait():
            with open(f"/proc/{writer.pid}/wchan") as w:
                return "request_wait_answer" in w.read() or "fuse" in open(f"/proc/{writer.pid}/stack").read()
        wait_until(in_fuse_wait, 30, "the writer waiting in close(2) on the daemon")
        writer.send_signal(signal.SIGKILL)
        # Without interrupts it would wait out the upload's deadline (timeout= seconds).
        assert wait_pid_exit(writer.pid, 3), "the killed writer stayed in close(2)"
        writer.wait(timeout=60)
        writer = None
        proxy.restore()
        # The mount goes on: a new file is stored and read back.
        write_fsynced(fs.path("after"), b"after" * 1000)
        assert fs.path("after").read_bytes() == b"after" * 1000
    finally:
        if writer is not None:
            writer.kill()
            writer.wait(timeout=120)
        proxy.restore()
        fs.stop()
