#!/usr/bin/env python3
"""The one PostgreSQL launcher of the test suites (Swift and Python): a throwaway server.

initdb into a fresh temporary directory, then the postmaster itself (not `pg_ctl start`, which
daemonizes it away from us) on a free port, listening on 127.0.0.1 and on a unix socket in that
directory. PostgreSQL refuses to run as root, and tests run as root: then the server runs as the
`postgres` system user (Debian's package creates it), dropped to in the child before exec.

Clients log in as the superuser `mossaic` with a password that only a passfile in the directory
holds (libpq's `passfile` parameter, or PGPASSFILE), never a command line. Durability is
switched off (fsync=off): a test server dies with its data.

Stopped by PID: fast shutdown (SIGINT to the postmaster), SIGKILL if it lingers; the postmaster
also gets SIGINT when this launcher dies, even by SIGKILL (PR_SET_PDEATHSIG), and its data
directory goes with the launcher.

Python use:
    with PostgresServer() as pg:
        pg.url("mydb")    # postgres://mossaic@127.0.0.1:PORT/mydb?passfile=...

CLI:
    python3 Tests/e2e/pgserver.py serve
prints ONE JSON line {"host", "port", "socket_dir", "user", "passfile", "url", "pid"} (url names
the `postgres` database) and runs until stdin reaches EOF (a test runner that dies takes the
server with it) or SIGTERM/SIGINT; then it stops the server by PID.
"""
from __future__ import annotations

import argparse
import ctypes
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

_PG_BIN_CANDIDATES = sorted(
    (os.path.join("/usr/lib/postgresql", v, "bin") for v in
     (os.listdir("/usr/lib/postgresql") if os.path.isdir("/usr/lib/postgresql") else [])),
    reverse=True)


def _pg_bin(tool: str) -> str:
    """Debian keeps initdb and postgres out of PATH, under /usr/lib/postgresql/<version>/bin."""
    found = shutil.which(tool)
    if found:
        return found
    for directory in _PG_BIN_CANDIDATES:
        candidate = os.path.join(directory, tool)
        if os.access(candidate, os.X_OK):
            return candidate
    raise RuntimeError(f"{tool} not found: install the postgresql package (make deps)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    def __init__(self, also_listen: tuple[str, ...] = ()) -> None:
        """`also_listen`: addresses beside 127.0.0.1 the server listens on and accepts clients
        of (password authentication, as on 127.0.0.1) — a host in a network namespace reaches
        it there."""
        self.also_listen = tuple(also_listen)
        self.dir = ""
        self.port = 0
        self.user = "mossaic"
        self.process: subprocess.Popen | None = None
        self._log = None
        # Root may not run the server; anyone else runs it as themselves.
        self._account = pwd.getpwnam("postgres") if os.geteuid() == 0 else None

    @property
    def passfile(self) -> str:
        return os.path.join(self.dir, "pgpass")

    @property
    def socket_dir(self) -> str:
        return os.path.join(self.dir, "socket")

    def url(self, database: str = "postgres") -> str:
        return f"postgres://{self.user}@127.0.0.1:{self.port}/{database}?passfile={self.passfile}"

    def psql(self, database: str, sql: str) -> str:
        """Runs `sql` in `database` (a name, or a URL as `url` gives it) with psql; returns what
        it printed, unaligned and without headers (`-At`: one row a line, `|` between columns)."""
        url = database if "://" in database else self.url(database)
        return subprocess.run([_pg_bin("psql"), "-qAt", "-v", "ON_ERROR_STOP=1", url, "-c", sql],
                              check=True, capture_output=True, text=True, stdin=subprocess.DEVNULL).stdout.strip()

    def create_database(self, name: str) -> str:
        """Creates database `name` (empty) and returns its URL."""
        self.psql("postgres", f'CREATE DATABASE "{name}"')
        return self.url(name)

    def info(self) -> dict:
        return {"host": "127.0.0.1", "port": self.port, "socket_dir": self.socket_dir, "user": self.user,
                "passfile": self.passfile, "url": self.url(), "pid": self.process.pid if self.process else None}

    def _as_server_user(self) -> None:
        """preexec_fn: become the server's user, then ask for SIGINT when the launcher dies
        (after the uid change, which would clear the request)."""
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        if self._account:
            os.setgroups([])
            os.setgid(self._account.pw_gid)
            os.setuid(self._account.pw_uid)
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGINT)  # PR_SET_PDEATHSIG

    def _chown(self, path: str) -> None:
        if self._account:
            os.chown(path, self._account.pw_uid, self._account.pw_gid)

    def start(self) -> "PostgresServer":
        self.dir = tempfile.mkdtemp(prefix="mossaic-pg-")
        os.chmod(self.dir, 0o755)  # the server's user must reach its data, socket and passfile dirs
        self._chown(self.dir)
        os.mkdir(self.socket_dir)
        self._chown(self.socket_dir)
        password = secrets.token_hex(16)
        pwfile = os.path.join(self.dir, "initdb-password")
        with open(pwfile, "w") as f:
            f.write(password + "\n")
        self._chown(pwfile)
        with open(self.passfile, "w") as f:
            f.write(f"*:*:*:{self.user}:{password}\n")
        os.chmod(self.passfile, 0o600)
        data = os.path.join(self.dir, "data")
        log_path = os.path.join(self.dir, "server.log")
        self._log = open(log_path, "w")
        self._chown(log_path)
        subprocess.run([_pg_bin("initdb"), "-D", data, "-U", self.user, "--pwfile", pwfile, "-A", "scram-sha-256",
                        "-E", "UTF8", "--no-sync"],
                       check=True, stdout=self._log, stderr=self._log, preexec_fn=self._as_server_user)
        os.unlink(pwfile)
        if self.also_listen:
            with open(os.path.join(data, "pg_hba.conf"), "a") as hba:
                for address in self.also_listen:
                    hba.write(f"host all all {address}/24 scram-sha-256\n")
        self.port = _free_port()
        self._launch()
        return self

    def _launch(self) -> None:
        """Starts the postmaster on this server's data directory and port; waits until it answers."""
        self.process = subprocess.Popen(
            [_pg_bin("postgres"), "-D", os.path.join(self.dir, "data"), "-p", str(self.port), "-c", "listen_addresses=" + ",".join(("127.0.0.1",) + self.also_listen),
             "-c", f"unix_socket_directories={self.socket_dir}", "-c", "fsync=off", "-c", "full_page_writes=off",
             "-c", "max_connections=200"],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log, preexec_fn=self._as_server_user)
        if not self._wait_ready():
            tail = self.log_tail()
            self.stop()
            raise RuntimeError(f"PostgreSQL did not start: {tail}")

    def restart(self, immediate: bool = False) -> None:
        """Stops the server and starts it again on the same data and port, as an operator's
        restart or a crash would: fast shutdown (SIGINT: open transactions are rolled back and
        every client is disconnected), or `immediate` (SIGQUIT: every process quits at once and
        the next start recovers from the WAL)."""
        assert self.process is not None, "restart of a server that is not running"
        self.process.send_signal(signal.SIGQUIT if immediate else signal.SIGINT)
        self.process.wait(timeout=30)
        self._launch()

    def _wait_ready(self, timeout: float = 60.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            ready = subprocess.run([_pg_bin("pg_isready"), "-q", "-h", self.socket_dir, "-p", str(self.port)])
            if ready.returncode == 0:
                return True
            time.sleep(0.1)
        return False

    def log_tail(self, limit: int = 2000) -> str:
        try:
            with open(os.path.join(self.dir, "server.log")) as f:
                return f.read()[-limit:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # fast shutdown
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        if self._log:
            self._log.close()
            self._log = None
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = ""

    def __enter__(self) -> "PostgresServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _serve() -> int:
    server = PostgresServer()
    try:
        server.start()
    except Exception as e:  # one clear line for the caller, which reads our stdout
        print(f"pgserver: {e}", file=sys.stderr)
        server.stop()
        return 1
    stop = lambda *_: (server.stop(), sys.exit(0))
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(json.dumps(server.info()), flush=True)
    try:
        sys.stdin.read()  # until EOF: the parent closed the pipe or died
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["serve"])
    parser.parse_args()
    sys.exit(_serve())
