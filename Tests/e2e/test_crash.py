"""Crash consistency: what fsync(2) reported durable survives a SIGKILL of the daemon.

Writer threads create files and append to them through the mount, fsync'ing now and then; only
after fsync returned is (name, length, SHA-256 of the first `length` bytes) appended to a
journal outside the mount. Files are append-only, so the last fsync'ed state of a file is
exactly its first `length` bytes (later appends may or may not have survived, so the file may be
longer). After a random number of fsyncs the daemon is killed with SIGKILL (by its PID), the
dead mount is detached, and then, for every round:
  - `mossaicfs fsck` on the unmounted filesystem is clean (exit 0), and
  - after a remount every file in the journal holds its last fsync'ed bytes.
At the end `mossaicfs gc` collects what the crashes left behind, and everything verifies again.

CRASH_SEED picks the seed (printed; the kill moments also depend on thread scheduling),
CRASH_ROUNDS the rounds on the local store (default 20; S3 runs a quarter of them, at least 3).
"""
import hashlib
import json
import os
import random
import threading
import uuid

import pytest

from fault_proxy import FaultProxy
from mossaic import Filesystem, run, s3_env
from s3server import MotoServer

MiB = 1 << 20
SEED = int(os.environ.get("CRASH_SEED", random.randrange(1 << 31)))
ROUNDS = int(os.environ.get("CRASH_ROUNDS", "20"))
WRITERS = 3
FSYNC_WAIT = 60  # seconds a round may take to reach its kill point before it counts as hung


class Journal:
    """The fsync'ed states, in a file outside the mount; counts fsyncs for the killer."""

    def __init__(self, path):
        self.path = path
        self.cond = threading.Condition()
        self.fsyncs = 0

    def record(self, name, length, digest):
        with self.cond:
            with open(self.path, "a") as f:
                f.write(json.dumps({"name": name, "length": length, "sha256": digest}) + "\n")
                f.flush()
                os.fsync(f.fileno())
            self.fsyncs += 1
            self.cond.notify_all()

    def wait_for(self, count, timeout):
        with self.cond:
            return self.cond.wait_for(lambda: self.fsyncs >= count, timeout)

    def last_states(self):
        states = {}
        if os.path.exists(self.path):
            with open(self.path) as f:
                for line in f:
                    entry = json.loads(line)
                    states[entry["name"]] = entry
        return states


# Writers work in a directory of the filesystem, never in the mountpoint itself: once the killed
# mount is detached (umount -l), a name opened under the bare mountpoint would be created in the
# directory beneath it (which the next mount then refuses to hide), while one under WRITER_DIR
# fails with ENOENT there and stops the writer.
WRITER_DIR = "crash"


def writer(mnt, prefix, seed, journal, errors):
    """Appends to three files of its own until the mount dies under it."""
    rng = random.Random(seed)
    hashes, fds = {}, {}
    try:
        while True:
            name = f"{WRITER_DIR}/{prefix}-{rng.randrange(3)}"
            if name not in fds:
                fds[name] = os.open(os.path.join(mnt, name), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
                hashes.setdefault(name, [hashlib.sha256(), 0])
            fd, state = fds[name], hashes[name]
            # Small appends (inline chunks, partial pages) and large ones (several chunks).
            data = rng.randbytes(rng.randint(1, 5000) if rng.random() < 0.5 else rng.randint(1, 3 * MiB // 2))
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            state[0].update(data)
            state[1] += len(data)
            if rng.random() < 0.6:
                os.fsync(fd)
                journal.record(name, state[1], state[0].hexdigest())
            if rng.random() < 0.3:
                os.close(fds.pop(name))
    except OSError:
        pass  # the daemon was killed: ENOTCONN / ECONNABORTED from here on
    except Exception as e:  # noqa: BLE001 - reported by the test
        errors.append(f"{prefix}: {type(e).__name__}: {e}")
    finally:
        for fd in fds.values():
            try:
                os.close(fd)
            except OSError:
                pass


def verify(fs, journal):
    """Every journaled file holds its last fsync'ed bytes; returns how many were checked."""
    states = journal.last_states()
    for name, entry in states.items():
        path = fs.path(name)
        size = os.path.getsize(path)
        assert size >= entry["length"], f"{name}: {size} bytes, fsync'ed at {entry['length']} (seed {SEED})"
        h, left = hashlib.sha256(), entry["length"]
        with open(path, "rb") as f:
            while left:
                block = f.read(min(left, 4 * MiB))
                assert block, f"{name}: short read at {entry['length'] - left} (seed {SEED})"
                h.update(block)
                left -= len(block)
        assert h.hexdigest() == entry["sha256"], f"{name}: the first {entry['length']} bytes differ from what fsync reported durable (seed {SEED})"
    return len(states)


def crash_rounds(fs, rounds, tmp_path, outage=None):
    """`outage(on)`, if given, makes the store fail while the writers run (write-back rounds:
    their fsyncs stage chunks that only the next mount can upload)."""
    print(f"crash test: seed {SEED} (CRASH_SEED={SEED} to repeat), {rounds} rounds, store {fs.source}")
    rng = random.Random(SEED)
    journal = Journal(tmp_path / "journal.jsonl")
    fs.start()
    os.makedirs(fs.path(WRITER_DIR), exist_ok=True)
    try:
        for rnd in range(rounds):
            errors = []
            kill_after = journal.fsyncs + rng.randint(1, 12)
            threads = [threading.Thread(target=writer, args=(str(fs.mnt), f"r{rnd:02d}-w{i}", rng.randrange(1 << 30), journal, errors))
                       for i in range(WRITERS)]
            if outage:
                outage(True)
            for t in threads:
                t.start()
            reached = journal.wait_for(kill_after, FSYNC_WAIT)
            m, fs.mount = fs.mount, None
            m.kill()   # SIGKILL by PID, then the dead mount is detached (umount -l)
            if outage:
                outage(False)
                staged = [n for n in os.listdir(fs.cache / "staging") if len(n) == 64]
                print(f"round {rnd}: {len(staged)} chunks staged at the kill")
            for t in threads:
                t.join(FSYNC_WAIT)
                assert not t.is_alive(), f"round {rnd}: a writer is stuck after the daemon was killed (seed {SEED})"
            assert reached, f"round {rnd}: no {kill_after} fsyncs within {FSYNC_WAIT}s (seed {SEED}); log: {fs.root / 'daemon.log'}"
            assert not errors, errors

            r = run("fsck", fs.source, "-o", f"cache_dir={fs.cache}", check=False, env=fs.env)
            assert r.returncode == 0, f"round {rnd} (seed {SEED}): fsck after SIGKILL:\n{r.stdout}{r.stderr}"
            fs.start()
            verified = verify(fs, journal)
            print(f"round {rnd}: killed after {journal.fsyncs} fsyncs in all, fsck clean, {verified} files verified")
    finally:
        fs.stop()
    # What the crashes left behind (chunks stored for commits that never happened) is garbage
    # for gc, and collecting it loses nothing fsync'ed.
    r = run("gc", fs.source, "-o", f"cache_dir={fs.cache}", "--grace", "0", check=False, env=fs.env)
    assert r.returncode == 0, r.stdout + r.stderr
    print(r.stdout.strip())
    r = run("fsck", fs.source, "-o", f"cache_dir={fs.cache}", "--verify", check=False, env=fs.env)
    assert r.returncode == 0 and "0 unreferenced objects" in r.stdout, r.stdout + r.stderr
    fs.start()
    try:
        verify(fs, journal)
    finally:
        fs.stop()


def test_fsynced_data_survives_sigkill_local(tmp_path):
    crash_rounds(Filesystem(tmp_path), ROUNDS, tmp_path)


def test_fsynced_data_survives_sigkill_s3_writeback(tmp_path):
    # Write-back rounds: the store answers 503 while the writers run, so every fsync'ed chunk
    # is only staged when the daemon dies; the next mount uploads it before serving.
    with MotoServer(bucket="crash-wb-e2e") as server, FaultProxy(server.endpoint, rate=0.0) as proxy:
        def outage(on):
            proxy.pattern = ["before"] if on else []
        fs = Filesystem(tmp_path, options=["writeback"], source=f"s3://{server.bucket}/crash-{uuid.uuid4().hex[:8]}",
                        env=s3_env(server, AWS_ENDPOINT_URL=proxy.endpoint))
        crash_rounds(fs, max(3, ROUNDS // 4), tmp_path, outage=outage)


def test_fsynced_data_survives_sigkill_s3(tmp_path):
    with MotoServer(bucket="crash-e2e") as server:
        fs = Filesystem(tmp_path, source=f"s3://{server.bucket}/crash-{uuid.uuid4().hex[:8]}", env=s3_env(server))
        crash_rounds(fs, max(3, ROUNDS // 4), tmp_path)
