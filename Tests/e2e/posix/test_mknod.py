"""mknod(2)/mkfifo(3): FIFOs, sockets, character and block devices as metadata (device numbers
kept), permissions, errors; FIFOs and sockets on the mount work (kernel-local)."""
import errno
import os
import socket
import stat
import threading

from posixlib import ALICE, err, ok, write_file


def node(path):
    st = os.lstat(path)
    return stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_rdev, st.st_size, st.st_nlink, st.st_uid, st.st_gid


def test_fifo(px):
    px.expect(lambda d: (os.mkfifo(d / "p", 0o640), node(d / "p"))[1], ok((stat.S_IFIFO, 0o640, 0, 0, 1, 0, 0)))
    px.remount()
    px.expect(lambda d: node(d / "p"), ok((stat.S_IFIFO, 0o640, 0, 0, 1, 0, 0)))


def test_fifo_on_the_mount_carries_data(px):
    px.setup(lambda d: os.mkfifo(d / "p", 0o600))

    def op(d):
        fd = os.open(d / "p", os.O_RDWR | os.O_NONBLOCK)   # both ends in one open, no other process needed
        try:
            os.write(fd, b"through the pipe")
            return os.read(fd, 100)
        finally:
            os.close(fd)
    px.expect(op, ok(b"through the pipe"))


def test_socket_node_by_mknod_and_by_bind(px):
    px.expect(lambda d: (os.mknod(d / "s", stat.S_IFSOCK | 0o755), node(d / "s")[:4])[1], ok((stat.S_IFSOCK, 0o755, 0, 0)))

    def bind_and_talk(d):
        path = str(d / "sock")
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(path)
        server.listen(1)
        answer = []

        def serve():
            conn, _ = server.accept()
            with conn:
                answer.append(conn.recv(100))
                conn.sendall(b"pong")
        t = threading.Thread(target=serve)
        t.start()
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
            c.connect(path)
            c.sendall(b"ping")
            reply = c.recv(100)
        t.join()
        server.close()
        return answer[0], reply, stat.S_ISSOCK(os.lstat(path).st_mode)
    px.expect(bind_and_talk, ok((b"ping", b"pong", True)))


def test_device_numbers_are_kept(px):
    devices = [("null", stat.S_IFCHR, os.makedev(1, 3)), ("sda1", stat.S_IFBLK, os.makedev(8, 1)),
               ("wide", stat.S_IFCHR, os.makedev(4095, 1048575)), ("zero", stat.S_IFBLK, 0)]

    def make(d):
        for name, kind, dev in devices:
            os.mknod(d / name, kind | 0o660, dev)
        return [node(d / name)[:3] for name, _, _ in devices]
    want = [(kind, 0o640, dev) for _, kind, dev in devices]  # 0o660 under umask 022
    px.expect(make, ok(want))
    px.remount()
    px.expect(lambda d: [node(d / name)[:3] for name, _, _ in devices], ok(want))
    px.expect(lambda d: [(os.major(os.lstat(d / n).st_rdev), os.minor(os.lstat(d / n).st_rdev)) for n, _, _ in devices],
              ok([(1, 3), (8, 1), (4095, 1048575), (0, 0)]))


def test_mknod_regular_file_and_default_type(px):
    px.expect(lambda d: (os.mknod(d / "r", stat.S_IFREG | 0o600), node(d / "r")[:4])[1], ok((stat.S_IFREG, 0o600, 0, 0)))
    px.expect(lambda d: (os.mknod(d / "z", 0o644), node(d / "z")[:2])[1], ok((stat.S_IFREG, 0o644)))
    px.expect(lambda d: (write_file(d / "r", b"data"), os.stat(d / "r").st_size)[1], ok(4))


def test_mknod_errors(px):
    px.setup(lambda d: write_file(d / "f", b"x"))
    px.expect(lambda d: os.mknod(d / "f", stat.S_IFIFO | 0o600), err(errno.EEXIST))
    px.expect(lambda d: os.mkfifo(d / "f"), err(errno.EEXIST))
    px.expect(lambda d: os.mknod(d / "dir", stat.S_IFDIR | 0o755), err(errno.EPERM))
    px.expect(lambda d: os.mknod(d / "bad", 0o170000 | 0o644), err(errno.EINVAL))
    px.expect(lambda d: os.mknod(d / "missing" / "x", stat.S_IFIFO), err(errno.ENOENT))
    px.expect(lambda d: os.mknod(d / ("n" * 256), stat.S_IFIFO), err(errno.ENAMETOOLONG))


def test_unprivileged_users_may_make_fifos_and_sockets_not_devices(px):
    px.setup(lambda d: os.chmod(d, 0o777))
    px.expect(lambda d: os.mknod(d / "c", stat.S_IFCHR | 0o600, os.makedev(1, 3)), err(errno.EPERM), user=ALICE)
    px.expect(lambda d: os.mknod(d / "b", stat.S_IFBLK | 0o600, os.makedev(8, 0)), err(errno.EPERM), user=ALICE)
    px.expect(lambda d: (os.mkfifo(d / "p", 0o666), node(d / "p")[1:])[1], ok((0o644, 0, 0, 1, ALICE.uid, ALICE.gid)),
              user=ALICE)
    px.expect(lambda d: (os.mknod(d / "s", stat.S_IFSOCK | 0o600), node(d / "s")[5:])[1], ok((ALICE.uid, ALICE.gid)),
              user=ALICE)


def test_special_files_can_be_chmodded_chowned_renamed_and_removed(px):
    px.setup(lambda d: (os.mkfifo(d / "p"), os.mknod(d / "c", stat.S_IFCHR | 0o600, os.makedev(10, 20))))

    def op(d):
        os.chmod(d / "p", 0o604)
        os.chown(d / "c", 77, 88)
        os.rename(d / "c", d / "c2")
        out = node(d / "p"), node(d / "c2")
        os.unlink(d / "p")
        return out, sorted(os.listdir(d))
    px.expect(op, ok(((((stat.S_IFIFO, 0o604, 0, 0, 1, 0, 0)), (stat.S_IFCHR, 0o600, os.makedev(10, 20), 0, 1, 77, 88)),
                      ["c2"])))
