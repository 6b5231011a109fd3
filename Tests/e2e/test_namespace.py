"""Directory operations and their errors, as an ordinary tool sees them."""
import errno
import os

import pytest


def test_rmdir_of_non_empty_directory_is_enotempty(fs):
    os.makedirs(fs.path("d", "e"))
    with pytest.raises(OSError) as e:
        os.rmdir(fs.path("d"))
    assert e.value.errno == errno.ENOTEMPTY
    os.rmdir(fs.path("d", "e"))
    os.rmdir(fs.path("d"))
    assert not fs.path("d").exists()


def test_rename_replaces_an_existing_file_atomically(fs):
    fs.path("a").write_bytes(b"new contents")
    fs.path("b").write_bytes(b"old")
    ino = os.stat(fs.path("a")).st_ino
    os.rename(fs.path("a"), fs.path("b"))
    assert not fs.path("a").exists()
    assert fs.path("b").read_bytes() == b"new contents"
    assert os.stat(fs.path("b")).st_ino == ino
    fs.remount()
    assert fs.path("b").read_bytes() == b"new contents"
    assert sorted(os.listdir(fs.mnt)) == ["b"]


def test_rename_of_a_directory_over_a_non_empty_one_fails(fs):
    os.makedirs(fs.path("x"))
    os.makedirs(fs.path("y", "z"))
    with pytest.raises(OSError) as e:
        os.rename(fs.path("x"), fs.path("y"))
    assert e.value.errno == errno.ENOTEMPTY


def test_rename_into_own_subtree_is_einval(fs):
    os.makedirs(fs.path("p", "q"))
    with pytest.raises(OSError) as e:
        os.rename(fs.path("p"), fs.path("p", "q", "r"))
    assert e.value.errno == errno.EINVAL


def test_empty_file_created_and_closed_persists(fs):
    open(fs.path("empty"), "wb").close()
    fs.remount()
    assert fs.path("empty").exists() and os.path.getsize(fs.path("empty")) == 0


def test_names_over_255_bytes_are_enametoolong(fs):
    with pytest.raises(OSError) as e:
        open(fs.path("n" * 256), "wb")
    assert e.value.errno == errno.ENAMETOOLONG
    open(fs.path("n" * 255), "wb").close()


def test_links_symlinks_and_xattrs_survive_remount(fs):
    fs.path("t").write_bytes(b"target")
    os.link(fs.path("t"), fs.path("hard"))
    os.symlink("t", fs.path("soft"))
    os.setxattr(fs.path("t"), "user.color", b"blue")
    fs.remount()
    assert os.stat(fs.path("t")).st_nlink == 2
    assert os.stat(fs.path("hard")).st_ino == os.stat(fs.path("t")).st_ino
    assert os.readlink(fs.path("soft")) == "t"
    assert fs.path("soft").read_bytes() == b"target"
    assert os.getxattr(fs.path("hard"), "user.color") == b"blue"


def test_unlinked_open_file_stays_readable_until_closed(fs):
    p = fs.path("ghost")
    p.write_bytes(b"boo" * 10000)
    with open(p, "rb") as f:
        os.unlink(p)
        assert not p.exists()
        assert f.read() == b"boo" * 10000
    assert os.listdir(fs.mnt) == []


def test_statfs_reports_name_limit_and_space(fs):
    st = os.statvfs(fs.mnt)
    assert st.f_namemax == 255
    assert st.f_blocks > 0 and st.f_bavail > 0 and st.f_files > 0
