"""`mossaicfs status` and the Prometheus endpoint show what the filesystem and its daemon do."""
import errno
import json
import os
import re
import socket
import subprocess
import urllib.request

from mossaic import Filesystem, random_file, run


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_status_of_a_mount_and_of_an_unmounted_source(tmp_path):
    port = free_port()
    f = Filesystem(tmp_path, options=[f"metrics=127.0.0.1:{port}"])
    try:
        f.start()
        data = random_file(2 << 20)  # 2 MiB: two different stored chunks
        f.path("a").write_bytes(data)
        subprocess.run(["cp", str(f.path("a")), str(f.path("b"))], check=True)  # same chunks again
        f.path("small").write_bytes(b"x" * 100)
        assert f.path("a").read_bytes() == data

        live = json.loads(run("status", str(f.mnt), "--json").stdout)
        assert live["mounted"] is True and live["readOnly"] is False
        assert live["usage"]["files"] == 3
        assert live["usage"]["logicalBytes"] == 2 * len(data) + 100
        assert live["usage"]["storedBytes"] == len(data)  # b shares a's chunks
        assert live["usage"]["inlineBytes"] == 100
        assert abs(live["dedupRatio"] - (2 * len(data) + 100) / (len(data) + 100)) < 1e-9
        assert live["cache"]["memoryHits"] + live["cache"]["misses"] > 0
        table = run("status", str(f.mnt)).stdout
        assert "dedup ratio" in table and "mounted read-write" in table

        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
        assert 'mossaicfs_fuse_op_duration_seconds_count{op="create"} 3' in metrics
        assert 'mossaicfs_store_requests_total{op="put"}' in metrics
        assert "mossaicfs_commit_duration_seconds_bucket" in metrics
        assert 'mossaicfs_cache_hits_total{level="memory"}' in metrics
        assert "mossaicfs_uploads_in_flight 0" in metrics
    finally:
        f.stop()
    offline = json.loads(run("status", str(f.store), "-o", f"cache_dir={f.cache}", "--json").stdout)
    assert offline["mounted"] is False
    assert offline["usage"] == live["usage"]


def test_metrics_endpoint_must_be_loopback(tmp_path):
    run("format", str(tmp_path / "s"))
    (tmp_path / "m").mkdir()
    r = run("mount", str(tmp_path / "s"), str(tmp_path / "m"), "-o", f"cache_dir={tmp_path}/c,metrics=0.0.0.0:9100", check=False)
    assert r.returncode != 0 and "loopback" in r.stderr


def test_negative_answers_are_not_counted_as_errors(tmp_path):
    """A lookup of a missing name (ENOENT), a getxattr of a missing attribute (ENODATA) and an
    ioctl the filesystem does not know (ENOTTY: isatty() on a file, as Python's open() does) are
    the normal answers to a question, asked by every ls, cp and shell: they must not fill
    mossaicfs_fuse_errors_total, which is for failures (an ENOTEMPTY here, still counted)."""
    port = free_port()
    f = Filesystem(tmp_path, options=[f"metrics=127.0.0.1:{port}"])
    try:
        f.start()
        f.path("d").mkdir()
        f.path("d", "in").write_bytes(b"")
        f.path("file").write_bytes(b"data")
        with open(f.path("file"), "rb") as fd:
            assert not fd.isatty()
        for i in range(5):
            assert not f.path(f"missing-{i}").exists()
            try:
                os.getxattr(f.path("file"), f"user.missing-{i}")
                raise AssertionError("getxattr of a missing attribute succeeded")
            except OSError as e:
                assert e.errno == errno.ENODATA
        try:
            f.path("d").rmdir()
            raise AssertionError("rmdir of a non-empty directory succeeded")
        except OSError as e:
            assert e.errno == errno.ENOTEMPTY
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
        assert re.search(r'^mossaicfs_fuse_op_duration_seconds_count\{op="getxattr"\} ([5-9]|\d\d+)$', metrics, re.M), metrics
        errors = [line for line in metrics.splitlines() if line.startswith("mossaicfs_fuse_errors_total{")]
        assert not [line for line in errors if 'op="lookup"' in line and f'errno="{errno.ENOENT}"' in line], errors
        assert not [line for line in errors if 'op="getxattr"' in line and f'errno="{errno.ENODATA}"' in line], errors
        assert not [line for line in errors if 'op="ioctl"' in line and f'errno="{errno.ENOTTY}"' in line], errors
        assert f'mossaicfs_fuse_errors_total{{op="rmdir",errno="{errno.ENOTEMPTY}"}} 1' in errors, errors
    finally:
        f.stop()
