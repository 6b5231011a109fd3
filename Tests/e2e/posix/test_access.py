"""access(2)/faccessat(2): F_OK, R_OK, W_OK, X_OK for root and for users, AT_EACCESS."""
import errno
import os

from posixlib import ALICE, AT_EACCESS, BOB, ROOT, STAFF, User, access, err, errname, faccessat, ok, write_file

MODES = {"F": os.F_OK, "R": os.R_OK, "W": os.W_OK, "X": os.X_OK, "RW": os.R_OK | os.W_OK,
         "RWX": os.R_OK | os.W_OK | os.X_OK}


def answers(path):
    """{mode: "ok" or errno name} for every access mode."""
    out = {}
    for name, m in MODES.items():
        try:
            access(path, m)
            out[name] = "ok"
        except OSError as e:
            out[name] = errname(e.errno)
    return out


def setup(d):
    for name, mode in (("f000", 0o000), ("f400", 0o400), ("f200", 0o200), ("f100", 0o100), ("f070", 0o070),
                       ("f007", 0o007), ("f755", 0o755), ("f644", 0o644)):
        write_file(d / name, b"x")
        os.chown(d / name, ALICE.uid, STAFF)
        os.chmod(d / name, mode)
    os.mkdir(d / "d000", 0o000)
    os.chmod(d / "d000", 0o000)
    os.mkdir(d / "d755")
    os.chmod(d / "d755", 0o755)


NAMES = ("f000", "f400", "f200", "f100", "f070", "f007", "f755", "f644", "d000", "d755")


def test_access_as_root(px):
    px.setup(setup)
    px.expect(lambda d: answers(d / "f000"), ok({"F": "ok", "R": "ok", "W": "ok", "X": "EACCES", "RW": "ok", "RWX": "EACCES"}))
    px.expect(lambda d: answers(d / "f100")["X"], ok("ok"))
    px.expect(lambda d: answers(d / "d000"), ok({"F": "ok", "R": "ok", "W": "ok", "X": "ok", "RW": "ok", "RWX": "ok"}))
    px.same(lambda d: {n: answers(d / n) for n in NAMES})


def test_access_as_owner(px):
    px.setup(setup)
    px.expect(lambda d: answers(d / "f400"), ok({"F": "ok", "R": "ok", "W": "EACCES", "X": "EACCES", "RW": "EACCES", "RWX": "EACCES"}),
              user=ALICE)
    px.expect(lambda d: answers(d / "f070")["R"], ok("EACCES"), user=ALICE)
    px.same(lambda d: {n: answers(d / n) for n in NAMES}, user=ALICE)


def test_access_as_group_member_and_as_other(px):
    px.setup(setup)
    px.expect(lambda d: answers(d / "f070")["RWX"], ok("ok"), user=User(BOB.uid, BOB.gid, (STAFF,)))
    px.expect(lambda d: answers(d / "f070")["R"], ok("EACCES"), user=BOB)
    px.expect(lambda d: answers(d / "f007")["RWX"], ok("ok"), user=BOB)
    px.same(lambda d: {n: answers(d / n) for n in NAMES}, user=BOB)


def test_access_of_missing_file_and_through_unsearchable_directory(px):
    px.setup(setup)
    px.setup(lambda d: (write_file(d / "d000" / "inner", b"x"), os.stat(d / "d000" / "inner")))
    px.expect(lambda d: access(d / "missing", os.F_OK), err(errno.ENOENT))
    px.expect(lambda d: access(d / "missing", os.R_OK), err(errno.ENOENT), user=BOB)
    px.expect(lambda d: access(d / "d000" / "inner", os.F_OK), err(errno.EACCES), user=BOB)
    px.expect(lambda d: access(d / "f644" / "x", os.F_OK), err(errno.ENOTDIR))
    px.expect(lambda d: access(d / "f644", 0o10), err(errno.EINVAL))


def test_faccessat_uses_effective_ids_with_at_eaccess(px):
    px.setup(setup)

    def op(d):
        os.setresgid(BOB.gid, BOB.gid, 0)
        os.setresuid(BOB.uid, ALICE.uid, 0)    # real BOB, effective ALICE
        return (faccessat(d / "f400", os.R_OK, AT_EACCESS), )
    px.expect(op, ok((0,)), user=ROOT)

    def real(d):
        os.setresgid(BOB.gid, BOB.gid, 0)
        os.setresuid(BOB.uid, ALICE.uid, 0)
        return faccessat(d / "f400", os.R_OK, 0)    # checks the real uid, BOB
    px.expect(real, err(errno.EACCES), user=ROOT)


def test_access_follows_symlinks(px):
    px.setup(setup)
    px.setup(lambda d: (os.symlink("f000", d / "l"), os.symlink("nowhere", d / "dangling")))
    px.expect(lambda d: access(d / "l", os.R_OK), err(errno.EACCES), user=BOB)
    px.expect(lambda d: access(d / "dangling", os.F_OK), err(errno.ENOENT))
