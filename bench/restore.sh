#!/usr/bin/env bash
# restore.sh — mount from the store alone (issue 21): how long a new machine, an empty
# cache_dir, takes to mount a filesystem of N small files whose metadata is a base snapshot
# plus a chain of changesets, on a local-directory store. Several binaries (before/after a
# change) restore the same store, alternating, REPEAT times each, in one run.
#
# For each N: format, mount with meta_interval=META_INTERVAL (so the chain grows while the
# files are created, as it does over a long run with the default 10 s), create N files in a
# tree (100 per directory; file i holds i mod 1,025 bytes, all different, so the data stays
# inline in the metadata, as in scale.sh), unmount. Then, REPEAT times, for each binary: mount
# on a new, empty cache_dir (the daemon restores the newest snapshot), time it from the mount
# command's start until a stat of the last file created gives its size, and the daemon's
# peak RSS (VmHWM) and RSS then; unmount. The store's
# meta/HEAD must be the same before and after every mount (a mount that published a snapshot
# would change the chain the next one restores; the run stops then).
#
# usage: bench/restore.sh [N ...]                                   (default 100000; as root)
# knobs: BINS ["after=<root>/.build/release/mossaicfs"], space-separated LABEL=PATH, the
#          first also creates the store;
#        REPEAT [2]; META_INTERVAL [1]; MOSSAICFS_OPTS (extra -o options, every mount);
#        REUSE [0] (1: restore the store an earlier run left in BENCH_RUN_DIR/n<N>, if any,
#          instead of creating it again);
#        DROP_CACHES [0] (1: drop the kernel's caches before each mount, so the store is read
#          from disk); BENCH_RUN_DIR [/tmp/bench-restore-run]; BENCH_MNT [/mnt/bench-restore];
#        BENCH_HARNESS [<root>/../shared/bench] (for lib/common.sh)
set -u
set -o pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
harness=${BENCH_HARNESS:-$root/../shared/bench}
[[ -r $harness/lib/common.sh ]] || { echo "restore: the shared harness is not at $harness (set BENCH_HARNESS)" >&2; exit 1; }
source "$harness/lib/common.sh"

COUNTS=${*:-100000}
for n in $COUNTS; do
  [[ $n =~ ^[1-9][0-9]*$ ]] || { echo "restore: N must be a positive integer, not '$n'" >&2; exit 2; }
done
: "${BINS:=after=$root/.build/release/mossaicfs}" "${REPEAT:=2}" "${META_INTERVAL:=1}" "${MOSSAICFS_OPTS:=}"
: "${REUSE:=0}" "${DROP_CACHES:=0}" "${BENCH_RUN_DIR:=/tmp/bench-restore-run}" "${BENCH_MNT:=/mnt/bench-restore}"
case $BENCH_RUN_DIR in /tmp/bench-?*) ;; *) echo "restore: BENCH_RUN_DIR must be under /tmp/bench-*" >&2; exit 2 ;; esac
case $BENCH_MNT in /mnt/bench-?*) ;; *) echo "restore: BENCH_MNT must be under /mnt/bench-*" >&2; exit 2 ;; esac
for b in $BINS; do
  [[ $b == ?*=?* && -x ${b#*=} ]] || { echo "restore: '$b' is not LABEL=executable" >&2; exit 2; }
done

MNT=$BENCH_MNT
DAEMON=""
cleanup() { is_mounted "$MNT" && fuse_unmount "$MNT" "$DAEMON" 60; }
trap cleanup EXIT
trap 'exit 130' INT TERM

# mount_with BIN WORK CACHE_DIR [OPTS]: mounts WORK/store on MNT, sets DAEMON.
mount_with() {
  "$1" mount "$2/store" "$MNT" -o "cache_dir=$3,log=$2/daemon.log${4:+,$4}${MOSSAICFS_OPTS:+,$MOSSAICFS_OPTS}" \
    </dev/null >>"$2/bench.log" 2>&1 || { warn "mount failed (see $2/bench.log)"; return 1; }
  wait_mounted "$MNT" 600 || return 1
  DAEMON=$(fuse_pids "$MNT" | head -n 1)
  [[ -n $DAEMON ]] || { warn "no daemon holds /dev/fuse for $MNT"; return 1; }
}
unmount() { umount "$MNT" && wait_pid_exit "$DAEMON" 600 || { warn "unmount of $MNT failed"; return 1; }; }

# The tree of scale.sh: tree/m<i/10000>/l<i/100>/f<i>, file i holding i mod 1,025 bytes.
CREATE_PY=$(cat <<'PY'
import os, random, sys
root, n = sys.argv[1], int(sys.argv[2])
payload = random.Random(21).randbytes(1024)
for i in range(n):
    path = f"{root}/tree/m{i // 10000}/l{i // 100}/f{i}"
    if i % 100 == 0:
        os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    if i % 1025:
        os.write(fd, (i.to_bytes(8, "little") + payload)[:i % 1025])
    os.close(fd)
PY
)

ROWS=$BENCH_RUN_DIR/rows.tsv
mkdir -p "$BENCH_RUN_DIR" "$MNT"; : >"$ROWS"
first=${BINS%% *}; first=${first#*=}
load0=$(cut -d' ' -f1-3 /proc/loadavg)
for n in $COUNTS; do
  work=$BENCH_RUN_DIR/n$n
  if (( REUSE )) && [[ -s $work/store/meta/HEAD ]]; then
    log "=== N=$n: the store of an earlier run"
  else
    rm -rf "$work"; mkdir -p "$work/store"
    log "=== N=$n: creating the store (meta_interval=$META_INTERVAL)"
    "$first" format "$work/store" >>"$work/bench.log" 2>&1 || { warn "format failed"; exit 1; }
    mount_with "$first" "$work" "$work/cache" "meta_interval=$META_INTERVAL" || exit 1
    t0=$EPOCHREALTIME
    python3 -c "$CREATE_PY" "$MNT" "$n" || { warn "creating the files failed"; exit 1; }
    log "  created $n files in $(elapsed "$t0") s; unmounting"
    unmount || exit 1
  fi
  head0=$(cat "$work/store/meta/HEAD")
  last=$MNT/tree/m$(( (n - 1) / 10000 ))/l$(( (n - 1) / 100 ))/f$(( n - 1 ))
  want=$(( (n - 1) % 1025 ))
  for (( r = 1; r <= REPEAT; r++ )); do
    for b in $BINS; do
      label=${b%%=*} bin=${b#*=}
      rm -rf "$work/cache-new"
      (( DROP_CACHES )) && drop_kernel_caches
      t0=$EPOCHREALTIME
      mount_with "$bin" "$work" "$work/cache-new" || exit 1
      got=$(stat -c %s "$last") || got=-
      secs=$(elapsed "$t0")
      hwm=$(vmhwm_mib "$DAEMON") rss=$(awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$DAEMON/status")
      [[ $got == "$want" ]] || { warn "$label: $last has size $got, expected $want"; exit 1; }
      unmount || exit 1
      [[ $(cat "$work/store/meta/HEAD") == "$head0" ]] || { warn "$label: the mount changed meta/HEAD"; exit 1; }
      restored=$(grep 'restored metadata from the store' "$work/daemon.log" | tail -n 1 |
                 grep -oE '(pieces|bytes)=[0-9]+' | sort -r | paste -sd' ' || echo -)
      printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$n" "$r" "$label" "$secs" "$hwm" "$rss" "$restored" >>"$ROWS"
      log "  N=$n run $r $label: $secs s, peak RSS $hwm MiB, RSS $rss MiB ($restored)"
    done
  done
done
echo "# restore.sh $(date -u '+%Y-%m-%d %H:%M UTC'): N = ${COUNTS// /, }; meta_interval=$META_INTERVAL; $(nproc) cores;" \
  "load average at the start $load0, at the end $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| N | run | binary | mount from the store s | daemon peak RSS MiB | RSS once mounted MiB | restored |"
echo "|--:|--:|---|--:|--:|--:|---|"
awk -F'\t' '{ printf "| %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7 }' "$ROWS"
