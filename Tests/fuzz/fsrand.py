#!/usr/bin/env python3
"""fsrand: a differential random-operation tester for mossaicfs.

The same seeded sequence of filesystem operations — create, write at random offsets, read,
truncate, fallocate (mode 0, punch hole), copy_file_range, rename (plain, RENAME_NOREPLACE,
RENAME_EXCHANGE), link, unlink, mkdir, rmdir, symlink, mkfifo, chmod, chown, utimensat,
setxattr/removexattr, descriptors held open across other operations (so files are written,
truncated and read after they were renamed or unlinked), and remounts — is applied to a
directory on the local disk (the reference, ext4 or whatever /tmp is) and to a directory on a
fresh mossaicfs mount. After every operation both results must be equal (the value, or the
errno); at every remount and at the end both trees are compared byte for byte and attribute by
attribute: kind, mode, uid, gid, nlink, size, contents, symlink targets, user xattrs, device
numbers, hard-link structure (the same names share an inode), and mtime wherever the sequence
set it explicitly. The end also remounts once more and compares again.

On a mismatch it prints the seed, the operation and both results, then shrinks: it re-runs
ever shorter prefixes of the recorded sequence on fresh stores (bisection) and reports the
shortest prefix that still fails, saved as JSON for --replay.

    python3 Tests/fuzz/fsrand.py --ops 20000 --seed 7 --store local
    python3 Tests/fuzz/fsrand.py --ops 5000 --seed 7 --store s3          # moto, started here
    python3 Tests/fuzz/fsrand.py --replay /tmp/fsrand-7-prefix.json --store local
    python3 Tests/fuzz/fsrand.py --ops 5000 --exclude fallocate,punch     # skip known gaps

Needs root (FUSE mounts) and the built binary (MOSSAICFS_BIN or .build/{release,debug}).
Exit status: 0 all equal, 1 mismatch found, 2 usage or environment error.
"""
from __future__ import annotations

import argparse
import errno
import hashlib
import json
import os
import random
import shutil
import stat
import sys
import tempfile
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
E2E = HERE.parent / "e2e"
sys.path.insert(0, str(E2E))
sys.path.insert(0, str(E2E / "posix"))

REPO = HERE.parents[1]
if not os.environ.get("MOSSAICFS_BIN"):
    for config in ("release", "debug"):
        if (REPO / ".build" / config / "mossaicfs").exists():
            os.environ["MOSSAICFS_BIN"] = str(REPO / ".build" / config / "mossaicfs")
            break

from mossaic import BIN, Filesystem, is_mounted, s3_env  # noqa: E402
from posixlib import (FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, RENAME_EXCHANGE, RENAME_NOREPLACE,  # noqa: E402
                      errname, fallocate, renameat2, utimensat)

MiB = 1 << 20
GiB = 1 << 30
NAMES = ["a", "b", "c", "d", "e", "f", "g"]
MAX_ENTRIES = 60
MAX_DEPTH = 3
HANDLES = 4
UIDS = [0, 1000, 52001]
XATTR_NAMES = ["user.a", "user.b", "user.c"]

# Relative weights of the generated operations ("remount" is drawn separately).
WEIGHTS = {
    "create": 6, "create_excl": 2, "open_trunc": 2, "write": 14, "append": 4, "read": 6, "truncate": 5,
    "fallocate": 3, "punch": 3, "copy_range": 4, "rename": 5, "rename_noreplace": 2, "rename_exchange": 2,
    "link": 3, "unlink": 5, "mkdir": 4, "rmdir": 3, "symlink": 3, "mkfifo": 1, "chmod": 3, "chown": 2,
    "utimens": 4, "setxattr": 4, "removexattr": 2, "stat": 5, "readlink": 1, "listdir": 2,
    "hopen": 3, "hopen_trunc": 1, "hwrite": 6, "hread": 3, "htruncate": 1, "hfsync": 1, "hclose": 3,
}
GROWING = {"create", "create_excl", "mkdir", "symlink", "mkfifo", "link", "copy_range"}
SHRINKING = {"unlink", "rmdir"}
OPEN_FLAGS = {"rdwr": os.O_RDWR, "append": os.O_RDWR | os.O_APPEND, "rdonly": os.O_RDONLY,
              "rdwr_creat": os.O_RDWR | os.O_CREAT, "wronly_trunc": os.O_WRONLY | os.O_TRUNC}


# --- outcomes -------------------------------------------------------------------------------

def outcome(fn):
    try:
        return ["ok", fn()]
    except OSError as e:
        if e.errno is None:
            raise
        return ["err", errname(e.errno)]


def digest(data):
    return [len(data), hashlib.sha256(data).hexdigest()[:16]]


def payload(op):
    if op.get("zero"):
        return bytes(op["len"])
    return random.Random(op["seed"]).randbytes(op["len"])


# --- the reference tree, as the generator sees it -------------------------------------------

def scan(root):
    """{relative path: kind letter} of everything under root (symlinks not followed), sorted."""
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            p = os.path.join(dirpath, name)
            m = os.lstat(p).st_mode
            kind = ("d" if stat.S_ISDIR(m) else "f" if stat.S_ISREG(m) else "l" if stat.S_ISLNK(m)
                    else "p" if stat.S_ISFIFO(m) else "s" if stat.S_ISSOCK(m) else "o")
            out[os.path.relpath(p, root)] = kind
    return dict(sorted(out.items()))


class Generator:
    """Draws operations from a seeded RNG, using the reference tree to pick mostly existing
    paths of the right kind (and sometimes wrong or missing ones, for the error paths)."""

    def __init__(self, seed, exclude=(), remount_rate=1 / 400, big=False):
        self.rng = random.Random(seed)
        self.weights = {k: v for k, v in WEIGHTS.items() if k not in exclude}
        self.remount_rate = 0 if "remount" in exclude else remount_rate
        self.big = big
        self.open_handles = set()

    def next(self, tree):
        r = self.rng
        if r.random() < self.remount_rate:
            self.open_handles.clear()
            return {"op": "remount"}
        weights = dict(self.weights)
        if len(tree) > MAX_ENTRIES:
            for k in GROWING & weights.keys():
                weights[k] = 0
            for k in SHRINKING & weights.keys():
                weights[k] *= 6
        if not self.open_handles:
            for k in ("hwrite", "hread", "htruncate", "hfsync", "hclose"):
                weights.pop(k, None)
        if len(self.open_handles) >= HANDLES:
            weights.pop("hopen", None)
            weights.pop("hopen_trunc", None)
        names = [k for k, w in weights.items() if w > 0]
        kind = r.choices(names, [weights[k] for k in names])[0]
        return getattr(self, "_" + kind)(tree) | {"op": kind}

    # paths

    def _existing(self, tree, kinds):
        choices = [p for p, k in tree.items() if k in kinds]
        return self.rng.choice(choices) if choices else None

    def _new(self, tree):
        r = self.rng
        dirs = ["."] + [p for p, k in tree.items() if k == "d" and p.count("/") < MAX_DEPTH - 1]
        parent = r.choice(dirs)
        roll = r.random()
        name = "n" * 255 if roll < 0.01 else "N" * 256 if roll < 0.02 else r.choice(NAMES)
        return name if parent == "." else f"{parent}/{name}"

    def _path(self, tree, kinds, p_existing=0.85):
        if self.rng.random() < p_existing:
            got = self._existing(tree, kinds)
            if got is not None:
                return got
        if self.rng.random() < 0.5:
            got = self._existing(tree, "fdlps")
            if got is not None:
                return got
        return self._new(tree)

    def _file(self, tree):
        return self._path(tree, "f")

    def _any(self, tree):
        return self._path(tree, "fdlps", 0.9)

    # numbers

    def _offset(self, size):
        r = self.rng.random()
        if r < 0.35:
            return self.rng.randrange(0, max(size, 1))
        if r < 0.55:
            return size
        if r < 0.80:
            return max(0, self.rng.randrange(1, 5) * MiB + self.rng.randrange(-100, 100))
        if r < 0.99 or not self.big:
            return self.rng.randrange(0, 6 * MiB)
        return 4 * GiB + self.rng.randrange(-4096, 4096)

    def _length(self):
        r = self.rng.random()
        if r < 0.6:
            return self.rng.randrange(1, 5000)
        if r < 0.92:
            return self.rng.randrange(5000, 300_000)
        return self.rng.randrange(MiB - 10, 2 * MiB + 10)

    def _size_of(self, tree, path):
        return 3 * MiB  # the generator does not stat; offsets are drawn around a typical size

    def _data(self, tree, path):
        return {"off": self._offset(self._size_of(tree, path)), "len": self._length(),
                "seed": self.rng.randrange(2**32), "zero": self.rng.random() < 0.05}

    def _mode(self, dir_=False):
        r = self.rng
        base = [0o644, 0o755, 0o600, 0o777, 0o640, 0o4755, 0o2755, 0o1777, 0o000, 0o6711]
        return r.choice(base) if r.random() < 0.8 else r.randrange(0o10000)

    def _time(self):
        r = self.rng.random()
        if r < 0.1:
            return -self.rng.randrange(1, 2**31) * 10**9 + self.rng.randrange(10**9)
        return self.rng.randrange(0, 2**33) * 10**9 + self.rng.randrange(10**9)

    # operations (each returns its arguments)

    def _create(self, tree):
        return {"path": self._path(tree, "f", 0.4), "mode": self._mode(), "len": self.rng.choice([0, 0, 10, 4000, 70_000]),
                "seed": self.rng.randrange(2**32)}

    def _create_excl(self, tree):
        return self._create(tree)

    def _open_trunc(self, tree):
        return {"path": self._file(tree)}

    def _write(self, tree):
        p = self._file(tree)
        return {"path": p, **self._data(tree, p)}

    def _append(self, tree):
        p = self._file(tree)
        return {"path": p, "len": self._length(), "seed": self.rng.randrange(2**32), "zero": False}

    def _read(self, tree):
        return {"path": self._file(tree), "off": self._offset(3 * MiB), "len": self._length()}

    def _truncate(self, tree):
        r = self.rng.random()
        size = (self.rng.randrange(0, 6 * MiB) if r < 0.6 else self.rng.randrange(0, 5) * MiB if r < 0.9
                else self.rng.randrange(0, 20_000))
        return {"path": self._file(tree), "size": size}

    def _fallocate(self, tree):
        return {"path": self._file(tree), "off": self._offset(3 * MiB), "len": self.rng.randrange(1, 3 * MiB)}

    def _punch(self, tree):
        aligned = self.rng.random() < 0.5
        off = self.rng.randrange(0, 5) * MiB if aligned else self._offset(3 * MiB)
        length = self.rng.randrange(1, 3) * MiB if aligned else self.rng.randrange(1, 3 * MiB)
        return {"path": self._file(tree), "off": off, "len": length}

    def _copy_range(self, tree):
        aligned = self.rng.random() < 0.5
        if aligned:
            off_src, off_dst = self.rng.randrange(0, 4) * MiB, self.rng.randrange(0, 4) * MiB
            length = self.rng.randrange(1, 4) * MiB
        else:
            off_src, off_dst, length = self._offset(3 * MiB), self._offset(3 * MiB), self._length()
        return {"src": self._file(tree), "dst": self._path(tree, "f", 0.6), "off_src": off_src, "off_dst": off_dst,
                "len": length}

    def _rename(self, tree):
        return {"src": self._any(tree), "dst": self._path(tree, "fdlps", 0.4)}

    def _rename_noreplace(self, tree):
        return self._rename(tree)

    def _rename_exchange(self, tree):
        return {"src": self._any(tree), "dst": self._any(tree)}

    def _link(self, tree):
        return {"src": self._path(tree, "flps"), "dst": self._new(tree)}

    def _unlink(self, tree):
        return {"path": self._path(tree, "flps")}

    def _mkdir(self, tree):
        return {"path": self._new(tree), "mode": self.rng.choice([0o755, 0o700, 0o777, 0o1777, 0o2755])}

    def _rmdir(self, tree):
        return {"path": self._path(tree, "d")}

    def _symlink(self, tree):
        r = self.rng.random()
        target = (self._any(tree) if r < 0.6 else self.rng.choice(NAMES) if r < 0.8 else
                  "../" + self.rng.choice(NAMES) if r < 0.9 else "/nonexistent/" + self.rng.choice(NAMES))
        return {"target": target, "path": self._new(tree)}

    def _mkfifo(self, tree):
        return {"path": self._new(tree), "mode": 0o644}

    def _chmod(self, tree):
        return {"path": self._any(tree), "mode": self._mode()}

    def _chown(self, tree):
        r = self.rng
        return {"path": self._any(tree), "uid": r.choice(UIDS + [-1]), "gid": r.choice(UIDS + [-1]),
                "follow": r.random() < 0.7}

    def _utimens(self, tree):
        return {"path": self._any(tree), "atime": self._time(), "mtime": self._time(), "follow": self.rng.random() < 0.8}

    def _setxattr(self, tree):
        r = self.rng
        return {"path": self._any(tree), "name": r.choice(XATTR_NAMES), "value": r.randbytes(r.randrange(0, 200)).hex(),
                "flags": r.choice([0, 0, 0, 1, 2]), "follow": r.random() < 0.8}

    def _removexattr(self, tree):
        return {"path": self._any(tree), "name": self.rng.choice(XATTR_NAMES), "follow": self.rng.random() < 0.8}

    def _stat(self, tree):
        return {"path": self._any(tree)}

    def _readlink(self, tree):
        return {"path": self._path(tree, "l")}

    def _listdir(self, tree):
        return {"path": self._path(tree, "d")}

    def _hopen(self, tree, flags=("append", "rdonly", "rdwr", "rdwr_creat")):
        hid = min(set(range(HANDLES)) - self.open_handles)
        self.open_handles.add(hid)
        return {"hid": hid, "path": self._path(tree, "f", 0.8), "flags": self.rng.choice(flags)}

    def _hopen_trunc(self, tree):
        return self._hopen(tree, ("wronly_trunc",))

    def _handle(self):
        return self.rng.choice(sorted(self.open_handles))

    def _hwrite(self, tree):
        return {"hid": self._handle(), **self._data(tree, None)}

    def _hread(self, tree):
        return {"hid": self._handle(), "off": self._offset(3 * MiB), "len": self._length()}

    def _htruncate(self, tree):
        return {"hid": self._handle(), "size": self.rng.randrange(0, 4 * MiB)}

    def _hfsync(self, tree):
        return {"hid": self._handle()}

    def _hclose(self, tree):
        hid = self._handle()
        self.open_handles.discard(hid)
        return {"hid": hid}


# --- applying operations to one side ---------------------------------------------------------

class Side:
    """One tree (reference or mount) and its open descriptors."""

    def __init__(self, root):
        self.root = str(root)
        self.fds = {}

    def p(self, rel):
        return self.root if rel == "." else os.path.join(self.root, rel)

    def close_all(self):
        for fd in self.fds.values():
            try:
                os.close(fd)
            except OSError:
                pass
        self.fds.clear()

    def apply(self, op):
        fn = getattr(self, "op_" + op["op"])
        return outcome(lambda: fn(op))

    def _with_fd(self, path, flags, fn, mode=0o644):
        fd = os.open(path, flags | os.O_NONBLOCK, mode)
        try:
            return fn(fd)
        finally:
            os.close(fd)

    def op_create(self, op, extra=0):
        def write(fd):
            return os.write(fd, payload(op)) if op["len"] else 0
        return self._with_fd(self.p(op["path"]), os.O_WRONLY | os.O_CREAT | extra, write, op["mode"])

    def op_create_excl(self, op):
        return self.op_create(op, os.O_EXCL)

    def op_open_trunc(self, op):
        return self._with_fd(self.p(op["path"]), os.O_WRONLY | os.O_TRUNC, lambda fd: os.fstat(fd).st_size)

    def op_write(self, op):
        return self._with_fd(self.p(op["path"]), os.O_WRONLY, lambda fd: os.pwrite(fd, payload(op), op["off"]))

    def op_append(self, op):
        return self._with_fd(self.p(op["path"]), os.O_WRONLY | os.O_APPEND,
                             lambda fd: (os.write(fd, payload(op)), os.lseek(fd, 0, os.SEEK_CUR)))

    def op_read(self, op):
        return self._with_fd(self.p(op["path"]), os.O_RDONLY, lambda fd: digest(os.pread(fd, op["len"], op["off"])))

    def op_truncate(self, op):
        return os.truncate(self.p(op["path"]), op["size"])

    def op_fallocate(self, op):
        return self._with_fd(self.p(op["path"]), os.O_WRONLY, lambda fd: fallocate(fd, 0, op["off"], op["len"]))

    def op_punch(self, op):
        return self._with_fd(self.p(op["path"]), os.O_WRONLY,
                             lambda fd: fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, op["off"], op["len"]))

    def op_copy_range(self, op):
        def copy(a):
            def into(b):
                done = 0
                while done < op["len"]:
                    n = os.copy_file_range(a, b, op["len"] - done, op["off_src"] + done, op["off_dst"] + done)
                    if n == 0:
                        break
                    done += n
                return done
            return self._with_fd(self.p(op["dst"]), os.O_WRONLY | os.O_CREAT, into)
        return self._with_fd(self.p(op["src"]), os.O_RDONLY, copy)

    def op_rename(self, op):
        return renameat2(self.p(op["src"]), self.p(op["dst"]), 0)

    def op_rename_noreplace(self, op):
        return renameat2(self.p(op["src"]), self.p(op["dst"]), RENAME_NOREPLACE)

    def op_rename_exchange(self, op):
        return renameat2(self.p(op["src"]), self.p(op["dst"]), RENAME_EXCHANGE)

    def op_link(self, op):
        return os.link(self.p(op["src"]), self.p(op["dst"]), follow_symlinks=False)

    def op_unlink(self, op):
        return os.unlink(self.p(op["path"]))

    def op_mkdir(self, op):
        return os.mkdir(self.p(op["path"]), op["mode"])

    def op_rmdir(self, op):
        return os.rmdir(self.p(op["path"]))

    def op_symlink(self, op):
        return os.symlink(op["target"], self.p(op["path"]))

    def op_mkfifo(self, op):
        return os.mkfifo(self.p(op["path"]), op["mode"])

    def op_chmod(self, op):
        return os.chmod(self.p(op["path"]), op["mode"])

    def op_chown(self, op):
        return os.chown(self.p(op["path"]), op["uid"], op["gid"], follow_symlinks=op["follow"])

    def op_utimens(self, op):
        utimensat(self.p(op["path"]), op["atime"], op["mtime"], follow=op["follow"])

    def op_setxattr(self, op):
        return os.setxattr(self.p(op["path"]), op["name"], bytes.fromhex(op["value"]), op["flags"],
                           follow_symlinks=op["follow"])

    def op_removexattr(self, op):
        return os.removexattr(self.p(op["path"]), op["name"], follow_symlinks=op["follow"])

    def op_stat(self, op):
        st = os.lstat(self.p(op["path"]))
        size = None if stat.S_ISDIR(st.st_mode) else st.st_size
        return [st.st_mode, st.st_uid, st.st_gid, st.st_nlink, size, st.st_rdev]

    def op_readlink(self, op):
        return os.readlink(self.p(op["path"]))

    def op_listdir(self, op):
        return sorted(os.listdir(self.p(op["path"])))

    def op_hopen(self, op):
        self.fds[op["hid"]] = os.open(self.p(op["path"]), OPEN_FLAGS[op["flags"]] | os.O_NONBLOCK, 0o644)

    op_hopen_trunc = op_hopen

    def _fd(self, op):
        fd = self.fds.get(op["hid"])
        if fd is None:
            raise OSError(errno.EBADF, "handle not open")
        return fd

    def op_hwrite(self, op):
        return os.pwrite(self._fd(op), payload(op), op["off"])

    def op_hread(self, op):
        return digest(os.pread(self._fd(op), op["len"], op["off"]))

    def op_htruncate(self, op):
        return os.ftruncate(self._fd(op), op["size"])

    def op_hfsync(self, op):
        return os.fsync(self._fd(op))

    def op_hclose(self, op):
        fd = self._fd(op)
        del self.fds[op["hid"]]
        os.close(fd)


# --- comparing trees -------------------------------------------------------------------------

def describe(root):
    """{rel: attributes} and hard-link groups of a tree; file contents are hashed."""
    entries, by_ino = {}, {}
    for dirpath, dirs, files in os.walk(root):
        for name in sorted(dirs + files):
            p = os.path.join(dirpath, name)
            rel = os.path.relpath(p, root)
            st = os.lstat(p)
            e = {"mode": oct(st.st_mode), "uid": st.st_uid, "gid": st.st_gid, "nlink": st.st_nlink,
                 "ino": st.st_ino, "mtime": st.st_mtime_ns}
            xattrs = {}
            for n in os.listxattr(p, follow_symlinks=False):
                if n.startswith("user."):
                    xattrs[n] = os.getxattr(p, n, follow_symlinks=False).hex()
            e["xattrs"] = xattrs
            if stat.S_ISREG(st.st_mode):
                e["size"] = st.st_size
                h = hashlib.sha256()
                with open(p, "rb") as f:
                    while chunk := f.read(4 * MiB):
                        h.update(chunk)
                e["sha256"] = h.hexdigest()
                by_ino.setdefault(st.st_ino, []).append(rel)
            elif stat.S_ISLNK(st.st_mode):
                e["size"] = st.st_size
                e["target"] = os.readlink(p)
                by_ino.setdefault(st.st_ino, []).append(rel)
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                e["rdev"] = st.st_rdev
            else:
                by_ino.setdefault(st.st_ino, []).append(rel)
            entries[rel] = e
    groups = sorted(sorted(g) for g in by_ino.values() if len(g) > 1)
    return entries, groups


def first_difference(a, b):
    """Offset of the first differing byte of two files, for the report."""
    with open(a, "rb") as fa, open(b, "rb") as fb:
        off = 0
        while True:
            x, y = fa.read(MiB), fb.read(MiB)
            if x != y:
                for i in range(min(len(x), len(y))):
                    if x[i] != y[i]:
                        return off + i
                return off + min(len(x), len(y))
            if not x:
                return None
            off += len(x)


def compare_trees(ref_root, mnt_root, explicit_mtimes):
    """Differences between the reference and the mount, as readable lines ([] if none)."""
    ref, ref_groups = describe(ref_root)
    mnt, mnt_groups = describe(mnt_root)
    out = []
    for rel in sorted(set(ref) | set(mnt)):
        a, b = ref.get(rel), mnt.get(rel)
        if a is None or b is None:
            out.append(f"{rel}: only on the {'mount' if a is None else 'reference'}")
            continue
        for key in ("mode", "uid", "gid", "nlink", "size", "target", "xattrs", "rdev", "sha256"):
            if a.get(key) != b.get(key):
                detail = ""
                if key == "sha256":
                    detail = f" (first difference at byte {first_difference(os.path.join(ref_root, rel), os.path.join(mnt_root, rel))})"
                out.append(f"{rel}: {key} {a.get(key)!r} on the reference, {b.get(key)!r} on the mount{detail}")
        want = explicit_mtimes.get(a["ino"])
        if want is not None and a["mtime"] == want and b["mtime"] != want:
            out.append(f"{rel}: mtime {b['mtime']} on the mount, set explicitly to {want} (reference keeps it)")
    if ref_groups != mnt_groups:
        out.append(f"hard-link groups differ: reference {ref_groups}, mount {mnt_groups}")
    return out


# --- one run ---------------------------------------------------------------------------------

class Mismatch(Exception):
    def __init__(self, index, op, detail, signature):
        super().__init__(detail)
        self.index, self.op, self.detail = index, op, detail
        self.signature = signature   # what must stay the same while minimizing


class Environment:
    """Where runs happen: a work directory, and for S3 one moto server for all runs."""

    def __init__(self, store, workdir, mount_options, verbose):
        self.store = store
        self.workdir = Path(workdir)
        self.mount_options = mount_options
        self.verbose = verbose
        self.moto = None
        self.runs = 0

    def __enter__(self):
        if self.store == "s3":
            from s3server import MotoServer
            self.moto = MotoServer(bucket="fsrand").start()
        return self

    def __exit__(self, *exc):
        if self.moto:
            self.moto.stop()

    def fresh(self):
        self.runs += 1
        root = self.workdir / f"run{self.runs:03d}"
        root.mkdir(parents=True)
        if self.store == "s3":
            fs = Filesystem(root, self.mount_options, source=f"s3://{self.moto.bucket}/fsrand-{uuid.uuid4().hex[:8]}",
                            env=s3_env(self.moto))
        else:
            fs = Filesystem(root, self.mount_options)
        return root, fs


class Run:
    """Applies operations to a fresh reference directory and a fresh mount, checking as it goes."""

    def __init__(self, env):
        self.env = env
        self.root, self.fs = env.fresh()
        self.fs.start()
        self.ref = Side(self.root / "ref" / "tree")
        self.mnt = Side(self.fs.mnt / "tree")
        os.makedirs(self.ref.root, mode=0o755)
        os.mkdir(self.mnt.root, 0o755)
        os.chmod(self.ref.root, 0o755)
        os.chmod(self.mnt.root, 0o755)
        self.explicit_mtimes = {}
        self.count = 0
        self._tree = None

    def tree(self):
        if self._tree is None:
            self._tree = scan(self.ref.root)
        return self._tree

    def apply(self, op):
        i = self.count
        self.count += 1
        if op["op"] == "remount":
            if not self.daemon_alive():
                raise Mismatch(i, op, f"the mossaicfs daemon died: {self.crash_summary()}", ("crash", "remount"))
            self.remount()
            self.check_trees(i, op)
            return
        r = self.ref.apply(op)
        m = self.mnt.apply(op)
        if not self.daemon_alive():   # the mount then answers ENOTCONN / ECONNABORTED
            raise Mismatch(i, op, f"the mossaicfs daemon died: {self.crash_summary()}", ("crash", op["op"]))
        if op["op"] not in ("read", "stat", "readlink", "listdir", "hread", "hfsync"):
            self._tree = None
        if r != m:
            raise Mismatch(i, op, f"results differ: reference {short(r)}, mount {short(m)}",
                           (op["op"], r[0], r[1] if r[0] == "err" else None, m[0], m[1] if m[0] == "err" else None))
        if op["op"] == "utimens" and r[0] == "ok":
            st = os.stat(self.ref.p(op["path"]), follow_symlinks=op["follow"])
            self.explicit_mtimes[st.st_ino] = op["mtime"]

    def daemon_alive(self):
        m = self.fs.mount
        return m is not None and m.proc is not None and m.proc.poll() is None

    def crash_summary(self):
        """The daemon's exit and the first lines of its crash report."""
        m = self.fs.mount
        code = m.proc.poll() if m is not None and m.proc is not None else "unknown"
        try:
            log = (self.root / "daemon.log").read_text(errors="replace").splitlines()
        except OSError:
            log = []
        keys = ("fatal", "runtime failure", "crashed", " at /")
        lines = [line.strip() for line in log if any(k in line.lower() for k in keys)][:6]
        return f"exit status {code}; " + " | ".join(lines) + f" (log: {self.root / 'daemon.log'})"

    def remount(self):
        self.ref.close_all()
        self.mnt.close_all()
        self.fs.remount()

    def check_trees(self, index, op):
        diffs = compare_trees(self.ref.root, self.mnt.root, self.explicit_mtimes)
        if diffs:
            raise Mismatch(index, op, "trees differ:\n    " + "\n    ".join(diffs[:40]), ("trees",))

    def finish(self):
        """Closes what is open, compares, remounts, compares again."""
        self.ref.close_all()
        self.mnt.close_all()
        end = {"op": "end"}
        self.check_trees(self.count, end)
        self.fs.remount()
        self.check_trees(self.count, {"op": "end-after-remount"})

    def stop(self):
        """Stops the daemon and returns None, or what went wrong (a daemon that had died or did
        not exit 0); the mount is never left behind."""
        self.ref.close_all()
        self.mnt.close_all()
        if self.fs.mount is not None and not self.daemon_alive():
            summary = self.crash_summary()
            m, self.fs.mount = self.fs.mount, None
            m.kill()
            return summary
        try:
            self.fs.stop()
            return None
        except Exception as e:
            return f"{e}; {self.crash_summary()}"

    def cleanup(self, keep=False):
        if not keep and not is_mounted(self.fs.mnt):
            shutil.rmtree(self.root, ignore_errors=True)


def short(value, limit=300):
    text = json.dumps(value)
    return text if len(text) <= limit else text[:limit] + "..."


def execute(env, ops, on_op=None):
    """Runs operations (a list, or a generator of them given the tree) on fresh stores.
    Returns the Mismatch or None. Any failure of the daemon or of a remount is a mismatch too,
    and so is a daemon that does not exit 0 at the final unmount."""
    run = Run(env)
    failure = None
    try:
        try:
            for op in ops(run) if callable(ops) else ops:
                run.apply(op)
                if on_op:
                    on_op(run.count)
            run.finish()
        except Mismatch as m:
            failure = m
        except Exception as e:  # a remount that failed, a daemon that died under us
            failure = Mismatch(run.count - 1, {"op": "harness"}, f"{type(e).__name__}: {e}; {run.crash_summary()}",
                               ("harness",))
    finally:
        stop_error = run.stop()
        run.cleanup(keep=failure is not None or stop_error is not None)
    if failure is None and stop_error:
        failure = Mismatch(run.count, {"op": "unmount"}, f"the daemon did not stop cleanly: {stop_error}", ("unmount",))
    return failure


def replay(env, ops):
    return execute(env, ops)


def generate(env, seed, count, exclude, big, progress):
    """Generates and runs `count` operations; returns (ops, None) or (ops up to the failure, Mismatch)."""
    gen = Generator(seed, exclude=exclude, big=big)
    ops = []
    started = time.monotonic()

    def produce(run):
        for _ in range(count):
            op = gen.next(run.tree())
            ops.append(op)
            yield op

    def progress_line(done):
        if progress and done % 1000 == 0:
            print(f"fsrand: {done}/{count} ops, {done / (time.monotonic() - started):.0f} ops/s", flush=True)
    failure = execute(env, produce, progress_line)
    return ops, failure


def shrink(env, ops, failure, budget, seconds=float("inf")):
    """Bisects over prefix length for the shortest prefix that still fails (fresh stores each
    time). Prefixes shorter than the first failing op are known to pass the per-op checks, but
    not necessarily the tree comparison, so the search covers [1, index+1]."""
    lo, hi = 0, min(len(ops), failure.index + 1)   # prefix lo passes (empty), prefix hi fails
    best = failure
    runs = 0
    deadline = time.monotonic() + seconds
    while hi - lo > 1 and runs < budget and time.monotonic() < deadline:
        mid = (lo + hi) // 2
        runs += 1
        m = replay(env, ops[:mid])
        print(f"fsrand: shrink: prefix of {mid} ops {'fails' if m else 'passes'}", flush=True)
        if m:
            hi, best = mid, m
        else:
            lo = mid
    return ops[:hi], best, runs


def minimize(env, ops, failure, budget, seconds=float("inf")):
    """Delta debugging (ddmin) over the failing prefix: drops chunks of operations while the
    same kind of mismatch (same operation, same ok/errno on each side; or a tree difference)
    still happens. Returns (ops, the last failure, re-runs)."""
    cur, best, runs, n = list(ops), failure, 0, 2
    deadline = time.monotonic() + seconds
    while len(cur) >= 2 and runs < budget and time.monotonic() < deadline:
        size = -(-len(cur) // n)
        for i in range(n):
            candidate = cur[:i * size] + cur[(i + 1) * size:]
            if not candidate:
                continue
            runs += 1
            m = replay(env, candidate)
            if m is not None and m.signature == failure.signature:
                cur, best, n = candidate, m, max(n - 1, 2)
                print(f"fsrand: minimize: {len(cur)} ops still fail", flush=True)
                break
            if runs >= budget or time.monotonic() >= deadline:
                break
        else:
            if n >= len(cur):
                break
            n = min(len(cur), n * 2)
    return cur, best, runs


def format_op(i, op):
    def brief(v):
        text = repr(v)
        return text if len(text) <= 40 else text[:20] + "..." + text[-8:]
    args = ", ".join(f"{k}={brief(v)}" for k, v in op.items() if k != "op")
    return f"#{i} {op['op']}({args})"


def report_minimized(seed, store, ops, best, runs, save_dir):
    path = Path(save_dir) / f"fsrand-seed{seed}-{store}-minimal{len(ops)}.json"
    path.write_text(json.dumps({"seed": seed, "store": store, "ops": ops}, indent=0))
    print(f"\nfsrand: minimized reproduction: {len(ops)} ops ({runs} re-runs), failing with: {best.detail}")
    for i, op in enumerate(ops[:60]):
        print(f"    {format_op(i, op)}")
    if len(ops) > 60:
        print(f"    ... {len(ops) - 60} more")
    print(f"  saved: {path}")
    print(f"  replay: python3 Tests/fuzz/fsrand.py --replay {path} --store {store}")


def report(seed, store, ops, failure, shrunk, best, runs, save_dir):
    print(f"\nfsrand: MISMATCH (seed {seed}, store {store}) at {format_op(failure.index, failure.op) if failure.index < len(ops) else failure.op['op']}")
    print(f"  {failure.detail}")
    if shrunk is not None:
        path = Path(save_dir) / f"fsrand-seed{seed}-{store}-prefix{len(shrunk)}.json"
        path.write_text(json.dumps({"seed": seed, "store": store, "ops": shrunk}, indent=0))
        print(f"\nfsrand: shortest failing prefix: {len(shrunk)} ops (of {len(ops)}; {runs} re-runs on fresh stores)")
        print(f"  failure of the prefix: {best.detail}")
        print("  its last operations:")
        for i in range(max(0, len(shrunk) - 25), len(shrunk)):
            print(f"    {format_op(i, shrunk[i])}")
        print(f"  saved: {path}")
        print(f"  replay: python3 Tests/fuzz/fsrand.py --replay {path} --store {store}")


def main(argv=None):
    ap = argparse.ArgumentParser(description="Differential random-operation tester: local directory vs mossaicfs mount.")
    ap.add_argument("--ops", type=int, default=2000, help="number of operations (default 2000)")
    ap.add_argument("--seed", type=int, default=None, help="random seed (default: random, printed)")
    ap.add_argument("--store", choices=("local", "s3"), default="local")
    ap.add_argument("--exclude", default="", help="comma-separated operations not to generate (e.g. fallocate,punch,remount)")
    ap.add_argument("--big", action="store_true", help="also write near 4 GiB (slow tree comparisons)")
    ap.add_argument("--mount-options", default="", help="extra -o options for the mount, comma-separated")
    ap.add_argument("--replay", help="run the operations saved in this JSON file instead of generating")
    ap.add_argument("--no-shrink", action="store_true")
    ap.add_argument("--shrink-budget", type=int, default=40, help="most re-runs while bisecting (default 40)")
    ap.add_argument("--minimize-budget", type=int, default=60,
                    help="most re-runs of delta debugging on the shortest prefix (default 60, 0: off)")
    ap.add_argument("--shrink-seconds", type=float, default=900,
                    help="time limit of bisecting and of minimizing, each (default 900)")
    ap.add_argument("--workdir", help="where stores, mounts and reports go (default: a new /tmp directory)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("-q", "--quiet", action="store_true")
    args = ap.parse_args(argv)

    if os.geteuid() != 0:
        print("fsrand: needs root (FUSE mounts)", file=sys.stderr)
        return 2
    if not os.path.exists(BIN):
        print(f"fsrand: {BIN} is not built (make build, or set MOSSAICFS_BIN)", file=sys.stderr)
        return 2
    os.umask(0o022)
    seed = args.seed if args.seed is not None else random.randrange(2**31)
    exclude = {x.strip() for x in args.exclude.split(",") if x.strip()}
    unknown = exclude - set(WEIGHTS) - {"remount"}
    if unknown:
        print(f"fsrand: unknown operations in --exclude: {sorted(unknown)}", file=sys.stderr)
        return 2
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="fsrand-"))
    workdir.mkdir(parents=True, exist_ok=True)
    options = [o for o in args.mount_options.split(",") if o]
    started = time.monotonic()
    failed = True   # until a run ends well: an exception keeps the work directory too
    try:
        with Environment(args.store, workdir, options, not args.quiet) as env:
            if args.replay:
                saved = json.loads(Path(args.replay).read_text())
                ops, seed = saved["ops"], saved.get("seed", seed)
                print(f"fsrand: replaying {len(ops)} ops from {args.replay} on {args.store}", flush=True)
                failure = replay(env, ops)
            else:
                print(f"fsrand: seed {seed}, {args.ops} ops, store {args.store}"
                      + (f", excluding {','.join(sorted(exclude))}" if exclude else ""), flush=True)
                ops, failure = generate(env, seed, args.ops, exclude, args.big, not args.quiet)
            elapsed = time.monotonic() - started
            if failure is None:
                failed = False
                print(f"fsrand: OK: {len(ops)} ops (seed {seed}, store {args.store}) equal on the reference and the "
                      f"mount, {elapsed:.1f}s, {len(ops) / max(elapsed, 1e-9):.0f} ops/s", flush=True)
                return 0
            shrunk = best = None
            runs = 0
            if not args.no_shrink and not args.replay:
                shrunk, best, runs = shrink(env, ops, failure, args.shrink_budget, args.shrink_seconds)
            report(seed, args.store, ops, failure, shrunk, best, runs, workdir)
            if shrunk is not None and args.minimize_budget > 0:
                small, best, runs = minimize(env, shrunk, best, args.minimize_budget, args.shrink_seconds)
                report_minimized(seed, args.store, small, best, runs, workdir)
            return 1
    finally:
        if not args.keep and not failed:
            if not any(line.split()[1].startswith(str(workdir)) for line in open("/proc/self/mounts")):
                shutil.rmtree(workdir, ignore_errors=True)
        elif failed:
            print(f"fsrand: work directory kept: {workdir} (daemon logs: run*/daemon.log)")


if __name__ == "__main__":
    sys.exit(main())
