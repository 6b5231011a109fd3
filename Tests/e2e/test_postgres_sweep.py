"""The reclaim sweep of hosts mounting one PostgreSQL filesystem (SharedChunkSweeper,
PostgresMetaStore+Sweep): the objects of deleted data leave the store while the hosts stay
mounted, and nothing a file references goes — also while a host keeps writing the very bytes
the sweep is deleting (its commits then store them again).

Two mounts A and B — separate daemons with their own cache_dirs on one database and one store,
as two hosts would have them — with sweep_grace=1 (rounds every second). The tests poll the
store and the database with a deadline, never sleeping a fixed time."""
import hashlib
import os
import threading
import time

import pytest

from mossaic import Mount, random_file, run, sha256_file, wait_until, write_fsynced
from test_multihost_sessions import Hosts, pg  # noqa: F401 (pg: a fixture)

WAIT = 60
OPTIONS = ["sweep_grace=1", "backup_interval=0"]


class SweepHosts(Hosts):
    """test_multihost_sessions's hosts, with a short grace and no backups (which would keep
    what they name)."""

    def mount(self, name):
        self.mounts[name] = Mount(self.store, self.tmp_path / f"mnt-{name}", self.tmp_path / f"cache-{name}", options=OPTIONS,
                                  log=self.tmp_path / f"daemon-{name}.log").start()
        return self.tmp_path / f"mnt-{name}"

    def stop(self):
        """Every mount, even after one failed to stop (each daemon is killed by its PID then)."""
        failures = []
        for m in self.mounts.values():
            try:
                m.stop()
            except Exception as e:  # noqa: BLE001 (raised after the others stopped)
                failures.append(e)
        if failures:
            raise failures[0]

    def objects(self):
        """Chunk objects and packs in the store."""
        return {p.name for d in ("chunks", "packs") if (self.store / d).exists() for p in (self.store / d).rglob("*") if p.is_file()}

    def named(self):
        """Objects the chunk rows name (hashes in hex, as the store names its files)."""
        out = self.pg.psql(self.database, "SELECT DISTINCT encode(coalesce(pack, hash), 'hex') FROM chunks WHERE state = 2")
        return set(out.split()) if out else set()


@pytest.fixture
def hosts(pg, tmp_path, request):
    """Mounts A and B of one new filesystem; yields (Hosts, [A's and B's mount points]). Every
    mount is unmounted (its daemon stopped by PID if it does not exit) whatever the test did."""
    database = pg.create_database("w_" + request.node.name.lower()[:40])
    store = tmp_path / "store"
    run("format", "--meta", database, str(store))
    h = SweepHosts(pg, database, store, tmp_path)
    try:
        yield h, [h.mount("a"), h.mount("b")]
    finally:
        h.stop()


def check_offline(h, tmp_path, garbage=False):
    """With every host unmounted: fsck (reading every chunk) finds nothing wrong, and gc nothing
    to delete — the sweep left no object without a row. `garbage`: a race may leave some (an
    upload whose commit then stored its chunks again; chunks unreferenced when the hosts
    unmounted): gc deletes it, and fsck is still clean."""
    h.stop()
    cache = f"cache_dir={tmp_path / 'cache-check'}"
    r = run("fsck", str(h.store), "--verify", "-o", cache)
    assert r.stdout.rstrip().endswith(": clean"), r.stdout
    if garbage:
        run("gc", str(h.store), "--grace", "0s", "-o", cache)
        r = run("fsck", str(h.store), "--verify", "-o", cache)
        assert r.stdout.rstrip().endswith(": clean"), r.stdout
    r = run("gc", str(h.store), "--grace", "0s", "--dry-run", "-o", cache)
    assert " 0 would delete" in r.stdout, r.stdout


def test_deleted_data_leaves_the_store_while_both_hosts_stay_mounted(hosts, tmp_path):
    h, (a, b) = hosts
    kept = {f"keep{i}": random_file((i + 1) << 20 | 777) for i in range(3)}
    gone = {f"gone{i}": random_file((i + 2) << 20 | 555) for i in range(3)}
    kept["twin"] = gone["gone0"]        # the same bytes as a deleted file: its chunks stay
    gone["small"] = b"tiny" * 100       # inline: no object at all
    for name, data in {**kept, **gone}.items():
        write_fsynced(a / name, data)
    wait_until(lambda: all((b / n).exists() for n in gone), WAIT, "B sees A's files")
    before = h.objects()
    assert before == h.named()
    for name in gone:
        os.unlink(a / name)
    # The sweep of one of the hosts (whichever takes the round) deletes what no file names.
    wait_until(lambda: h.objects() == h.named() and len(h.objects()) < len(before), WAIT, "the deleted files' objects leave the store")
    wait_until(lambda: h.count("SELECT count(*) FROM chunks c WHERE state = 2 AND NOT EXISTS "
                               "(SELECT 1 FROM file_chunks f WHERE f.hash = c.hash)") == 0, WAIT, "their rows leave the metadata")
    assert h.objects() < before
    assert h.count("SELECT count(*) FROM swept_objects WHERE pending") == 0
    for host in (a, b):
        for name, data in kept.items():
            assert sha256_file(host / name) == hashlib.sha256(data).hexdigest(), (host, name)
        assert not any((host / n).exists() for n in gone)
    check_offline(h, tmp_path)


def test_a_host_rewriting_the_bytes_being_swept_loses_nothing(hosts, tmp_path):
    """A creates and deletes files of a few contents over and over, so their chunks are swept
    again and again; meanwhile B rewrites its own files with the same contents (deduplicating
    against rows being swept, or remembering objects being deleted). Every file B wrote reads
    back whole on both hosts, and the filesystem checks clean."""
    h, (a, b) = hosts
    contents = [random_file(2 << 20 | 99 * i) for i in range(4)]
    digests = [hashlib.sha256(c).hexdigest() for c in contents]
    errors = []
    last = {}
    deadline = time.monotonic() + 20
    stop = threading.Event()

    def churn():
        i = 0
        try:
            while not stop.is_set():
                write_fsynced(a / f"churn{i % 3}", contents[i % len(contents)])
                os.unlink(a / f"churn{i % 3}")
                i += 1
        except Exception as e:  # noqa: BLE001 (reported by the test)
            errors.append(f"A: {e!r}")

    churner = threading.Thread(target=churn)
    churner.start()
    try:
        i = 0
        while time.monotonic() < deadline:
            name = f"b{i % 5}"
            which = (i * 7) % len(contents)
            write_fsynced(b / name, contents[which])
            last[name] = which
            i += 1
            # Now and then, nothing references a content for a moment: the sweep may take it.
            if i % 4 == 0:
                os.unlink(b / name)
                del last[name]
    finally:
        stop.set()
        churner.join(timeout=WAIT)
    assert not errors, errors
    assert not churner.is_alive()
    assert h.count("SELECT count(*) FROM swept_objects") + h.count("SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM swept_seq") > 0, \
        "the sweep ran during the test"
    for host in (a, b):
        wait_until(lambda: all((host / n).exists() for n in last), WAIT, f"{host} sees B's files")
        for name, which in last.items():
            assert sha256_file(host / name) == digests[which], (host, name)
    # Nothing B's files reference is gone from the store.
    assert h.named() <= h.objects()
    check_offline(h, tmp_path, garbage=True)
