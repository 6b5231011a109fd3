import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from mossaic import BIN, Filesystem  # noqa: E402


def pytest_sessionstart(session):
    if not os.path.exists(BIN):
        pytest.exit(f"{BIN} is not built (run make build)", returncode=2)
    if os.geteuid() != 0:
        pytest.exit("the mounted tests need root (FUSE mounts with allow_other, chown)", returncode=2)


@pytest.fixture
def fs(tmp_path):
    """A freshly formatted local-directory filesystem, mounted; always unmounted afterwards."""
    f = Filesystem(tmp_path)
    try:
        yield f.start()
    finally:
        f.stop()
