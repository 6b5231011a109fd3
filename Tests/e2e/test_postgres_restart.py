"""A PostgreSQL restart in the middle of a workload costs retries, not data (issue 25).

Two hosts (two daemons with their own cache_dirs) write one PostgreSQL-backed filesystem while
the server is restarted — once with a fast shutdown (every client disconnected, open
transactions rolled back) and once immediately (every server process quits at once; the next
start recovers from the WAL). Each host's workload creates, writes, fsyncs, renames and links
files and makes directories, and reports every operation the filesystem acknowledged. No
operation may fail (the engine reconnects and runs its transaction again — or, when the
connection was lost after COMMIT was sent, finds out whether it landed), and afterwards a third
host sees every acknowledged file whole."""
import os
import subprocess
import sys
import textwrap

import pytest

from mossaic import Mount, run
from pgserver import PostgresServer

WORKLOAD = textwrap.dedent("""
    import os, sys
    root, host, stop = sys.argv[1], sys.argv[2], sys.argv[3]
    def body(i): return (f"{host}:{i}:".encode() * 700)[:3000 + i % 5000]
    i = 0
    while not os.path.exists(stop):
        d = os.path.join(root, f"{host}-d{i // 10}")
        if i % 10 == 0:
            os.mkdir(d)
        tmp, final = os.path.join(d, f".f{i}.tmp"), os.path.join(d, f"f{i}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        os.write(fd, body(i))
        os.fsync(fd)
        os.close(fd)
        os.rename(tmp, final)
        if i % 7 == 0:
            os.link(final, final + ".link")
        print(i, flush=True)                     # acknowledged
        i += 1
""")


class Workload:
    """One host's writer, running free until its stop file exists; it prints the number of
    each step the filesystem acknowledged, and stops at the first error."""

    def __init__(self, root, host, stop):
        self.host = host
        self.acked = -1
        self.process = subprocess.Popen([sys.executable, "-c", WORKLOAD, str(root), host, str(stop)],
                                        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def wait_for(self, n):
        """Reads acknowledgements until n more arrived (the writer failing ends the stream)."""
        target = self.acked + n
        while self.acked < target:
            line = self.process.stdout.readline()
            assert line, (self.host, "stopped after", self.acked, self.finish())
            assert int(line) == self.acked + 1, (self.host, line)
            self.acked += 1

    def finish(self):
        """After the stop file exists: the rest of its acknowledgements, its status and stderr."""
        for line in self.process.stdout:
            assert int(line) == self.acked + 1, (self.host, line)
            self.acked += 1
        try:
            self.process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        return self.process.returncode, self.process.stderr.read()


def expected(host, i):
    return (f"{host}:{i}:".encode() * 700)[:3000 + i % 5000]


@pytest.mark.parametrize("immediate", [False, True], ids=["fast", "immediate"])
def test_a_server_restart_mid_workload_costs_retries_not_data(immediate, tmp_path):
    with PostgresServer() as pg:
        database = pg.create_database("restart")
        store = tmp_path / "store"
        run("format", "--meta", database, str(store))
        mounts = [Mount(store, tmp_path / f"mnt-{h}", tmp_path / f"cache-{h}", log=tmp_path / f"daemon-{h}.log")
                  for h in ("a", "b")]
        workloads = []
        stop = tmp_path / "stop"
        try:
            for m in mounts:
                m.start()
            workloads = [Workload(tmp_path / f"mnt-{h}", h, stop) for h in ("a", "b")]
            # Both hosts write all the time; the server goes away twice under them.
            for restart in range(2):
                for w in workloads:
                    w.wait_for(25)
                pg.restart(immediate=immediate)
            for w in workloads:
                w.wait_for(25)
            stop.touch()
            for w in workloads:
                code, err = w.finish()
                assert code == 0, (w.host, err)
        finally:
            stop.touch()
            for w in workloads:
                if w.process.poll() is None:
                    w.finish()
            for m in mounts:
                m.stop()

        # A third host, on an empty cache_dir, reads every acknowledged file whole.
        m = Mount(store, tmp_path / "mnt-c", tmp_path / "cache-c", log=tmp_path / "daemon-c.log").start()
        try:
            root = tmp_path / "mnt-c"
            for w in workloads:
                assert w.acked >= 74, w.acked
                for i in range(w.acked + 1):
                    final = root / f"{w.host}-d{i // 10}" / f"f{i}"
                    assert final.read_bytes() == expected(w.host, i), final
                    if i % 7 == 0:
                        assert os.stat(final).st_ino == os.stat(f"{final}.link").st_ino
                        assert os.stat(final).st_nlink == 2
                    assert not (root / f"{w.host}-d{i // 10}" / f".f{i}.tmp").exists()
        finally:
            m.stop()
        r = run("fsck", str(store), "-o", f"cache_dir={tmp_path / 'cache-c'}")
        assert r.stdout.rstrip().endswith(": clean"), r.stdout
