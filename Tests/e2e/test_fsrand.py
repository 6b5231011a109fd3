"""The differential random-operation tester (Tests/fuzz/fsrand.py), bounded, in every test run:
FSRAND_OPS operations (default 20,000, about 1.5 minutes per store) on a local-directory store
and as many on S3 (moto), so a `make test` applies 40,000 operations in all. On a mismatch the output names the seed,
the shortest failing prefix and a minimized reproduction (`fsrand.py --replay FILE`).
`make fuzz OPS=… SEED=…` runs longer."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mossaic import BIN

FSRAND = Path(__file__).resolve().parents[1] / "fuzz" / "fsrand.py"
OPS = int(os.environ.get("FSRAND_OPS", "20000"))
SEED = int(os.environ.get("FSRAND_SEED", "20261121"))


@pytest.mark.parametrize("store,seed", [("local", SEED), ("s3", SEED + 1)])
def test_random_operations_match_the_local_filesystem(store, seed, tmp_path):
    r = subprocess.run([sys.executable, str(FSRAND), "--ops", str(OPS), "--seed", str(seed), "--store", store,
                        "--workdir", str(tmp_path / "fsrand"), "--quiet", "--shrink-budget", "25",
                        "--minimize-budget", "40", "--shrink-seconds", "240"],
                       env={**os.environ, "MOSSAICFS_BIN": BIN}, stdin=subprocess.DEVNULL,
                       capture_output=True, text=True)
    assert r.returncode == 0, f"fsrand --seed {seed} --store {store} failed:\n{r.stdout[-8000:]}\n{r.stderr[-3000:]}"
    assert f"OK: {OPS} ops" in r.stdout, r.stdout[-2000:]
