"""A read-write mount reclaims the space of deleted data by itself (the reclaim sweep, man page
RECLAIMING SPACE): after `rm -rf`, once no retained metadata snapshot needs the chunks and the
grace passed, their objects leave the store while still mounted — on the local store and on S3
(moto) — and `df` shows the same used bytes as `mossaicfs status` throughout."""
import json
import os
import shutil

import pytest

from mossaic import random_file, run, wait_until
from s3server import MotoServer
from test_gc import data_keys, make

MiB = 1 << 20
GiB = 1 << 30


@pytest.fixture(scope="module")
def moto():
    with MotoServer(bucket="sweep-e2e") as server:
        yield server


def df_used_and_size(fs):
    st = os.statvfs(fs.mnt)
    return (st.f_blocks - st.f_bfree) * st.f_frsize, st.f_blocks * st.f_frsize


def status_used(fs):
    usage = json.loads(run("status", str(fs.mnt), "--json", env=fs.env).stdout)["usage"]
    return usage["storedBytes"] + usage["inlineBytes"] + usage["releasedBytes"]


def assert_df_matches_status(fs):
    used, _ = df_used_and_size(fs)
    expected = status_used(fs)
    # df counts whole 4 KiB blocks of the same figure.
    assert expected <= used <= expected + 4096 and abs(used - expected) <= max(0.01 * expected, 4096), (used, expected)
    return used


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_deleted_data_leaves_the_store_while_mounted(kind, tmp_path, moto):
    # Snapshots only when asked (and at mount/unmount); one retained; a short grace.
    fs, store = make(tmp_path, kind, moto, ["meta_keep=1", "sweep_grace=1", "capacity=10G"])
    keep = random_file(2 * MiB + 3000)
    fs.start()
    try:
        _, size = df_used_and_size(fs)
        assert size == 10 * GiB
        fs.path("keep").write_bytes(keep)
        kept = data_keys(store)
        tree = fs.path("tree")
        for d in range(3):
            (tree / f"d{d}").mkdir(parents=True)
            for i in range(4):
                (tree / f"d{d}" / f"f{i}").write_bytes(random_file((i % 3 + 1) * MiB + 1000 * i))
                (tree / f"d{d}" / f"small{i}").write_bytes(random_file(3000))   # inline (no trailing zero: stored whole)
        held = data_keys(store) - kept
        assert len(held) >= 12
        run("snapshot", str(fs.mnt), env=fs.env)     # the retained snapshot has the tree
        assert assert_df_matches_status(fs) >= 23 * MiB
        before = status_used(fs)

        shutil.rmtree(tree)
        # Deleted, but the retained snapshot still references it: the objects stay, and df
        # counts them until they are reclaimed. Inline bytes (the small files, the files'
        # short last chunks) went with their rows.
        assert_df_matches_status(fs)
        assert status_used(fs) == before - 12 * 3000 - 3 * (1000 + 2000 + 3000)
        assert data_keys(store) >= held

        # A snapshot holding the removal; meta_keep=1 prunes the one that had the tree.
        run("snapshot", str(fs.mnt), env=fs.env)
        wait_until(lambda: not (data_keys(store) & held), timeout=60, what="the deleted tree's objects leave the store")
        assert data_keys(store) == kept
        assert fs.path("keep").read_bytes() == keep
        assert_df_matches_status(fs)
        assert status_used(fs) == len(keep)
    finally:
        fs.stop()
    # The metadata the unmount published agrees: nothing to collect offline, everything kept readable.
    fs.start()
    try:
        assert fs.path("keep").read_bytes() == keep
        assert not fs.path("tree").exists()
    finally:
        fs.stop()
    r = run("fsck", fs.source, "-o", f"cache_dir={fs.cache}", check=False, env=fs.env)
    assert r.returncode == 0, r.stdout + r.stderr
