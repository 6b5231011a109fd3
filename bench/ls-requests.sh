#!/usr/bin/env bash
# ls-requests.sh — the FUSE requests one `ls -l` of an N-entry directory sends mossaicfs, by
# operation, read from the daemon's metrics endpoint (-o metrics=): readdirplus answers names
# and attributes together, so beyond it `ls -l` should need O(1) requests per directory — unless
# the listing takes longer than entry_timeout/attr_timeout, when the kernel looks up again each
# entry it cached earlier than that (issue 21). Creates the files (empty) on a fresh local
# store, remounts (nothing cached in the kernel), lists once, prints seconds and requests.
#
# usage: bench/ls-requests.sh [N] [MOUNT_OPTIONS]   (default 100000; e.g. entry_timeout=10,attr_timeout=10)
# knobs: MOSSAICFS_BIN [<root>/.build/release/mossaicfs] BENCH_RUN_DIR [/tmp/bench-lsreq-run]
#        BENCH_MNT [/mnt/bench-lsreq] PORT [19421]
set -u
set -o pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
N=${1:-100000} OPTS=${2:-}
[[ $N =~ ^[1-9][0-9]*$ ]] || { echo "ls-requests: N must be a positive integer, not '$N'" >&2; exit 2; }
: "${MOSSAICFS_BIN:=$root/.build/release/mossaicfs}" "${BENCH_RUN_DIR:=/tmp/bench-lsreq-run}"
: "${BENCH_MNT:=/mnt/bench-lsreq}" "${PORT:=19421}"
case $BENCH_RUN_DIR in /tmp/bench-?*) ;; *) echo "ls-requests: BENCH_RUN_DIR must be under /tmp/bench-*" >&2; exit 2 ;; esac
case $BENCH_MNT in /mnt/bench-?*) ;; *) echo "ls-requests: BENCH_MNT must be under /mnt/bench-*" >&2; exit 2 ;; esac
W=$BENCH_RUN_DIR MNT=$BENCH_MNT
DAEMON=""

mount_fs() {
  "$MOSSAICFS_BIN" mount "$W/store" "$MNT" -o "cache_dir=$W/cache,metrics=127.0.0.1:$PORT${OPTS:+,$OPTS}" \
    </dev/null >>"$W/daemon.log" 2>&1 || { tail -n 5 "$W/daemon.log" >&2; exit 1; }
  DAEMON=$(pgrep -n -f " mount $W/store $MNT ") || { echo "ls-requests: no daemon" >&2; exit 1; }
}
# The daemon flushes and exits after umount; wait for it, so the next mount finds the cache free.
unmount_fs() { umount "$MNT" && while kill -0 "$DAEMON" 2>/dev/null; do sleep 0.05; done; }
trap 'mountpoint -q "$MNT" && unmount_fs' EXIT
# "op count" per line: how many of each FUSE operation the daemon has answered so far.
requests() {
  curl -sf "http://127.0.0.1:$PORT/metrics" | grep '^mossaicfs_fuse_op_duration_seconds_count' \
    | sed 's/.*op="\([a-z_]*\)".*} */\1 /' | sort
}

rm -rf "$W"; mkdir -p "$W" "$MNT"
"$MOSSAICFS_BIN" format "$W/store" >"$W/format.log" 2>&1 || { cat "$W/format.log" >&2; exit 1; }
mount_fs
python3 -c 'import os, sys
d = sys.argv[1] + "/d"; os.mkdir(d)
for i in range(int(sys.argv[2])): os.close(os.open(f"{d}/f{i:07d}", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))' "$MNT" "$N"
unmount_fs
mount_fs
requests >"$W/before"
t0=$EPOCHREALTIME
ls -l "$MNT/d" >/dev/null
t1=$EPOCHREALTIME
requests >"$W/after"
echo "ls -l of $N entries${OPTS:+ (-o $OPTS)}: $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }') s; requests:"
join -a2 -e0 -o 0,1.2,2.2 "$W/before" "$W/after" | awk '$3 - $2 > 0 { printf "  %s %d\n", $1, $3 - $2 }'
