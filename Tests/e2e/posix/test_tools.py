"""Ordinary tools on the mount: git (clone, status, commit, gc, fsck), rsync -aHAX there and
back, tar, and a SQLite database through a few thousand transactions and a remount."""
import hashlib
import os
import shutil
import sqlite3
import stat
import struct
import subprocess
from pathlib import Path

import pytest

from posixlib import CHUNK, pattern, utimensat, write_file

GIT_ENV = {**os.environ, "GIT_AUTHOR_NAME": "T", "GIT_AUTHOR_EMAIL": "t@example.net", "GIT_COMMITTER_NAME": "T",
           "GIT_COMMITTER_EMAIL": "t@example.net", "GIT_CONFIG_NOSYSTEM": "1", "HOME": "/nonexistent",
           "GIT_CONFIG_GLOBAL": "/dev/null"}


def sh(*args, cwd=None, env=None):
    r = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, args))} exited {r.returncode}:\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
    return r.stdout


def git(*args, cwd):
    return sh("git", *args, cwd=cwd, env=GIT_ENV)


def make_repo(root: Path):
    """A repository with a few commits: text, binary (> 1 MiB), executable, symlink, subdirs."""
    root.mkdir()
    git("init", "-q", "-b", "main", cwd=root)
    for i in range(5):
        (root / "src" / f"pkg{i}").mkdir(parents=True, exist_ok=True)
        write_file(root / "src" / f"pkg{i}" / "mod.py", (f"# module {i}\n" + "x = 1\n" * (i * 50)).encode())
        write_file(root / "README", f"revision {i}\n".encode())
        if i == 1:
            write_file(root / "blob.bin", pattern(CHUNK + 5000, seed=70))
            write_file(root / "run.sh", b"#!/bin/sh\necho hi\n", mode=0o755)
            os.symlink("src/pkg0/mod.py", root / "link")
        if i == 3:
            os.unlink(root / "src" / "pkg0" / "mod.py")
            os.symlink("README", root / "link2")
        git("add", "-A", cwd=root)
        git("commit", "-q", "-m", f"commit {i}", cwd=root)
    return root


@pytest.fixture
def repo(px):
    return make_repo(px.ref / "origin")


def test_git_clone_status_commit_gc_fsck(px, repo):
    clone = px.mnt / "clone"
    git("clone", "-q", "--no-hardlinks", repo, clone, cwd=px.mnt)
    assert git("status", "--porcelain", cwd=clone) == ""
    assert git("rev-parse", "HEAD", cwd=clone) == git("rev-parse", "HEAD", cwd=repo)
    assert os.access(clone / "run.sh", os.X_OK) and os.readlink(clone / "link2") == "README"
    git("fsck", "--full", "--strict", cwd=clone)

    # work in the clone: edit, add, rename, commit; then pack everything
    write_file(clone / "new.txt", b"new file\n")
    with open(clone / "README", "ab") as f:
        f.write(b"more\n")
    git("mv", "src/pkg1", "src/renamed", cwd=clone)
    git("add", "-A", cwd=clone)
    git("commit", "-q", "-m", "work on the mount", cwd=clone)
    assert git("status", "--porcelain", cwd=clone) == ""
    git("gc", "-q", "--aggressive", "--prune=now", cwd=clone)
    git("fsck", "--full", "--strict", cwd=clone)
    assert git("status", "--porcelain", cwd=clone) == ""

    px.remount()
    assert git("status", "--porcelain", cwd=clone) == ""
    git("fsck", "--full", "--strict", cwd=clone)
    assert git("rev-list", "--count", "HEAD", cwd=clone).strip() == "6"
    # and out again, to the local disk
    back = px.ref / "back"
    git("clone", "-q", clone, back, cwd=px.ref)
    git("fsck", "--full", cwd=back)
    assert git("rev-parse", "HEAD", cwd=back) == git("rev-parse", "HEAD", cwd=clone)


ACL_USER_OBJ, ACL_USER, ACL_GROUP_OBJ, ACL_MASK, ACL_OTHER = 0x01, 0x02, 0x04, 0x10, 0x20


def acl(entries):
    return struct.pack("<I", 2) + b"".join(struct.pack("<HHI", t, p, i) for t, p, i in entries)


def make_tree(root: Path, with_acl):
    """Files, hard links (also across directories), symlinks (dangling too), xattrs, an ACL
    (`with_acl`: mounts without -o acl refuse ACLs), odd modes, owners and times, a FIFO, an
    empty directory."""
    (root / "a" / "b").mkdir(parents=True)
    (root / "empty").mkdir()
    write_file(root / "a" / "small", b"small\n")
    write_file(root / "a" / "big", pattern(3 * CHUNK + 17, seed=71))
    write_file(root / "a" / "b" / "zeros", b"\0" * (2 * CHUNK))
    os.link(root / "a" / "big", root / "a" / "b" / "big-link")
    os.link(root / "a" / "small", root / "small-link")
    os.symlink("a/small", root / "sym")
    os.symlink("../nowhere", root / "a" / "dangling")
    os.mkfifo(root / "a" / "fifo", 0o640)
    os.setxattr(root / "a" / "small", "user.tag", b"value")
    os.setxattr(root / "a" / "big", "user.bin", bytes(range(200)))
    os.setxattr(root / "a" / "b", "user.dir", b"on a directory")
    write_file(root / "acl", b"acl'd")
    os.chmod(root / "acl", 0o640)
    if with_acl:
        os.setxattr(root / "acl", "system.posix_acl_access",
                    acl([(ACL_USER_OBJ, 6, 0xFFFFFFFF), (ACL_USER, 6, 52001), (ACL_GROUP_OBJ, 4, 0xFFFFFFFF),
                         (ACL_MASK, 6, 0xFFFFFFFF), (ACL_OTHER, 0, 0xFFFFFFFF)]))
    os.chmod(root / "a" / "big", 0o4751)
    os.chown(root / "a" / "small", 1234, 5678)
    os.lchown(root / "sym", 4321, 8765)
    os.chmod(root / "empty", 0o1775)
    for p in (root / "a" / "big", root / "a" / "small", root / "empty"):
        utimensat(p, 1_000_000_000 * 10**9 + 1, 1_100_000_000 * 10**9 + 2)


def snapshot(root: Path, dir_times=True):
    """Everything rsync -aHAX promises to carry, per relative path, plus hard-link groups.
    (rsync -H links late files after it has set their directory's mtime, on ext4 too, so its
    cases leave directory mtimes out.)"""
    entries, groups = {}, {}
    for dirpath, dirs, files in os.walk(root):
        for name in sorted(dirs + files):
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            st = os.lstat(p)
            kind = stat.S_IFMT(st.st_mode)
            xattrs = sorted((n, os.getxattr(p, n, follow_symlinks=False)) for n in os.listxattr(p, follow_symlinks=False)
                            if not n.startswith("security."))
            e = {"mode": st.st_mode, "uid": st.st_uid, "gid": st.st_gid, "xattrs": xattrs}
            if kind == stat.S_IFREG:
                e.update(size=st.st_size, sha=hashlib.sha256(p.read_bytes()).hexdigest(), mtime=st.st_mtime_ns,
                         nlink=st.st_nlink)
                groups.setdefault(st.st_ino, []).append(rel)
            elif kind == stat.S_IFLNK:
                e.update(target=os.readlink(p))
            elif kind == stat.S_IFDIR and dir_times:
                e.update(mtime=st.st_mtime_ns)
            entries[rel] = e
    return entries, sorted(sorted(g) for g in groups.values())


def test_rsync_ahax_there_and_back(px):
    """rsync -aHAX with -o acl; -aHX (no ACLs) on mounts without it, which refuse ACLs."""
    flags = "-aHAX" if px.mode == "acl" else "-aHX"
    src, back, ext4_copy = px.ref / "src", px.ref / "back", px.ref / "ext4-copy"
    make_tree(src, with_acl=px.mode == "acl")
    want = snapshot(src, dir_times=False)
    sh("rsync", flags, "--numeric-ids", f"{src}/", f"{ext4_copy}/")
    assert snapshot(ext4_copy, dir_times=False) == want, "on ext4: " + diff(want, snapshot(ext4_copy, dir_times=False))
    sh("rsync", flags, "--numeric-ids", f"{src}/", f"{px.mnt / 'copy'}/")
    got = snapshot(px.mnt / "copy", dir_times=False)
    assert got == want, diff(want, got)
    px.remount()
    sh("rsync", flags, "--numeric-ids", f"{px.mnt / 'copy'}/", f"{back}/")
    assert snapshot(back, dir_times=False) == want, diff(want, snapshot(back, dir_times=False))
    # a second rsync finds nothing to transfer
    out = sh("rsync", flags + "i", "--numeric-ids", f"{src}/", f"{px.mnt / 'copy'}/")
    assert out.strip() == "", out


def diff(want, got):
    lines = []
    for rel in sorted(set(want[0]) | set(got[0])):
        a, b = want[0].get(rel), got[0].get(rel)
        if a != b:
            keys = sorted(set(a or {}) | set(b or {}))
            lines.append(f"{rel}: " + ", ".join(f"{k}: {(a or {}).get(k)!r} != {(b or {}).get(k)!r}"
                                                for k in keys if (a or {}).get(k) != (b or {}).get(k)))
    if want[1] != got[1]:
        lines.append(f"hard-link groups: {want[1]} != {got[1]}")
    return "\n".join(line[:600] for line in lines)[:6000]


def test_tar_roundtrip(px):
    acls = ["--acls"] if px.mode == "acl" else []
    src = px.ref / "src"
    make_tree(src, with_acl=px.mode == "acl")
    archive = px.ref / "t.tar"
    sh("tar", "--xattrs", "--xattrs-include=*", *acls, "-cf", archive, "-C", src, ".")
    want = snapshot(src)
    for d in (px.ref / "x", px.mnt / "x"):
        d.mkdir()
        sh("tar", "--xattrs", "--xattrs-include=*", *acls, "--numeric-owner", "-xpf", archive, "-C", d)
        assert snapshot(d) == want, f"{'ext4' if d == px.ref / 'x' else 'mount'}: " + diff(want, snapshot(d))
        sh("tar", "--numeric-owner", "-df", archive, "-C", d)


def transactions(path, journal_mode, count):
    db = sqlite3.connect(path, isolation_level=None)
    try:
        assert db.execute(f"PRAGMA journal_mode={journal_mode}").fetchone()[0] == journal_mode.lower()
        db.execute("PRAGMA synchronous=FULL")
        db.execute("CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, k TEXT UNIQUE, v BLOB, n INTEGER)")
        start = db.execute("SELECT count(*) FROM t").fetchone()[0]
        for i in range(count):
            db.execute("BEGIN")
            db.execute("INSERT INTO t(k, v, n) VALUES (?, ?, ?)", (f"{journal_mode}-{i}", os.urandom(100 + i % 500), i))
            db.execute("UPDATE t SET n = n + 1 WHERE id = ?", (1 + (i * 7919) % (start + i + 1),))
            if i % 10 == 0:
                db.execute("DELETE FROM t WHERE id = (SELECT min(id) FROM t WHERE n % 13 = 0)")
            db.execute("COMMIT")
        return db.execute("PRAGMA integrity_check").fetchall(), db.execute("SELECT count(*) FROM t").fetchone()[0]
    finally:
        db.close()


def test_sqlite_survives_thousands_of_transactions_and_a_remount(px):
    if px.mode != "dp":
        pytest.skip("a root-owned database does not depend on who checks permissions: once per store is enough")
    path = px.mnt / "db.sqlite"
    check, n1 = transactions(path, "DELETE", 1000)
    assert check == [("ok",)], check
    check, n2 = transactions(path, "WAL", 1000)
    assert check == [("ok",)], check
    assert n2 > n1 > 0
    px.remount()
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert db.execute("SELECT count(*) FROM t").fetchone()[0] == n2
    finally:
        db.close()
