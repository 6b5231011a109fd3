"""Several hosts writing one PostgreSQL filesystem (issue 25): flock and fcntl locks exclude
across hosts, a file closed on one host is read whole at the next open on another, and a
directory rename is seen atomically.

Three mounts A, B and C — separate daemons with their own cache_dirs on one PostgreSQL
database and one store, as three hosts would have them. Locks are taken by child processes
(`LOCKER` below) that report each step on stdout and wait for the test's next command on
stdin: the test synchronises on those lines and on /proc (a process blocked in fcntl(2)),
never on sleeps.

F_GETLK across hosts reports the holder's pid as 0: a pid of another host names nothing here
(the man page says so)."""
import ctypes
import fcntl
import os
import signal
import struct
import subprocess
import sys

import pytest

from mossaic import Mount, run, wait_until
from pgserver import PostgresServer

WAIT = 30


@pytest.fixture(scope="module")
def pg():
    with PostgresServer() as server:
        yield server


@pytest.fixture
def hosts(pg, tmp_path, request):
    """Mounts A, B and C of one new filesystem; yields their mount points."""
    database = pg.create_database("l_" + request.node.name.lower()[:40])
    store = tmp_path / "store"
    run("format", "--meta", database, str(store))
    mounts = []
    try:
        for name in "abc":
            mounts.append(Mount(store, tmp_path / f"mnt-{name}", tmp_path / f"cache-{name}",
                                log=tmp_path / f"daemon-{name}.log").start())
        yield [tmp_path / f"mnt-{name}" for name in "abc"]
    finally:
        for m in mounts:
            m.stop()


# A child process holding locks: argv[1] is the file. Commands on stdin, one per line:
#   flock ex|sh [nb]                 flock(2)
#   lock w|r|u START LEN [wait]      fcntl F_SETLK (F_SETLKW with "wait"); LEN 0: to the end
#   close                            closes the file (and with it the locks)
# It answers each with "ok", "EAGAIN"-style errno names, or "interrupted" (SIGUSR1 during a wait).
LOCKER = r"""
import errno, fcntl, os, signal, struct, sys
class Interrupted(Exception): pass
def interrupt(*_): raise Interrupted()
signal.signal(signal.SIGUSR1, interrupt)
fd = os.open(sys.argv[1], os.O_RDWR)
print("ready", flush=True)
for line in sys.stdin:
    word = line.split()
    try:
        if word[0] == "flock":
            op = fcntl.LOCK_EX if word[1] == "ex" else fcntl.LOCK_SH
            fcntl.flock(fd, op | (fcntl.LOCK_NB if "nb" in word else 0))
        elif word[0] == "unflock":
            fcntl.flock(fd, fcntl.LOCK_UN)
        elif word[0] == "lock":
            kind = {"w": fcntl.F_WRLCK, "r": fcntl.F_RDLCK, "u": fcntl.F_UNLCK}[word[1]]
            command = fcntl.F_SETLKW if "wait" in word else fcntl.F_SETLK
            if command == fcntl.F_SETLKW:
                print("waiting", flush=True)
            fcntl.fcntl(fd, command, struct.pack("hhqqi4x", kind, os.SEEK_SET, int(word[2]), int(word[3]), 0))
        elif word[0] == "close":
            os.close(fd)
        print("ok", flush=True)
    except Interrupted:
        print("interrupted", flush=True)
    except OSError as e:
        print(errno.errorcode[e.errno], flush=True)
"""


class Locker:
    def __init__(self, path):
        self.proc = subprocess.Popen([sys.executable, "-c", LOCKER, str(path)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        assert self.answer() == "ready"

    def send(self, command):
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()

    def answer(self):
        line = self.proc.stdout.readline().strip()
        assert line, "the locker exited"
        return line

    def do(self, command):
        self.send(command)
        return self.answer()

    def blocked_in_fcntl(self):
        """The child sleeps in fcntl(2) (x86_64 syscall 72; aarch64 25): waiting for the lock."""
        with open(f"/proc/{self.proc.pid}/syscall") as f:
            number = f.read().split()[0]
        return number in ("72", "25")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(timeout=WAIT)


@pytest.fixture
def lockers():
    made = []

    def make(path):
        made.append(Locker(path))
        return made[-1]
    yield make
    for locker in made:
        if locker.proc.poll() is None:
            locker.proc.kill()
            locker.proc.wait(timeout=WAIT)


def getlk(path, kind, start, length):
    """F_GETLK on `path`: (type, start, len, pid) of the lock that would conflict."""
    fd = os.open(path, os.O_RDWR)
    try:
        reply = fcntl.fcntl(fd, fcntl.F_GETLK, struct.pack("hhqqi4x", kind, os.SEEK_SET, start, length, 0))
    finally:
        os.close(fd)
    l_type, _, l_start, l_len, l_pid = struct.unpack("hhqqi4x", reply)
    return l_type, l_start, l_len, l_pid


def test_flock_excludes_across_hosts_until_unlocked_or_closed(hosts, lockers):
    a, b, c = hosts
    (a / "f").write_bytes(b"x")
    holder = lockers(a / "f")
    assert holder.do("flock ex") == "ok"
    other = lockers(b / "f")
    assert other.do("flock ex nb") in ("EAGAIN", "EWOULDBLOCK")
    assert other.do("flock sh nb") in ("EAGAIN", "EWOULDBLOCK")
    assert lockers(c / "f").do("flock sh nb") in ("EAGAIN", "EWOULDBLOCK")
    assert holder.do("unflock") == "ok"
    assert other.do("flock ex nb") == "ok"
    assert holder.do("flock sh nb") in ("EAGAIN", "EWOULDBLOCK")
    # Closing the file drops its flock without an unlock — when the kernel's release, which
    # it sends after close(2) returned, reaches B's daemon.
    assert other.do("close") == "ok"
    wait_until(lambda: holder.do("flock ex nb") == "ok", WAIT, "B's close releases its flock")


def test_fcntl_ranges_exclude_across_hosts_and_getlk_reports_them(hosts, lockers):
    a, b, c = hosts
    (a / "f").write_bytes(b"y" * 1000)
    holder = lockers(a / "f")
    assert holder.do("lock w 0 100") == "ok"
    other = lockers(b / "f")
    assert other.do("lock w 50 10") in ("EAGAIN", "EACCES")
    assert other.do("lock r 99 1") in ("EAGAIN", "EACCES")
    assert other.do("lock w 200 10") == "ok"
    # From a third host: the holder's lock, its pid unknown here (0).
    assert getlk(c / "f", fcntl.F_WRLCK, 0, 10) == (fcntl.F_WRLCK, 0, 100, 0)
    assert getlk(c / "f", fcntl.F_RDLCK, 205, 1) == (fcntl.F_WRLCK, 200, 10, 0)
    assert getlk(c / "f", fcntl.F_WRLCK, 100, 100)[0] == fcntl.F_UNLCK
    # Unlocking the middle of the range frees only the middle.
    assert holder.do("lock u 40 20") == "ok"
    assert other.do("lock w 40 20") == "ok"
    assert getlk(c / "f", fcntl.F_WRLCK, 30, 10) == (fcntl.F_WRLCK, 0, 40, 0)
    assert getlk(c / "f", fcntl.F_WRLCK, 45, 1) == (fcntl.F_WRLCK, 40, 20, 0)
    # The holder's close drops what is left of its locks.
    assert holder.do("close") == "ok"
    assert getlk(c / "f", fcntl.F_WRLCK, 0, 40)[0] == fcntl.F_UNLCK
    assert lockers(c / "f").do("lock w 0 40") == "ok"


def blocked_waiter(hosts, lockers):
    """A holder of a write lock on the whole file on A, and a process on B blocked in
    F_SETLKW for its first byte."""
    a, b, _ = hosts
    (a / "f").write_bytes(b"z")
    holder = lockers(a / "f")
    assert holder.do("lock w 0 0") == "ok"
    waiter = lockers(b / "f")
    waiter.send("lock w 0 1 wait")
    assert waiter.answer() == "waiting"
    wait_until(waiter.blocked_in_fcntl, WAIT, "the waiter blocks in fcntl")
    return holder, waiter


def test_a_blocked_setlkw_proceeds_once_the_holder_unlocks(hosts, lockers):
    holder, waiter = blocked_waiter(hosts, lockers)
    assert holder.do("lock u 0 0") == "ok"
    assert waiter.answer() == "ok"
    assert holder.do("lock w 0 1") in ("EAGAIN", "EACCES")


def test_a_blocked_setlkw_is_interrupted_by_a_signal(hosts, lockers):
    holder, waiter = blocked_waiter(hosts, lockers)
    os.kill(waiter.proc.pid, signal.SIGUSR1)
    # The waiter is out of its wait while the lock is still held, and holds nothing.
    assert waiter.answer() == "interrupted"
    assert holder.do("lock r 0 0") == "ok"
    assert holder.do("close") == "ok"
    assert waiter.do("lock w 0 0") == "ok"


def test_a_file_closed_on_one_host_is_read_whole_at_the_next_open_on_another(hosts):
    a, b, c = hosts
    old = os.urandom(3 << 20 | 17)
    (a / "f").write_bytes(old)
    assert (b / "f").read_bytes() == old
    # B keeps the file open across A's rewrite: its open file's map is of the old data.
    kept = open(b / "f", "rb")
    try:
        assert kept.read(4096) == old[:4096]
        for new in (os.urandom(5 << 20 | 3), os.urandom(1 << 20), os.urandom(2 << 20 | 99)):
            (a / "f").write_bytes(new)
            assert (b / "f").read_bytes() == new
            assert (c / "f").read_bytes() == new
            assert os.stat(b / "f").st_size == len(new)
    finally:
        kept.close()


def one_listing_reply(path):
    """The names of one getdents64(2) call on directory `path`: one FUSE readdir reply, which
    the daemon answers from one query. (A whole listing takes several calls, and a rename
    between two of them shows both names or neither on any filesystem: POSIX leaves entries
    changed during a listing unspecified.)"""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        buf = ctypes.create_string_buffer(1 << 16)
        n = LIBC.syscall(GETDENTS64, fd, buf, len(buf))
        assert n > 0, ctypes.get_errno()
    finally:
        os.close(fd)
    names, at = set(), 0
    while at < n:
        reclen = struct.unpack_from("H", buf.raw, at + 16)[0]
        names.add(buf.raw[at + 19:at + reclen].split(b"\0", 1)[0].decode())
        at += reclen
    return names - {".", ".."}


LIBC = ctypes.CDLL(None, use_errno=True)
GETDENTS64 = {"x86_64": 217, "aarch64": 61}[os.uname().machine]


def test_a_directory_rename_is_seen_atomically_on_the_other_hosts(hosts):
    a, b, c = hosts
    os.mkdir(a / "d1")
    for i in range(500):
        (a / "d1" / f"e{i}").write_bytes(b"")
    renamer = subprocess.Popen([sys.executable, "-c", """
import os, sys
root = sys.argv[1]
for i in range(60):
    os.rename(os.path.join(root, "d1"), os.path.join(root, "d2"))
    os.rename(os.path.join(root, "d2"), os.path.join(root, "d1"))
""", str(a)])
    seen = {"d1": 0, "d2": 0}
    try:
        while renamer.poll() is None:
            for host in (b, c):
                names = one_listing_reply(host) & {"d1", "d2"}
                assert len(names) == 1, names
                name = names.pop()
                seen[name] += 1
                try:
                    count = len(os.listdir(host / name))
                except FileNotFoundError:
                    continue  # renamed again since the listing
                assert count == 500
    finally:
        renamer.wait(timeout=120)
    assert renamer.returncode == 0
    assert seen["d1"] > 0
    for host in (b, c):
        assert one_listing_reply(host) == {"d1"}
        assert len(os.listdir(host / "d1")) == 500
