"""Fixtures of the POSIX conformance suite.

Every case runs on each combination of
  * store: a local-directory store ("local") and an S3 bucket on moto ("s3"), and
  * permission mode: `-o default_permissions` ("dp": the kernel checks permissions), without it
    ("own": mossaicfs checks them itself, as libfuse semantics say), and `-o acl` ("acl": POSIX
    ACLs, enforced by the kernel, which implies default_permissions),
selected with MOSSAICFS_POSIX_STORES=local,s3 and MOSSAICFS_POSIX_MODES=dp,own,acl (or pytest
-k; the ids are `local-dp`, `local-own`, `local-acl`, `s3-dp`, `s3-own`, `s3-acl`). Cases expect
what ext4 (mounted with ACLs, as Debian does) gives, in every mode; only ACL calls differ,
which without `acl` fail with EOPNOTSUPP as documented.

One filesystem is formatted and mounted per combination for the whole session (mounting per
case would cost more than the cases); each case gets a fresh directory on it (`px.mnt`) and a
fresh directory on the local ext4 disk (`px.ref`) to compare with. Mounts are made with
`allow_other` and live under a world-searchable directory, so cases can run as unprivileged
users. A daemon that died is reported by the case that killed it, and the next case gets a
new mount of the same store.
"""
import itertools
import os
import re
import shutil
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from mossaic import Filesystem, is_mounted, s3_env  # noqa: E402
from posixlib import Pair  # noqa: E402

STORES = [s for s in os.environ.get("MOSSAICFS_POSIX_STORES", "local,s3").split(",") if s]
MODES = [m for m in os.environ.get("MOSSAICFS_POSIX_MODES", "dp,own,acl").split(",") if m]
COMBINATIONS = [(s, m) for s in STORES for m in MODES]


def mount_options(mode):
    return ["allow_other"] + {"dp": ["default_permissions"], "own": [], "acl": ["acl"]}[mode]


@pytest.fixture(scope="session")
def posix_base():
    """A world-searchable scratch directory (pytest's tmp_path is 0700, which unprivileged
    callers could not traverse). Removed at the end if nothing is mounted below it."""
    old_umask = os.umask(0o022)
    base = Path(tempfile.mkdtemp(prefix="mossaicfs-posix-"))
    os.chmod(base, 0o755)
    (base / "ref").mkdir(mode=0o755)
    try:
        yield base
    finally:
        os.umask(old_umask)
        with open("/proc/self/mounts") as f:
            busy = [line.split()[1] for line in f if line.split()[1].startswith(str(base))]
        if not busy:
            shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def posix_moto():
    from s3server import MotoServer
    with MotoServer(bucket="mossaic-posix") as server:
        yield server


def make_filesystem(base, store, mode, request):
    root = base / f"{store}-{mode}"
    root.mkdir(mode=0o755)
    options = mount_options(mode)
    if store == "local":
        return Filesystem(root, options)
    assert store == "s3", store
    server = request.getfixturevalue("posix_moto")
    return Filesystem(root, options, source=f"s3://{server.bucket}/{store}-{mode}-{uuid.uuid4().hex[:8]}",
                      env=s3_env(server))


@pytest.fixture(scope="session", params=COMBINATIONS, ids=[f"{s}-{m}" for s, m in COMBINATIONS])
def posix_fs(request, posix_base):
    store, mode = request.param
    fs = make_filesystem(posix_base, store, mode, request)
    fs.kind = (store, mode)
    try:
        yield fs.start()
    finally:
        fs.stop()


def daemon_alive(fs):
    m = fs.mount
    return m is not None and m.proc is not None and m.proc.poll() is None


def daemon_log_tail(fs, limit=3000):
    try:
        return (fs.root / "daemon.log").read_text(errors="replace")[-limit:]
    except OSError:
        return ""


def ensure_mounted(fs):
    """Brings back a mount whose daemon died in an earlier case (reported there)."""
    if daemon_alive(fs):
        return
    if fs.mount is not None:
        m, fs.mount = fs.mount, None
        m.kill()
    if is_mounted(fs.mnt):
        os.system(f"umount -l '{fs.mnt}'")
    fs.start()


_case_numbers = itertools.count()


@pytest.fixture
def px(posix_fs, posix_base, request):
    """A fresh directory pair for one case: `px.ref` on ext4, `px.mnt` on the mount."""
    fs = posix_fs
    ensure_mounted(fs)
    name = f"{next(_case_numbers):04d}-" + re.sub(r"[^A-Za-z0-9_.-]", "_", request.node.name)[:80]
    ref, mnt = posix_base / "ref" / name, fs.mnt / name
    for d in (ref, mnt):
        os.mkdir(d)
        os.chmod(d, 0o755)
    pair = Pair(ref, mnt, fs, *fs.kind)
    try:
        yield pair
    finally:
        # A case that changes its own ids must do it in a child (user=ROOT), never in pytest.
        assert (os.getuid(), os.geteuid(), os.getgid(), os.getegid()) == (0, 0, 0, 0), "a case dropped pytest's privileges"
        alive = daemon_alive(fs)
        # Remove what the case made, so the session's stores stay small.
        if alive and os.path.isdir(pair.mnt):
            shutil.rmtree(pair.mnt, ignore_errors=True)
        shutil.rmtree(ref, ignore_errors=True)
        if not alive:
            pytest.fail(f"the mossaicfs daemon died during this case; log tail:\n{daemon_log_tail(fs)}")
