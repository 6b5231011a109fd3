"""The Debian package: its contents, and mounting through it with mount(8) and an fstab file,
with no HOME and a minimal PATH (as at boot). Built by `make deb`; MOSSAICFS_DEB names it."""
import os
import subprocess

import pytest

from mossaic import is_mounted, run, wait_pid_exit

DEB = os.environ.get("MOSSAICFS_DEB")
BOOT_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}


def dpkg(*args):
    return subprocess.run(["dpkg", *args], capture_output=True, text=True)


@pytest.fixture(scope="module")
def installed():
    if not DEB:
        pytest.skip("MOSSAICFS_DEB is not set: run through `make test`, which builds the package")
    if dpkg("-s", "mossaicfs").returncode == 0:
        pytest.fail("a mossaicfs package is already installed on this machine; this test installs and removes its own")
    r = dpkg("-i", DEB)
    assert r.returncode == 0, r.stderr
    try:
        yield
    finally:
        r = dpkg("-r", "mossaicfs")
        assert r.returncode == 0, r.stderr


def test_package_contents_and_dependencies():
    if not DEB:
        pytest.skip("MOSSAICFS_DEB is not set: run through `make test`, which builds the package")
    listing = subprocess.run(["dpkg-deb", "-c", DEB], capture_output=True, text=True, check=True).stdout
    for path in ["./usr/bin/mossaicfs", "./usr/sbin/mount.fuse.mossaicfs -> ../bin/mossaicfs",
                 "./usr/sbin/umount.fuse.mossaicfs -> ../bin/mossaicfs",
                 "./usr/share/man/man8/mossaicfs.8.gz", "./usr/share/doc/mossaicfs/examples/fstab",
                 "./usr/share/doc/mossaicfs/examples/mnt-bucket.mount",
                 "./usr/share/doc/mossaicfs/examples/mnt-bucket.automount"]:
        assert path in listing, path
    depends = subprocess.run(["dpkg-deb", "-f", DEB, "Depends"], capture_output=True, text=True, check=True).stdout
    for package in ["fuse3", "libfuse3-3", "libsqlite3-0", "libcurl4", "libssl3"]:
        assert package in depends


def test_packaged_binary_needs_no_swift_runtime(tmp_path):
    if not DEB:
        pytest.skip("MOSSAICFS_DEB is not set: run through `make test`, which builds the package")
    subprocess.run(["dpkg-deb", "-x", DEB, str(tmp_path)], check=True)
    libs = subprocess.run(["ldd", str(tmp_path / "usr/bin/mossaicfs")], capture_output=True, text=True, check=True).stdout
    assert "not found" not in libs, libs
    assert "libswift" not in libs and "libFoundation" not in libs, libs


def daemon_pid(cache):
    return int((cache / "lock").read_text().splitlines()[0])


def unmount_and_wait(mnt, cache):
    pid = daemon_pid(cache)
    subprocess.run(["umount", str(mnt)], check=True)
    assert wait_pid_exit(pid, 120), "daemon did not exit after umount"
    assert not is_mounted(mnt)


def test_mount_t_and_fstab_through_the_package(installed, tmp_path):
    store, mnt, cache = tmp_path / "store", tmp_path / "mnt", tmp_path / "cache"
    mnt.mkdir()
    subprocess.run(["mossaicfs", "format", str(store)], check=True, env=BOOT_ENV, capture_output=True)
    # The installed man page renders.
    assert subprocess.run(["man", "--warnings", "mossaicfs"], capture_output=True, text=True, env=BOOT_ENV).returncode == 0

    # mount -t fuse.mossaicfs, with fstab-only options that must be ignored.
    r = subprocess.run(["mount", "-t", "fuse.mossaicfs", str(store), str(mnt), "-o",
                        f"cache_dir={cache},_netdev,nofail,noauto,x-systemd.automount,comment=test"],
                       capture_output=True, text=True, env=BOOT_ENV)
    assert r.returncode == 0, r.stderr
    try:
        assert is_mounted(mnt)
        (mnt / "f").write_text("through mount(8)")
    finally:
        unmount_and_wait(mnt, cache)

    # mount -T with a test fstab: only the mountpoint on the command line.
    fstab = tmp_path / "fstab"
    fstab.write_text(f"{store} {mnt} fuse.mossaicfs defaults,nofail,cache_dir={cache} 0 0\n")
    r = subprocess.run(["mount", "-T", str(fstab), str(mnt)], capture_output=True, text=True, env=BOOT_ENV)
    assert r.returncode == 0, r.stderr
    try:
        assert (mnt / "f").read_text() == "through mount(8)"
        with open("/proc/self/mounts") as m:
            line = next(l for l in m if l.split()[1] == str(mnt))
        assert line.split()[2] == "fuse.mossaicfs" and line.split()[0] == str(store)
    finally:
        unmount_and_wait(mnt, cache)

    # A failing mount through mount(8) exits non-zero with the reason.
    r = subprocess.run(["mount", "-t", "fuse.mossaicfs", str(tmp_path / "nothing"), str(mnt), "-o", f"cache_dir={cache}"],
                       capture_output=True, text=True, env=BOOT_ENV)
    assert r.returncode != 0 and "mossaicfs format" in r.stderr
    assert not is_mounted(mnt)
