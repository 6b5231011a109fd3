"""The command line guards what it is pointed at: format takes only an empty directory (or a
filesystem, or --force) and makes it private, every numeric option has a range checked before a
daemon starts, and only a mount's owner or root may send it control requests."""
import os
import shutil
import stat
import subprocess
import tempfile

import pytest

from mossaic import BIN, Mount, is_mounted, run, wait_pid_exit

NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def tree(path):
    """Every entry under `path` with its mode, size and mtime, and `path`'s own mode."""
    entries = {}
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            p = os.path.join(root, name)
            st = os.lstat(p)
            entries[os.path.relpath(p, path)] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return stat.S_IMODE(os.stat(path).st_mode), entries


def test_format_refuses_a_non_empty_directory_and_leaves_it_untouched(tmp_path):
    target = tmp_path / "etc"
    (target / "sub").mkdir(parents=True)
    (target / "passwd").write_text("root:x:0:0\n")
    (target / "sub" / "conf").write_text("x\n")
    os.chmod(target, 0o755)
    before = tree(target)
    r = run("format", str(target), check=False)
    assert r.returncode == 1
    assert "is not empty" in r.stderr and "--force" in r.stderr and r.stderr.count("\n") == 1, r.stderr
    assert tree(target) == before
    # --force formats it all the same, and keeps what was there.
    r = run("format", "--force", str(target))
    assert (target / "mossaicfs.json").is_file()
    assert (target / "passwd").read_text() == "root:x:0:0\n" and (target / "sub" / "conf").read_text() == "x\n"
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o700


def test_format_makes_the_store_directory_private(tmp_path):
    shared = tmp_path / "shared"
    (shared / "lost+found").mkdir(parents=True)  # as on a fresh ext4: still empty for format
    os.chmod(shared, 0o777)  # explicitly: mkdir's mode passes through the umask
    r = run("format", str(shared))
    assert stat.S_IMODE(os.stat(shared).st_mode) == 0o700
    said = [line for line in r.stdout.splitlines() if "mode" in line]
    assert len(said) == 1 and "0777" in said[0] and "0700" in said[0], r.stdout
    # Refusing to format it again changes nothing, its mode included.
    os.chmod(shared, 0o777)
    before = tree(shared)
    r = run("format", str(shared), check=False)
    assert r.returncode == 1 and "already holds a mossaicfs filesystem" in r.stderr
    assert tree(shared) == before
    # A directory format creates is 0700 from the start; nothing to say about its mode.
    r = run("format", str(tmp_path / "new" / "store"))
    assert stat.S_IMODE(os.stat(tmp_path / "new" / "store").st_mode) == 0o700
    assert "mode" not in r.stdout


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


@pytest.fixture
def shared_mount(tmp_path):
    """A root mount with allow_other on a mountpoint every user can reach (tmp_path is not)."""
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv is needed to run the client as nobody")
    run("format", str(tmp_path / "store"))
    outer = tempfile.mkdtemp(prefix="mossaic-shared-")
    os.chmod(outer, 0o755)
    mount = Mount(tmp_path / "store", os.path.join(outer, "mnt"), tmp_path / "cache", ["allow_other"],
                  log=tmp_path / "daemon.log")
    try:
        mount.start()
        os.chmod(mount.mountpoint, 0o777)  # the filesystem's root: nobody may write files too
        yield mount
    finally:
        mount.stop()
        shutil.rmtree(outer)


def as_nobody(*args):
    return subprocess.run([*NOBODY, BIN, *args], capture_output=True, text=True, cwd="/")


@pytest.mark.parametrize("command", ["snapshot", "status"])
def test_control_requests_need_the_mounts_owner_or_root(shared_mount, command):
    mnt = shared_mount.mountpoint
    # nobody uses the filesystem itself freely (allow_other) ...
    done = subprocess.run([*NOBODY, "sh", "-c", f"echo hello > {mnt}/nobodys"], capture_output=True, text=True, cwd="/")
    assert done.returncode == 0, done.stderr
    # ... but may not ask its daemon anything.
    r = as_nobody(command, mnt)
    assert r.returncode == 1
    assert "only the user who mounted it, or root" in r.stderr and r.stderr.count("\n") == 1, r.stderr
    assert r.stdout == ""
    # The owner (root here) may.
    r = run(command, mnt)
    assert r.returncode == 0
    assert r.stdout.startswith("snapshot ") if command == "snapshot" else "mounted read-write" in r.stdout
