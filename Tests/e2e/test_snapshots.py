"""The bucket alone restores the filesystem: metadata snapshots in the store, the single-writer
lease, read-only mounts (ARCHITECTURE.md §5). All on moto with authentication; every mount is
stopped by its PID (Mount.stop/kill) on every path."""
import errno
import hashlib
import json
import os
import random
import shutil
import socket
import stat
import subprocess
import time
import uuid

import boto3
import pytest

from mossaic import Mount, is_mounted, run, wait_until
from s3server import MotoServer

MiB = 1 << 20


@pytest.fixture(scope="module")
def moto():
    with MotoServer(bucket="mossaic-snapshots") as server:
        yield server


class Fs:
    """A filesystem on its own prefix of the moto bucket, with helpers to mount it with any
    cache_dir and mountpoint; every mount made through it is stopped at the end."""

    def __init__(self, tmp_path, server):
        self.tmp = tmp_path
        self.server = server
        self.prefix = f"fs-{uuid.uuid4().hex[:8]}"
        self.source = f"s3://{server.bucket}/{self.prefix}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        self.env.update(AWS_ACCESS_KEY_ID=server.access_key, AWS_SECRET_ACCESS_KEY=server.secret_key,
                        AWS_ENDPOINT_URL=server.endpoint, AWS_REGION=server.region)
        self.mounts = []
        run("format", self.source, env=self.env)

    def mount(self, name, cache, *options):
        # noatime: describe() reads every file, and under relatime the first read after a write
        # would change the access time it is comparing (explicit utimes still count).
        m = Mount(self.source, self.tmp / name, self.tmp / cache, ("noatime",) + options,
                  log=self.tmp / f"{name}.log", env=self.env)
        self.mounts.append(m)
        return m.start()

    def stop_all(self):
        for m in self.mounts:
            m.stop()

    def cli(self, *args, check=True):
        return run(*args, env=self.env, check=check, timeout=120)

    def client(self):
        return boto3.client("s3", endpoint_url=self.server.upstream_endpoint, region_name=self.server.region,
                            aws_access_key_id=self.server.access_key, aws_secret_access_key=self.server.secret_key)

    def head(self):
        body = self.client().get_object(Bucket=self.server.bucket, Key=f"{self.prefix}/meta/HEAD")["Body"].read()
        return json.loads(body)["snapshot"]


@pytest.fixture
def fs(tmp_path, moto):
    f = Fs(tmp_path, moto)
    try:
        yield f
    finally:
        f.stop_all()


# -- a tree with everything the metadata has to carry ------------------------------------------

ODD_NAME = b"caf\xc3\xa9 \xff\x01name"


def build_tree(root):
    root = os.fsencode(root)
    j = lambda *p: os.path.join(root, *p)  # noqa: E731
    os.makedirs(j(b"d", b"sub"))
    os.mkdir(j(b"sticky"))
    with open(j(b"d", b"plain.txt"), "wb") as f:
        f.write(b"plain text\n" * 100)
    rng = random.Random(5)
    with open(j(b"d", b"sparse.bin"), "wb") as f:  # chunk objects in the store, and a hole
        f.write(rng.randbytes(MiB + 123))
        f.seek(5 * MiB)
        f.write(rng.randbytes(100_000))
    open(j(b"empty"), "wb").close()
    with open(j(ODD_NAME), "wb") as f:
        f.write(b"bytes, not text")
    os.link(j(b"d", b"plain.txt"), j(b"hardlink"))
    os.link(j(b"d", b"plain.txt"), j(b"d", b"sub", b"hardlink2"))
    os.symlink(b"d/plain.txt", j(b"sym"))
    os.symlink(b"/nonexistent/" + b"x" * 300, j(b"dangling"))
    os.mkfifo(j(b"fifo"), 0o640)
    os.mknod(j(b"null"), 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    for name, mode in [(b"setuid", 0o4755), (b"setgid", 0o2750), (b"nothing", 0o000)]:
        with open(j(name), "wb") as f:
            f.write(name)
        os.chmod(j(name), mode)
    os.chmod(j(b"sticky"), 0o1777)
    os.setxattr(j(b"d", b"plain.txt"), b"user.color", b"blue")
    os.setxattr(j(b"d", b"plain.txt"), b"user.binary", bytes(range(256)))
    os.setxattr(j(b"d", b"plain.txt"), b"user.empty", b"")
    os.setxattr(j(b"d"), b"user.on-a-dir", b"yes")
    os.chown(j(b"d", b"plain.txt"), 1234, 5678)
    os.lchown(j(b"sym"), 42, 43)
    # Times last, children before parents (creating entries changes a directory's mtime).
    os.utime(j(b"sym"), ns=(1, 2), follow_symlinks=False)
    os.utime(j(b"d", b"sparse.bin"), ns=(1_000_000_001, 2_000_000_002_000_000_003))
    os.utime(j(b"d", b"sub"), ns=(1_500_000_000_123_456_789, 1_600_000_000_987_654_321))
    os.utime(j(b"d"), ns=(86_400_000_000_007, 86_400_000_000_009))


def describe(root):
    """Everything stat, readlink, listxattr/getxattr and the bytes say about every entry,
    by path (bytes). Inode numbers included: they must survive too (hard links share one)."""
    root = os.fsencode(root)
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [b"."] + dirnames + filenames:
            path = dirpath if name == b"." else os.path.join(dirpath, name)
            st = os.lstat(path)
            entry = {k: getattr(st, k) for k in
                     ("st_mode", "st_ino", "st_nlink", "st_uid", "st_gid", "st_size", "st_rdev",
                      "st_atime_ns", "st_mtime_ns", "st_ctime_ns")}
            if stat.S_ISLNK(st.st_mode):
                entry["target"] = os.readlink(path)
            else:
                entry["xattrs"] = {n: os.getxattr(path, n) for n in sorted(os.listxattr(path))}
            if stat.S_ISREG(st.st_mode):
                with open(path, "rb") as f:
                    entry["sha256"] = hashlib.sha256(f.read()).hexdigest()
            out[os.path.relpath(path, root)] = entry
    return out


def write_file(path, data, fsync=True):
    with open(path, "wb") as f:
        f.write(data)
        if fsync:
            f.flush()
            os.fsync(f.fileno())


# -- acceptance -------------------------------------------------------------------------------

def test_the_bucket_alone_restores_tree_and_metadata(fs):
    m = fs.mount("mnt", "cache")
    build_tree(m.mountpoint)
    before = describe(m.mountpoint)
    assert len(before) >= 15
    m.stop()
    shutil.rmtree(fs.tmp / "cache")  # the whole cache_dir: meta.db, blobs, everything
    m = fs.mount("mnt", "cache")
    assert describe(m.mountpoint) == before
    # `snapshots` lists them, with files and logical bytes of the newest.
    listing = fs.cli("snapshots", fs.source, "--bytes").stdout.splitlines()
    assert listing[0].split()[:4] == ["ID", "CREATED", "FILES", "BYTES"]
    head = [line for line in listing if line.endswith("HEAD")]
    assert len(head) == 1 and head[0].split()[0] == fs.head()
    files = sum(1 for e in before.values() if stat.S_ISREG(e["st_mode"]) and e["st_ino"])
    distinct = {e["st_ino"]: e["st_size"] for e in before.values() if stat.S_ISREG(e["st_mode"])}
    assert head[0].split()[2:4] == [str(len(distinct)), str(sum(distinct.values()))]
    assert files > len(distinct)  # hard links are one file


def test_kill_9_new_cache_gets_the_last_snapshot_old_cache_everything_fsynced(fs):
    # No periodic snapshots: the only ones are at mount and `mossaicfs snapshot`.
    m = fs.mount("mnt", "old", "meta_interval=3600")
    mnt = m.mountpoint
    build_tree(mnt)
    snapshotted = describe(mnt)
    out = fs.cli("snapshot", mnt).stdout.split()
    assert out[0] == "snapshot" and out[1] == fs.head()
    # More writes, fsynced, then a crash.
    write_file(os.path.join(mnt, "after-snapshot"), b"fsynced after the snapshot")
    os.rename(os.path.join(mnt, "d", "plain.txt"), os.path.join(mnt, "renamed.txt"))
    os.chmod(os.path.join(mnt, "renamed.txt"), 0o600)
    fd = os.open(mnt, os.O_RDONLY)
    os.fsync(fd)  # fsyncdir: namespace changes durable too
    os.close(fd)
    everything = describe(mnt)
    m.kill()

    # A new cache_dir (another machine): the lease of the dead daemon is taken over at once,
    # and the tree is exactly the last snapshot's.
    head = fs.head()
    m = fs.mount("mnt", "new")
    assert describe(m.mountpoint) == snapshotted
    m.stop()
    assert fs.head() == head, "a mount that changed nothing published a snapshot"

    # The old cache_dir: its local metadata is newer than the store's, wins, and is published.
    m = fs.mount("mnt", "old")
    assert describe(m.mountpoint) == everything
    assert fs.head() != head
    m.stop()
    # … so that now the store alone has it all.
    m = fs.mount("mnt", "newest")
    assert describe(m.mountpoint) == everything


def test_a_second_read_write_mount_is_refused_in_one_line(fs):
    m = fs.mount("mnt", "cache")
    (fs.tmp / "mnt2").mkdir()
    r = fs.cli("mount", fs.source, str(fs.tmp / "mnt2"), "-o", f"cache_dir={fs.tmp / 'cache2'}", check=False)
    assert r.returncode == 1 and not is_mounted(fs.tmp / "mnt2")
    assert r.stderr.count("\n") == 1, r.stderr
    msg = r.stderr
    assert "already mounted read-write" in msg and f"host {socket.gethostname()}" in msg
    assert f"pid {m.proc.pid}" in msg and f"cache_dir {fs.tmp / 'cache'}" in msg and "expires" in msg
    # A crashed writer's lease does not lock its own cache_dir out: remount at once.
    m.kill()
    fs.mount("mnt", "cache")


def test_force_lease_is_refused_while_the_holder_runs_on_this_machine(fs):
    a = fs.mount("a", "cache-a")
    write_file(os.path.join(a.mountpoint, "x"), b"1")
    # Same host, another cache_dir, a live holder: refused, with or without force_lease (it
    # once took over, and the old writer acknowledged writes for seconds that were then lost).
    with pytest.raises(RuntimeError, match="already mounted read-write"):
        fs.mount("b", "cache-b")
    with pytest.raises(RuntimeError, match="still runs on this machine"):
        fs.mount("b", "cache-b", "force_lease")
    # The holder goes on writing, and its unmount publishes everything.
    write_file(os.path.join(a.mountpoint, "y"), b"2")
    a.stop()
    assert sorted(os.listdir(fs.mount("c", "cache-b").mountpoint)) == ["x", "y"]


def test_lease_of_another_host_waits_for_expiry_or_force_lease(fs):
    def plant(expires_in):
        now = time.time_ns()
        lease = {"format": 1, "lease_id": "f00", "host": "far-away", "machine_id": "not-this-one", "boot_id": "b",
                 "pid": 1, "cache_dir": "/var/cache/elsewhere", "mounted": "2026-01-01T00:00:00Z", "mounted_ns": now,
                 "expires": "soon", "expires_ns": now + int(expires_in * 1e9)}
        fs.client().put_object(Bucket=fs.server.bucket, Key=f"{fs.prefix}/meta/lease", Body=json.dumps(lease).encode())
        return lease["expires_ns"]

    plant(600)
    with pytest.raises(RuntimeError, match="already mounted read-write by host far-away"):
        fs.mount("mnt", "cache")
    # Read-only mounts take no lease.
    fs.mount("ro", "ro-cache", "ro").stop()
    # force_lease takes it, but goes live only once the holder's lease has run out: if that
    # host is alive after all, it has fenced itself by then (it cannot renew any more).
    expires = plant(4)
    fs.mount("mnt", "cache", "force_lease").stop()
    assert time.time_ns() >= expires
    plant(-1)  # expired
    fs.mount("mnt", "cache").stop()


def test_read_only_mount_follows_the_writer(fs):
    meta_interval, poll_interval = 1.0, 1.0
    w = fs.mount("rw", "rw-cache", f"meta_interval={meta_interval}")
    write_file(os.path.join(w.mountpoint, "first"), b"1")
    fs.cli("snapshot", w.mountpoint)
    r = fs.mount("ro", "ro-cache", "ro", f"poll_interval={poll_interval}")
    assert open(os.path.join(r.mountpoint, "first"), "rb").read() == b"1"
    with pytest.raises(OSError):
        write_file(os.path.join(r.mountpoint, "nope"), b"x")
    assert "read-only" in fs.cli("snapshot", r.mountpoint, check=False).stderr

    # A new file on the writer appears on the reader within the writer's snapshot interval plus
    # the reader's poll interval (plus the kernel's 1 s entry cache, and upload time).
    write_file(os.path.join(w.mountpoint, "second"), b"2" * 100_000)
    bound = meta_interval + poll_interval + 1.0 + 10.0
    took = wait_until(lambda: os.path.exists(os.path.join(r.mountpoint, "second")), bound, "new file on the read-only mount")
    assert open(os.path.join(r.mountpoint, "second"), "rb").read() == b"2" * 100_000
    print(f"read-only mount saw the new file after {took:.2f}s")
    os.unlink(os.path.join(w.mountpoint, "first"))
    wait_until(lambda: not os.path.exists(os.path.join(r.mountpoint, "first")), bound, "removal on the read-only mount")


def test_read_only_mount_of_a_past_snapshot(fs):
    m = fs.mount("mnt", "cache", "meta_interval=3600")
    build_tree(m.mountpoint)
    then = describe(m.mountpoint)
    old_id = fs.cli("snapshot", m.mountpoint).stdout.split()[1]
    shutil.rmtree(os.path.join(m.mountpoint, "d"))
    write_file(os.path.join(m.mountpoint, "later"), b"later")
    fs.cli("snapshot", m.mountpoint)
    past = fs.mount("past", "past-cache", "ro", f"snapshot={old_id}")
    assert describe(past.mountpoint) == then
    # The generation number names it too.
    generation = str(int(old_id.split("-")[0]))
    past.stop()
    past = fs.mount("past", "past-cache", "ro", f"snapshot={generation}")
    assert not os.path.exists(os.path.join(past.mountpoint, "later"))
    with pytest.raises(RuntimeError, match="no metadata snapshot 0000000999-00000000"):
        fs.mount("bad", "bad-cache", "ro", "snapshot=0000000999-00000000")


def test_older_local_metadata_is_refused_or_discarded(fs):
    a = fs.mount("mnt", "machine-a")
    write_file(os.path.join(a.mountpoint, "from-a"), b"a")
    a.stop()
    b = fs.mount("mnt", "machine-b")
    write_file(os.path.join(b.mountpoint, "from-b"), b"b")
    b.stop()
    # machine-a's metadata is now older than the store's: refused, in one line …
    with pytest.raises(RuntimeError) as refused:
        fs.mount("mnt", "machine-a")
    assert "older than the store's" in str(refused.value) and "discard_local" in str(refused.value)
    # … or replaced on request.
    a = fs.mount("mnt", "machine-a", "discard_local")
    assert sorted(os.listdir(a.mountpoint)) == ["from-a", "from-b"]
    assert (fs.tmp / "machine-a" / "meta.db.discarded").exists()


def test_retention_keeps_the_last_snapshots(fs):
    m = fs.mount("mnt", "cache", "meta_interval=3600", "meta_keep=3")
    for i in range(6):
        write_file(os.path.join(m.mountpoint, f"f{i}"), b"x" * i)
        fs.cli("snapshot", m.mountpoint)
    lines = fs.cli("snapshots", fs.source).stdout.splitlines()[1:]
    assert len(lines) == 3 and lines[-1].endswith("HEAD")
    assert [line.split()[2] for line in lines] == ["4", "5", "6"]


def test_retention_by_age_and_by_size(fs):
    """meta_keep_age=0 leaves only HEAD after each snapshot. The snapshots of one base share
    its pieces, so they hold nothing HEAD does not: even meta_keep_size=0 keeps them all."""
    def generations():
        lines = fs.cli("snapshots", fs.source).stdout.splitlines()[1:]
        assert lines[-1].endswith("HEAD")
        return [int(line.split()[2]) for line in lines]

    m = fs.mount("mnt", "cache", "meta_interval=3600", "meta_keep_age=0")
    for i in range(3):
        write_file(os.path.join(m.mountpoint, f"a{i}"), b"x")
        fs.cli("snapshot", m.mountpoint)
    assert len(generations()) == 1
    m.stop()
    head = generations()[-1]
    m = fs.mount("mnt", "cache", "meta_interval=3600", "meta_keep_size=0")
    for i in range(3):
        write_file(os.path.join(m.mountpoint, f"b{i}"), b"x")
        fs.cli("snapshot", m.mountpoint)
    assert generations() == [head, head + 1, head + 2, head + 3]


def test_snapshot_command_on_something_else_says_so(tmp_path):
    r = run("snapshot", str(tmp_path), check=False)
    assert r.returncode == 1 and "is not a mossaicfs mount" in r.stderr
