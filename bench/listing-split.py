#!/usr/bin/env python3
"""listing-split.py — where the time of scale.sh's `find tree` and `ls -l flat` goes (issue 21):
the listing process's user and system time, the daemon's CPU time, and the daemon's time per
FUSE request (`-o metrics=`), for several binaries on the same filesystem, or on a local
directory for comparison.

    bench/listing-split.py mossaicfs CACHE_DIR STORE LABEL=BINARY [LABEL=BINARY ...]
    bench/listing-split.py dir DIRECTORY

CACHE_DIR and STORE hold a filesystem with scale.sh's flat/ and tree/ (make one in minutes
with bench/gen-scale-dump.py and `mossaicfs load`, as its docstring says). Each binary mounts a
fresh copy of both (the originals are never mounted), after the kernel dropped its dentries
and inodes, runs `find tree -type f` and then `ls -l flat` as scale.sh does, and unmounts.
`dir` runs the same two commands in DIRECTORY (which must hold flat/ and tree/, e.g. on ext4).
Knobs: REPEAT [2] rounds (binaries alternate within a round); WORK [/tmp/bench-listing-split];
MNT [/mnt/bench-listing-split]; METRICS_PORT [9491]. As root.
"""
import os, re, resource, shutil, subprocess, sys, time, urllib.request

REPEAT = int(os.environ.get("REPEAT", "2"))
WORK = os.environ.get("WORK", "/tmp/bench-listing-split")
MNT = os.environ.get("MNT", "/mnt/bench-listing-split")
PORT = int(os.environ.get("METRICS_PORT", "9491"))


def drop_dentries():
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("2\n")


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def request_times():
    """{op: (count, seconds)} from the daemon's mossaicfs_fuse_op_duration_seconds."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{PORT}/metrics", timeout=10).read().decode()
    got = {}
    for m in re.finditer(r'mossaicfs_fuse_op_duration_seconds_(sum|count)\{op="(\w+)"\} ([0-9.e+-]+)', text):
        counts = got.setdefault(m.group(2), [0.0, 0.0])
        counts[0 if m.group(1) == "count" else 1] = float(m.group(3))
    return got


def split(root, pid=None):
    for name, cmd in (("find", ["find", f"{root}/tree", "-type", "f"]), ("ls -l", ["ls", "-l", f"{root}/flat"])):
        cpu0 = cpu_seconds(pid) if pid else 0.0
        ops0 = request_times() if pid else {}
        usage0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.monotonic()
        lines = subprocess.run(cmd, stdout=subprocess.PIPE, check=True).stdout.count(b"\n")
        wall = time.monotonic() - t0
        usage1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        line = (f"  {name}: {wall:.2f} s ({lines} lines); {cmd[0]} user {usage1.ru_utime - usage0.ru_utime:.2f} s, "
                f"system {usage1.ru_stime - usage0.ru_stime:.2f} s")
        if pid:
            ops1 = request_times()
            busy = sorted(((op, c - ops0.get(op, [0, 0])[0], s - ops0.get(op, [0, 0])[1]) for op, (c, s) in ops1.items()),
                          key=lambda x: -x[2])
            line += f"; daemon CPU {cpu_seconds(pid) - cpu0:.2f} s; " + ", ".join(
                f"{op} {int(c)} in {s:.2f} s" for op, c, s in busy if c > 0)
        print(line, flush=True)


def mounted():
    with open("/proc/mounts") as f:
        return any(line.split()[1] == MNT for line in f)


def run_binary(label, binary, cache, store):
    shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(MNT, exist_ok=True)
    shutil.copytree(cache, f"{WORK}/cache", symlinks=True)
    shutil.copytree(store, f"{WORK}/store", symlinks=True)
    if os.path.exists(f"{WORK}/cache/lock"):
        os.unlink(f"{WORK}/cache/lock")  # a copy of a cache_dir some daemon held
    drop_dentries()
    subprocess.run([binary, "mount", f"{WORK}/store", MNT, "-o",
                    f"cache_dir={WORK}/cache,log={WORK}/daemon.log,metrics=127.0.0.1:{PORT}"],
                   stdin=subprocess.DEVNULL, check=True)
    pid = int(open(f"{WORK}/cache/lock").readline())
    try:
        print(f"{label}:", flush=True)
        split(MNT, pid)
    finally:
        if mounted():
            subprocess.run(["umount", MNT], check=False)
        deadline = time.monotonic() + 600
        while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
            time.sleep(0.2)


def main(argv):
    if len(argv) == 3 and argv[1] == "dir":
        for _ in range(REPEAT):
            drop_dentries()
            print(f"{argv[2]}:", flush=True)
            split(argv[2])
        return 0
    if len(argv) < 5 or argv[1] != "mossaicfs" or not all("=" in b for b in argv[4:]):
        print("usage: listing-split.py mossaicfs CACHE_DIR STORE LABEL=BINARY ... | listing-split.py dir DIRECTORY", file=sys.stderr)
        return 2
    cache, store = argv[2], argv[3]
    try:
        for _ in range(REPEAT):
            for spec in argv[4:]:
                label, binary = spec.split("=", 1)
                run_binary(label, binary, cache, store)
    finally:
        if mounted():
            subprocess.run(["umount", MNT], check=False)
        shutil.rmtree(WORK, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
