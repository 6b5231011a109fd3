#!/usr/bin/env python3
"""backup-cost.py — what the scheduled metadata backups of a PostgreSQL filesystem (issue 25)
add to the store: bytes and objects (PUTs) per backup, and how long one takes, for trees of
N small files, beside the size of the metadata they copy.

usage: bench/backup-cost.py [N ...]          (root; default N = 10000 100000; needs `make build`)
knobs: MOSSAICFS_BIN [.build/release/mossaicfs]  DIRS [100]  FILE_BYTES [4096]

Per N, on a local-directory store and a PostgreSQL server of its own (Tests/e2e/pgserver.py):
format, mount with backups off, create N files of FILE_BYTES in DIRS directories, unmount;
mount again with `backup_interval=1s`, wait for the first two complete backups (their
manifests), unmount; then count what each added to the store: its own objects under
backups/<id>/ and the data objects it wrote (backups/data/<id>-NNNNNN, the small files' bytes,
stored once for all backups) — objects are PUTs. Last, `load --from-backup` into a new
database, timed (it fetches and checks every small file's bytes). A backup is written once per
`backup_interval` (default 1 h) by one host, and `backup_keep` (24) are kept: with nothing
changed, the store holds the first backup plus 23 like the second. `gc` reads each kept
backup's chunk list (one GET per part).
"""
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "Tests" / "e2e"))
os.environ.setdefault("MOSSAICFS_BIN", str(ROOT / ".build" / "release" / "mossaicfs"))

from mossaic import Mount, run, wait_until  # noqa: E402  (needs the path above)
from pgserver import PostgresServer  # noqa: E402

DIRS = int(os.environ.get("DIRS", "100"))
FILE_BYTES = int(os.environ.get("FILE_BYTES", "4096"))


def measure(pg, n, work):
    url = pg.create_database(f"backup{n}")
    store = work / "store"
    run("format", "--meta", url, str(store))
    m = Mount(store, work / "mnt", work / "cache", ["backup_interval=0"], log=work / "daemon.log").start()
    try:
        for d in range(DIRS):
            (work / "mnt" / f"d{d}").mkdir()
        for i in range(n):
            # Incompressible and distinct: a small file's bytes live in the metadata (inline),
            # so a backup copies them.
            (work / "mnt" / f"d{i % DIRS}" / f"f{i}").write_bytes(os.urandom(FILE_BYTES))
    finally:
        m.stop()
    database = int(pg.psql(url, f"SELECT pg_database_size('backup{n}')").strip())
    started = time.monotonic()
    m = Mount(store, work / "mnt", work / "cache", ["backup_interval=1s", "backup_keep=24"], log=work / "daemon.log").start()
    try:
        wait_until(lambda: any((store / "backups").glob("*/manifest.json")), 600, "the first backup")
        took = time.monotonic() - started
        wait_until(lambda: len(list((store / "backups").glob("*/manifest.json"))) >= 2, 600, "the second backup")
    finally:
        m.stop()
    first, second = [p.parent for p in sorted((store / "backups").glob("*/manifest.json"))[:2]]

    def added(backup):
        own = [p for p in backup.iterdir() if p.is_file()]
        data = list((store / "backups" / "data").glob(backup.name + "-*"))
        return len(own) + len(data), sum(p.stat().st_size for p in own + data)

    objects, size = added(first)
    objects2, size2 = added(second)
    restored = pg.create_database(f"restore{n}")
    started = time.monotonic()
    run("load", "--from-backup", "--into", str(store), "--meta", restored)
    restore_s = time.monotonic() - started
    return {"files": n, "data_MiB": round(n * FILE_BYTES / 2**20, 1), "database_MiB": round(database / 2**20, 1),
            "backup_objects": objects, "backup_MiB": round(size / 2**20, 2),
            "backup_bytes_per_file": round(size / n, 1), "first_backup_within_s": round(took, 1),
            "second_backup_objects": objects2, "second_backup_MiB": round(size2 / 2**20, 3),
            "second_backup_bytes_per_file": round(size2 / n, 1),
            "kept_24_MiB": round((size + 23 * size2) / 2**20, 1), "restore_s": round(restore_s, 1)}


def main():
    sizes = [int(a) for a in sys.argv[1:]] or [10_000, 100_000]
    with PostgresServer() as pg:
        for n in sizes:
            with tempfile.TemporaryDirectory(prefix="bench-backup-") as work:
                print(json.dumps(measure(pg, n, Path(work))), flush=True)


if __name__ == "__main__":
    main()
