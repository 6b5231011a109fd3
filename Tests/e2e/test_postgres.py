"""Filesystems whose metadata is in PostgreSQL (`format --meta postgres://…`, issue 25 step 2),
on one host: format, mount, remount on a fresh cache_dir, fsck, gc and status; and the refusals
(a password in the URL, a bad URL, an unreachable server, a database that holds another
filesystem or none; gc and fsck --repair while a host has the filesystem mounted), each one
line, exit status 1, nothing created or deleted.

One PostgreSQL server (pgserver.py) for the module, a new database per test. The POSIX suite
and fsrand run on PostgreSQL through the matrix hook (MOSSAICFS_TEST_META=postgres, `make
test-postgres`)."""
import json
import os

import pytest

from mossaic import one_line_failure, Mount, run, sha256_file, write_fsynced
from pgserver import PostgresServer


@pytest.fixture(scope="module")
def pg():
    with PostgresServer() as server:
        yield server


@pytest.fixture
def database(pg, request):
    """A new, empty database for the test, named after it."""
    return pg.create_database("t_" + request.node.name.lower()[:40])


def write_tree(root):
    """A small tree of every kind of entry; returns what reading it back must give."""
    os.makedirs(root / "dir" / "sub")
    files = {"small": b"hello\n", "dir/three-chunks": os.urandom(3 << 20 | 12345), "dir/sub/empty": b""}
    for name, data in files.items():
        (root / name).write_bytes(data)
    os.symlink("dir/three-chunks", root / "link")
    os.link(root / "small", root / "dir" / "hard")
    os.setxattr(root / "small", "user.colour", b"blue")
    return files


def check_tree(root, files):
    for name, data in files.items():
        assert (root / name).read_bytes() == data, name
    assert os.readlink(root / "link") == "dir/three-chunks"
    assert os.stat(root / "small").st_nlink == 2 and os.stat(root / "small").st_ino == os.stat(root / "dir" / "hard").st_ino
    assert os.getxattr(root / "small", "user.colour") == b"blue"
    assert sorted(os.listdir(root)) == ["dir", "link", "small"]


def test_the_tree_is_in_the_database_not_in_the_cache_dir(pg, database, tmp_path):
    store = tmp_path / "store"
    r = run("format", "--meta", database, str(store))
    assert "metadata in PostgreSQL" in r.stdout
    superblock = json.loads((store / "mossaicfs.json").read_text())
    # Older builds read up to version 2: they must refuse this one, not open an empty meta.db.
    assert superblock["format_version"] == 3 and superblock["meta"] == database
    m = Mount(store, tmp_path / "mnt", tmp_path / "cache-a", log=tmp_path / "daemon.log").start()
    try:
        files = write_tree(tmp_path / "mnt")
    finally:
        m.stop()
    # No local metadata and no snapshot in the store: the database is the source of truth.
    assert not (tmp_path / "cache-a" / "meta.db").exists()
    assert not (store / "meta").exists()
    assert int(pg.psql(database, "SELECT count(*) FROM dentries")) == 7

    # Another cache_dir (another host's, as far as the metadata goes) sees the whole tree.
    m = Mount(store, tmp_path / "mnt", tmp_path / "cache-b", log=tmp_path / "daemon.log").start()
    try:
        check_tree(tmp_path / "mnt", files)
        line = one_line_failure(run("snapshot", str(tmp_path / "mnt"), check=False))
        assert "keeps its metadata in PostgreSQL" in line, line
    finally:
        m.stop()
    line = one_line_failure(run("snapshots", str(store), check=False))
    assert "has no metadata snapshots" in line, line
    r = run("fsck", str(store), "--verify", "-o", f"cache_dir={tmp_path / 'cache-b'}")
    assert r.stdout.rstrip().endswith(": clean") and "0 metadata problems" in r.stdout, r.stdout
    status = json.loads(run("status", str(store), "--json", "-o", f"cache_dir={tmp_path / 'cache-b'}").stdout)
    assert status["usage"]["files"] == 3, status


def test_df_adds_up_what_every_host_changed(pg, database, tmp_path):
    """statfs on PostgreSQL (schema 10): each host's transactions count into their own
    connections' rows, and df on either host shows the same totals, the ones `status` counts
    from the tables; fsck finds them consistent."""
    store = tmp_path / "store"
    run("format", "--meta", database, str(store))
    mnt = {h: tmp_path / f"mnt-{h}" for h in "ab"}

    def df(h):
        st = os.statvfs(mnt[h])
        return st.f_files - st.f_ffree, (st.f_blocks - st.f_bfree) * st.f_frsize

    def counted():
        u = json.loads(run("status", str(mnt["a"]), "--json").stdout)["usage"]
        held = u["storedBytes"] + u["inlineBytes"] + u["releasedBytes"]
        return u["inodes"], (held + 4095) // 4096 * 4096

    def agree(inodes):
        """df on both hosts and `status` agree, with `inodes` inodes. Asked again while a
        change is still under way (an unlinked file is purged after its last close, on its
        own time): no fixed wait, at most 50 rounds."""
        seen = []
        for _ in range(50):
            first, b, c, last = df("a"), df("b"), counted(), df("a")
            seen.append((first, b, c, last))
            if first == b == c == last and first[0] == inodes:
                return first
        raise AssertionError(f"df and status never agreed on {inodes} inodes: {seen[-3:]}")

    a = Mount(store, mnt["a"], tmp_path / "cache-a", log=tmp_path / "a.log").start()
    try:
        b = Mount(store, mnt["b"], tmp_path / "cache-b", log=tmp_path / "b.log").start()
        try:
            empty = df("a")
            for i in range(5):
                write_fsynced(mnt["a"] / f"a{i}", os.urandom(3000 + i))
            write_fsynced(mnt["b"] / "big", os.urandom(2 << 20 | 5))  # stored chunks
            os.mkdir(mnt["b"] / "d")
            for i in range(3):
                write_fsynced(mnt["b"] / "d" / f"b{i}", os.urandom(100 + i))
            assert agree(empty[0] + 10)[1] >= empty[1] + (2 << 20) + 5 * 3000
            # Counted in rows of each host's own connections, not added up over the files.
            assert int(pg.psql(database, "SELECT count(*) FROM usage_counts WHERE pid <> 0")) >= 2
            os.unlink(mnt["b"] / "d" / "b0")
            os.unlink(mnt["a"] / "a0")
            agree(empty[0] + 8)
        finally:
            b.stop()
    finally:
        a.stop()
    r = run("fsck", str(store), "-o", f"cache_dir={tmp_path / 'cache-a'}")
    assert "0 metadata problems" in r.stdout, r.stdout


def test_a_read_only_mount_reads_the_database(database, tmp_path):
    store = tmp_path / "store"
    run("format", "--meta", database, str(store))
    m = Mount(store, tmp_path / "mnt", tmp_path / "cache", log=tmp_path / "daemon.log").start()
    try:
        (tmp_path / "mnt" / "f").write_bytes(b"written before")
    finally:
        m.stop()
    m = Mount(store, tmp_path / "mnt", tmp_path / "cache-ro", options=["ro"], log=tmp_path / "daemon.log").start()
    try:
        assert (tmp_path / "mnt" / "f").read_bytes() == b"written before"
        with pytest.raises(OSError):
            (tmp_path / "mnt" / "g").write_bytes(b"x")
    finally:
        m.stop()
    with pytest.raises(RuntimeError, match="no metadata snapshots"):
        Mount(store, tmp_path / "mnt", tmp_path / "cache-ro", options=["ro", "snapshot=1"], log=tmp_path / "daemon.log").start()


def test_gc_deletes_what_no_file_references(database, tmp_path):
    store = tmp_path / "store"
    run("format", "--meta", database, str(store))
    m = Mount(store, tmp_path / "mnt", tmp_path / "cache", log=tmp_path / "daemon.log").start()
    try:
        (tmp_path / "mnt" / "kept").write_bytes(os.urandom(2 << 20))
        (tmp_path / "mnt" / "deleted").write_bytes(os.urandom(2 << 20))
        kept = sha256_file(tmp_path / "mnt" / "kept")
        os.unlink(tmp_path / "mnt" / "deleted")
    finally:
        m.stop()
    cache = f"cache_dir={tmp_path / 'cache'}"
    r = run("gc", str(store), "--grace", "0s", "-o", cache)
    assert "meta.db" not in r.stderr, r.stderr
    assert "1 deleted" in r.stdout or "2 deleted" in r.stdout, r.stdout
    assert "0 deleted" in run("gc", str(store), "--grace", "0s", "-o", cache).stdout
    m = Mount(store, tmp_path / "mnt", tmp_path / "cache-2", log=tmp_path / "daemon.log").start()
    try:
        assert sha256_file(tmp_path / "mnt" / "kept") == kept
        assert os.listdir(tmp_path / "mnt") == ["kept"]
    finally:
        m.stop()
    for repair in ([], ["--repair"]):
        assert run("fsck", str(store), "--verify", *repair, "-o", cache).stdout.rstrip().endswith(": clean")


EXPIRED_SESSION = """INSERT INTO sessions(id, host, pid, version, heartbeat, expiry_ms)
    VALUES ('crashed', 'crashed.example', 4242, 'test', now() - interval '1 hour', 1000)"""


def test_gc_and_fsck_repair_are_refused_while_a_host_has_it_mounted(pg, database, tmp_path):
    """No lease on PostgreSQL: a live session (a read-write mount) refuses gc and fsck --repair
    in one line naming its host and pid, with nothing deleted; a dry run and a check alone run
    beside it. Unmounted, both run, and clean up a crashed host's expired session."""
    store = tmp_path / "store"
    run("format", "--meta", database, str(store))
    tool = ["-o", f"cache_dir={tmp_path / 'cache-tool'}"]
    objects = lambda: {p.name for d in ("chunks", "packs") for p in (store / d).rglob("*") if p.is_file()}
    m = Mount(store, tmp_path / "mnt", tmp_path / "cache", log=tmp_path / "daemon.log").start()
    try:
        (tmp_path / "mnt" / "kept").write_bytes(os.urandom(2 << 20))
        (tmp_path / "mnt" / "deleted").write_bytes(os.urandom(2 << 20))
        os.unlink(tmp_path / "mnt" / "deleted")
        before = objects()
        for command in (["gc", "--grace", "0s"], ["fsck", "--repair"]):
            line = one_line_failure(run(command[0], str(store), *command[1:], *tool, check=False))
            assert f"is mounted read-write on {os.uname().nodename} (pid {m.proc.pid})" in line, line
            assert "unmount it on every host first" in line, line
            assert objects() == before
        assert " 0 would delete" not in run("gc", str(store), "--grace", "0s", "--dry-run", *tool).stdout
        assert run("fsck", str(store), *tool).stdout.rstrip().endswith(": clean")
        assert objects() == before
    finally:
        m.stop()
    # A crashed host's session, expired by the server's clock, blocks neither: each cleans it up.
    for command in (["gc", "--grace", "0s"], ["fsck", "--repair"]):
        pg.psql(database, EXPIRED_SESSION)
        r = run(command[0], str(store), *command[1:], *tool)
        assert pg.psql(database, "SELECT count(*) FROM sessions") == "0", r.stdout
    assert len(objects()) < len(before)


@pytest.mark.parametrize("url,says", [
    ("postgres://mossaic:secret@127.0.0.1/db", "a password does not go in the URL"),
    ("postgres://mossaic@127.0.0.1/db?password=secret", "a password does not go in the URL"),
    ("mysql://127.0.0.1/db", "is not a postgres:// URL"),
    ("postgres://127.0.0.1", "names no database"),
    ("postgres://127.0.0.1/db?nonsense=1", "invalid PostgreSQL URL"),
])
def test_a_bad_url_is_refused_before_anything_is_created(url, says, tmp_path):
    line = one_line_failure(run("format", "--meta", url, str(tmp_path / "store"), check=False))
    assert says in line and "secret" not in line, line
    assert not (tmp_path / "store").exists()


def test_an_unreachable_server_is_refused_before_anything_is_created(tmp_path):
    with PostgresServer() as gone:
        url = gone.url("postgres")
    line = one_line_failure(run("format", "--meta", url, str(tmp_path / "store"), check=False))
    assert "cannot reach the metadata database" in line, line
    assert not (tmp_path / "store").exists()


def test_a_database_of_another_filesystem_is_refused(database, tmp_path):
    run("format", "--meta", database, str(tmp_path / "a"))
    for force in ([], ["--force"]):
        line = one_line_failure(run("format", *force, "--meta", database, str(tmp_path / "b"), check=False))
        assert "already holds the metadata of mossaicfs filesystem" in line, line
        assert not (tmp_path / "b").exists()


def test_a_mount_reaching_another_database_is_refused(pg, database, tmp_path):
    """The superblock's URL reaches a database that is not this filesystem's (PGHOST pointing
    elsewhere, a database dropped and made anew): one line, and nothing written there."""
    run("format", "--meta", database, str(tmp_path / "a"))
    other = pg.create_database("t_other_fs")
    run("format", "--meta", other, str(tmp_path / "b"))
    empty = pg.create_database("t_empty")
    superblock_path = tmp_path / "b" / "mossaicfs.json"
    superblock = json.loads(superblock_path.read_text())
    for url, says in ((database, "holds the metadata of filesystem"), (empty, "holds no metadata of")):
        superblock["meta"] = url
        superblock_path.write_text(json.dumps(superblock))
        with pytest.raises(RuntimeError, match=says):
            Mount(tmp_path / "b", tmp_path / "mnt", tmp_path / "cache", log=tmp_path / "daemon.log").start()
        line = one_line_failure(run("fsck", str(tmp_path / "b"), "-o", f"cache_dir={tmp_path / 'cache'}", check=False))
        assert says in line, line
    # Nothing was created in the empty database.
    assert pg.psql("t_empty", "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == "0"


def test_older_builds_refuse_the_format(database, tmp_path):
    """A superblock that names a database but claims a version older builds read is damaged:
    they would open an empty meta.db."""
    run("format", "--meta", database, str(tmp_path / "store"))
    path = tmp_path / "store" / "mossaicfs.json"
    superblock = json.loads(path.read_text())
    superblock["format_version"] = 2
    path.write_text(json.dumps(superblock))
    line = one_line_failure(run("fsck", str(tmp_path / "store"), check=False))
    assert "format version 2" in line, line
