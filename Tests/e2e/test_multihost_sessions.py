"""Sessions of hosts mounting one PostgreSQL filesystem (issue 25): a file unlinked on one host
while open on another stays readable there until closed, and is reclaimed then; kill -9 of one
host's daemon loses nothing it acknowledged, and the other hosts clean up its session (its
locks, its open files); a host whose session the others deleted while it was stopped refuses
changes (EROFS).

Three mounts A, B and C — separate daemons with their own cache_dirs on one PostgreSQL
database and one store, as three hosts would have them — with a short session_expiry (3 s,
heartbeats every 0.5 s), so that a dead host is noticed within seconds. The test polls the
database (the `sessions` and `open_files` tables) and the mounts for each step, never sleeping
a fixed time."""
import errno
import hashlib
import json
import os
import signal
import subprocess

import pytest

from mossaic import one_line_failure, Mount, random_file, run, sha256_file, wait_until, write_fsynced
from pgserver import PostgresServer
from test_multihost_locks import Locker, lockers  # noqa: F401 (a fixture)

WAIT = 30
SESSION_OPTIONS = ["session_heartbeat=0.5", "session_expiry=3"]


@pytest.fixture(scope="module")
def pg():
    with PostgresServer() as server:
        yield server


class Hosts:
    def __init__(self, pg, database, store, tmp_path):
        self.pg, self.database, self.store, self.tmp_path = pg, database, store, tmp_path
        self.mounts = {}

    def mount(self, name):
        m = Mount(self.store, self.tmp_path / f"mnt-{name}", self.tmp_path / f"cache-{name}", options=SESSION_OPTIONS,
                  log=self.tmp_path / f"daemon-{name}.log").start()
        self.mounts[name] = m
        return self.tmp_path / f"mnt-{name}"

    def sql(self, statement):
        return self.pg.psql(self.database, statement)

    def count(self, statement):
        return int(self.sql(statement))

    def log(self, name):
        return (self.tmp_path / f"daemon-{name}.log").read_text(errors="replace")


@pytest.fixture
def hosts(pg, tmp_path, request):
    """Mounts A, B and C of one new filesystem; yields (Hosts, [their mount points])."""
    database = pg.create_database("s_" + request.node.name.lower()[:40])
    store = tmp_path / "store"
    run("format", "--meta", database, str(store))
    h = Hosts(pg, database, store, tmp_path)
    try:
        paths = [h.mount(name) for name in "abc"]
        yield h, paths
    finally:
        for m in h.mounts.values():
            if m.proc is not None and m.proc.poll() is None:
                os.kill(m.proc.pid, signal.SIGCONT)
            m.stop()


def store_objects(store):
    return sorted(str(p.relative_to(store)) for d in ("chunks", "packs") if (store / d).exists()
                  for p in (store / d).rglob("*") if p.is_file())


def kill_daemon(m):
    """kill -9 of the daemon by its PID, as a crash of its host would; then its mount point is
    detached lazily (the kernel has nobody to answer it any more)."""
    proc, m.proc = m.proc, None
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=WAIT)
    subprocess.run(["fusermount3", "-uz", m.mountpoint], check=True, capture_output=True)


def test_a_file_unlinked_on_one_host_stays_readable_where_it_is_open(hosts, tmp_path):
    h, (a, b, c) = hosts
    data = random_file(3 << 20 | 4321)
    write_fsynced(a / "f", data)
    assert h.count("SELECT count(*) FROM sessions") == 3

    with open(b / "f", "rb") as reader:
        first = reader.read(1 << 20)
        wait_until(lambda: h.count("SELECT count(*) FROM open_files") == 1, WAIT, "B's open is recorded")
        os.unlink(a / "f")
        assert not (a / "f").exists()
        wait_until(lambda: not (c / "f").exists(), WAIT, "C sees the unlink")
        # Kept for B: the inode (nlink 0) and its chunk map, through A's and C's heartbeats and
        # cleanups, a new mount's start (which reclaims orphans nobody has open); gc, refused
        # beside live hosts, would keep its chunks too (a dry run marks them live).
        assert h.count("SELECT count(*) FROM inodes WHERE nlink = 0") == 1
        d = h.mount("d")
        objects = store_objects(h.store)
        line = one_line_failure(run("gc", str(h.store), "--grace", "0s", "-o", f"cache_dir={tmp_path / 'cache-gc'}", check=False))
        assert "is mounted read-write on" in line and "unmount it on every host first" in line, line
        r = run("gc", str(h.store), "--grace", "0s", "--dry-run", "-o", f"cache_dir={tmp_path / 'cache-gc'}")
        assert " 0 would delete" in r.stdout, r.stdout
        assert store_objects(h.store) == objects
        assert not (d / "f").exists() and h.count("SELECT count(*) FROM sessions") == 4
        h.mounts.pop("d").stop()
        # A clean unmount deletes its session at once.
        assert h.count("SELECT count(*) FROM sessions") == 3
        assert h.count("SELECT count(*) FROM inodes WHERE nlink = 0") == 1
        rest = reader.read()
        assert hashlib.sha256(first + rest).hexdigest() == hashlib.sha256(data).hexdigest()
        reader.seek(0)
        assert reader.read() == data

    # B's close (its release reaches B's daemon after close(2) returned) reclaims it.
    wait_until(lambda: h.count("SELECT count(*) FROM inodes WHERE nlink = 0") == 0, WAIT, "the last close reclaims the inode")
    assert h.count("SELECT count(*) FROM open_files") == 0
    assert h.count("SELECT count(*) FROM orphans") == 0
    # Its chunks are garbage now, for a gc once every host unmounted.
    for m in h.mounts.values():
        m.stop()
    r = run("gc", str(h.store), "--grace", "0s", "-o", f"cache_dir={tmp_path / 'cache-gc'}")
    assert len(store_objects(h.store)) < len(objects), r.stdout


def test_a_killed_host_loses_nothing_acknowledged_and_the_others_clean_its_session(hosts, lockers):
    h, (a, b, c) = hosts
    files = {f"f{i}": random_file(size) for i, size in enumerate([0, 100, 70_000, 1 << 20, (2 << 20) + 17])}
    for name, data in files.items():
        write_fsynced(a / name, data)
    (a / "locked").write_bytes(b"lock me")
    # What A holds when it dies: a flock, and an open file that B then unlinks.
    holder = lockers(a / "locked")
    assert holder.do("flock ex") == "ok"
    write_fsynced(a / "kept-open", b"open on A")
    held = open(a / "kept-open", "rb")
    a_pid = h.mounts["a"].proc.pid
    assert h.count(f"SELECT count(*) FROM sessions WHERE pid = {a_pid}") == 1
    session = h.sql(f"SELECT id FROM sessions WHERE pid = {a_pid}")
    wait_until(lambda: h.count(f"SELECT count(*) FROM open_files WHERE session = '{session}'") >= 2, WAIT,
               "A's opens are recorded")
    assert lockers(b / "locked").do("flock ex nb") in ("EAGAIN", "EWOULDBLOCK")
    os.unlink(b / "kept-open")
    assert h.count("SELECT count(*) FROM inodes WHERE nlink = 0") == 1

    kill_daemon(h.mounts["a"])
    for process in (holder.proc,):
        process.kill()
        process.wait(timeout=WAIT)
    try:
        held.close()
    except OSError:
        pass

    # Everything A acknowledged is on B and C, whole.
    for name, data in files.items():
        assert sha256_file(b / name) == hashlib.sha256(data).hexdigest(), name
        assert (c / name).stat().st_size == len(data), name
    # B and C notice A's heartbeat stopped: its session, its lock and its open go, and the
    # file only A had open is reclaimed.
    wait_until(lambda: h.count(f"SELECT count(*) FROM sessions WHERE id = '{session}'") == 0, WAIT,
               "A's session is cleaned up")
    for table in ("plocks", "flocks", "open_files"):
        assert h.count(f"SELECT count(*) FROM {table} WHERE session = '{session}'") == 0, table
    wait_until(lambda: h.count("SELECT count(*) FROM inodes WHERE nlink = 0") == 0, WAIT, "A's unlinked open file is reclaimed")
    wait_until(lambda: lockers(b / "locked").do("flock ex nb") == "ok", WAIT, "A's flock can be taken")
    assert "cleaned up dead sessions" in h.log("b") + h.log("c")

    # status shows the two live hosts.
    status = json.loads(run("status", str(b), "--json").stdout)
    assert len(status["sessions"]) == 2 and all(s["heartbeatAgeSeconds"] < 3 for s in status["sessions"]), status
    assert status["session"] in [s["id"] for s in status["sessions"]]
    table = run("status", str(c)).stdout
    assert "sessions" in table and "(this mount)" in table and f"pid {a_pid}" not in table, table
    # The filesystem is consistent, and A's cache_dir mounts again.
    assert run("fsck", str(h.store), "-o", f"cache_dir={h.tmp_path / 'cache-fsck'}").stdout.rstrip().endswith(": clean")
    a = h.mount("a")
    assert (a / "f4").read_bytes() == files["f4"]


def test_a_host_whose_session_was_ended_refuses_changes(hosts):
    h, (a, b, c) = hosts
    (a / "before").write_bytes(b"written while alive")
    a_pid = h.mounts["a"].proc.pid
    session = h.sql(f"SELECT id FROM sessions WHERE pid = {a_pid}")
    # A's daemon stops answering and heartbeating (a suspended machine); B and C end its session.
    os.kill(a_pid, signal.SIGSTOP)
    try:
        wait_until(lambda: h.count(f"SELECT count(*) FROM sessions WHERE id = '{session}'") == 0, WAIT,
                   "A's session is taken for dead")
    finally:
        os.kill(a_pid, signal.SIGCONT)
    # Resumed, A writes nothing as if it still held its session: EROFS, logged once.
    with pytest.raises(OSError) as refused:
        (a / "after").write_bytes(b"x")
    assert refused.value.errno == errno.EROFS
    with pytest.raises(OSError) as refused:
        os.mkdir(a / "dir")
    assert refused.value.errno == errno.EROFS
    assert (a / "before").read_bytes() == b"written while alive"
    wait_until(lambda: "session was ended by another host" in h.log("a"), WAIT, "A logs it")
    assert h.log("a").count("session was ended by another host") == 1
    # The others go on.
    (b / "after").write_bytes(b"y")
    assert (c / "after").read_bytes() == b"y"
    assert not (c / "dir").exists()
