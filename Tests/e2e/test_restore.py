"""Mount from the store alone, interrupted: the restore of the metadata (a base snapshot plus a
chain of changesets) applies the changesets into a scratch file without a journal, so a daemon
killed midway leaves a partly changed file behind. The next mount must never take it for the
database: it starts the restore over and serves the whole tree. On a local-directory store,
SQLite metadata (the restore from the store is the SQLite engine's); every daemon is stopped
by its PID on every path."""
import json
import os
import signal
import subprocess

import pytest

from mossaic import BIN, META, Mount, is_mounted, run, wait_until

pytestmark = pytest.mark.skipif(META != "sqlite", reason="the restore from the store is the SQLite engine's")

BATCHES = 6
PER_BATCH = 40


def content(batch, i):
    return f"batch {batch} file {i}\n".encode() * (1 + i % 7)


def fifo_has_reader(path):
    """True while a process holds the FIFO open for reading (opening it to write without
    blocking fails with ENXIO otherwise)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:
        return False
    os.close(fd)
    return True


def test_a_restore_killed_midway_starts_over_and_gives_the_whole_tree(tmp_path):
    store, cache = tmp_path / "store", tmp_path / "cache"
    run("format", str(store))
    # A chain: one snapshot per batch (`mossaicfs snapshot`), each an incremental one.
    m = Mount(store, tmp_path / "mnt", tmp_path / "first", ["meta_interval=3600"], log=tmp_path / "first.log").start()
    try:
        for b in range(BATCHES):
            os.makedirs(tmp_path / "mnt" / f"b{b}")
            for i in range(PER_BATCH):
                (tmp_path / "mnt" / f"b{b}" / f"f{i}").write_bytes(content(b, i))
            run("snapshot", str(tmp_path / "mnt"))
    finally:
        m.stop()
    head = json.loads((store / "meta" / "HEAD").read_text())["snapshot"]
    manifest = json.loads((store / "meta" / "snapshots" / f"{head}.json").read_text())
    changes = manifest["changes"]
    assert len(changes) >= BATCHES - 1, manifest

    # The store holds a changeset in the middle of the chain as a FIFO: the restore's GET of it
    # blocks in open() until the test lets it go, with the changesets before it applied.
    held = changes[len(changes) // 2]["sha256"]
    piece = store / "meta" / "chunks" / held[:2] / held
    saved = piece.read_bytes()
    piece.unlink()
    os.mkfifo(piece)
    mnt = tmp_path / "mnt"
    log = open(tmp_path / "killed.log", "ab")
    proc = subprocess.Popen([BIN, "mount", str(store), str(mnt), "-f", "-o", f"cache_dir={cache}"],
                            stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    try:
        wait_until(lambda: fifo_has_reader(piece) or proc.poll() is not None, 60, "the restore reaching the held changeset")
        assert proc.poll() is None, "the daemon exited before the restore reached the held changeset"
        # Mid-restore: the scratch file exists, the database does not.
        assert (cache / "meta.db.download").exists()
        assert not (cache / "meta.db").exists()
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        log.close()
        if is_mounted(mnt):
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True)
    assert (cache / "meta.db.download").exists(), "the kill left no partly restored file: the test proves nothing"
    assert not (cache / "meta.db").exists()

    piece.unlink()
    piece.write_bytes(saved)
    m = Mount(store, mnt, cache, log=tmp_path / "second.log").start()
    try:
        for b in range(BATCHES):
            names = sorted(os.listdir(mnt / f"b{b}"))
            assert names == sorted(f"f{i}" for i in range(PER_BATCH)), (b, names)
            for i in range(PER_BATCH):
                assert (mnt / f"b{b}" / f"f{i}").read_bytes() == content(b, i)
    finally:
        m.stop()
    assert not (cache / "meta.db.download").exists()
