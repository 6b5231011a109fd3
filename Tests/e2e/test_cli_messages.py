"""What the commands that run and exit tell an operator: one line for a store that cannot be
used (no retry chatter before it, the likely cause of a bare HTTP 404), advice that fits the
command (fsck and gc are not mounts), and sizes a person can read (exact with --bytes)."""
import http.server
import json
import re
import socket
import threading

import pytest

from mossaic import Filesystem, random_file, run

MiB = 1 << 20
# Credentials for endpoints that never check them: the test servers here are no S3.
DUMMY_AWS = {"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "not-a-secret", "AWS_REGION": "us-east-1",
             "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}


class NotFoundEverywhere(http.server.BaseHTTPRequestHandler):
    """A web server that is not S3: every request is a 404 with an HTML page."""

    def answer(self):
        body = b"<html><body><h1>404 Not Found</h1></body></html>"
        self.send_response(404)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_PUT = do_HEAD = do_DELETE = do_POST = answer

    def log_message(self, *args):
        pass


@pytest.fixture
def web_server():
    """A plain HTTP server on a free loopback port, in this process; shut down at teardown."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotFoundEverywhere)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def closed_port():
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def one_line(r):
    assert r.returncode != 0
    lines = r.stderr.splitlines()
    assert len(lines) == 1, f"expected one line, got:\n{r.stderr}"
    assert r.stdout == ""
    return lines[0]


def test_format_on_an_unreachable_endpoint_prints_one_line():
    endpoint = f"http://127.0.0.1:{closed_port()}"
    r = run("format", "s3://bucket/fs", "-o", f"endpoint={endpoint}", check=False, env=DUMMY_AWS)
    line = one_line(r)
    assert endpoint.removeprefix("http://") in line, line
    assert "retrying" not in r.stderr


def test_a_404_from_something_that_is_not_s3_names_the_likely_cause(web_server):
    r = run("format", "s3://bucket/fs", "-o", f"endpoint={web_server}", check=False, env=DUMMY_AWS)
    line = one_line(r)
    assert "404" in line and "S3 endpoint" in line and "endpoint=" in line and '"bucket"' in line, line
    # The other read commands say the same.
    for command in (["fsck"], ["gc", "--dry-run"], ["snapshots"], ["status"]):
        r = run(*command, "s3://bucket/fs", "-o", f"endpoint={web_server}", check=False, env=DUMMY_AWS)
        assert "S3 endpoint" in one_line(r), command


def test_fsck_and_gc_on_a_mounted_filesystem_give_their_own_advice(tmp_path):
    fs = Filesystem(tmp_path)
    fs.start()
    try:
        fs.path("f").write_bytes(b"x" * 100_000)
        # Same cache_dir: its lock is held by the daemon.
        for command in ("fsck", "gc"):
            r = run(command, fs.source, "-o", f"cache_dir={fs.cache}", check=False)
            line = one_line(r)
            assert "in use by another mossaicfs process" in line, line
            assert f"{command} works on an unmounted filesystem: unmount it first" in line, line
            assert "give this mount" not in line and "cache_dir=" not in line.split(";", 1)[1], line
        # Another cache_dir: the writer lease is held by the mount.
        r = run("gc", fs.source, "-o", f"cache_dir={tmp_path / 'other-cache'}", check=False)
        line = one_line(r)
        assert "already mounted read-write" in line and "gc needs the writer lease: unmount it there first" in line, line
        assert "-o ro" not in line, line
    finally:
        fs.stop()


def test_sizes_are_human_readable_and_exact_with_bytes(tmp_path):
    fs = Filesystem(tmp_path)
    fs.start()
    size = 3 * MiB + MiB // 2  # 3.5 MiB: random, so stored as such
    try:
        fs.path("f").write_bytes(random_file(size))
        table = run("status", str(fs.mnt)).stdout
        assert re.search(r"^logical bytes\s+3\.5 MiB$", table, re.M), table
        exact = run("status", str(fs.mnt), "--bytes").stdout
        assert re.search(rf"^logical bytes\s+{size}$", exact, re.M), exact
        assert json.loads(run("status", str(fs.mnt), "--json", "--bytes").stdout)["usage"]["logicalBytes"] == size
        run("snapshot", str(fs.mnt))  # a snapshot with f, for `snapshots`
        fs.path("f").unlink()
    finally:
        fs.stop()  # publishes a snapshot with no files after the one that had f

    listing = run("snapshots", fs.source).stdout.splitlines()
    assert listing[0].split()[:4] == ["ID", "CREATED", "FILES", "SIZE"], listing
    assert any(re.search(r"\s1\s+3\.5 MiB\s", line) for line in listing[1:]), listing
    listing = run("snapshots", fs.source, "--bytes").stdout.splitlines()
    assert listing[0].split()[:4] == ["ID", "CREATED", "FILES", "BYTES"], listing
    assert any(line.split()[2:4] == ["1", str(size)] for line in listing[1:]), listing

    r = run("gc", fs.source, "-o", f"cache_dir={fs.cache}", "--grace", "0", "--dry-run")
    assert re.search(r", \d+(\.\d)? (B|KiB|MiB) to free;", r.stdout), r.stdout
    r = run("gc", fs.source, "-o", f"cache_dir={fs.cache}", "--grace", "0", "--dry-run", "--bytes")
    assert re.search(r", \d+ to free;", r.stdout), r.stdout
