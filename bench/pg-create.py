#!/usr/bin/env python3
"""Small-file creates and statfs on a PostgreSQL filesystem, binaries side by side.

For each round and each binary (alternating): a new database on one PostgreSQL server started
for the run (Tests/e2e/pgserver.py: initdb in a temporary directory, fsync=off, stopped at the
end), `format --meta`, a mount on a local-directory store, N files of 320 bytes (inline) created
in one directory by this process (open/write/close), then one timed statvfs; unmounted.

usage: BINS="before=/path/old after=/path/new" bench/pg-create.py [N [ROUNDS]]   (as root)
       defaults: N=5000, ROUNDS=3, BINS="current=<root>/.build/release/mossaicfs"
"""
import os
import subprocess
import sys
import tempfile
import time

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(root, "Tests", "e2e"))
from pgserver import PostgresServer  # noqa: E402


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    spec = os.environ.get("BINS", f"current={root}/.build/release/mossaicfs")
    bins = dict(item.split("=", 1) for item in spec.split())
    for name, path in bins.items():
        if not os.access(path, os.X_OK):
            sys.exit(f"pg-create: {name}: no binary at {path}")
    work = tempfile.mkdtemp(prefix="bench-pg-create.")
    mnt = os.path.join(work, "mnt")
    os.makedirs(mnt)
    rates = {name: [] for name in bins}
    with PostgresServer() as pg:
        for r in range(rounds):
            for index, (name, binary) in enumerate(bins.items()):
                db = pg.create_database(f"create_{index}_{r}")
                store = os.path.join(work, f"store-{name}-{r}")
                subprocess.run([binary, "format", "--meta", db, store], check=True, capture_output=True)
                subprocess.run([binary, "mount", store, mnt, "-o", f"cache_dir={work}/cache-{name}-{r},backup_interval=0"],
                               check=True, stdin=subprocess.DEVNULL)
                try:
                    os.mkdir(f"{mnt}/d")
                    t0 = time.monotonic()
                    for i in range(n):
                        fd = os.open(f"{mnt}/d/f{i}", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                        os.write(fd, i.to_bytes(8, "little") * 40)
                        os.close(fd)
                    seconds = time.monotonic() - t0
                    t1 = time.monotonic()
                    st = os.statvfs(mnt)
                    statfs_ms = (time.monotonic() - t1) * 1000
                    rates[name].append(n / seconds)
                    print(f"{name} round {r + 1}: {n / seconds:.0f} creates/s, statvfs {statfs_ms:.1f} ms "
                          f"({st.f_files - st.f_ffree} inodes)", flush=True)
                finally:
                    subprocess.run(["umount", mnt], check=True)
    for name, values in rates.items():
        print(f"{name}: mean {sum(values) / len(values):.0f} creates/s over {len(values)} rounds")
    subprocess.run(["rm", "-rf", work])


if __name__ == "__main__":
    main()
