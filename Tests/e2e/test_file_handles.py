"""File handles (name_to_handle_at/open_by_handle_at), what NFS and Samba re-exports and
fanotify use: a handle keeps naming its file or directory after the kernel dropped its caches
and across a remount (a handle is the inode number and generation, both stored), and a deleted
file's handle is ESTALE. Runs as root (open_by_handle_at needs CAP_DAC_READ_SEARCH)."""
import ctypes
import ctypes.util
import errno
import os

import pytest

libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
MAX_HANDLE_SZ = 128
AT_FDCWD = -100
FILES = 3000
DIRECTORIES = 30


class FileHandle(ctypes.Structure):
    _fields_ = [("handle_bytes", ctypes.c_uint), ("handle_type", ctypes.c_int), ("f_handle", ctypes.c_ubyte * MAX_HANDLE_SZ)]


libc.name_to_handle_at.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.POINTER(FileHandle), ctypes.POINTER(ctypes.c_int), ctypes.c_int]
libc.open_by_handle_at.argtypes = [ctypes.c_int, ctypes.POINTER(FileHandle), ctypes.c_int]


def _check(ret):
    if ret < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return ret


def handle_of(path):
    h = FileHandle(handle_bytes=MAX_HANDLE_SZ)
    mount_id = ctypes.c_int()
    _check(libc.name_to_handle_at(AT_FDCWD, os.fsencode(path), ctypes.byref(h), ctypes.byref(mount_id), 0))
    return h


def open_by_handle(mount_fd, h, flags=os.O_RDONLY):
    return _check(libc.open_by_handle_at(mount_fd, ctypes.byref(h), flags))


def drop_caches():
    """Makes the kernel forget every unused dentry and inode, as memory pressure does on a
    busy NFS server: decoding a handle then has to ask the filesystem."""
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3")


def make_tree(root):
    """FILES files in DIRECTORIES directories: ten at the top, each with two below it. Returns
    {relative path: contents} of the files and the relative paths of the directories."""
    dirs = [f"top{i:02d}" if i % 3 == 0 else f"top{i - i % 3:02d}/sub{i:02d}" for i in range(DIRECTORIES)]
    for d in dirs:
        os.makedirs(root / d, exist_ok=True)
    files = {}
    for i in range(FILES):
        rel = f"{dirs[i % len(dirs)]}/f{i:04d}"
        files[rel] = f"file {i}\n".encode()
        (root / rel).write_bytes(files[rel])
    return files, dirs


def check_handles(fs, file_handles, dir_handles, files, dirs):
    """Every handle opens its own file (same inode, same bytes) or directory (same inode, same
    entries, and reconnected to the tree: /proc/self/fd names its path)."""
    mount_fd = os.open(fs.mnt, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for rel, h in file_handles.items():
            fd = open_by_handle(mount_fd, h)
            try:
                assert os.fstat(fd).st_ino == os.stat(fs.mnt / rel).st_ino, rel
                assert os.read(fd, 100) == files[rel], rel
            finally:
                os.close(fd)
        for rel, h in dir_handles.items():
            fd = open_by_handle(mount_fd, h, os.O_RDONLY | os.O_DIRECTORY)
            try:
                assert os.fstat(fd).st_ino == os.stat(fs.mnt / rel).st_ino, rel
                assert sorted(os.listdir(fd)) == sorted(os.listdir(fs.mnt / rel)), rel
                assert os.readlink(f"/proc/self/fd/{fd}") == str(fs.mnt / rel), rel
            finally:
                os.close(fd)
    finally:
        os.close(mount_fd)


def stale(fs, h, flags=os.O_RDONLY):
    mount_fd = os.open(fs.mnt, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with pytest.raises(OSError) as e:
            os.close(open_by_handle(mount_fd, h, flags))
        return e.value.errno == errno.ESTALE
    finally:
        os.close(mount_fd)


def test_handles_survive_dropped_caches_and_a_remount(fs):
    files, dirs = make_tree(fs.mnt)
    file_handles = {rel: handle_of(fs.mnt / rel) for rel in files}
    dir_handles = {rel: handle_of(fs.mnt / rel) for rel in dirs}
    dir_handles["."] = handle_of(fs.mnt)
    dirs = [*dirs, "."]
    check_handles(fs, file_handles, dir_handles, files, dirs)

    drop_caches()
    check_handles(fs, file_handles, dir_handles, files, dirs)

    fs.remount()
    check_handles(fs, file_handles, dir_handles, files, dirs)
    drop_caches()
    check_handles(fs, file_handles, dir_handles, files, dirs)


def test_a_deleted_file_or_directory_is_estale_and_only_that(fs):
    os.makedirs(fs.path("d", "e"))
    for name in ("gone", "kept", "linked", "moved"):
        fs.path("d", name).write_bytes(name.encode())
    os.link(fs.path("d", "linked"), fs.path("linked2"))
    handles = {name: handle_of(fs.path("d", name)) for name in ("gone", "kept", "linked", "moved", "e")}
    os.unlink(fs.path("d", "gone"))
    os.rmdir(fs.path("d", "e"))
    os.unlink(fs.path("d", "linked"))         # still has a name elsewhere
    os.rename(fs.path("d", "moved"), fs.path("moved"))

    for phase in ("cached", "dropped", "remounted"):
        if phase == "dropped":
            drop_caches()
        if phase == "remounted":
            fs.remount()
        assert stale(fs, handles["gone"]), phase
        assert stale(fs, handles["e"], os.O_RDONLY | os.O_DIRECTORY), phase
        mount_fd = os.open(fs.mnt, os.O_RDONLY | os.O_DIRECTORY)
        try:
            for name, path in (("kept", fs.path("d", "kept")), ("linked", fs.path("linked2")), ("moved", fs.path("moved"))):
                fd = open_by_handle(mount_fd, handles[name])
                try:
                    assert os.read(fd, 100) == name.encode(), (phase, name)
                    assert os.fstat(fd).st_ino == os.stat(path).st_ino, (phase, name)
                finally:
                    os.close(fd)
        finally:
            os.close(mount_fd)


def test_a_handle_opened_for_writing_after_dropped_caches_writes_the_file(fs):
    fs.path("f").write_bytes(b"before")
    h = handle_of(fs.path("f"))
    drop_caches()
    mount_fd = os.open(fs.mnt, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fd = open_by_handle(mount_fd, h, os.O_WRONLY | os.O_TRUNC)
        try:
            os.write(fd, b"after")
        finally:
            os.close(fd)
    finally:
        os.close(mount_fd)
    fs.remount()
    assert fs.path("f").read_bytes() == b"after"
