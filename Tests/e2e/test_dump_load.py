"""`mossaicfs dump` and `mossaicfs load` (issue 25): a tree built on real mounts moves SQLite ->
PostgreSQL -> SQLite and comes out identical each time (`diff -r` against a `cp -a` copy, and
every name's attributes: inode numbers — so hard-link groups —, modes, owners, sizes,
nanosecond mtimes and ctimes, rdev, xattrs with binary values, symlink targets, contents); a
PostgreSQL mount's periodic backup in the store restores the tree into a fresh engine of either
kind; and bad input (garbage, a truncated dump, another filesystem's dump, a target that is not
empty, a PostgreSQL filesystem that a host has mounted) is refused in one line, exit status 1,
with nothing changed.

One PostgreSQL server for the module (pgserver.py), a new database per use."""
import hashlib
import json
import os
import re
import stat
import subprocess
import time

import pytest

from mossaic import one_line_failure, BIN, Mount, run, wait_until
from pgserver import PostgresServer

ODD_NAMES = [b"sp ace", b"new\nline", b"tab\there", b"\xff\xfe-not-utf8", "ünïcödé".encode(), b'quote"back\\slash', b"-dash"]


@pytest.fixture(scope="module")
def pg():
    with PostgresServer() as server:
        yield server


_databases = iter(range(1, 1000))


@pytest.fixture
def new_database(pg):
    return lambda: pg.create_database(f"dl_{os.getpid()}_{next(_databases)}")


def build_tree(root):
    """Every kind of thing the metadata holds: files of several sizes (empty, inline, one
    chunk's edge, several chunks, sparse, patched in place), directories, symlinks (odd bytes,
    dangling), hard links, a fifo and a device, xattrs (text, binary, empty), odd names, modes
    and nanosecond times."""
    root = os.fsencode(root)
    j = os.path.join
    os.makedirs(j(root, b"dir", b"sub", b"deeper"))
    sizes = {b"empty": 0, b"one": 1, b"inline": 16 << 10, b"inline+1": (16 << 10) + 1, b"chunk": 1 << 20,
             b"chunk+1": (1 << 20) + 1, b"three": (3 << 20) + 12345}
    for name, size in sizes.items():
        with open(j(root, b"dir", name), "wb") as f:
            f.write(os.urandom(size))
    with open(j(root, b"dir", b"sparse"), "wb") as f:
        f.seek(5 << 20)
        f.write(b"after a hole")
    with open(j(root, b"dir", b"patched"), "wb") as f:
        f.write(os.urandom(2 << 20))
    with open(j(root, b"dir", b"patched"), "r+b") as f:  # small writes into a big file
        f.seek(1000)
        f.write(b"patch")
        f.seek((1 << 20) + 7)
        f.write(b"another")
    fd = os.open(j(root, b"dir", b"reserved"), os.O_CREAT | os.O_WRONLY, 0o644)  # fallocate's reservations
    try:
        os.write(fd, b"head")
        os.posix_fallocate(fd, 0, 3 << 20)
    finally:
        os.close(fd)
    for name in ODD_NAMES:
        with open(j(root, b"dir", b"sub", name), "wb") as f:
            f.write(name * 3)
    os.mkdir(j(root, b"dir", ODD_NAMES[1] + b"-dir"))
    os.symlink(b"../dir/three", j(root, b"dir", b"sub", b"link"))
    os.symlink(b"nowhere/\xff\x01target", j(root, b"dangling"))
    os.link(j(root, b"dir", b"one"), j(root, b"hard-1"))
    os.link(j(root, b"dir", b"one"), j(root, b"dir", b"sub", b"hard-2"))
    os.mkfifo(j(root, b"fifo"))
    os.mknod(j(root, b"null-device"), 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    os.setxattr(j(root, b"dir", b"one"), b"user.text", b"blue")
    os.setxattr(j(root, b"dir", b"one"), b"user.binary", bytes(range(256)))
    os.setxattr(j(root, b"dir", b"one"), b"user.empty", b"")
    os.setxattr(j(root, b"dir"), b"user.\xffodd-name", b"\x00\n\"")
    os.chmod(j(root, b"dir", b"chunk"), 0o4755)
    os.chmod(j(root, b"dir", b"inline"), 0o600)
    os.chmod(j(root, b"dir", b"sub"), 0o1777)
    os.chown(j(root, b"dir", b"inline+1"), 1234, 5678)
    os.utime(j(root, b"dir", b"three"), ns=(1_000_000_123, 1_234_567_890_123_456_789))
    os.utime(j(root, b"dir", b"sub", b"deeper"), ns=(7, 1_500_000_000_000_000_001))
    os.utime(j(root, b"dangling"), ns=(5, 1_600_000_000_999_999_999), follow_symlinks=False)


def describe(root):
    """Everything the tree shows for each name (atime aside: reading changes it)."""
    root = os.fsencode(root)
    out = {}
    for parent, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            path = os.path.join(parent, name)
            st = os.lstat(path)
            entry = {"ino": st.st_ino, "mode": st.st_mode, "uid": st.st_uid, "gid": st.st_gid, "nlink": st.st_nlink,
                     "size": st.st_size, "mtime": st.st_mtime_ns, "ctime": st.st_ctime_ns, "rdev": st.st_rdev}
            if not stat.S_ISLNK(st.st_mode):
                entry["xattrs"] = {n: os.getxattr(path, n) for n in sorted(os.listxattr(path))}
            if stat.S_ISLNK(st.st_mode):
                entry["target"] = os.readlink(path)
            elif stat.S_ISREG(st.st_mode):
                with open(path, "rb") as f:
                    entry["sha256"] = hashlib.sha256(f.read()).hexdigest()
            out[os.path.relpath(path, root)] = entry
    return out


def copy_of(mnt, dest):
    """A cp -a copy (hard links, xattrs, modes, times kept) for diff -r against a later mount."""
    subprocess.run(["cp", "-a", f"{mnt}/.", str(dest)], check=True)
    return dest


def diff(expected, mnt):
    """diff -r, which compares no special files: it names each (a fifo, a device) even when both
    sides agree; those lines are checked to agree (describe() compares their modes and rdev)."""
    r = subprocess.run(["diff", "-r", "--no-dereference", str(expected), str(mnt)], capture_output=True)
    report = r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace")
    for line in report.splitlines():
        before, _, after = line.partition(" while file ")
        assert line.startswith("File ") and after and before.rsplit(" is a ", 1)[1] == after.rsplit(" is a ", 1)[1], report
    assert r.returncode in (0, 1), report


def mount(store, tmp_path, cache, options=()):
    return Mount(store, tmp_path / "mnt", tmp_path / cache, options=options, log=tmp_path / "daemon.log").start()


def dump_lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_sqlite_to_postgres_and_back_keeps_the_tree(new_database, tmp_path):
    store = tmp_path / "store"
    run("format", str(store))
    m = mount(store, tmp_path, "cache-sqlite")
    try:
        build_tree(tmp_path / "mnt")
        before = describe(tmp_path / "mnt")
        expected = copy_of(tmp_path / "mnt", tmp_path / "expected")
        # Allowed while mounted: a consistent read of the live meta.db.
        live = run("dump", str(store), "--output", str(tmp_path / "live.jsonl"), "-o", f"cache_dir={tmp_path / 'cache-sqlite'}")
        assert "dumped" in live.stderr, live.stderr
    finally:
        m.stop()
    dump = tmp_path / "meta.jsonl"
    with open(dump, "wb") as out:  # to standard output
        r = subprocess.run([BIN, "dump", str(store), "-o", f"cache_dir={tmp_path / 'cache-sqlite'}"], stdout=out, stderr=subprocess.PIPE)
    assert r.returncode == 0 and b"dumped" in r.stderr, r.stderr
    lines = dump_lines(dump)
    header, trailer = lines[0], lines[-1]
    assert header["mossaicfs_dump"] == 1 and header["engine"] == "sqlite" and header["fs_uuid"] == json.loads((store / "mossaicfs.json").read_text())["uuid"]
    assert trailer["end"] == "mossaicfs_dump" and trailer["records"] == len(lines) - 2
    assert trailer["inode"] == len({e["ino"] for e in before.values()}) + 1  # and the root
    assert trailer["inode"] == dump_lines(tmp_path / "live.jsonl")[-1]["inode"]
    # Every table that makes the tree has rows here.
    assert trailer["symlink"] == 2 and trailer["xattr"] == 4 and trailer["allocation"] > 0 and trailer["patch"] > 0, trailer
    assert trailer["dentry"] == len(before) and trailer["file_chunk"] > 0 and trailer["chunk"] > 0, trailer

    database = new_database()
    r = run("load", str(dump), "--into", str(store), "--meta", database)
    assert "loaded" in r.stdout and "now uses it" in r.stdout, r.stdout
    superblock = json.loads((store / "mossaicfs.json").read_text())
    assert superblock["meta"] == database and superblock["format_version"] == 3

    m = mount(store, tmp_path, "cache-pg")
    try:
        assert describe(tmp_path / "mnt") == before
        diff(expected, tmp_path / "mnt")
        # The loaded engine takes new inodes after the loaded ones, and changes.
        (tmp_path / "mnt" / "after-migration").write_bytes(b"written on PostgreSQL")
        os.unlink(tmp_path / "mnt" / "hard-1")
        assert os.stat(tmp_path / "mnt" / "after-migration").st_ino > max(e["ino"] for e in before.values())
        before = describe(tmp_path / "mnt")
        expected2 = copy_of(tmp_path / "mnt", tmp_path / "expected2")
    finally:
        m.stop()

    back = tmp_path / "back.jsonl"
    run("dump", str(store), "--output", str(back))
    assert dump_lines(back)[0]["engine"] == "postgres"
    r = run("load", str(back), "--into", str(store), "-o", f"cache_dir={tmp_path / 'cache-back'}")
    assert "loaded" in r.stdout, r.stdout
    superblock = json.loads((store / "mossaicfs.json").read_text())
    assert "meta" not in superblock or superblock["meta"] is None
    m = mount(store, tmp_path, "cache-back")
    try:
        assert describe(tmp_path / "mnt") == before
        diff(expected2, tmp_path / "mnt")
    finally:
        m.stop()
    # The first mount published it: a machine without that cache_dir restores it from the store.
    m = mount(store, tmp_path, "cache-fresh")
    try:
        assert describe(tmp_path / "mnt") == before
    finally:
        m.stop()


def complete_backups(store):
    return sorted(p.parent.name for p in (store / "backups").glob("*/manifest.json"))


def test_a_backup_in_the_store_restores_the_tree(new_database, tmp_path):
    store = tmp_path / "store"
    run("format", "--meta", new_database(), str(store))
    m = mount(store, tmp_path, "cache", options=["backup_interval=1s", "backup_keep=2"])
    try:
        build_tree(tmp_path / "mnt")
        before = describe(tmp_path / "mnt")
        expected = copy_of(tmp_path / "mnt", tmp_path / "expected")
        # A backup started after the tree was complete (ids are UTC start times, in ms).
        now = time.time()
        written = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z"
        wait_until(lambda: any(b >= written for b in complete_backups(store)), 60, "a backup after the tree was written")
        wait_until(lambda: len(complete_backups(store)) == 2, 30, "pruned to backup_keep")
    finally:
        m.stop()
    assert len(complete_backups(store)) <= 2
    newest = complete_backups(store)[-1]
    assert (store / "backups" / newest / "000000.jsonl.zst").read_bytes()[:4] == b"\x28\xb5\x2f\xfd"  # zstd

    # Files deleted after the backup: gc keeps the objects a backup in the store names.
    m = mount(store, tmp_path, "cache", options=["backup_interval=0"])
    try:
        os.unlink(tmp_path / "mnt" / "dir" / "three")
        os.unlink(tmp_path / "mnt" / "dir" / "chunk+1")
    finally:
        m.stop()
    r = run("gc", str(store), "--grace", "0s", "-o", f"cache_dir={tmp_path / 'cache'}")
    kept = re.search(r"kept (\d+) for (\d+) snapshots", r.stdout)
    assert kept and int(kept.group(1)) > 0 and int(kept.group(2)) == len(complete_backups(store)), r.stdout

    # The database is lost: a new one, from the bucket alone.
    r = restore_newest_backup_into_both(store, tmp_path, new_database(), before, expected)
    assert "backup backups/" in r.stdout, r.stdout


def restore_newest_backup_into_both(store, tmp_path, database, before, expected):
    """load --from-backup into `database`, then into SQLite: each mounts the tree of `before`
    (describe) and `expected` (a cp -a copy). Returns the first load's CompletedProcess."""
    r = run("load", "--from-backup", "--into", str(store), "--meta", database)
    assert "loaded" in r.stdout, r.stdout
    m = mount(store, tmp_path, "cache-restored", options=["backup_interval=0"])
    try:
        assert describe(tmp_path / "mnt") == before
        diff(expected, tmp_path / "mnt")
    finally:
        m.stop()
    # And into SQLite.
    run("load", "--from-backup", "--into", str(store), "-o", f"cache_dir={tmp_path / 'cache-sqlite'}")
    m = mount(store, tmp_path, "cache-sqlite")
    try:
        assert describe(tmp_path / "mnt") == before
        diff(expected, tmp_path / "mnt")
    finally:
        m.stop()
    return r


def backup_added(store, backup):
    """Bytes and objects a backup added to the store: its own objects and the data objects it
    wrote (named after it)."""
    own = [p for p in (store / "backups" / backup).iterdir() if p.is_file()]
    data = [p for p in (store / "backups" / "data").glob(f"{backup}-*")] if (store / "backups" / "data").exists() else []
    return sum(p.stat().st_size for p in own + data), len(own + data)


def test_backups_keep_small_files_bytes_once(new_database, tmp_path):
    """Small files' bytes (inline chunks) go into backups/data/ once: a backup after one that
    stored them adds only the metadata lines (no data object, a handful of objects); both
    restore, into a new database and into SQLite, the same tree; a damaged data object stops
    the restore in one line with nothing loaded."""
    store = tmp_path / "store"
    run("format", "--meta", new_database(), str(store))
    files, size = 400, 4096
    m = mount(store, tmp_path, "cache", options=["backup_interval=1s", "backup_keep=3"])
    try:
        build_tree(tmp_path / "mnt")
        os.mkdir(tmp_path / "mnt" / "small")
        for i in range(files):
            (tmp_path / "mnt" / "small" / f"f{i}").write_bytes(os.urandom(size))
        os.link(tmp_path / "mnt" / "small" / "f0", tmp_path / "mnt" / "small-link")
        os.setxattr(tmp_path / "mnt" / "small" / "f1", b"user.k", b"\x00v")
        before = describe(tmp_path / "mnt")
        expected = copy_of(tmp_path / "mnt", tmp_path / "expected")
        now = time.time()
        written = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z"
        # Two complete backups started after the tree was written: the first stores its small
        # files' bytes, the second reuses them.
        wait_until(lambda: len([b for b in complete_backups(store) if b >= written]) >= 2, 90, "two backups after the tree")
    finally:
        m.stop()
    first, second = [b for b in complete_backups(store) if b >= written][:2]
    manifests = {b: json.loads((store / "backups" / b / "manifest.json").read_text()) for b in (first, second)}
    assert manifests[first]["format"] == 2 and manifests[second]["base"] == first, manifests
    inline_bytes = files * size
    # (Backups ran while the files were written: the first names data objects of earlier ones too.)
    assert sum(d["bytes"] for d in manifests[first]["data"]) >= inline_bytes, manifests[first]
    assert manifests[second]["data"] == manifests[first]["data"]
    assert manifests[second]["new_data_bytes"] == 0 and manifests[second]["new_data_objects"] == 0, manifests[second]
    added, objects = backup_added(store, second)
    # The metadata lines only: parts (one here), started.json, manifest.
    assert added < inline_bytes / 10 and objects <= 4, (added, objects)
    assert added == sum(p.stat().st_size for p in (store / "backups" / second).iterdir())

    # gc keeps the data objects a backup names and deletes one no backup names (a dead backup's).
    orphan = store / "backups" / "data" / "20000101T000000.000Z-000000"
    orphan.write_bytes(b"left by a backup that never completed")
    named = {store / "backups" / "data" / d["name"] for b in complete_backups(store)
             for d in json.loads((store / "backups" / b / "manifest.json").read_text())["data"]}
    r = run("gc", str(store), "--grace", "0s", "-o", f"cache_dir={tmp_path / 'cache'}")
    assert "1 backup data objects)" in r.stdout and not orphan.exists(), r.stdout
    assert all(p.exists() for p in named)

    # The database is lost: the newest backup, into a new database and into SQLite.
    r = restore_newest_backup_into_both(store, tmp_path, new_database(), before, expected)
    assert "each checked against its SHA-256" in r.stderr, r.stderr


def test_a_damaged_backup_data_object_loads_nothing(new_database, tmp_path):
    """A data object of the backup altered (or gone): load --from-backup says which, in one
    line after its "loading" note, exit status 1, and the database and superblock are as they
    were."""
    store = tmp_path / "store"
    run("format", "--meta", new_database(), str(store))
    m = mount(store, tmp_path, "cache", options=["backup_interval=1s"])
    try:
        for i in range(50):
            (tmp_path / "mnt" / f"f{i}").write_bytes(os.urandom(3000))
        now = time.time()
        written = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z"
        wait_until(lambda: any(b >= written for b in complete_backups(store)), 60, "a backup after the files")
    finally:
        m.stop()
    newest = complete_backups(store)[-1]
    names = [d["name"] for d in json.loads((store / "backups" / newest / "manifest.json").read_text())["data"]]
    victim = store / "backups" / "data" / names[0]
    good = victim.read_bytes()
    victim.write_bytes(good[:100] + bytes([good[100] ^ 1]) + good[101:])
    superblock = (store / "mossaicfs.json").read_bytes()
    target = new_database()
    for damage, message in (("altered", "does not match its SHA-256"), ("gone", "which is not in the store")):
        if damage == "gone":
            victim.unlink()
        r = run("load", "--from-backup", "--into", str(store), "--meta", target, check=False)
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 1 and len(lines) == 2 and lines[0].startswith("mossaicfs: loading backup"), r.stderr
        assert message in lines[1] and f"backups/data/{names[0]}" in lines[1] and "nothing was loaded" in lines[1], lines[1]
        assert (store / "mossaicfs.json").read_bytes() == superblock
    victim.write_bytes(good)
    r = run("load", "--from-backup", "--into", str(store), "--meta", target)
    assert "loaded" in r.stdout, r.stdout


def test_a_mounted_postgresql_filesystem_is_not_loaded_into(pg, new_database, tmp_path):
    """While a host has the PostgreSQL filesystem mounted read-write (a live session), load
    refuses — into a new database and into SQLite alike — in one line naming the host and pid,
    with nothing changed: the mount would go on writing into the former metadata. After a clean
    unmount the same load runs; a crashed host's session that expired blocks nothing."""
    store = tmp_path / "store"
    current = new_database()
    run("format", "--meta", current, str(store))
    dump = tmp_path / "dump.jsonl"
    target = new_database()
    sqlite_cache = tmp_path / "cache-sqlite"
    superblock = (store / "mossaicfs.json").read_bytes()
    m = mount(store, tmp_path, "cache", options=["backup_interval=0"])
    try:
        build_tree(tmp_path / "mnt")
        before = describe(tmp_path / "mnt")
        run("dump", str(store), "--output", str(dump))
        host = f"{os.uname().nodename} (pid {m.proc.pid})"
        for into in (["--meta", target], ["-o", f"cache_dir={sqlite_cache}"]):
            line = one_line_failure(run("load", str(dump), "--into", str(store), *into, check=False))
            assert f"is mounted read-write on {host}: unmount it on every host first" in line, (into, line)
            assert (store / "mossaicfs.json").read_bytes() == superblock
            assert pg.psql(target, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == "0"
            assert not sqlite_cache.exists()
        (tmp_path / "mnt" / "still-mounted").write_bytes(b"the mount goes on")
    finally:
        m.stop()
    assert pg.psql(current, "SELECT count(*) FROM sessions") == "0"  # a clean unmount deletes its session

    # A crashed host's session, expired by the server's clock: it does not block the load.
    pg.psql(current, """INSERT INTO sessions(id, host, pid, version, heartbeat, expiry_ms)
                        VALUES ('crashed', 'crashed.example', 4242, 'test', now() - interval '1 hour', 1000)""")
    r = run("load", str(dump), "--into", str(store), "--meta", target)
    assert "loaded" in r.stdout and r.stderr == "", (r.stdout, r.stderr)
    assert (store / "mossaicfs.json").read_bytes() != superblock
    m = mount(store, tmp_path, "cache-loaded", options=["backup_interval=0"])
    try:
        assert describe(tmp_path / "mnt") == before  # the dump's tree, without what came after it
    finally:
        m.stop()


def test_bad_input_is_refused_and_changes_nothing(pg, new_database, tmp_path):
    store = tmp_path / "store"
    run("format", str(store))
    m = mount(store, tmp_path, "cache")
    try:
        build_tree(tmp_path / "mnt")
    finally:
        m.stop()
    good = tmp_path / "good.jsonl"
    run("dump", str(store), "--output", str(good), "-o", f"cache_dir={tmp_path / 'cache'}")
    superblock = (store / "mossaicfs.json").read_bytes()
    database = new_database()

    garbage = tmp_path / "garbage"
    garbage.write_bytes(os.urandom(4096))
    line = one_line_failure(run("load", str(garbage), "--into", str(store), "--meta", database, check=False))
    assert "not a mossaicfs dump" in line, line
    # Nothing was created in the database, and the superblock is as it was.
    assert pg.psql(database, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == "0"
    assert (store / "mossaicfs.json").read_bytes() == superblock

    lines = good.read_bytes().splitlines(keepends=True)
    for name, content, says in [
        ("truncated", b"".join(lines[:-1]), "truncated"),
        ("cut-mid-line", b"".join(lines[:-1])[:-7], "truncated"),
        ("miscounted", b"".join(lines[:3] + lines[4:]), "does not match"),
        ("damaged", b"".join(lines[:2] + [b'{"t":"inode","ino":"x"}\n'] + lines[2:]), "damaged dump at line 3"),
    ]:
        bad = tmp_path / name
        bad.write_bytes(content)
        line = one_line_failure(run("load", str(bad), "--into", str(store), "--meta", database, check=False))
        assert says in line, (name, line)
        assert (store / "mossaicfs.json").read_bytes() == superblock
        assert pg.psql(database, "SELECT count(*) FROM inodes") == "0"
        assert pg.psql(database, "SELECT count(*) FROM settings WHERE key = 'fs_uuid'") == "0"

    # A dump of another filesystem.
    other = tmp_path / "other"
    run("format", str(other))
    line = one_line_failure(run("load", str(good), "--into", str(other), "--meta", database, check=False))
    assert "is a dump of filesystem" in line, line

    # The SQLite engine of a SQLite filesystem is not empty (its snapshots are live).
    line = one_line_failure(run("load", str(good), "--into", str(store), "-o", f"cache_dir={tmp_path / 'c2'}", check=False))
    assert "keeps its metadata in SQLite already" in line, line

    # The good dump loads into the same database after all those failures.
    run("load", str(good), "--into", str(store), "--meta", database)
    superblock = (store / "mossaicfs.json").read_bytes()
    # A database holding a filesystem is not empty, nor is a cache_dir holding a meta.db.
    line = one_line_failure(run("load", str(good), "--into", str(store), "--meta", database, check=False))
    assert "already holds the metadata of mossaicfs filesystem" in line, line
    line = one_line_failure(run("load", str(good), "--into", str(store), "-o", f"cache_dir={tmp_path / 'cache'}", check=False))
    assert "already holds a meta.db" in line, line
    assert (store / "mossaicfs.json").read_bytes() == superblock
    # No dump named, or two.
    r = run("load", "--into", str(store), check=False)
    assert r.returncode != 0 and "--from-backup" in r.stderr


def test_a_dump_whose_reader_pauses_longer_than_the_servers_idle_limit_completes(new_database, tmp_path):
    """Every pooled connection lets the server end a transaction left idle for 15 s (so a host
    cut off mid-transaction frees its row locks: PostgresMetaStore.serverSideTimeouts). A dump
    is one long read-only transaction that writes between its pages, and a reader may stop
    reading for longer (a paused pipeline, a slow upload of a backup's part): the dump must
    wait for it, not die with its transaction."""
    database = new_database()
    store = tmp_path / "store"
    run("format", "--meta", database, str(store))
    m = mount(store, tmp_path, "cache")
    try:
        # Small files keep their bytes in the metadata: some 8 MB of dump, written out in
        # 1 MiB blocks between the pages of rows.
        for i in range(1500):
            (tmp_path / "mnt" / f"f{i:05}").write_bytes(os.urandom(4096))
    finally:
        m.stop()
    dump = subprocess.Popen([BIN, "dump", str(store)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        # Nobody reads: the dump's first block fills the pipe (64 KiB), and the dump blocks
        # inside its transaction, between two pages of rows, past the server's limit.
        time.sleep(17)
        out, err = dump.communicate(timeout=120)
    finally:
        if dump.poll() is None:
            dump.kill()
            dump.wait()
    assert dump.returncode == 0, err.decode()
    lines = [json.loads(line) for line in out.decode().splitlines()]
    assert len(out) > 4 * (1 << 20)
    entries = [line for line in lines if line.get("t") == "dentry"]
    assert len(entries) >= 1500, (len(entries), lines[-1])
