"""chmod(2)/chown(2) and permission checks: owner/group/other classes, supplementary groups,
root's privileges, sticky and setgid directories, SUID/SGID clearing, exec permission.

Without -o default_permissions mossaicfs checks permissions itself; every case runs in both
modes and must give what ext4 gives."""
import errno
import os
import shutil
import stat
import subprocess

from posixlib import ALICE, BOB, ROOT, STAFF, as_user, changed_times, err, ok, read_file, write_file


def perms(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


def owner(path):
    st = os.lstat(path)
    return st.st_uid, st.st_gid


def alice_file(d, name="f", mode=0o644, data=b"data"):
    write_file(d / name, data)
    os.chown(d / name, ALICE.uid, ALICE.gid)
    os.chmod(d / name, mode)


def test_chmod_sets_exactly_the_given_bits(px):
    px.setup(lambda d: (write_file(d / "f", b"x"), os.mkdir(d / "dir")))
    for m in (0o7777, 0o4755, 0o2755, 0o1777, 0o0, 0o640):
        px.expect(lambda d: (os.chmod(d / "f", m), perms(d / "f"))[1], ok(m))
        px.expect(lambda d: (os.chmod(d / "dir", m), perms(d / "dir"))[1], ok(m))
    px.setup(lambda d: os.chmod(d / "f", 0o6751))
    px.remount()
    px.expect(lambda d: perms(d / "f"), ok(0o6751))


def test_chmod_by_owner_and_root_but_not_by_others(px):
    px.setup(alice_file)
    px.expect(lambda d: (os.chmod(d / "f", 0o600), perms(d / "f"))[1], ok(0o600), user=ALICE)
    px.expect(lambda d: os.chmod(d / "f", 0o666), err(errno.EPERM), user=BOB)
    px.expect(lambda d: (os.chmod(d / "f", 0o604), perms(d / "f"))[1], ok(0o604))
    px.expect(lambda d: perms(d / "f"), ok(0o604))


def test_chmod_setgid_by_owner_outside_the_group_is_dropped(px):
    px.setup(alice_file)
    px.setup(lambda d: os.chown(d / "f", ALICE.uid, BOB.gid))
    px.expect(lambda d: (os.chmod(d / "f", 0o2755), perms(d / "f"))[1], ok(0o755), user=ALICE)
    px.setup(lambda d: os.chown(d / "f", ALICE.uid, STAFF))
    px.expect(lambda d: (os.chmod(d / "f", 0o2755), perms(d / "f"))[1], ok(0o2755), user=ALICE)


def test_chown_rules_for_unprivileged_owner(px):
    px.setup(alice_file)
    px.expect(lambda d: os.chown(d / "f", BOB.uid, -1), err(errno.EPERM), user=ALICE)
    px.expect(lambda d: (os.chown(d / "f", ALICE.uid, -1), owner(d / "f"))[1], ok((ALICE.uid, ALICE.gid)), user=ALICE)
    px.expect(lambda d: (os.chown(d / "f", -1, STAFF), owner(d / "f"))[1], ok((ALICE.uid, STAFF)), user=ALICE)
    px.expect(lambda d: os.chown(d / "f", -1, BOB.gid), err(errno.EPERM), user=ALICE)
    px.expect(lambda d: os.chown(d / "f", -1, STAFF), err(errno.EPERM), user=BOB)
    px.expect(lambda d: (os.chown(d / "f", -1, -1), owner(d / "f"))[1], ok((ALICE.uid, STAFF)), user=ALICE)
    px.expect(lambda d: (os.chown(d / "f", 4000, 4001), owner(d / "f"))[1], ok((4000, 4001)))


def test_chown_clears_setuid_and_setgid_of_executables(px):
    px.setup(lambda d: write_file(d / "f", b"x", mode=0o6755))
    px.expect(lambda d: (os.chown(d / "f", 1000, 1000), perms(d / "f"))[1], ok(0o755))
    px.setup(lambda d: os.chmod(d / "f", 0o2644))  # setgid without group-exec: mandatory-locking mark, kept
    px.same(lambda d: (os.chown(d / "f", 1001, 1001), perms(d / "f"))[1])
    px.setup(lambda d: (os.mkdir(d / "dir"), os.chmod(d / "dir", 0o6755)))
    px.expect(lambda d: (os.chown(d / "dir", 1000, 1000), perms(d / "dir"))[1], ok(0o6755))
    px.setup(lambda d: alice_file(d, "g", 0o6755))
    px.expect(lambda d: (os.chown(d / "g", -1, STAFF), perms(d / "g"))[1], ok(0o755), user=ALICE)


def test_chown_keeps_the_sticky_bit(px):
    px.setup(lambda d: write_file(d / "f", b"x", mode=0o5744))
    px.expect(lambda d: (os.chown(d / "f", -1, -1), perms(d / "f"))[1], ok(0o1744))
    px.setup(lambda d: os.chmod(d / "f", 0o1755))
    px.expect(lambda d: (os.chown(d / "f", 7, 7), perms(d / "f"))[1], ok(0o1755))


def test_write_by_unprivileged_user_clears_setuid_and_setgid(px):
    px.setup(lambda d: (alice_file(d, "own", 0o6777), write_file(d / "root", b"r", mode=0o6777)))

    def write(d, name):
        with open(d / name, "r+b") as f:
            f.write(b"W")
        return perms(d / name)
    px.expect(lambda d: write(d, "own"), ok(0o777), user=ALICE)
    px.expect(lambda d: write(d, "root"), ok(0o777), user=BOB)


def test_write_by_root_keeps_setuid_and_setgid(px):
    px.setup(lambda d: write_file(d / "f", b"r", mode=0o6777))
    px.expect(lambda d: (write_file(d / "f", b"W"), perms(d / "f"))[1], ok(0o6777))


def test_write_by_non_member_clears_setgid_without_group_exec(px):
    # Linux (since 6.0) drops S_ISGID without S_IXGRP too when the writer is not in the group.
    px.setup(lambda d: write_file(d / "f", b"r", mode=0o2666))
    px.expect(lambda d: (write_file(d / "f", b"W"), perms(d / "f"))[1], ok(0o666), user=BOB)
    px.setup(lambda d: (os.chown(d / "f", 0, STAFF), os.chmod(d / "f", 0o2666)))
    px.expect(lambda d: (write_file(d / "f", b"W"), perms(d / "f"))[1], ok(0o2666), user=ALICE)


def test_permission_classes_are_exclusive(px):
    def setup(d):
        alice_file(d, "owner_denied", 0o077)             # owner has nothing, others everything
        write_file(d / "group_denied", b"g", mode=0o707)
        os.chown(d / "group_denied", BOB.uid, STAFF)
        write_file(d / "group_ok", b"g", mode=0o070)
        os.chown(d / "group_ok", BOB.uid, STAFF)
    px.setup(setup)
    px.expect(lambda d: read_file(d / "owner_denied"), err(errno.EACCES), user=ALICE)
    px.expect(lambda d: read_file(d / "owner_denied"), ok(b"data"), user=BOB)
    px.expect(lambda d: read_file(d / "group_denied"), err(errno.EACCES), user=ALICE)   # via STAFF
    px.expect(lambda d: read_file(d / "group_ok"), ok(b"g"), user=ALICE)               # supplementary group
    px.expect(lambda d: read_file(d / "group_ok"), err(errno.EACCES), user=BOB)          # owner class: nothing


def test_root_ignores_read_write_bits_but_needs_an_exec_bit(px):
    px.setup(lambda d: (shutil.copy("/bin/true", d / "prog"), os.chmod(d / "prog", 0o000)))
    px.expect(lambda d: len(read_file(d / "prog")) > 0, ok(True))

    def execute(d):
        return subprocess.run([str(d / "prog")]).returncode
    px.expect(execute, err(errno.EACCES))
    px.setup(lambda d: os.chmod(d / "prog", 0o001))
    px.expect(execute, ok(0))
    px.expect(execute, ok(0), user=ALICE)
    px.setup(lambda d: os.chmod(d / "prog", 0o744))
    px.expect(execute, err(errno.EACCES), user=ALICE)


def test_sticky_directory_protects_other_users_entries(px):
    def setup(d):
        os.chmod(d, 0o1777)
        alice_file(d, "alice", 0o666)
        write_file(d / "root", b"r", mode=0o666)
    px.setup(setup)
    px.expect(lambda d: os.unlink(d / "alice"), err(errno.EPERM), user=BOB)
    px.expect(lambda d: os.unlink(d / "root"), err(errno.EPERM), user=BOB)
    px.expect(lambda d: (write_file(d / "bobs", b"b"), os.unlink(d / "bobs"))[1], ok(None), user=BOB)
    px.expect(lambda d: os.unlink(d / "alice"), ok(None), user=ALICE)
    px.expect(lambda d: sorted(os.listdir(d)), ok(["root"]))


def test_sticky_directory_owner_may_remove_entries(px):
    def setup(d):
        os.mkdir(d / "t")
        os.chown(d / "t", ALICE.uid, ALICE.gid)
        os.chmod(d / "t", 0o1777)
        write_file(d / "t" / "bobs", b"b")
        os.chown(d / "t" / "bobs", BOB.uid, BOB.gid)
    px.setup(setup)
    px.expect(lambda d: os.unlink(d / "t" / "bobs"), ok(None), user=ALICE)


def test_setgid_directory_passes_its_group_down(px):
    def setup(d):
        os.mkdir(d / "shared")
        os.chown(d / "shared", 0, STAFF)
        os.chmod(d / "shared", 0o2777)
    px.setup(setup)

    def create(d):
        write_file(d / "shared" / "file", b"x")
        os.mkdir(d / "shared" / "sub", 0o755)
        os.mkfifo(d / "shared" / "fifo", 0o644)
        os.symlink("file", d / "shared" / "link")
        return (owner(d / "shared" / "file"), perms(d / "shared" / "file"), owner(d / "shared" / "sub"),
                perms(d / "shared" / "sub"), owner(d / "shared" / "fifo"), owner(d / "shared" / "link"))
    px.expect(create, ok(((BOB.uid, STAFF), 0o644, (BOB.uid, STAFF), 0o2755, (BOB.uid, STAFF), (BOB.uid, STAFF))), user=BOB)


def test_setgid_bit_requested_by_non_member_in_setgid_directory_is_dropped(px):
    def setup(d):
        os.mkdir(d / "shared")
        os.chown(d / "shared", 0, STAFF)
        os.chmod(d / "shared", 0o2777)

    def create(d):
        fd = os.open(d / "shared" / "f", os.O_CREAT | os.O_WRONLY, 0o2755)
        os.close(fd)
        return owner(d / "shared" / "f"), perms(d / "shared" / "f")
    px.setup(setup)
    px.same(create, user=BOB)
    px.expect(create, ok(((BOB.uid, STAFF), 0o755)), user=BOB)


def test_new_files_get_callers_uid_and_gid(px):
    px.setup(lambda d: os.chmod(d, 0o777))
    px.expect(lambda d: (write_file(d / "f", b""), os.mkdir(d / "dir"), owner(d / "f"), owner(d / "dir"))[2:],
              ok(((ALICE.uid, ALICE.gid), (ALICE.uid, ALICE.gid))), user=ALICE)


def test_new_file_gid_is_the_effective_gid(px):
    px.setup(lambda d: os.chmod(d, 0o777))

    def op(d):
        os.setegid(STAFF)
        write_file(d / "f", b"")
        return owner(d / "f")
    px.expect(op, ok((0, STAFF)), user=ROOT)


def test_chmod_and_chown_update_ctime_only(px):
    px.setup(lambda d: write_file(d / "f", b"x"))
    px.expect(lambda d: changed_times(d / "f", lambda: os.chmod(d / "f", 0o600)), ok((False, False, True)))
    px.expect(lambda d: changed_times(d / "f", lambda: os.chown(d / "f", 5, 5)), ok((False, False, True)))
    px.same(lambda d: changed_times(d / "f", lambda: os.chown(d / "f", -1, -1)))


def test_permission_changes_take_effect_at_once_for_other_users(px):
    px.setup(lambda d: write_file(d / "f", b"x", mode=0o644))
    px.expect(lambda d: read_file(d / "f"), ok(b"x"), user=BOB)
    px.setup(lambda d: os.chmod(d / "f", 0o600))
    px.expect(lambda d: read_file(d / "f"), err(errno.EACCES), user=BOB)
    px.setup(lambda d: os.chown(d / "f", BOB.uid, BOB.gid))
    px.expect(lambda d: read_file(d / "f"), ok(b"x"), user=BOB)


def test_an_open_descriptor_keeps_its_access_after_chmod(px):
    px.setup(lambda d: alice_file(d, "f", 0o600))

    def op(d):
        fd = os.open(d / "f", os.O_RDWR)
        try:
            os.chmod(d / "f", 0o000)
            os.pwrite(fd, b"D", 0)
            return os.pread(fd, 10, 0)
        finally:
            os.close(fd)
    px.expect(op, ok(b"Data"), user=ALICE)


def test_caller_is_taken_from_the_request_not_the_daemon(px):
    """Two users create and read in the same directory; each sees the result of its own ids."""
    px.setup(lambda d: os.chmod(d, 0o777))
    px.setup(lambda d: (write_file(d / "a", b"a"), os.chmod(d / "a", 0o600)), user=ALICE)
    px.expect(lambda d: read_file(d / "a"), err(errno.EACCES), user=BOB)
    px.expect(lambda d: read_file(d / "a"), ok(b"a"), user=ALICE)
    px.expect(lambda d: owner(d / "a"), ok((ALICE.uid, ALICE.gid)))


def test_permissions_are_checked_along_the_whole_path(px):
    def setup(d):
        os.makedirs(d / "a" / "b" / "c")
        write_file(d / "a" / "b" / "c" / "f", b"x")
        os.chmod(d / "a" / "b", 0o700)
    px.setup(setup)
    px.setup(lambda d: read_file(d / "a" / "b" / "c" / "f"))  # names now cached by the kernel
    px.expect(lambda d: read_file(d / "a" / "b" / "c" / "f"), err(errno.EACCES), user=ALICE)
    px.expect(lambda d: os.stat(d / "a" / "b" / "c"), err(errno.EACCES), user=ALICE)
    px.expect(lambda d: os.path.isdir(d / "a" / "b"), ok(True), user=ALICE)
    r = as_user(ALICE, lambda: os.listdir(px.mnt / "a" / "b"))
    assert r == err(errno.EACCES), r
