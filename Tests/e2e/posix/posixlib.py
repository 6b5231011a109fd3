"""Helpers of the POSIX conformance suite: outcomes, a differential runner (the same operation
on a local ext4 directory and on the mount), unprivileged callers, and ctypes wrappers for the
system calls Python does not expose (renameat2, fallocate, utimensat, raw xattr calls).

An *outcome* is what a case compares: `("ok", value)` or `("err", "ENOENT")`. Values must be
plain data (they cross a pipe from a child process when the case runs as another user).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import pickle
import select
import signal
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path

MiB = 1 << 20
CLOCK_REALTIME_COARSE = getattr(time, "CLOCK_REALTIME_COARSE", 5)  # Linux value
GiB = 1 << 30
CHUNK = MiB

# --- outcomes -------------------------------------------------------------------------------


def ok(value=None):
    return ("ok", value)


_ERRNO_NAMES = {errno.EOPNOTSUPP: "EOPNOTSUPP", errno.EAGAIN: "EAGAIN"}  # of the aliases, the names man pages use


def errname(code):
    return _ERRNO_NAMES.get(code) or errno.errorcode.get(code, str(code))


def err(code):
    """`err(errno.EACCES)` or `err("EACCES")`."""
    return ("err", code if isinstance(code, str) else errname(code))


def short(value, limit=400):
    """repr() cut to `limit` characters, for failure messages."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"


def outcome(fn, *args, **kw):
    try:
        return ok(fn(*args, **kw))
    except OSError as e:
        if e.errno is None:
            raise
        return err(e.errno)


# --- callers --------------------------------------------------------------------------------


@dataclass(frozen=True)
class User:
    uid: int
    gid: int
    groups: tuple = field(default=())

    @property
    def all_groups(self):
        return (self.gid, *self.groups)


ROOT = User(0, 0)  # root, but in a forked child (for cases that change their own ids)
# Unprivileged callers. ALICE is also in the shared group STAFF; BOB is not.
STAFF = 52100
ALICE = User(52001, 52001, (STAFF,))
BOB = User(52002, 52002)
CHILD_TIMEOUT = 60


def as_user(user, fn, *args, umask=None):
    """Runs `fn(*args)` in a forked child with the credentials of `user` (None: root) and
    `umask`, and returns its outcome. The child is waited for by PID; one that does not answer
    within CHILD_TIMEOUT seconds is killed and the case fails."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never returns into pytest
        code = 0
        try:
            os.close(r)
            if umask is not None:
                os.umask(umask)
            if user is not None:
                os.setgroups(list(user.all_groups))
                os.setgid(user.gid)
                os.setuid(user.uid)
            try:
                result = outcome(fn, *args)
            except BaseException as e:  # an assertion or bug in the case itself
                result = ("raise", f"{type(e).__name__}: {e}")
            data = pickle.dumps(result)
            with os.fdopen(w, "wb") as f:
                f.write(data)
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    os.close(w)
    try:
        data = b""
        deadline = time.monotonic() + CHILD_TIMEOUT
        while True:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([r], [], [], max(left, 0))
            if not ready:
                os.kill(pid, signal.SIGKILL)
                raise TimeoutError(f"case as {user} did not finish within {CHILD_TIMEOUT}s")
            chunk = os.read(r, 65536)
            if not chunk:
                break
            data += chunk
    finally:
        os.close(r)
        os.waitpid(pid, 0)
    if not data:
        raise RuntimeError(f"case as {user} died without an answer")
    result = pickle.loads(data)
    if result[0] == "raise":
        raise AssertionError(f"case as {user} raised {result[1]}")
    return result


def run_as(user, fn, *args, umask=None):
    """Outcome of `fn(*args)` as `user`; in this process when root and no umask is asked for."""
    if user is None and umask is None:
        return outcome(fn, *args)
    return as_user(user, fn, *args, umask=umask)


# --- the differential pair ------------------------------------------------------------------


class Pair:
    """One case's two directories: `ref` on the local ext4 disk, `mnt` on the mossaicfs mount.
    `expect(op, want)` runs `op(dir)` on both and asserts that both give `want` (ext4 first:
    if ext4 disagrees, the case itself is wrong). `same(op)` asserts the mount does what
    ext4 does without stating the value."""

    def __init__(self, ref: Path, mnt: Path, fs, store: str, mode: str):
        self.ref = ref
        self.mnt = mnt
        self.fs = fs
        self.store = store
        self.mode = mode

    @property
    def dirs(self):
        return (self.ref, self.mnt)

    def setup(self, fn, user=None, umask=None):
        """Runs `fn(dir)` on both directories; it must succeed on both."""
        for d in self.dirs:
            o = run_as(user, fn, d, umask=umask)
            if o[0] != "ok":
                raise AssertionError(f"setup failed on {'ext4' if d == self.ref else 'mount'}: {short(o)}")

    def run(self, op, user=None, umask=None):
        return run_as(user, op, self.ref, umask=umask), run_as(user, op, self.mnt, umask=umask)

    def expect(self, op, want, user=None, umask=None):
        r, m = self.run(op, user, umask)
        # (raise, not assert: pytest's introspection would print megabytes of file contents)
        if r != want:
            raise AssertionError(f"reference ext4 gives {short(r)}, the case expects {short(want)}: the case is wrong")
        if m != want:
            raise AssertionError(f"mount gives {short(m)}, expected {short(want)} (as on ext4)")
        return m

    def same(self, op, user=None, umask=None):
        r, m = self.run(op, user, umask)
        if m != r:
            raise AssertionError(f"mount gives {short(m)}, ext4 gives {short(r)}")
        return m

    def remount(self):
        self.fs.remount()


# --- clocks ---------------------------------------------------------------------------------


def wait_clock_past(*ns_values):
    """Returns once the coarse realtime clock (which ext4 uses for timestamps) is past every
    given timestamp, so a following change is visible as a different time on ext4 too. This
    waits for a clock condition, not for another party; typically a few milliseconds."""
    target = max(ns_values)
    while time.clock_gettime_ns(CLOCK_REALTIME_COARSE) <= target:
        time.sleep(0.001)


def times(path, follow=True):
    st = os.stat(path, follow_symlinks=follow)
    return st.st_atime_ns, st.st_mtime_ns, st.st_ctime_ns


def changed_times(path, op, follow=True, after_path=None):
    """Runs `op()` and reports which of (atime, mtime, ctime) of `path` (afterwards of
    `after_path`, for an op that moves it) changed."""
    before = times(path, follow)
    wait_clock_past(*before)
    op()
    after = times(after_path or path, follow)
    return tuple(a != b for a, b in zip(before, after))


# --- files ----------------------------------------------------------------------------------


def write_file(path, data, mode=None):
    with open(path, "wb") as f:
        f.write(data)
    if mode is not None:
        os.chmod(path, mode)


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


def pattern(n, seed=0):
    """Deterministic non-zero-page bytes (never all-zero 1 MiB pages)."""
    import random
    return random.Random(seed).randbytes(n)


def mode_of(path, follow=True):
    return os.stat(path, follow_symlinks=follow).st_mode


def kind_and_perms(path, follow=True):
    m = mode_of(path, follow)
    return stat.S_IFMT(m), stat.S_IMODE(m)


def listing(d):
    return sorted(os.listdir(d))


# --- ctypes ---------------------------------------------------------------------------------

libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)

AT_FDCWD = -100
AT_SYMLINK_NOFOLLOW = 0x100
AT_EACCESS = 0x200
RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2
RENAME_WHITEOUT = 4
FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02
FALLOC_FL_COLLAPSE_RANGE = 0x08
FALLOC_FL_ZERO_RANGE = 0x10
FALLOC_FL_INSERT_RANGE = 0x20
FALLOC_FL_UNSHARE_RANGE = 0x40
UTIME_NOW = "UTIME_NOW"    # sentinels for utimensat()/futimens() below
UTIME_OMIT = "UTIME_OMIT"
_UTIME_SPECIAL = {UTIME_NOW: (1 << 30) - 1, UTIME_OMIT: (1 << 30) - 2}
XATTR_CREATE = 1
XATTR_REPLACE = 2


def _check(ret):
    if ret < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return ret


libc.renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]


def renameat2(old, new, flags=0):
    return _check(libc.renameat2(AT_FDCWD, os.fsencode(old), AT_FDCWD, os.fsencode(new), flags))


def fallocate(fd, mode, offset, length):
    return _check(libc.fallocate(fd, mode, offset, length))


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_int64), ("tv_nsec", ctypes.c_long)]


libc.utimensat.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_int]
libc.futimens.argtypes = [ctypes.c_int, ctypes.c_void_p]


def _timespecs(atime, mtime):
    """Each of atime/mtime: nanoseconds since the epoch, or UTIME_NOW / UTIME_OMIT."""
    arr = (_Timespec * 2)()
    for i, t in enumerate((atime, mtime)):
        if isinstance(t, str):
            arr[i].tv_sec, arr[i].tv_nsec = 0, _UTIME_SPECIAL[t]
        else:
            arr[i].tv_sec, arr[i].tv_nsec = divmod(t, 10**9)
    return arr


def utimensat(path, atime=None, mtime=None, follow=True):
    """utimensat(AT_FDCWD, path, times, flags); atime=mtime=None passes times=NULL."""
    ts = None if atime is None and mtime is None else ctypes.byref(_timespecs(atime, mtime))
    return _check(libc.utimensat(AT_FDCWD, os.fsencode(path), ts, 0 if follow else AT_SYMLINK_NOFOLLOW))


def futimens(fd, atime=None, mtime=None):
    ts = None if atime is None and mtime is None else ctypes.byref(_timespecs(atime, mtime))
    return _check(libc.futimens(fd, ts))


for _name in ("getxattr", "lgetxattr"):
    getattr(libc, _name).argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_size_t]
    getattr(libc, _name).restype = ctypes.c_ssize_t
for _name in ("listxattr", "llistxattr"):
    getattr(libc, _name).argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.c_size_t]
    getattr(libc, _name).restype = ctypes.c_ssize_t


def getxattr_raw(path, name, size, follow=True):
    """getxattr(2) with an explicit buffer size: returns the length (size 0) or the bytes."""
    buf = ctypes.create_string_buffer(max(size, 1))
    fn = libc.getxattr if follow else libc.lgetxattr
    n = _check(fn(os.fsencode(path), os.fsencode(name), buf if size else None, size))
    return n if size == 0 else buf.raw[:n]


def listxattr_raw(path, size, follow=True):
    buf = ctypes.create_string_buffer(max(size, 1))
    fn = libc.listxattr if follow else libc.llistxattr
    n = _check(fn(os.fsencode(path), buf if size else None, size))
    return n if size == 0 else buf.raw[:n]


libc.faccessat.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_int]


def faccessat(path, mode, flags=0):
    return _check(libc.faccessat(AT_FDCWD, os.fsencode(path), mode, flags))


def access(path, mode):
    """access(2) as a raising call (os.access returns a bool and hides the errno)."""
    return faccessat(path, mode, 0)



# --- the store behind a mount ---------------------------------------------------------------


def stored_objects(fs):
    """{name: size} of the objects holding chunk bytes (chunk objects and packs) in the store
    of `fs` (a mossaic.Filesystem): files under `store/chunks` and `store/packs` for a local
    store, keys under `<prefix>/chunks/` and `<prefix>/packs/` for S3."""
    if not fs.source.startswith("s3://"):
        return {p.name: p.stat().st_size for d in ("chunks", "packs") for p in (fs.store / d).rglob("*") if p.is_file()}
    import boto3
    bucket, _, prefix = fs.source[len("s3://"):].partition("/")
    env = fs.env
    client = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name=env["AWS_REGION"],
                          aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])
    out = {}
    for kind in ("chunks", "packs"):
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix.rstrip("/") + f"/{kind}/"):
            for o in page.get("Contents", []):
                out[o["Key"].rsplit("/", 1)[-1]] = o["Size"]
    return out
