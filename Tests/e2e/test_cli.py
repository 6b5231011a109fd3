"""The command line: mount returns only when live, errors are one clear line."""
import os
import subprocess

import pytest

from mossaic import BIN, is_mounted, run, wait_pid_exit


def daemon_pid(cache_dir):
    return int((cache_dir / "lock").read_text().splitlines()[0])


def test_background_mount_is_live_on_return_and_umount_stops_the_daemon(tmp_path):
    store, mnt, cache = tmp_path / "store", tmp_path / "mnt", tmp_path / "cache"
    mnt.mkdir()
    run("format", str(store))
    run("mount", str(store), str(mnt), "-o", f"cache_dir={cache}")
    pid = daemon_pid(cache)
    try:
        assert is_mounted(mnt)
        (mnt / "hello").write_text("world")
        # A second read-write daemon on the same cache_dir is refused, in one line.
        (tmp_path / "mnt2").mkdir()
        r = run("mount", str(store), str(tmp_path / "mnt2"), "-o", f"cache_dir={cache}", check=False)
        assert r.returncode != 0
        assert "in use by another mossaicfs process" in r.stderr and r.stderr.count("\n") == 1
    finally:
        subprocess.run(["umount", str(mnt)], check=False)
        if not wait_pid_exit(pid, 120):
            os.kill(pid, 9)
    assert not is_mounted(mnt)
    # The helper form (what mount.fuse3 runs) mounts the same filesystem again.
    run(str(store), str(mnt), "-o", f"rw,nodev,nosuid,cache_dir={cache}")
    pid = daemon_pid(cache)
    try:
        assert (mnt / "hello").read_text() == "world"
    finally:
        subprocess.run(["umount", str(mnt)], check=False)
        if not wait_pid_exit(pid, 120):
            os.kill(pid, 9)


def test_unknown_option_is_named(tmp_path):
    run("format", str(tmp_path / "s"))
    r = run("mount", str(tmp_path / "s"), str(tmp_path), "-o", "cache_dir=/tmp/x,frobnicate=3", check=False)
    assert r.returncode != 0
    assert "unknown option 'frobnicate'" in r.stderr
    assert not is_mounted(tmp_path)


@pytest.mark.parametrize("options, message", [
    ("cache_large_writes=yes", "option 'cache_large_writes' takes no value"),
    ("ro,cache_large_writes", "option 'cache_large_writes' applies to read-write mounts"),
])
def test_misused_flag_is_named(tmp_path, options, message):
    run("format", str(tmp_path / "s"))
    r = run("mount", str(tmp_path / "s"), str(tmp_path), "-o", f"cache_dir={tmp_path}/c,{options}", check=False)
    assert r.returncode != 0 and not is_mounted(tmp_path)
    assert message in r.stderr and r.stderr.count("\n") == 1, r.stderr


def test_unformatted_source_says_to_format(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "mnt").mkdir()
    r = run("mount", str(tmp_path / "empty"), str(tmp_path / "mnt"), "-o", f"cache_dir={tmp_path}/c", check=False)
    assert r.returncode != 0
    assert "mossaicfs format" in r.stderr


def test_format_refuses_an_existing_filesystem_without_force(tmp_path):
    run("format", str(tmp_path / "s"))
    r = run("format", str(tmp_path / "s"), check=False)
    assert r.returncode != 0 and "already holds a mossaicfs filesystem" in r.stderr
    assert run("format", "--force", str(tmp_path / "s")).returncode == 0


def test_version_and_help():
    assert run("--version").stdout.startswith("mossaicfs ")
    helptext = run("mount", "--help").stdout
    assert "cache_dir=" in helptext and "MOUNTPOINT" in helptext.upper()
    assert os.access(BIN, os.X_OK)
