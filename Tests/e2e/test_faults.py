"""S3 faults for real, through fault_proxy.py in front of moto.

(a) 10% of requests answered 503 (half before, half after moto did the work) plus latency
    spikes, under a bounded fsrand workload (FAULT_OPS operations, default 3000): the mount and
    the local reference stay equal, and fsck is clean afterwards.
(b) An outage: the proxy first holds every request without an answer, then refuses every
    connection. Cached reads keep working meanwhile; a write + fsync that cannot be stored fails
    with EIO once the retry budget is spent; when the store is back, new writes succeed without
    a remount. The outage lasts at least FAULT_OUTAGE_SECONDS (default 60, longer than the
    default writer lease renewal period; FAULT_OUTAGE_SECONDS=0 ends it as soon as those steps
    are done). The mount uses
    retries=3 so that the EIO comes within about a second instead of the default budget's
    ~10-20 s (8 retries, backoff up to 10 s): the same code path, bounded.
"""
import errno
import hashlib
import os
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from fault_proxy import FaultProxy
from mossaic import Filesystem, run, s3_env, sha256_file, write_fsynced
from s3server import MotoServer

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fuzz"))
import fsrand  # noqa: E402

MiB = 1 << 20
OPS = int(os.environ.get("FAULT_OPS", "3000"))
SEED = int(os.environ.get("FAULT_SEED", "20261122"))
OUTAGE_SECONDS = float(os.environ.get("FAULT_OUTAGE_SECONDS", "60"))
HANG = 60  # seconds after which a call that should not wait for the store counts as hung


@pytest.fixture
def faulty_s3():
    """moto with an in-process fault proxy in front; `server.endpoint` is the proxy."""
    with MotoServer(bucket="faults-e2e") as server:
        proxy = FaultProxy(server.upstream_endpoint, rate=0.0, seed=SEED).start()
        server.endpoint = proxy.endpoint
        try:
            yield server, proxy
        finally:
            proxy.stop()


def fsck(fs, *flags):
    # Straight to moto: fsck's verdict must not depend on the faults.
    env = {**fs.env, "AWS_ENDPOINT_URL": fs.moto.upstream_endpoint}
    return run("fsck", fs.source, "-o", f"cache_dir={fs.cache}", *flags, check=False, env=env)


def test_fsrand_under_503s_and_latency_spikes(faulty_s3, tmp_path):
    server, proxy = faulty_s3
    proxy.rate = 0.10
    proxy.latency_rate, proxy.latency = 0.02, (0.2, 1.5)
    # Snapshots every second: many conditional PUTs of HEAD and the lease meet the faults too.
    env = fsrand.Environment("s3", tmp_path / "fsrand", ["meta_interval=1"], verbose=False)
    env.moto = server        # fresh() mounts through server.endpoint: the proxy
    os.umask(0o022)
    r = fsrand.Run(env)
    r.fs.moto = server
    gen = fsrand.Generator(SEED)
    try:
        for _ in range(OPS):
            r.apply(gen.next(r.tree()))
        r.finish()
    except fsrand.Mismatch as m:
        pytest.fail(f"fsrand (FAULT_SEED={SEED}) under faults, operation #{m.index} {m.op}: {m.detail}")
    finally:
        stopped = r.stop()
    assert stopped is None, stopped
    assert proxy.faults_before + proxy.faults_after >= 20 and proxy.delayed >= 3, (proxy.requests, proxy.faults_before, proxy.delayed)
    print(f"{OPS} ops equal; {proxy.requests} requests, {proxy.faults_before}+{proxy.faults_after} 503s, {proxy.delayed} delayed")
    c = fsck(r.fs, "--verify")
    assert c.returncode == 0, c.stdout + c.stderr


def read_uncached(path):
    """Reads a file after dropping its pages from the kernel's cache, so the daemon serves it."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        out = bytearray()
        while block := os.read(fd, 4 * MiB):
            out += block
        return bytes(out)
    finally:
        os.close(fd)


def bounded(fn, what):
    """Runs fn on a thread; fails if it does not return within HANG seconds (a hang detector,
    not a speed check: a cached read that waited for the stalled store would sit there)."""
    result = {}
    t = threading.Thread(target=lambda: result.update(value=fn()), daemon=True)
    t.start()
    t.join(HANG)
    assert not t.is_alive(), f"{what} hung while the store was stalled"
    assert "value" in result, f"{what} failed"
    return result["value"]


def test_outage_cached_reads_work_writes_fail_then_recover(faulty_s3, tmp_path):
    server, proxy = faulty_s3
    fs = Filesystem(tmp_path, ["retries=3", "meta_interval=3600"],
                    source=f"s3://{server.bucket}/outage-{uuid.uuid4().hex[:8]}", env=s3_env(server))
    fs.moto = server
    cached = os.urandom(3 * MiB + 4321)
    fs.start()
    try:
        fs.path("dir").mkdir()
        fs.path("dir", "cached").write_bytes(cached)
        assert read_uncached(fs.path("dir", "cached")) == cached

        started = time.monotonic()
        proxy.outage("stall")
        # Reads of cached chunks, stat and readdir never ask the store.
        assert bounded(lambda: read_uncached(fs.path("dir", "cached")), "a cached read") == cached
        assert bounded(lambda: os.listdir(fs.path("dir")), "readdir") == ["cached"]

        proxy.outage("refuse")   # and the stalled requests fail too
        with pytest.raises(OSError) as e:
            write_fsynced(fs.path("dir", "lost"), os.urandom(2 * MiB))
        assert e.value.errno == errno.EIO
        while time.monotonic() - started < OUTAGE_SECONDS:
            assert read_uncached(fs.path("dir", "cached")) == cached
            threading.Event().wait(1)   # the outage's own length, not a synchronisation
        assert proxy.refused > 0
        proxy.restore()

        # Back: new writes succeed on the same mount, and nothing unstored was published.
        fresh = os.urandom(2 * MiB + 99)
        write_fsynced(fs.path("dir", "after"), fresh)
        assert read_uncached(fs.path("dir", "after")) == fresh
        assert os.path.getsize(fs.path("dir", "lost")) == 0
        write_fsynced(fs.path("dir", "lost"), b"second try")
    finally:
        proxy.restore()
        fs.stop()   # the final snapshot must reach the store: the daemon exits 0
    c = fsck(fs, "--verify")
    assert c.returncode == 0, c.stdout + c.stderr
    fs.start()
    try:
        assert fs.path("dir", "cached").read_bytes() == cached
        assert sha256_file(fs.path("dir", "after")) == hashlib.sha256(fresh).hexdigest()
        assert fs.path("dir", "lost").read_bytes() == b"second try"
    finally:
        fs.stop()
