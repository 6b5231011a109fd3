"""Many hosts, checked linearizable (issue 25's "beyond the anchors"). Needs root (ip netns).

Three hosts mount one PostgreSQL filesystem — A, B, and N, whose daemon lives in a network
namespace of its own and reaches PostgreSQL over a veth pair — and their processes write,
read and delete a handful of files at once while the test records every operation with the
instants it was called and returned. Meanwhile: B's daemon is killed with SIGKILL, PostgreSQL
is restarted in immediate mode (its processes quit at once and it recovers from its WAL), N is
cut off from the server (its veth link goes down) and its link comes back. The history is
then checked linearizable (linearizability.py, Wing & Gong / Lowe's search): every operation
must have taken effect at one instant between its call and its return, in an order that
explains every output — so no acknowledged write lost (by the kill or the restart), no read
of a value already overwritten, no file that reappears.

A write makes its value in a file of its own name, fsyncs and closes it, and renames it onto
the key (as editors and package managers replace files): the rename is the write. Kernel
caches are off (entry and attribute timeouts 0), as each host's caching within its timeouts
is documented to be exactly not linearizable. An operation that fails in a way that does not
tell whether it took effect (the daemon died under it, the server was unreachable for longer
than the engine retries) has an unknown outcome: the checker may place it anywhere after its
call, or nowhere. Faults are injected when the workload has made given progress, never after
a sleep.

The checker itself is tested on histories known to be linearizable or not
(test_linearizability.py), so a checker that accepts everything cannot pass.

What its first runs found, each fixed and kept here as what this run guards:
- a read of a key that always existed answered ENOENT: the kernel looked the name up, another
  host replaced the file and reclaimed the old one, and the open of the old inode number found
  nothing. It is ESTALE now, on which Linux walks the path again (FSError.stale);
- a rename answered ENOENT when another host removed its target between two lookups of the
  permission check (MossaicFilesystem.rename looks it up once), and EIO when reclaiming the
  file it replaced failed after the rename had committed (the reclaim is left for later);
- every host stalled for good once N was cut off inside a transaction: the server kept N's
  row locks, not knowing it was gone (PostgresMetaStore.serverSideTimeouts)."""
import contextlib
import errno
import fcntl
import math
import os
import random
import socket
import struct
import subprocess
import threading
import time

import pytest

from linearizability import UNKNOWN, Operation, check
from mossaic import Mount, run, wait_until
from pgserver import PostgresServer

NETNS = f"mossaic-lin-{os.getpid()}"
HOST_SIDE, NS_SIDE = "10.231.7.1", "10.231.7.2"
KEYS = [f"k{i}" for i in range(4)]
WAIT = 120
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1


class Network:
    """Network namespace NETNS, joined to this one by a veth pair: HOST_SIDE here, NS_SIDE there."""

    def __init__(self):
        self.host_link = f"mlh{os.getpid() % 100000}"

    def __enter__(self):
        def ip(*args):
            subprocess.run(["ip", *args], check=True, capture_output=True)
        ip("netns", "add", NETNS)
        try:
            ip("link", "add", self.host_link, "type", "veth", "peer", "name", "eth0", "netns", NETNS)
            ip("addr", "add", f"{HOST_SIDE}/24", "dev", self.host_link)
            ip("link", "set", self.host_link, "up")
            ip("netns", "exec", NETNS, "ip", "addr", "add", f"{NS_SIDE}/24", "dev", "eth0")
            ip("netns", "exec", NETNS, "ip", "link", "set", "eth0", "up")
            ip("netns", "exec", NETNS, "ip", "link", "set", "lo", "up")
        except BaseException:
            self.__exit__()
            raise
        return self

    def cut(self):
        self._set_up(False)

    def restore(self):
        self._set_up(True)

    def _set_up(self, up):
        """The host side's link up or down by ioctl, in this process: a child process (`ip link`)
        would inherit the workers' open files on the mounts (FileGate), and N's flushes wait
        while it cannot reach the server."""
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            request = struct.pack("16sh22x", self.host_link.encode(), 0)  # struct ifreq: name, flags
            flags = struct.unpack("16sh22x", fcntl.ioctl(s, SIOCGIFFLAGS, request))[1]
            flags = flags | IFF_UP if up else flags & ~IFF_UP
            fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sh22x", self.host_link.encode(), flags))

    def __exit__(self, *exc):
        subprocess.run(["ip", "link", "delete", self.host_link], capture_output=True)
        subprocess.run(["ip", "netns", "delete", NETNS], capture_output=True)

    @property
    def launcher(self):
        """Runs a command in the namespace's network only (`ip netns exec` would also give it
        a mount namespace of its own, and its FUSE mount would be invisible here)."""
        return ["nsenter", f"--net=/run/netns/{NETNS}"]


class FileGate:
    """Lets the test start a process while no worker has a file open on a mount. A child
    process inherits the open files, and its exec closes them: a FUSE flush each, answered only
    once that host's daemon has committed the file — which, while the server is down for its
    restart, waits for the very server the child is to start (measured: 60 s, the daemons'
    reconnect window twice). Directory descriptors have no flush and stay open."""

    def __init__(self):
        self.condition = threading.Condition()
        self.open_files = 0
        self.shut = False

    @contextlib.contextmanager
    def holding_a_file(self):
        with self.condition:
            self.condition.wait_for(lambda: not self.shut)
            self.open_files += 1
        try:
            yield
        finally:
            with self.condition:
                self.open_files -= 1
                self.condition.notify_all()

    @contextlib.contextmanager
    def shut_while(self, what):
        with self.condition:
            self.shut = True
            if not self.condition.wait_for(lambda: self.open_files == 0, WAIT):
                raise AssertionError(f"workers kept files open for {WAIT} s before {what}")
        try:
            yield
        finally:
            with self.condition:
                self.shut = False
                self.condition.notify_all()


class Worker(threading.Thread):
    """One process of a host: random operations on KEYS under `root`, each recorded."""

    def __init__(self, name, root, history, lock, stop, seed, gate):
        super().__init__(name=name, daemon=True)
        self.gate = gate
        # Every operation is relative to this descriptor of the directory: once the daemon is
        # gone it answers ENOTCONN, where a path would reach the directory under the mount.
        self.dir = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
        self.history, self.lock, self.stop = history, lock, stop
        self.random = random.Random(seed)
        self.done = 0  # operations with a known outcome
        self.gone = False  # the daemon is gone (ENOTCONN): nothing more to do here
        self.errors = []  # (kind, step of a write, key, when, error)
        self.step = None  # where a write is: create, write, fsync, close, rename

    def record(self, *fields):
        with self.lock:
            self.history.append(Operation(self.name, *fields))

    def run(self):
        n = 0
        while not self.stop.is_set():
            n += 1
            key = self.random.choice(KEYS)
            roll = self.random.random()
            kind = "write" if roll < 0.45 else "read" if roll < 0.85 else "delete"
            try:
                if kind == "write":
                    self.write(key, f"{self.name}-{n}")
                elif kind == "read":
                    self.read(key)
                else:
                    self.delete(key)
            except OSError as e:
                if e.errno in (errno.ENOTCONN, errno.ECONNABORTED):
                    self.gone = True
                    break
                self.errors.append((kind, self.step if kind == "write" else None, key, time.monotonic_ns(), e))
        os.close(self.dir)

    def write(self, key, value):
        scratch = f".{value}"
        with self.gate.holding_a_file():
            self.step = "create"
            fd = os.open(scratch, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644, dir_fd=self.dir)
            try:
                self.step = "write"
                os.write(fd, value.encode())
                self.step = "fsync"
                os.fsync(fd)
            finally:
                self.step = "close"
                os.close(fd)
        call = time.monotonic_ns()
        self.step = "rename"
        try:
            os.rename(scratch, key, src_dir_fd=self.dir, dst_dir_fd=self.dir)
        except OSError as e:
            self.record("write", key, value, UNKNOWN, call, math.inf)
            raise e
        self.record("write", key, value, None, call, time.monotonic_ns())
        self.done += 1

    def read(self, key):
        with self.gate.holding_a_file():
            call = time.monotonic_ns()
            try:
                fd = os.open(key, os.O_RDONLY, dir_fd=self.dir)
                try:
                    value = os.read(fd, 4096).decode()
                finally:
                    os.close(fd)
            except FileNotFoundError:
                value = None
        # Any other failure read nothing: not recorded (it cannot have changed anything).
        self.record("read", key, None, value, call, time.monotonic_ns())
        self.done += 1

    def delete(self, key):
        call = time.monotonic_ns()
        try:
            os.unlink(key, dir_fd=self.dir)
            removed = True
        except FileNotFoundError:
            removed = False
        except OSError as e:
            self.record("delete", key, None, UNKNOWN, call, math.inf)
            raise e
        self.record("delete", key, None, removed, call, time.monotonic_ns())
        self.done += 1


def test_three_hosts_with_a_kill_a_server_restart_and_a_cut_off_host_are_linearizable(tmp_path):
    with Network() as network, PostgresServer(also_listen=(HOST_SIDE,)) as pg:
        url = pg.create_database("linearizable")
        # The URL leaves the host out: each host's PGHOST says where the server is for it.
        hostless = url.replace(f"@127.0.0.1:{pg.port}/", "@/")
        env_for = lambda host: {**os.environ, "PGHOST": host, "PGPORT": str(pg.port)}
        store = tmp_path / "store"
        run("format", "--meta", hostless, str(store), env=env_for("127.0.0.1"))
        # Debug logs name every failed request: what a failure here is read from.
        options = ["entry_timeout=0", "attr_timeout=0", "log_level=debug"]
        hosts = {
            "a": Mount(store, tmp_path / "mnt-a", tmp_path / "cache-a", options, log=tmp_path / "a.log", env=env_for("127.0.0.1")),
            "b": Mount(store, tmp_path / "mnt-b", tmp_path / "cache-b", options, log=tmp_path / "b.log", env=env_for("127.0.0.1")),
            "n": Mount(store, tmp_path / "mnt-n", tmp_path / "cache-n", options, log=tmp_path / "n.log", env=env_for(HOST_SIDE),
                       launcher=network.launcher),
        }
        history, lock, stop = [], threading.Lock(), threading.Event()
        faults = []  # (what, when) for the report of a failure
        workers = []
        try:
            for mount in hosts.values():
                mount.start()
            os.mkdir(tmp_path / "mnt-a" / "d")
            gate = FileGate()
            workers = [Worker(f"{host}{i}", str(tmp_path / f"mnt-{host}" / "d"), history, lock, stop, seed=f"{host}{i}", gate=gate)
                       for host in hosts for i in range(2)]
            for w in workers:
                w.start()
            a_done = lambda: sum(w.done for w in workers if w.name.startswith("a"))
            n_done = lambda: sum(w.done for w in workers if w.name.startswith("n"))
            b_done = lambda: sum(w.done for w in workers if w.name.startswith("b"))

            def progress(ops, what):
                target = a_done() + ops
                wait_until(lambda: a_done() >= target, WAIT, what)

            # The faults that start processes (umount of the killed host, the server's new
            # postmaster) come while N is connected and no worker has a file open (FileGate).
            progress(60, "host A's first operations")
            assert n_done() > 0, "the host in the network namespace made no progress"
            wait_until(lambda: b_done() >= 20, WAIT, "host B's operations before it is killed")
            faults.append(("kill", time.monotonic_ns()))
            with gate.shut_while("the unmount of the killed host"):
                hosts["b"].kill()
            faults.append(("kill done", time.monotonic_ns()))
            progress(40, "host A going on after B was killed")
            faults.append(("restart", time.monotonic_ns()))
            with gate.shut_while("the server's restart"):
                pg.restart(immediate=True)
            faults.append(("restart done", time.monotonic_ns()))
            progress(40, "host A going on after the server's restart")
            faults.append(("cut", time.monotonic_ns()))
            network.cut()
            faults.append(("cut done", time.monotonic_ns()))
            progress(40, "host A going on while N is cut off")
            n_at_cut = n_done()
            faults.append(("restore", time.monotonic_ns()))
            network.restore()
            faults.append(("restore done", time.monotonic_ns()))
            # N comes back: its operations go on (blocked ones complete or fail, then new ones run).
            wait_until(lambda: n_done() >= n_at_cut + 20, WAIT, "host N going on after its link came back")
            progress(40, "host A's last operations")
        finally:
            stop.set()
            deadline = time.monotonic() + WAIT
            for w in workers:
                w.join(timeout=max(0.1, deadline - time.monotonic()))
            hung = [w.name for w in workers if w.is_alive()]
            # Every host is stopped, whatever the others do (a hung worker keeps its mount busy:
            # stopping kills the daemon, which ends the worker's call).
            failures = []
            for name, mount in hosts.items():
                try:
                    mount.stop()
                except Exception as e:  # noqa: BLE001 — reported below, after the others stopped
                    failures.append(f"{name}: {e!r}")
            for w in workers:
                w.join(timeout=WAIT)
        assert not hung, f"workers hang: {hung} {faults}"
        assert not failures, failures
        assert all(w.gone for w in workers if w.name.startswith("b")), "B's processes did not see their daemon go"
        for w in workers:
            # A read may also meet ESTALE twice in a row (the kernel walks again only once): it
            # read nothing, changed nothing.
            assert all(e.errno in (errno.EIO, errno.ETIMEDOUT, errno.EROFS) or (kind == "read" and e.errno == errno.ESTALE)
                       for kind, *_, e in w.errors), f"{w.name}: {w.errors} {faults}"
        verdict = check(history)
        assert verdict.linearizable, verdict.explanation
        by_host = {host: sum(1 for o in history if o.process.startswith(host) and o.output is not UNKNOWN) for host in hosts}
        assert all(count >= 20 for count in by_host.values()), by_host
