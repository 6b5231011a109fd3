"""POSIX ACLs as system.posix_acl_access / system.posix_acl_default xattrs (setfacl/getfacl).

With `-o acl` ("acl" mode) they must behave as on ext4 (which Debian mounts with ACLs): stored
and returned, enforced, kept in step with the mode bits, inherited from default ACLs. Without
it mossaicfs documents that ACL calls fail with EOPNOTSUPP."""
import errno
import os
import stat
import struct

import pytest

from posixlib import ALICE, BOB, err, ok, read_file, write_file

ACL_USER_OBJ, ACL_USER, ACL_GROUP_OBJ, ACL_GROUP, ACL_MASK, ACL_OTHER = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
UNDEFINED = 0xFFFFFFFF
ACCESS, DEFAULT = "system.posix_acl_access", "system.posix_acl_default"


def acl(entries):
    """An ACL xattr value: version 2, then (tag, perm, id) entries in canonical order."""
    return struct.pack("<I", 2) + b"".join(struct.pack("<HHI", tag, perm, ident) for tag, perm, ident in entries)


def parse(blob):
    return [struct.unpack_from("<HHI", blob, 4 + 8 * i) for i in range((len(blob) - 4) // 8)]


def perms(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


ALICE_READS = acl([(ACL_USER_OBJ, 6, UNDEFINED), (ACL_USER, 4, ALICE.uid), (ACL_GROUP_OBJ, 0, UNDEFINED),
                   (ACL_MASK, 4, UNDEFINED), (ACL_OTHER, 0, UNDEFINED)])
DEFAULT_ACL = acl([(ACL_USER_OBJ, 7, UNDEFINED), (ACL_USER, 5, BOB.uid), (ACL_GROUP_OBJ, 5, UNDEFINED),
                   (ACL_GROUP, 7, 52100), (ACL_MASK, 7, UNDEFINED), (ACL_OTHER, 1, UNDEFINED)])
MINIMAL = acl([(ACL_USER_OBJ, 6, UNDEFINED), (ACL_GROUP_OBJ, 4, UNDEFINED), (ACL_OTHER, 4, UNDEFINED)])


def without_acl_option(px):
    return px.mode != "acl"


def test_acl_calls_without_the_acl_option_are_eopnotsupp(px):
    if not without_acl_option(px):
        pytest.skip("with -o acl, ACLs work: the cases below")
    write_file(px.mnt / "f", b"x")
    os.mkdir(px.mnt / "d")
    for name, path, value in ((ACCESS, px.mnt / "f", ALICE_READS), (DEFAULT, px.mnt / "d", DEFAULT_ACL)):
        for call in (lambda: os.setxattr(path, name, value), lambda: os.getxattr(path, name)):
            try:
                call()
                raise AssertionError(f"{name} on {path.name} succeeded without -o acl")
            except OSError as e:
                assert e.errno == errno.EOPNOTSUPP, f"{name}: {e}"


def skip_unless_acl(px):
    if without_acl_option(px):
        pytest.skip("ACLs need -o acl (without it: EOPNOTSUPP, checked above)")


def test_access_acl_is_stored_returned_and_sets_the_mode(px):
    skip_unless_acl(px)
    px.setup(lambda d: write_file(d / "f", b"secret", mode=0o600))
    px.expect(lambda d: (os.setxattr(d / "f", ACCESS, ALICE_READS), os.getxattr(d / "f", ACCESS), perms(d / "f"))[1:],
              ok((ALICE_READS, 0o640)))
    px.expect(lambda d: ACCESS in os.listxattr(d / "f"), ok(True))
    px.remount()
    px.expect(lambda d: (os.getxattr(d / "f", ACCESS), perms(d / "f")), ok((ALICE_READS, 0o640)))


def test_access_acl_is_enforced(px):
    skip_unless_acl(px)
    px.setup(lambda d: (write_file(d / "f", b"secret", mode=0o600), os.setxattr(d / "f", ACCESS, ALICE_READS)))
    px.expect(lambda d: read_file(d / "f"), ok(b"secret"), user=ALICE)
    px.expect(lambda d: read_file(d / "f"), err(errno.EACCES), user=BOB)
    px.expect(lambda d: open(d / "f", "r+b"), err(errno.EACCES), user=ALICE)


def test_chmod_rewrites_the_mask(px):
    skip_unless_acl(px)
    px.setup(lambda d: (write_file(d / "f", b"secret", mode=0o600), os.setxattr(d / "f", ACCESS, ALICE_READS)))
    px.expect(lambda d: (os.chmod(d / "f", 0o600), parse(os.getxattr(d / "f", ACCESS))[3])[1], ok((ACL_MASK, 0, UNDEFINED)))
    px.expect(lambda d: read_file(d / "f"), err(errno.EACCES), user=ALICE)


def test_a_minimal_acl_is_folded_into_the_mode(px):
    skip_unless_acl(px)
    px.setup(lambda d: write_file(d / "f", b"x", mode=0o600))
    px.expect(lambda d: (os.setxattr(d / "f", ACCESS, MINIMAL), perms(d / "f"))[1], ok(0o644))
    px.same(lambda d: os.getxattr(d / "f", ACCESS))
    px.same(lambda d: sorted(os.listxattr(d / "f")))


def test_default_acl_is_inherited(px):
    skip_unless_acl(px)
    px.setup(lambda d: (os.mkdir(d / "dir"), os.chmod(d / "dir", 0o777), os.setxattr(d / "dir", DEFAULT, DEFAULT_ACL)))
    px.expect(lambda d: os.getxattr(d / "dir", DEFAULT), ok(DEFAULT_ACL))

    def create(d):
        fd = os.open(d / "dir" / "f", os.O_CREAT | os.O_WRONLY, 0o666)
        os.close(fd)
        os.mkdir(d / "dir" / "sub", 0o777)
        return (perms(d / "dir" / "f"), os.getxattr(d / "dir" / "f", ACCESS), perms(d / "dir" / "sub"),
                os.getxattr(d / "dir" / "sub", ACCESS), os.getxattr(d / "dir" / "sub", DEFAULT))
    px.same(create, user=ALICE)
    px.expect(lambda d: os.getxattr(d / "dir" / "sub", DEFAULT), ok(DEFAULT_ACL))
    # a default ACL replaces the umask: each class gets what both the requested 0o666 and the
    # ACL grant — group rw- (mask rwx, despite umask 022), other --- (OTHER is --x)
    px.expect(lambda d: perms(d / "dir" / "f"), ok(0o660))


def test_acl_errors(px):
    skip_unless_acl(px)
    px.setup(lambda d: (write_file(d / "f", b"x", mode=0o644), os.chown(d / "f", ALICE.uid, ALICE.gid)))
    px.expect(lambda d: os.setxattr(d / "f", ACCESS, b"\x02\x00\x00\x00\x01"), err(errno.EINVAL))
    px.expect(lambda d: os.setxattr(d / "f", DEFAULT, DEFAULT_ACL), err(errno.EACCES))
    px.expect(lambda d: os.setxattr(d / "f", ACCESS, ALICE_READS), err(errno.EPERM), user=BOB)
    px.expect(lambda d: (os.setxattr(d / "f", ACCESS, ALICE_READS), perms(d / "f"))[1], ok(0o640), user=ALICE)
    px.expect(lambda d: (os.removexattr(d / "f", ACCESS), os.getxattr(d / "f", ACCESS))[1], err(errno.ENODATA))
    px.expect(lambda d: perms(d / "f"), ok(0o640))
