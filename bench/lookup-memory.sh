#!/usr/bin/env bash
# lookup-memory.sh — the daemon's memory against the number of inodes the kernel holds
# (issue 21: "memory bounded by configuration, not by the number of files ever looked up").
#
# Creates once a flat directory of max(N) empty files (f0 … f<N-1>, one mknod each) on a
# local-directory store, then for each binary and each N: mounts on that store and cache_dir
# (nothing cached in the kernel), lstat(2)s f0 … f<N-1> by path — one LOOKUP each, after which
# the kernel holds N inodes and the daemon counts a lookup reference for each — and reads the
# daemon's peak RSS (VmHWM in /proc/PID/status) before unmounting. Reported per binary and N:
# VmHWM right after the mount, VmHWM after the stats, their difference per looked-up inode,
# and the stat time (the memory figures are what this measures; times are only a sanity
# check). Several binaries share the dataset (the on-store format is the same), so a build of
# another commit can be measured beside this one in the same run.
#
# usage: bench/lookup-memory.sh [N ...]        (default 100000; run from anywhere, as root)
# knobs: BINS ["current=<root>/.build/release/mossaicfs"; e.g. "before=/tmp/x/mossaicfs after=…"]
#        BENCH_RUN_DIR [/tmp/bench-lookupmem-run] BENCH_MNT [/mnt/bench-lookupmem]
#        KEEP_DATA [0; 1 keeps the dataset for a later run, which reuses it if large enough]
#        CREATE_ONLY [0; 1 creates the dataset and stops, keeping it] MOSSAICFS_OPTS (extra -o options)
set -u
set -o pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
COUNTS=${*:-100000}
max=0
for n in $COUNTS; do
  [[ $n =~ ^[1-9][0-9]*$ ]] || { echo "lookup-memory: N must be a positive integer, not '$n'" >&2; exit 2; }
  (( n > max )) && max=$n
done
: "${BINS:=current=$root/.build/release/mossaicfs}" "${BENCH_RUN_DIR:=/tmp/bench-lookupmem-run}"
: "${BENCH_MNT:=/mnt/bench-lookupmem}" "${KEEP_DATA:=0}" "${MOSSAICFS_OPTS:=}"
case $BENCH_RUN_DIR in /tmp/bench-?*) ;; *) echo "lookup-memory: BENCH_RUN_DIR must be under /tmp/bench-*" >&2; exit 2 ;; esac
case $BENCH_MNT in /mnt/bench-?*) ;; *) echo "lookup-memory: BENCH_MNT must be under /mnt/bench-*" >&2; exit 2 ;; esac
for b in $BINS; do
  [[ $b == *=* && -x ${b#*=} ]] || { echo "lookup-memory: '$b' is not LABEL=EXECUTABLE" >&2; exit 2; }
done
W=$BENCH_RUN_DIR MNT=$BENCH_MNT
BIN="" DAEMON=""
log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

mount_fs() {
  "$BIN" mount "$W/store" "$MNT" -o "cache_dir=$W/cache,log=$W/daemon.log${MOSSAICFS_OPTS:+,$MOSSAICFS_OPTS}" \
    </dev/null >>"$W/bench.log" 2>&1 || { tail -n 5 "$W/bench.log" >&2; exit 1; }
  DAEMON=$(pgrep -n -f " mount $W/store $MNT ") || { echo "lookup-memory: no daemon" >&2; exit 1; }
}
# The daemon flushes and exits after umount; wait for it, so the next mount finds the cache free.
unmount_fs() { umount "$MNT" && while kill -0 "$DAEMON" 2>/dev/null; do sleep 0.05; done; }
cleanup() {
  mountpoint -q "$MNT" && unmount_fs
  [[ $KEEP_DATA == 1 ]] || rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
kib() { awk -v k="$1" '/^'"$1"':/ { print $2 }' "/proc/$DAEMON/status"; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

mkdir -p "$W" "$MNT"
have=$(cat "$W/created" 2>/dev/null || echo 0)
if (( have < max )); then
  BIN=${BINS%% *}; BIN=${BIN#*=}
  log "creating $max empty files in flat/ (with $BIN)"
  rm -rf "$W"; mkdir -p "$W/store"
  "$BIN" format "$W/store" >>"$W/bench.log" 2>&1 || { tail -n 5 "$W/bench.log" >&2; exit 1; }
  mount_fs
  t0=$EPOCHREALTIME
  python3 -c 'import os, stat, sys
d = sys.argv[1] + "/flat"; os.mkdir(d)
for i in range(int(sys.argv[2])): os.mknod(f"{d}/f{i}", 0o644 | stat.S_IFREG)' "$MNT" "$max" || exit 1
  log "created in $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", b - a }') s"
  unmount_fs
  echo "$max" >"$W/created"
fi

if [[ ${CREATE_ONLY:-0} == 1 ]]; then KEEP_DATA=1; exit 0; fi
load0=$(cut -d' ' -f1-3 /proc/loadavg)
ROWS=$W/rows.tsv; : >"$ROWS"
for b in $BINS; do
  label=${b%%=*} BIN=${b#*=}
  for n in $COUNTS; do
    mount_fs
    stat "$MNT/flat" >/dev/null
    base=$(kib VmHWM)
    t0=$EPOCHREALTIME
    python3 -c 'import os, sys
d = sys.argv[1] + "/flat"
for i in range(int(sys.argv[2])): os.lstat(f"{d}/f{i}")' "$MNT" "$n" || exit 1
    secs=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
    peak=$(kib VmHWM) rss=$(kib VmRSS)
    unmount_fs
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$label" "$n" "$(mib "$base")" "$(mib "$peak")" "$(mib "$rss")" \
      "$(awk -v a="$base" -v b="$peak" -v n="$n" 'BEGIN { printf "%.0f", (b - a) * 1024 / n }')" "$secs" >>"$ROWS"
    log "$label N=$n: $(tail -n 1 "$ROWS")"
  done
done
echo "# lookup-memory.sh $(date -u '+%Y-%m-%d %H:%M UTC'): N = ${COUNTS// /, }; $(nproc) cores; load average at the start $load0, at the end $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| binary | N looked up | VmHWM after mount MiB | VmHWM after stats MiB | VmRSS then MiB | growth bytes/inode | stat s |"
echo "|---|--:|--:|--:|--:|--:|--:|"
awk -F'\t' '{ printf "| %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7 }' "$ROWS"
