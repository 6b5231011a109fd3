"""What an operator asks of a filesystem beyond status: `info` and `warmup` of paths on a
mount, `fsck`/`gc` with nothing but the bucket, and progress on the terminal of whoever waits
(the metadata restore at mount, the unmount flush). On moto (S3), started and stopped by PID."""
import json
import os
import pty
import re
import select
import shutil
import socket
import subprocess
import urllib.request
import uuid

import pytest

from mossaic import BIN, EXIT_TIMEOUT, Filesystem, is_mounted, random_file, run, s3_env, wait_pid_exit
from s3server import MotoServer

MiB = 1 << 20


@pytest.fixture(scope="module")
def moto():
    with MotoServer(bucket="mossaic-insight") as server:
        yield server


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def s3_fs(tmp_path, moto, options=()):
    return Filesystem(tmp_path, options=list(options), source=f"s3://{moto.bucket}/fs-{uuid.uuid4().hex[:8]}", env=s3_env(moto))


def store_gets(port):
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    m = re.search(r'^mossaicfs_store_requests_total\{op="get"\} (\d+)', text, re.M)
    return int(m.group(1)) if m else 0


def on_terminal(args, env):
    """Runs mossaicfs with stderr on a pseudo-terminal (stdout a pipe); returns (exit code,
    stdout, what the terminal showed)."""
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen([BIN, *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave, env=env)
        os.close(slave)
        shown = b""
        while True:
            ready, _, _ = select.select([master], [], [], EXIT_TIMEOUT)
            if not ready:
                proc.kill()
                raise TimeoutError("no end of output")
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every writer closed the terminal
                break
            if not data:
                break
            shown += data
        out = proc.stdout.read().decode()
        return proc.wait(timeout=EXIT_TIMEOUT), out, shown.decode(errors="replace")
    finally:
        os.close(master)


def test_info_reports_size_chunks_and_sharing(tmp_path, moto):
    f = s3_fs(tmp_path, moto).start()
    try:
        data = random_file(3 * MiB)
        (f.path("a")).write_bytes(data)
        (f.path("d")).mkdir()
        (f.path("d", "b")).write_bytes(data)          # the same chunks as a: deduplicated
        (f.path("d", "c")).write_bytes(random_file(MiB))
        r = run("info", "--json", str(f.path("a")), str(f.path("d")), env=f.env)
        a, d = (e["info"] for e in json.loads(r.stdout))
        assert a["inode"] == os.stat(f.path("a")).st_ino and a["type"] == "file" and a["size"] == 3 * MiB
        assert a["usage"]["chunks"] == 3 and a["usage"]["storedBytes"] == 3 * MiB
        assert a["usage"]["deduplicatedBytes"] == 3 * MiB and a["usage"]["exclusiveBytes"] == 0
        u = d["usage"]
        assert (u["files"], u["directories"], u["size"]) == (2, 1, 4 * MiB)
        assert u["chunkReferences"] == 4 and u["storedBytes"] == 4 * MiB
        assert u["deduplicatedBytes"] == 3 * MiB and u["exclusiveBytes"] == MiB

        r = run("info", str(f.path("d")), env=f.env)
        assert "4.0 MiB" in r.stdout and "2 files, 1 directories" in r.stdout, r.stdout
        r = run("info", "--bytes", str(f.path("d")), env=f.env)
        assert re.search(r"^\s+size\s+4194304$", r.stdout, re.M), r.stdout

        r = run("info", str(tmp_path), check=False, env=f.env)
        assert r.returncode == 1 and "not on a mounted mossaicfs" in r.stderr and len(r.stderr.splitlines()) == 1, r.stderr
    finally:
        f.stop()


def test_warmup_fills_the_cache_so_reads_need_no_store(tmp_path, moto):
    port = free_port()
    f = s3_fs(tmp_path, moto, options=[f"metrics=127.0.0.1:{port}"]).start()
    files = {}
    try:
        f.path("tree", "sub").mkdir(parents=True)
        for name, size in [("tree/one", 3 * MiB), ("tree/sub/two", 2 * MiB + 777), ("tree/sub/small", 100)]:
            files[name] = random_file(size)
            f.path(*name.split("/")).write_bytes(files[name])
    finally:
        f.stop()
    # A cold cache: the chunks are only in the bucket.
    shutil.rmtree(f.cache / "blobs")
    f.start()
    try:
        r = run("warmup", str(f.path("tree")), env=f.env)
        # The 777-byte tail and the small file are inline in the metadata: 5 chunk objects.
        assert re.search(r"3 files, 5 chunks \(5.0 MiB\): 5 fetched, 0 cached already", r.stdout), r.stdout
        assert r.stderr == "", "progress or noise off a terminal: " + r.stderr
        before = store_gets(port)
        for name, data in files.items():
            assert f.path(*name.split("/")).read_bytes() == data
        assert store_gets(port) == before, "reads after warmup went to the store"
        # Warm already: nothing fetched again.
        r = run("warmup", str(f.path("tree", "one")), env=f.env)
        assert "0 fetched, 3 cached already" in r.stdout, r.stdout
    finally:
        f.stop()


def test_fsck_and_gc_need_only_the_bucket(tmp_path, moto):
    f = s3_fs(tmp_path, moto).start()
    try:
        f.path("keep").write_bytes(random_file(2 * MiB))
        f.path("gone").write_bytes(random_file(MiB))
        f.path("gone").unlink()
    finally:
        f.stop()
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = dict(f.env, TMPDIR=str(temp))

    def summary(r):
        assert r.returncode == 0, r.stdout + r.stderr
        return r.stdout.strip().splitlines()[-1]

    with_cache = summary(run("fsck", f.source, "--verify", "-o", f"cache_dir={f.cache}", check=False, env=env))
    empty = tmp_path / "empty-cache"
    for options in (["-o", f"cache_dir={empty}"], []):
        r = run("fsck", f.source, "--verify", *options, check=False, env=env)
        assert summary(r) == with_cache and "newest metadata snapshot" in r.stderr
        assert list(temp.iterdir()) == [], "the temporary cache_dir was left behind"
    assert not empty.exists(), "fsck created the cache_dir it was given"

    gc_with_cache = summary(run("gc", f.source, "--dry-run", "--grace", "0", "-o", f"cache_dir={f.cache}", check=False, env=env))
    assert "1 would delete" in gc_with_cache, gc_with_cache  # the deleted file's chunk
    for options in (["-o", f"cache_dir={empty}"], []):
        r = run("gc", f.source, "--dry-run", "--grace", "0", *options, check=False, env=env)
        assert summary(r) == gc_with_cache
        assert list(temp.iterdir()) == []

    r = run("fsck", f.source, "--repair", check=False, env=env)
    assert r.returncode == 1 and "--repair needs the metadata itself" in r.stderr, r.stderr

    # A gc that would delete, from the bucket alone, still respects a live writer's lease.
    f.start()
    try:
        r = run("gc", f.source, "--grace", "0", check=False, env=env)
        assert r.returncode == 1 and "already mounted read-write" in r.stderr, r.stderr
        assert list(temp.iterdir()) == []
    finally:
        f.stop()


def test_progress_on_a_terminal_only(tmp_path, moto):
    f = s3_fs(tmp_path, moto).start()
    try:
        f.path("x").write_bytes(random_file(3 * MiB))
    finally:
        f.stop()
    args = ["fsck", f.source, "--verify", "-o", f"cache_dir={f.cache}"]
    code, out, shown = on_terminal(args, f.env)
    assert code == 0 and "verifying objects" in shown and "3/3" not in out, (out, shown)
    r = run(*args, check=False, env=f.env)
    assert r.returncode == 0 and r.stderr == "", r.stderr

    # The metadata restore of a mount on a fresh machine is shown by the waiting `mount`,
    # although the daemon runs in the background.
    mnt, fresh = tmp_path / "mnt2", tmp_path / "fresh-cache"
    mnt.mkdir()
    code, out, shown = on_terminal(["mount", f.source, str(mnt), "-o", f"cache_dir={fresh}"], f.env)
    pid = int((fresh / "lock").read_text().split()[0]) if (fresh / "lock").exists() else None
    try:
        assert code == 0, shown
        assert "restoring metadata" in shown and "PROGRESS" not in shown, shown
        assert (mnt / "x").stat().st_size == 3 * MiB
    finally:
        if is_mounted(mnt):
            subprocess.run(["umount", str(mnt)], check=True)
        if pid:
            assert wait_pid_exit(pid, EXIT_TIMEOUT)


def test_unmount_flush_progress_is_followed_until_the_daemon_exits(tmp_path, moto):
    f = s3_fs(tmp_path, moto, options=["writeback"]).start()
    try:
        f.path("w").write_bytes(random_file(4 * MiB))
        follower = socket.socket(socket.AF_UNIX)
        follower.connect(str(f.cache / "control.sock"))
        follower.sendall(b"progress\n")
        pid = f.mount.proc.pid
    finally:
        f.stop()  # unmounts and waits for the daemon to exit
    follower.settimeout(EXIT_TIMEOUT)
    lines = b""
    while chunk := follower.recv(65536):  # EOF: the daemon has exited
        lines += chunk
    follower.close()
    assert wait_pid_exit(pid, 0)
    events = [line.split("\t") for line in lines.decode().splitlines() if line]
    assert events and all(e[0] == "PROGRESS" and len(e) == 5 for e in events), lines
    assert events[-1][1] == "storing the metadata snapshot", events
    for e in events:
        if e[1] == "uploading staged chunks":
            assert e[4] == "bytes" and int(e[2]) <= int(e[3])
