"""The Debian package, tested in roots of its own and never through this machine's dpkg
database, so it runs whether or not mossaicfs is installed here: its contents and metadata,
lintian, installation and removal by dpkg in a scratch root (`dpkg --root`, with its own
database), and mounting through it with mount(8) and an fstab file, with no HOME and a minimal
PATH (as at boot), in a private mount namespace where the package's files are laid over /usr.

The package is `make deb`'s (built once, then reused while its sources are unchanged);
MOSSAICFS_DEB names another one."""
import gzip
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from mossaic import REPO, is_mounted, wait_pid_exit

BOOT_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
# Where the package's files are laid over the machine's, inside the test's mount namespace.
OVERLAID = ["usr/bin", "usr/sbin", "usr/share/man/man8"]


@pytest.fixture(scope="module")
def deb():
    if os.environ.get("MOSSAICFS_DEB"):
        return Path(os.environ["MOSSAICFS_DEB"])
    r = subprocess.run(["make", "--no-print-directory", "-s", "deb"], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, f"make deb failed:\n{r.stdout}\n{r.stderr}"
    path = REPO / r.stdout.strip().splitlines()[-1]
    assert path.suffix == ".deb" and path.is_file(), r.stdout
    return path


@pytest.fixture(scope="module")
def extracted(deb, tmp_path_factory):
    root = tmp_path_factory.mktemp("extracted")
    subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    return root


def metadata():
    """packaging/metadata, the one place the package's identity is written."""
    text = (REPO / "packaging" / "metadata").read_text()
    return {k: shlex.split(v)[0] if shlex.split(v) else "" for k, v in re.findall(r"^([A-Z]+)=(.*)$", text, re.M)}


def field(deb, name):
    return subprocess.run(["dpkg-deb", "-f", str(deb), name], capture_output=True, text=True, check=True).stdout.strip()


def machine_dpkg_state():
    """What this machine's dpkg database says of mossaicfs: the tests must not change it."""
    r = subprocess.run(["dpkg-query", "-W", "-f", "${Status} ${Version}", "mossaicfs"], capture_output=True, text=True)
    return r.returncode, r.stdout


def test_package_contents_and_dependencies(deb):
    listing = subprocess.run(["dpkg-deb", "-c", str(deb)], capture_output=True, text=True, check=True).stdout
    for path in ["./usr/bin/mossaicfs", "./usr/sbin/mount.fuse.mossaicfs -> ../bin/mossaicfs",
                 "./usr/sbin/umount.fuse.mossaicfs -> ../bin/mossaicfs",
                 "./usr/share/man/man8/mossaicfs.8.gz", "./usr/share/doc/mossaicfs/examples/fstab",
                 "./usr/share/doc/mossaicfs/examples/mnt-bucket.mount",
                 "./usr/share/doc/mossaicfs/examples/mnt-bucket.automount",
                 "./usr/share/doc/mossaicfs/copyright", "./usr/share/doc/mossaicfs/changelog.Debian.gz"]:
        assert path in listing, path
    depends = field(deb, "Depends")
    for package in ["fuse3", "libfuse3-3", "libsqlite3-0", "libpq5", "libcurl4", "libssl3", "libzstd1"]:
        assert package in depends
    # Only control and md5sums: no maintainer scripts, so installing runs nothing of ours.
    control = subprocess.run(["dpkg-deb", "--ctrl-tarfile", str(deb)], capture_output=True, check=True).stdout
    names = subprocess.run(["tar", "-t"], input=control, capture_output=True, check=True).stdout.decode().split()
    assert sorted(n.removeprefix("./") for n in names if n not in ("./", ".")) == ["control", "md5sums"], names


def test_package_identity_comes_from_packaging_metadata(deb, extracted):
    meta = metadata()
    assert meta["MAINTAINER"] and "localhost" not in meta["MAINTAINER"]
    assert field(deb, "Maintainer") == meta["MAINTAINER"]
    # Homepage only when the project has one (packaging/metadata says why it may be empty).
    assert field(deb, "Homepage") == meta["HOMEPAGE"]
    doc = extracted / "usr/share/doc/mossaicfs"
    copyright = (doc / "copyright").read_text()
    assert copyright.startswith("Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n")
    assert f"Upstream-Contact: {meta['MAINTAINER']}\n" in copyright
    changelog = gzip.decompress((doc / "changelog.Debian.gz").read_bytes()).decode()
    version = field(deb, "Version")
    assert changelog.startswith(f"mossaicfs ({version}) ")
    assert f" -- {meta['MAINTAINER']}  " in changelog
    built = subprocess.run([str(extracted / "usr/bin/mossaicfs"), "--version"], capture_output=True, text=True, check=True)
    assert version.rsplit("-", 1)[0] == built.stdout.split()[1]


def test_lintian_finds_nothing_to_complain_about(deb):
    if subprocess.run(["sh", "-c", "command -v lintian"], capture_output=True).returncode != 0:
        pytest.skip("lintian is not installed (make deps installs it)")
    r = subprocess.run(["lintian", "--tag-display-limit", "0", str(deb)], capture_output=True, text=True)
    tags = [line for line in r.stdout.splitlines() if re.match(r"^[EW]: ", line)]
    assert not tags, "\n".join(tags)
    assert r.returncode == 0, r.stdout + r.stderr


def test_packaged_binary_needs_no_swift_runtime(extracted):
    libs = subprocess.run(["ldd", str(extracted / "usr/bin/mossaicfs")], capture_output=True, text=True, check=True).stdout
    assert "not found" not in libs, libs
    assert "libswift" not in libs and "libFoundation" not in libs, libs


def test_dpkg_installs_and_removes_it_in_a_root_of_its_own(deb, tmp_path):
    before = machine_dpkg_state()
    root = tmp_path / "root"
    admin = root / "var/lib/dpkg"
    for d in ("info", "updates", "triggers"):
        (admin / d).mkdir(parents=True)
    (admin / "status").write_text("")
    (admin / "available").write_text("")

    def dpkg(*args):
        # The machine's libraries are not in this root's database: dependencies are the
        # machine's business (checked above by name), not this root's.
        return subprocess.run(["dpkg", f"--root={root}", "--force-depends", *args], capture_output=True, text=True)

    r = dpkg("-i", str(deb))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "install ok installed" in dpkg("-s", "mossaicfs").stdout
    assert (root / "usr/bin/mossaicfs").is_file()
    assert os.readlink(root / "usr/sbin/mount.fuse.mossaicfs") == "../bin/mossaicfs"
    r = dpkg("--purge", "mossaicfs")
    assert r.returncode == 0, r.stdout + r.stderr
    left = [p for p in root.rglob("*") if p.is_file() and admin not in p.parents]
    assert not left, left
    assert machine_dpkg_state() == before, "the machine's dpkg database changed"


def test_mount_t_and_fstab_through_the_package(extracted, tmp_path):
    before = machine_dpkg_state()
    cache = tmp_path / "cache"
    r = subprocess.run(["unshare", "--mount", "--propagation", "private", "--",
                        sys.executable, __file__, str(extracted), str(tmp_path)],
                       capture_output=True, text=True, timeout=600)
    # The namespace's mounts went with it; a daemon that outlived a failure is stopped by PID.
    lock = cache / "lock"
    if lock.exists() and (pid := lock.read_text().strip()).isdigit() and not wait_pid_exit(int(pid), 0):
        os.kill(int(pid), 9)
        wait_pid_exit(int(pid), 60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "all checks passed" in r.stdout
    assert machine_dpkg_state() == before


# -- run inside the private mount namespace (see test_mount_t_and_fstab_through_the_package) ----

def daemon_pid(cache):
    return int((cache / "lock").read_text().splitlines()[0])


def unmount_and_wait(mnt, cache):
    pid = daemon_pid(cache)
    subprocess.run(["umount", str(mnt)], check=True)
    assert wait_pid_exit(pid, 120), "daemon did not exit after umount"
    assert not is_mounted(mnt)


def mounts_through_the_package(package_root, tmp_path):
    for d in OVERLAID:
        subprocess.run(["mount", "-t", "overlay", "overlay", "-o", f"lowerdir={package_root / d}:/{d}", f"/{d}"], check=True)
    assert os.path.realpath("/usr/sbin/mount.fuse.mossaicfs") == "/usr/bin/mossaicfs"
    assert Path("/usr/bin/mossaicfs").read_bytes() == (package_root / "usr/bin/mossaicfs").read_bytes()

    store, mnt, cache = tmp_path / "store", tmp_path / "mnt", tmp_path / "cache"
    mnt.mkdir()
    subprocess.run(["mossaicfs", "format", str(store)], check=True, env=BOOT_ENV, capture_output=True)
    # The installed man page renders.
    r = subprocess.run(["man", "--warnings", "mossaicfs"], capture_output=True, text=True, env=BOOT_ENV)
    assert r.returncode == 0 and "SYNOPSIS" in r.stdout, r.stderr

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


if __name__ == "__main__":
    mounts_through_the_package(Path(sys.argv[1]), Path(sys.argv[2]))
    print("all checks passed")
