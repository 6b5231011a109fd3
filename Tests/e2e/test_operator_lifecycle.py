"""An operator's first day (issue 22): the lifecycle of a mount as the command line shows it.

- `mossaicfs umount` returns once the daemon has stored everything and exited; after a plain
  umount(8), which returns before that, fsck, gc and mount wait for the finishing daemon
  instead of failing, and unmount -> mount of one cache_dir in a loop never fails.
- The daemon's log goes where `-o log=` says, at `-o log_level=`, with a level and an ISO-8601
  time on every line; without /dev/log a background daemon logs into its cache_dir.
- Subcommands are explicit (a typo is one line with "did you mean"), the forms mount(8) and
  umount(8) use still work.
- Read-only commands pointed at a directory that is not a store create nothing there, and a
  mount over a non-empty directory or over a mount is refused unless `-o nonempty`.

Waiting is on real events: the readiness of `mount`, process exit, a line a command prints.
A daemon is held in its finishing phase by stalling the S3 store it publishes its final
snapshot to (fault_proxy.py), not by timing.
"""
import os
import re
import subprocess
import uuid

import pytest

from fault_proxy import FaultProxy
from mossaic import BIN, EXIT_TIMEOUT, is_mounted, run, s3_env, wait_pid_exit, write_fsynced
from s3server import MotoServer

LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d "
                      r"(trace|debug|info|notice|warning|error|critical) mossaicfs\[\d+\]: ")


def daemon_pid(cache):
    return int((cache / "lock").read_text().splitlines()[0])


def stop_daemon(mnt, cache):
    """Unmounts `mnt` if it is mounted and waits for the daemon holding `cache`, by its pid."""
    pid = None
    try:
        pid = daemon_pid(cache)
    except (OSError, ValueError, IndexError):
        pass
    if is_mounted(mnt):
        subprocess.run(["umount", str(mnt)], capture_output=True)
    if pid is not None and not wait_pid_exit(pid, EXIT_TIMEOUT):
        os.kill(pid, 9)


def tree(path):
    """Every entry under `path` (and `path` itself) with its mode, size and mtime."""
    out = {".": os.lstat(path).st_mode}
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            p = os.path.join(root, name)
            st = os.lstat(p)
            out[os.path.relpath(p, path)] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return out


# --- 1. umount returns when everything is stored; nothing fails right after it -------------


@pytest.fixture
def stallable_s3():
    """moto behind a fault proxy that can hold every request (`proxy.outage("stall")`)."""
    with MotoServer(bucket="lifecycle-e2e") as server:
        proxy = FaultProxy(server.upstream_endpoint, rate=0.0).start()
        try:
            yield server, proxy
        finally:
            proxy.stop()


class StalledDaemon:
    """A background mount of an S3 filesystem whose daemon talks to the store through the
    proxy, so stalling the proxy holds the daemon in its finishing phase after an unmount.
    Commands under test talk to moto directly (`direct`)."""

    def __init__(self, server, proxy, tmp_path):
        self.proxy = proxy
        self.source = f"s3://{server.bucket}/fs-{uuid.uuid4().hex[:8]}"
        self.direct = s3_env(server, AWS_ENDPOINT_URL=server.upstream_endpoint)
        self.through_proxy = s3_env(server, AWS_ENDPOINT_URL=proxy.endpoint)
        self.mnt, self.cache = tmp_path / "mnt", tmp_path / "cache"
        self.mnt.mkdir()
        run("format", self.source, env=self.direct)
        # No periodic snapshot: the file written below is published by the final one.
        run("mount", self.source, str(self.mnt), "-o", f"cache_dir={self.cache},meta_interval=3600",
            env=self.through_proxy)
        self.pid = daemon_pid(self.cache)

    def write_and_stall(self):
        write_fsynced(self.mnt / "kept", b"stored before the unmount returned\n")
        self.proxy.outage("stall")

    def run_while_stalled(self, args, waiting, while_waiting=lambda p: None, env=None):
        """Starts `mossaicfs ARGS`, reads the line it must say while the daemon cannot finish
        (`waiting`), calls `while_waiting(process)`, lifts the stall and returns (status,
        stdout, rest of stderr) once the command has exited."""
        p = subprocess.Popen([BIN, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            said = p.stderr.readline()
            assert waiting in said, said + p.stderr.read()
            assert p.poll() is None and not wait_pid_exit(self.pid, 0)
            while_waiting(p)
            self.proxy.restore()
            out, err = p.communicate(timeout=EXIT_TIMEOUT)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        return p.returncode, out, err

    def cleanup(self):
        self.proxy.restore()
        stop_daemon(self.mnt, self.cache)
        if not wait_pid_exit(self.pid, EXIT_TIMEOUT):
            os.kill(self.pid, 9)


def test_mossaicfs_umount_returns_once_the_daemon_has_stored_everything(stallable_s3, tmp_path):
    server, proxy = stallable_s3
    d = StalledDaemon(server, proxy, tmp_path)
    try:
        d.write_and_stall()
        # The kernel mount goes at once; umount says it waits, and keeps waiting while the
        # daemon cannot publish its final snapshot.
        def mount_gone(_):
            assert not is_mounted(d.mnt)
        code, out, err = d.run_while_stalled(["umount", str(d.mnt)], f"waiting for the daemon (pid {d.pid}) to finish storing",
                                             mount_gone)
        assert code == 0, err
        assert err == "" and out == ""
        assert wait_pid_exit(d.pid, 0), "umount returned before the daemon exited"
        # The final snapshot, published after umount began waiting, is the store's HEAD.
        listing = run("snapshots", d.source, env=d.direct).stdout.splitlines()
        head = [line for line in listing if line.endswith("HEAD")]
        assert len(head) == 1 and head[0].split()[2] == "1", listing
    finally:
        d.cleanup()


def test_mossaicfs_umount_then_fsck_at_once_on_a_local_store(tmp_path):
    store, mnt, cache = tmp_path / "store", tmp_path / "mnt", tmp_path / "cache"
    mnt.mkdir()
    run("format", str(store))
    run("mount", str(store), str(mnt), "-o", f"cache_dir={cache}")
    pid = daemon_pid(cache)
    try:
        (mnt / "file").write_bytes(os.urandom(300_000))
        r = run("umount", str(mnt), check=False)
        assert r.returncode == 0 and r.stderr == "", r.stderr
        assert not is_mounted(mnt) and wait_pid_exit(pid, 0)
        r = run("fsck", str(store), "-o", f"cache_dir={cache}", check=False)
        assert r.returncode == 0 and r.stdout.strip().endswith(": clean"), r.stdout + r.stderr
        assert "in use" not in r.stderr and "waiting" not in r.stderr
    finally:
        stop_daemon(mnt, cache)


@pytest.mark.parametrize("command", ["fsck", "gc", "mount"])
def test_a_command_right_after_umount_waits_for_the_finishing_daemon(stallable_s3, tmp_path, command):
    server, proxy = stallable_s3
    d = StalledDaemon(server, proxy, tmp_path)
    second = tmp_path / "mnt2"
    second.mkdir()
    try:
        d.write_and_stall()
        subprocess.run(["umount", str(d.mnt)], check=True)   # umount(8): returns at once
        args = {"fsck": ["fsck", d.source, "-o", f"cache_dir={d.cache}"],
                "gc": ["gc", d.source, "-o", f"cache_dir={d.cache}"],
                "mount": ["mount", d.source, str(second), "-o", f"cache_dir={d.cache}"]}[command]
        code, out, err = d.run_while_stalled(args, f"waiting for the previous daemon (pid {d.pid}) to finish storing",
                                             env=d.direct)
        assert code == 0, out + err
        assert "in use" not in err
        assert wait_pid_exit(d.pid, 0)
        if command == "fsck":
            assert out.strip().endswith(": clean"), out
        if command == "mount":
            try:
                assert (second / "kept").read_bytes() == b"stored before the unmount returned\n"
            finally:
                stop_daemon(second, d.cache)
    finally:
        stop_daemon(second, d.cache)
        d.cleanup()


@pytest.mark.parametrize("command", ["fsck", "gc"])
def test_a_daemon_serving_its_mount_is_still_refused_at_once(tmp_path, command):
    store, mnt, cache = tmp_path / "store", tmp_path / "mnt", tmp_path / "cache"
    mnt.mkdir()
    run("format", str(store))
    run("mount", str(store), str(mnt), "-o", f"cache_dir={cache}")
    try:
        r = run(command, str(store), "-o", f"cache_dir={cache}", check=False)
        assert r.returncode == 1
        assert "in use by another mossaicfs process" in r.stderr and f"mounted on {mnt}" in r.stderr, r.stderr
        assert r.stderr.count("\n") == 1 and "waiting" not in r.stderr
        assert is_mounted(mnt)
    finally:
        stop_daemon(mnt, cache)


def test_umount_then_mount_of_one_cache_dir_50_times_never_fails(tmp_path):
    store, mnt, cache = tmp_path / "store", tmp_path / "mnt", tmp_path / "cache"
    mnt.mkdir()
    run("format", str(store))
    run("mount", str(store), str(mnt), "-o", f"cache_dir={cache}")
    try:
        for i in range(50):
            (mnt / f"round-{i}").write_text(f"{i}\n")
            pid = daemon_pid(cache)
            subprocess.run(["umount", str(mnt)], check=True)   # umount(8), then mount at once
            r = run("mount", str(store), str(mnt), "-o", f"cache_dir={cache}", check=False)
            assert r.returncode == 0, f"round {i}: {r.stderr}"
            # The old daemon's lock goes with its files as the process exits, a moment before the
            # kernel reports the exit itself: the new mount may see the lock free just before.
            assert daemon_pid(cache) != pid and wait_pid_exit(pid, 10)
            assert sorted(p.name for p in mnt.iterdir()) == sorted(f"round-{j}" for j in range(i + 1))
        assert all((mnt / f"round-{i}").read_text() == f"{i}\n" for i in range(50))
    finally:
        stop_daemon(mnt, cache)


# --- 2. logs that can be read ----------------------------------------------------------------


def mount_cycle(tmp_path, name, options=()):
    """Formats a store, mounts it in the background with `options`, looks up a missing name (a
    debug-level line), writes a file and unmounts with `mossaicfs umount`."""
    store, mnt, cache = tmp_path / f"{name}-store", tmp_path / f"{name}-mnt", tmp_path / f"{name}-cache"
    mnt.mkdir()
    run("format", str(store))
    run("mount", str(store), str(mnt), "-o", ",".join([f"cache_dir={cache}", *options]))
    try:
        assert not (mnt / "missing").exists()
        (mnt / "file").write_text("x")
        run("umount", str(mnt))
    finally:
        stop_daemon(mnt, cache)
    return cache


def test_log_file_lines_have_time_and_level_and_log_level_filters(tmp_path):
    debug_log, warning_log = tmp_path / "debug.log", tmp_path / "warning.log"
    mount_cycle(tmp_path, "debug", [f"log={debug_log}", "log_level=debug"])
    lines = debug_log.read_text().splitlines()
    assert lines and all(LOG_LINE.match(line) for line in lines), lines
    levels = {LOG_LINE.match(line).group(1) for line in lines}
    assert {"debug", "info"} <= levels, levels
    assert any(" info " in line and ": mounted " in line for line in lines)
    assert any(" info " in line and ": unmounted " in line for line in lines)

    mount_cycle(tmp_path, "warning", [f"log={warning_log}", "log_level=warning"])
    text = warning_log.read_text()
    assert " info " not in text and " debug " not in text, text
    assert all(LOG_LINE.match(line) for line in text.splitlines())


def test_a_background_daemon_logs_to_its_cache_dir_without_dev_log(tmp_path):
    cache = mount_cycle(tmp_path, "default")
    logfile = cache / "mossaicfs.log"
    if os.path.exists("/dev/log"):
        # syslog listens: the default goes there, and nothing into the cache_dir.
        assert not logfile.exists()
        return
    lines = logfile.read_text().splitlines()
    assert any(": mounted " in line for line in lines) and any(": unmounted " in line for line in lines), lines
    assert all(LOG_LINE.match(line) for line in lines), lines


@pytest.mark.parametrize("option, message", [
    ("log=relative.log", "option 'log': 'relative.log' is not stderr, syslog or an absolute file path"),
    ("log_level=loud", "option 'log_level': 'loud' is not one of trace, debug, info, notice, warning, error, critical"),
    ("log=/nonexistent-dir/x.log", "option 'log': cannot open /nonexistent-dir/x.log"),
])
def test_bad_log_options_are_one_line(tmp_path, option, message):
    run("format", str(tmp_path / "s"))
    (tmp_path / "m").mkdir()
    r = run("mount", str(tmp_path / "s"), str(tmp_path / "m"), "-o", f"cache_dir={tmp_path}/c,{option}", check=False)
    try:
        assert r.returncode == 1 and message in r.stderr and r.stderr.count("\n") == 1, r.stderr
        assert not is_mounted(tmp_path / "m")
    finally:
        stop_daemon(tmp_path / "m", tmp_path / "c")


# --- 3. explicit subcommands -----------------------------------------------------------------


@pytest.mark.parametrize("args, message", [
    (["stauts", "/mnt/x"], "unknown command 'stauts'; did you mean 'status'?"),
    (["unmount", "/mnt/x"], "unknown command 'unmount'; did you mean 'umount'?"),
    (["frobnicate"], "unknown command 'frobnicate' (commands: mount, umount, format, status, info, warmup, fsck, gc, snapshots, snapshot"),
    (["store", "mnt"], "unknown command 'store'"),   # the helper form needs an absolute SOURCE
])
def test_an_unknown_subcommand_is_one_line(tmp_path, args, message):
    r = subprocess.run([BIN, *args], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 1
    assert r.stderr.startswith(f"mossaicfs: {message}") and r.stderr.count("\n") == 1, r.stderr
    assert r.stdout == ""
    assert os.listdir(tmp_path) == []


def test_the_helper_forms_of_mount_and_umount_still_work(tmp_path):
    store, mnt, cache = tmp_path / "store", tmp_path / "mnt", tmp_path / "cache"
    mnt.mkdir()
    run("format", str(store))
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name in ["mossaicfs", "mount.fuse.mossaicfs", "umount.fuse.mossaicfs"]:
        (bindir / name).symlink_to(BIN)
    try:
        # What mount.fuse3 runs for `mount -t fuse.mossaicfs` and fstab when mossaicfs is in its
        # (sanitised) PATH; test_package.py runs it through mount(8) with the package installed.
        r = subprocess.run([str(bindir / "mossaicfs"), str(store), str(mnt), "-o", f"nodev,cache_dir={cache}"],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        (mnt / "a").write_text("a")
        # What umount(8) runs when umount.fuse.mossaicfs is installed.
        pid = daemon_pid(cache)
        r = subprocess.run([str(bindir / "umount.fuse.mossaicfs"), str(mnt), "-n", "-v"], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        assert not is_mounted(mnt) and wait_pid_exit(pid, 0)
        # What mount(8) runs when mount.fuse.mossaicfs is installed (the package's helper).
        r = subprocess.run([str(bindir / "mount.fuse.mossaicfs"), str(store), str(mnt), "-n", "-o", f"rw,cache_dir={cache}"],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        assert (mnt / "a").read_text() == "a"
    finally:
        stop_daemon(mnt, cache)


def test_umount_of_something_that_is_not_a_mossaicfs_mount_is_one_line(tmp_path):
    r = run("umount", str(tmp_path), check=False)
    assert r.returncode == 1 and r.stderr == f"mossaicfs: {tmp_path} is not mounted\n"
    r = run("umount", "/proc", check=False)
    assert r.returncode == 1 and r.stderr == "mossaicfs: /proc is a proc mount, not mossaicfs\n"
    assert os.path.exists("/proc/self")


# --- 4. tools that say what they do, and change nothing they should not ---------------------


@pytest.mark.parametrize("command", [["status"], ["snapshots"], ["fsck"], ["gc", "--dry-run"]])
def test_a_read_only_command_on_a_directory_that_is_not_a_store_creates_nothing(tmp_path, command):
    target = tmp_path / "notastore"
    (target / "sub").mkdir(parents=True)
    (target / "data.txt").write_text("mine\n")
    before = tree(target)
    r = run(*command, str(target), "-o", f"cache_dir={tmp_path}/cache", check=False) if command[0] != "snapshots" \
        else run(*command, str(target), check=False)
    assert r.returncode == 1
    assert r.stderr == f"mossaicfs: {target} is not a mossaicfs store\n", r.stderr
    assert tree(target) == before
    assert not (tmp_path / "cache").exists()
    # A directory that does not exist is one line too, without advice to format it.
    r = run(*command, str(tmp_path / "absent"), check=False)
    assert r.returncode == 1 and r.stderr == f"mossaicfs: {tmp_path / 'absent'}: no such directory\n", r.stderr


def test_mount_of_a_directory_that_is_not_a_store_says_format_and_creates_nothing(tmp_path):
    target, mnt = tmp_path / "notastore", tmp_path / "mnt"
    target.mkdir()
    mnt.mkdir()
    r = run("mount", str(target), str(mnt), "-o", f"cache_dir={tmp_path}/cache", check=False)
    try:
        assert r.returncode == 1 and f"mossaicfs format {target}" in r.stderr and r.stderr.count("\n") == 1, r.stderr
        assert os.listdir(target) == []
        # ... so that formatting it next is not refused as "not empty".
        run("format", str(target))
    finally:
        stop_daemon(mnt, tmp_path / "cache")


def test_mount_over_a_non_empty_directory_is_refused_unless_nonempty(tmp_path):
    store, mnt, cache = tmp_path / "store", tmp_path / "mnt", tmp_path / "cache"
    mnt.mkdir()
    (mnt / "hidden").write_text("under the mount\n")
    run("format", str(store))
    r = run("mount", str(store), str(mnt), "-o", f"cache_dir={cache}", check=False)
    try:
        assert r.returncode == 1 and r.stderr.count("\n") == 1, r.stderr
        assert f"mountpoint {mnt} is not empty" in r.stderr and "-o nonempty" in r.stderr
        assert not is_mounted(mnt)
        run("mount", str(store), str(mnt), "-o", f"cache_dir={cache},nonempty")
        assert is_mounted(mnt) and not (mnt / "hidden").exists()
        run("umount", str(mnt))
        assert (mnt / "hidden").read_text() == "under the mount\n"
    finally:
        stop_daemon(mnt, cache)


def test_mount_over_an_existing_mount_is_refused_unless_nonempty(tmp_path):
    store, mnt = tmp_path / "store", tmp_path / "mnt"
    mnt.mkdir()
    run("format", str(store))
    run("format", str(tmp_path / "other"))
    run("mount", str(store), str(mnt), "-o", f"cache_dir={tmp_path}/c1")
    try:
        assert os.listdir(mnt) == []   # an empty filesystem: refused as a mount, not as non-empty
        r = run("mount", str(tmp_path / "other"), str(mnt), "-o", f"cache_dir={tmp_path}/c2", check=False)
        assert r.returncode == 1 and r.stderr.count("\n") == 1, r.stderr
        assert f"{mnt} is already a mount point (fuse.mossaicfs from {store})" in r.stderr and "-o nonempty" in r.stderr
        with open("/proc/self/mounts") as f:
            assert sum(line.split()[1] == str(mnt) for line in f) == 1
    finally:
        stop_daemon(mnt, tmp_path / "c2")
        stop_daemon(mnt, tmp_path / "c1")
