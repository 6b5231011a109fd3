"""A cache_dir on a small filesystem: the disk cache makes room, it never fails a write.

The cache_dir is a 64 MiB tmpfs mounted by the test (root), the store an S3 bucket (moto on
127.0.0.1), `cache_free=0`: the disk cache must still leave its hard reserve free for meta.db,
its WAL and snapshot copies, and a cache file that does not fit is skipped, not an error."""
import contextlib
import hashlib
import os
import random
import subprocess
import uuid

import pytest

from mossaic import Filesystem, is_mounted, s3_env
from s3server import MotoServer

MiB = 1 << 20
TMPFS = 64 * MiB
FILES = 300


@pytest.fixture(scope="module")
def moto():
    with MotoServer(bucket="mossaic-cachefull") as server:
        yield server


@contextlib.contextmanager
def tmpfs(path, size):
    """A tmpfs of `size` bytes mounted on `path`; always unmounted afterwards."""
    os.makedirs(path, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        if is_mounted(path):
            subprocess.run(["umount", str(path)], check=True)


@pytest.mark.parametrize("options", [["cache_free=0"], ["cache_free=0", "cache_large_writes"]],
                         ids=["default", "cache_large_writes"])
def test_writes_succeed_when_the_cache_filesystem_is_small(tmp_path, moto, options):
    f = Filesystem(tmp_path, options=options, source=f"s3://{moto.bucket}/fs-{uuid.uuid4().hex[:8]}", env=s3_env(moto))
    rng = random.Random(18)
    expected = {}
    with tmpfs(f.cache, TMPFS):
        try:
            f.start()
            for i in range(FILES):
                data = rng.randbytes(rng.randint(MiB, 5 * MiB))
                name = f"f{i:03}.bin"
                # Each close is a commit: it must succeed however full the cache's disk is.
                with open(f.path(name), "wb") as out:
                    out.write(data)
                expected[name] = hashlib.sha256(data).hexdigest()
            f.remount()
            for name, digest in expected.items():
                with open(f.path(name), "rb") as got:
                    assert hashlib.sha256(got.read()).hexdigest() == digest, name
            # The cache left its reserve free after all that (and the reads that refilled it).
            st = os.statvfs(f.cache)
            assert st.f_bavail * st.f_frsize >= 2 * MiB
        finally:
            f.stop()
