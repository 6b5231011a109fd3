"""flock(2) and fcntl(2) record locks (POSIX and open-file-description locks): conflicts,
sharing, release on close — between processes on one mount, as on ext4."""
import errno
import fcntl
import os
import struct

from posixlib import errname, ok, write_file

F_OFD_GETLK, F_OFD_SETLK = 36, 37


class Holder:
    """A child process that takes a lock and keeps it until told to go (pipes, no sleeps)."""

    def __init__(self, path, take):
        self.cmd_r, self.cmd_w = os.pipe()
        self.ans_r, self.ans_w = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:
            code = 0
            try:
                os.close(self.cmd_w)
                os.close(self.ans_r)
                fd = os.open(path, os.O_RDWR)
                try:
                    take(fd)
                    os.write(self.ans_w, b"locked")
                except OSError as e:
                    os.write(self.ans_w, errname(e.errno).encode())
                os.read(self.cmd_r, 1)          # wait for the parent
            except BaseException:
                code = 1
            finally:
                os._exit(code)
        os.close(self.cmd_r)
        os.close(self.ans_w)
        self.answer = os.read(self.ans_r, 100).decode()

    def release(self):
        os.write(self.cmd_w, b"x")
        os.close(self.cmd_w)
        os.close(self.ans_r)
        _, status = os.waitpid(self.pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0


def attempt(fn):
    try:
        fn()
        return "ok"
    except OSError as e:
        return errname(e.errno)


def flock_cases(d):
    p = d / "f"
    out = []
    h = Holder(p, lambda fd: fcntl.flock(fd, fcntl.LOCK_EX))
    out.append(h.answer)
    fd = os.open(p, os.O_RDWR)
    try:
        out.append(attempt(lambda: fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)))
        out.append(attempt(lambda: fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)))
        h.release()
        out.append(attempt(lambda: fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)))
        h2 = Holder(p, lambda fd2: fcntl.flock(fd2, fcntl.LOCK_SH | fcntl.LOCK_NB))   # shared with ours
        out.append(h2.answer)
        h3 = Holder(p, lambda fd3: fcntl.flock(fd3, fcntl.LOCK_EX | fcntl.LOCK_NB))   # conflicts
        out.append(h3.answer)
        h3.release()
        h2.release()
        out.append(attempt(lambda: fcntl.flock(fd, fcntl.LOCK_UN)))
    finally:
        os.close(fd)
    return out


def test_flock(px):
    px.setup(lambda d: write_file(d / "f", b"x" * 100))
    px.expect(flock_cases, ok(["locked", "EAGAIN", "EAGAIN", "ok", "locked", "EAGAIN", "ok"]))


def lk(kind, start, length, whence=0):
    return struct.pack("hhqqi", kind, whence, start, length, 0)


def getlk(fd, kind, start, length, cmd=fcntl.F_GETLK):
    r = fcntl.fcntl(fd, cmd, lk(kind, start, length))
    t, _, s, n, pid = struct.unpack("hhqqi", r)
    return t, s, n, pid


def posix_lock_cases(d):
    p = d / "f"
    out = []
    h = Holder(p, lambda fd: fcntl.lockf(fd, fcntl.LOCK_EX, 10, 100))         # bytes [100, 110)
    out.append(h.answer)
    fd = os.open(p, os.O_RDWR)
    try:
        out.append(attempt(lambda: fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 10, 105)))
        out.append(attempt(lambda: fcntl.lockf(fd, fcntl.LOCK_SH | fcntl.LOCK_NB, 1, 109)))
        out.append(attempt(lambda: fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 100, 0)))   # disjoint
        t, s, n, pid = getlk(fd, fcntl.F_WRLCK, 0, 0)
        out.append((t == fcntl.F_WRLCK, s, n, pid == h.pid))
        out.append(getlk(fd, fcntl.F_WRLCK, 200, 10)[0] == fcntl.F_UNLCK)
        h.release()
        out.append(attempt(lambda: fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 10, 100)))
    finally:
        os.close(fd)
    return out


def test_posix_record_locks(px):
    px.setup(lambda d: write_file(d / "f", b"x" * 1000))
    px.expect(posix_lock_cases, ok(["locked", "EAGAIN", "EAGAIN", "ok", (True, 100, 10, True), True, "ok"]))


def test_posix_lock_is_dropped_when_any_descriptor_of_the_process_closes(px):
    px.setup(lambda d: write_file(d / "f", b"x" * 100))

    def take_then_close_other(fd):
        fcntl.lockf(fd, fcntl.LOCK_EX)
        os.close(os.open(os.path.join(os.path.dirname(os.readlink(f"/proc/self/fd/{fd}")), "f"), os.O_RDONLY))

    def op(d):
        h = Holder(d / "f", take_then_close_other)
        fd = os.open(d / "f", os.O_RDWR)
        try:
            return h.answer, attempt(lambda: fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB))
        finally:
            os.close(fd)
            h.release()
    px.expect(op, ok(("locked", "ok")))


def test_open_file_description_locks_conflict_within_one_process(px):
    px.setup(lambda d: write_file(d / "f", b"x" * 100))

    def op(d):
        a = os.open(d / "f", os.O_RDWR)
        b = os.open(d / "f", os.O_RDWR)
        try:
            fcntl.fcntl(a, F_OFD_SETLK, lk(fcntl.F_WRLCK, 0, 10))
            second = attempt(lambda: fcntl.fcntl(b, F_OFD_SETLK, lk(fcntl.F_WRLCK, 5, 10)))
            t, s, n, pid = getlk(b, fcntl.F_WRLCK, 0, 0, cmd=F_OFD_GETLK)
            os.close(a)
            a = -1
            third = attempt(lambda: fcntl.fcntl(b, F_OFD_SETLK, lk(fcntl.F_WRLCK, 5, 10)))
            return second, (t == fcntl.F_WRLCK, s, n, pid), third
        finally:
            if a >= 0:
                os.close(a)
            os.close(b)
    px.expect(op, ok(("EAGAIN", (True, 0, 10, -1), "ok")))


def test_lock_on_read_only_descriptor_needs_matching_mode(px):
    px.setup(lambda d: write_file(d / "f", b"x" * 100))

    def op(d):
        fd = os.open(d / "f", os.O_RDONLY)
        try:
            return (attempt(lambda: fcntl.fcntl(fd, fcntl.F_SETLK, lk(fcntl.F_WRLCK, 0, 1))),
                    attempt(lambda: fcntl.fcntl(fd, fcntl.F_SETLK, lk(fcntl.F_RDLCK, 0, 1))))
        finally:
            os.close(fd)
    px.expect(op, ok(("EBADF", "ok")))
