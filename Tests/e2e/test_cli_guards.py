"""The command line guards what it is pointed at: every numeric option has a range checked
before a daemon starts."""
import os
import subprocess

import pytest

from mossaic import is_mounted, run, wait_pid_exit


def daemons_using(path):
    """PIDs of processes whose command line mentions `path` (unique to the test)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if str(path).encode() in f.read():
                    pids.append(int(entry))
        except OSError:
            continue
    return pids


@pytest.mark.parametrize("option, range_text", [
    ("lease_time=99999999999", "from 3 to 86400"),
    ("lease_time=2", "from 3 to 86400"),
    ("meta_interval=1e12", "from 0.1 to 86400"),
    ("poll_interval=inf", "from 0.1 to 86400"),
    ("sync_interval=-1", "from 0 to 3600"),
    ("attr_timeout=1e300", "from 0 to 86400"),
    ("entry_timeout=nan", "from 0 to 86400"),
    ("cache_size=2000T", "from 0 to 1024T"),
    ("mem_cache_size=2T", "from 0 to 1T"),
    ("cache_free=9999999T", "from 0 to 1024T"),
    ("staging_size=4K", "from 1M to 1024T"),
])
def test_an_out_of_range_option_is_one_line_and_no_daemon_stays(tmp_path, option, range_text):
    store, mnt, cache = tmp_path / "store", tmp_path / "mnt", tmp_path / "cache"
    mnt.mkdir()
    run("format", str(store))
    r = run("mount", str(store), str(mnt), "-o", f"cache_dir={cache},{option}", check=False)
    try:
        assert r.returncode == 1
        key = option.split("=")[0]
        assert f"option '{key}'" in r.stderr and range_text in r.stderr and r.stderr.count("\n") == 1, r.stderr
        assert not is_mounted(mnt)
        assert daemons_using(cache) == []
    finally:
        # Today's code may have mounted it (or died halfway): leave nothing behind either way.
        if is_mounted(mnt):
            pids = daemons_using(cache)
            subprocess.run(["umount", str(mnt)], check=False)
            for pid in pids:
                if not wait_pid_exit(pid, 120):
                    os.kill(pid, 9)


@pytest.mark.parametrize("command", ["gc", "fsck"])
def test_gc_and_fsck_check_option_ranges_too(tmp_path, command):
    run("format", str(tmp_path / "store"))
    r = run(command, str(tmp_path / "store"), "-o", f"cache_dir={tmp_path}/cache,lease_time=99999999999", check=False)
    assert r.returncode == 1
    assert "option 'lease_time'" in r.stderr and "from 3 to 86400" in r.stderr and r.stderr.count("\n") == 1, r.stderr
