"""Helpers for end-to-end tests: run the built mossaicfs binary, mount it, unmount it.

Every mount made here is unmounted and every daemon started here is stopped by its PID, on
every path (fixtures call `stop()` in a finally). Waiting is done on real events — the
daemon's readiness pipe, process exit — never on sleeps.
"""
import atexit
import hashlib
import itertools
import os
import select
import shlex
import signal
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = os.environ.get("MOSSAICFS_BIN") or str(REPO / ".build" / "debug" / "mossaicfs")
READY_TIMEOUT = 60
EXIT_TIMEOUT = 120
CHUNK = 1 << 20  # FormatConstants.chunkSize
# Extra `format` options for every filesystem the suites make (a test matrix row, e.g.
# MOSSAICFS_TEST_FORMAT_ARGS="--compress zstd --encrypt"): the crash, fault and POSIX suites
# then run unchanged on a filesystem with those options. --encrypt takes its passphrase from
# MOSSAICFS_PASSPHRASE, which every command the tests run inherits (mount, fsck, gc, …; a
# filesystem in the clear ignores it).
FORMAT_ARGS = shlex.split(os.environ.get("MOSSAICFS_TEST_FORMAT_ARGS", ""))
if "--encrypt" in FORMAT_ARGS and not os.environ.get("MOSSAICFS_PASSPHRASE"):
    raise RuntimeError("MOSSAICFS_TEST_FORMAT_ARGS with --encrypt needs MOSSAICFS_PASSPHRASE in the environment")
# The metadata engine row of the matrix: MOSSAICFS_TEST_META=postgres formats every filesystem
# the suites make with `--meta` naming a fresh database of one PostgreSQL server per test
# process (pgserver.py), started with the first filesystem and stopped by PID when the process
# exits (its postmaster also dies with the process: PR_SET_PDEATHSIG). Unset: SQLite.
META = os.environ.get("MOSSAICFS_TEST_META", "sqlite")
if META not in ("sqlite", "postgres"):
    raise RuntimeError(f"MOSSAICFS_TEST_META={META}: use sqlite or postgres")
_postgres = None
_databases = itertools.count(1)


def meta_format_args():
    """The `format` options that put a new filesystem's metadata where MOSSAICFS_TEST_META says."""
    global _postgres
    if META == "sqlite":
        return []
    if _postgres is None:
        from pgserver import PostgresServer
        _postgres = PostgresServer().start()
        atexit.register(_postgres.stop)
    return ["--meta", _postgres.create_database(f"fs{next(_databases)}")]


def run(*args, check=True, **kw):
    """Runs the mossaicfs binary and returns the CompletedProcess (text mode)."""
    return subprocess.run([BIN, *args], check=check, capture_output=True, text=True, **kw)


def one_line_failure(r):
    """The message of a command that failed as bad input must: exit 1, one line on stderr."""
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mossaicfs: "), r.stderr
    return lines[0]


def read_until_eof(fd, timeout):
    """Reads a pipe until EOF or `timeout` seconds; returns the bytes."""
    deadline = time.monotonic() + timeout
    data = b""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no readiness answer within {timeout}s (got {data!r})")
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            continue
        chunk = os.read(fd, 4096)
        if not chunk:
            return data
        data += chunk


def is_mounted(path):
    path = os.path.realpath(path)
    with open("/proc/self/mounts") as f:
        return any(line.split()[1] == path for line in f)


def wait_pid_exit(pid, timeout):
    """Waits for a process that is not our child to exit (pidfd + poll, no sleeps)."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        ready, _, _ = select.select([fd], [], [], timeout)
        return bool(ready)
    finally:
        os.close(fd)


class Mount:
    """A mossaicfs daemon started in the foreground by the test (`-f --ready-fd`)."""

    def __init__(self, source, mountpoint, cache_dir, options=(), log=None, env=None, launcher=()):
        """`launcher`: a command the daemon runs under (`nsenter --net=…`: a host in its own
        network namespace)."""
        self.env = env
        self.launcher = list(launcher)
        self.source = str(source)
        self.mountpoint = str(mountpoint)
        self.cache_dir = str(cache_dir)
        self.options = list(options)
        self.log = log
        self.proc = None

    def start(self):
        os.makedirs(self.mountpoint, exist_ok=True)
        opts = ",".join([f"cache_dir={self.cache_dir}", *self.options])
        r, w = os.pipe()
        logf = open(self.log, "ab") if self.log else subprocess.DEVNULL
        try:
            self.proc = subprocess.Popen(
                [*self.launcher, BIN, "mount", self.source, self.mountpoint, "-f", "--ready-fd", str(w), "-o", opts],
                pass_fds=[w], stdin=subprocess.DEVNULL, stdout=logf, stderr=logf, env=self.env)
        finally:
            os.close(w)
            if self.log:
                logf.close()
        try:
            answer = read_until_eof(r, READY_TIMEOUT).decode().strip()
        finally:
            os.close(r)
        if answer != "READY":
            code = self.proc.wait(timeout=EXIT_TIMEOUT)
            self.proc = None
            raise RuntimeError(f"mount failed (exit {code}): {answer}")
        return self

    def stop(self, expect_exit=0):
        """Unmounts and waits for the daemon to finish its shutdown and exit `expect_exit`."""
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        try:
            subprocess.run(["umount", self.mountpoint], check=True, capture_output=True)
            code = proc.wait(timeout=EXIT_TIMEOUT)
            assert code == expect_exit, f"daemon exited with {code}"
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=EXIT_TIMEOUT)
            if is_mounted(self.mountpoint):
                subprocess.run(["umount", "-l", self.mountpoint], capture_output=True)

    def kill(self):
        """SIGKILL, as a crash would; the kernel mount is detached afterwards."""
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=EXIT_TIMEOUT)
        subprocess.run(["umount", "-l", self.mountpoint], capture_output=True)


class Filesystem:
    """A formatted filesystem with a mount that tests can cycle: on a local directory
    (`root/store`) by default, or on `source` (s3://…) with `env` holding its credentials.
    Formatted with FORMAT_ARGS and the metadata engine's options (`meta_format_args`), then
    `format_args`."""

    def __init__(self, root, options=(), source=None, env=None, format_args=()):
        self.root = Path(root)
        self.store = self.root / "store"
        self.source = source or str(self.store)
        self.env = env
        self.mnt = self.root / "mnt"
        self.cache = self.root / "cache"
        self.options = list(options)
        run("format", *FORMAT_ARGS, *meta_format_args(), *format_args, self.source, env=env)
        self.mount = None

    def start(self):
        self.mount = Mount(self.source, self.mnt, self.cache, self.options, log=self.root / "daemon.log", env=self.env).start()
        return self

    def stop(self):
        if self.mount:
            m, self.mount = self.mount, None
            m.stop()

    def remount(self):
        self.stop()
        return self.start()

    def chunk_objects(self):
        """Names (hex SHA-256) of the objects holding chunk bytes in the store: chunk objects
        and packs (several chunks stored with one PUT)."""
        return {p.name for d in ("chunks", "packs") for p in (self.store / d).rglob("*") if p.is_file()}

    def path(self, *parts):
        return self.mnt.joinpath(*parts)


def wait_until(predicate, timeout, what):
    """Polls `predicate` until it is true or `timeout` seconds passed (then fails naming `what`).
    For events the test cannot be told about (a read-only mount picking up a new snapshot):
    the deadline bounds the wait, the poll period only how soon success is noticed."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:.1f}s")
        time.sleep(0.05)
    return time.monotonic() - (deadline - timeout)


def write_fsynced(path, data):
    """Creates or truncates `path`, writes `data` and fsyncs it (fsync's error is raised)."""
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def random_file(size):
    """Random bytes in which no 1 MiB chunk ends in a zero byte: a chunk is stored without its
    trailing zeros, so tests that count stored bytes or hash objects need full-length chunks."""
    data = bytearray(os.urandom(size))
    for end in range(CHUNK, size + CHUNK, CHUNK):
        data[min(end, size) - 1] = 0x5A
    return bytes(data)


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def s3_env(server, **overrides):
    """The environment a mossaicfs process needs to reach `server` (an s3server.MotoServer):
    the caller's environment without its AWS_* variables, plus the server's credentials."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ACCESS_KEY_ID=server.access_key, AWS_SECRET_ACCESS_KEY=server.secret_key,
               AWS_ENDPOINT_URL=server.endpoint, AWS_REGION=server.region)
    env.update(overrides)
    return env
