#!/usr/bin/env bash
# What deleting everything gives back (issue 20), on moto: writes SMALL_N files of 4 KiB, a
# SQLite database of SQLITE_N one-row transactions (WAL, synchronous=FULL) and a LARGE_MIB file
# to a mossaicfs mount with `sweep_grace=GRACE`, takes a metadata snapshot, then `rm -rf`s all
# of it and waits out the grace while the mount runs. Reports the bucket's bytes (file data
# and metadata snapshots apart) with everything written and after the deletion, and `df` used
# beside `mossaicfs status` used at both moments.
#
#   bench/reclaim.sh              GRACE [20] SMALL_N [20000] SQLITE_N [2000] LARGE_MIB [64]
#
# Needs root, moto_server, sqlite3, boto3 (with moto) and `make build`. Scratch: /tmp/bench-reclaim.
set -euo pipefail
: "${GRACE:=20}" "${SMALL_N:=20000}" "${SQLITE_N:=2000}" "${LARGE_MIB:=64}"
here=$(cd "$(dirname "$0")" && pwd)
bin=${MOSSAICFS_BIN:-$(dirname "$here")/.build/release/mossaicfs}
work=/tmp/bench-reclaim
mnt=$work/mnt
if mountpoint -q "$mnt" 2>/dev/null; then umount "$mnt"; fi
rm -rf "$work"; mkdir -p "$mnt" "$work/cache"
source "$here/moto.sh"
moto= daemon=
cleanup() {
  if mountpoint -q "$mnt"; then umount "$mnt" || umount -l "$mnt"; fi
  if [[ -n $daemon ]]; then
    # The daemon finishes its shutdown after the unmount: wait for its PID.
    for _ in $(seq 600); do kill -0 "$daemon" 2>/dev/null || break; sleep 0.1; done
  fi
  if [[ -n $moto ]]; then kill "$moto"; fi
}
trap cleanup EXIT
start_moto "$work"
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1 AWS_ENDPOINT_URL=http://127.0.0.1:$port
python3 -c 'import boto3; boto3.client("s3").create_bucket(Bucket="reclaim")'
url=s3://reclaim/fs
"$bin" format "$url" > /dev/null
# In the foreground, so that $daemon is its PID (stopped by the unmount, waited for by PID).
"$bin" mount "$url" "$mnt" -f -o "cache_dir=$work/cache,sweep_grace=$GRACE" >> "$work/daemon.log" 2>&1 &
daemon=$!
for _ in $(seq 300); do mountpoint -q "$mnt" && break; kill -0 "$daemon" || exit 1; sleep 0.1; done
mountpoint -q "$mnt"

# Bytes under a prefix of the bucket.
bucket_bytes() {
  python3 - "$1" <<'EOF'
import sys, boto3
total = 0
for page in boto3.client("s3").get_paginator("list_objects_v2").paginate(Bucket="reclaim", Prefix=sys.argv[1]):
    total += sum(o["Size"] for o in page.get("Contents", []))
print(total)
EOF
}
status_used() {
  "$bin" status "$mnt" --json | python3 -c 'import json, sys; u = json.load(sys.stdin)["usage"]; print(u["storedBytes"] + u["inlineBytes"] + u["releasedBytes"])'
}
df_used() { df -B1 --output=used "$mnt" | tail -n 1 | tr -d ' '; }
report() {  # LABEL
  local data meta
  data=$(( $(bucket_bytes fs/chunks/) + $(bucket_bytes fs/packs/) ))
  meta=$(bucket_bytes fs/meta/)
  printf '| %s | %.1f | %.1f | %.1f | %.1f | %.1f |\n' "$1" \
    "$(awk -v b="$data" 'BEGIN { print b / 1048576 }')" "$(awk -v b="$meta" 'BEGIN { print b / 1048576 }')" \
    "$(awk -v b="$((data + meta))" 'BEGIN { print b / 1048576 }')" \
    "$(awk -v b="$(df_used)" 'BEGIN { print b / 1048576 }')" "$(awk -v b="$(status_used)" 'BEGIN { print b / 1048576 }')"
  echo $((data + meta)) > "$work/last-total"
}

python3 - "$mnt/small" "$SMALL_N" <<'EOF'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
for d in range(100):
    os.makedirs(f"{root}/d{d}", exist_ok=True)
for i in range(n):
    with open(f"{root}/d{i % 100}/f{i}", "wb") as f:
        f.write(os.urandom(4096))
EOF
python3 - "$mnt/app.db" "$SQLITE_N" <<'EOF'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.execute("PRAGMA journal_mode=WAL"); db.execute("PRAGMA synchronous=FULL")
db.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)"); db.commit()
for i in range(int(sys.argv[2])):
    db.execute("INSERT INTO t(v) VALUES(randomblob(1024))"); db.commit()
db.close()
EOF
head -c "$((LARGE_MIB << 20))" /dev/urandom > "$mnt/large"
"$bin" snapshot "$mnt" > /dev/null

echo "# bench/reclaim.sh $(date -u '+%Y-%m-%d %H:%M UTC'): SMALL_N=$SMALL_N SQLITE_N=$SQLITE_N LARGE_MIB=$LARGE_MIB sweep_grace=$GRACE, moto"
echo
echo "| moment | file data MiB | metadata MiB | bucket MiB | df used MiB | status used MiB |"
echo "|---|--:|--:|--:|--:|--:|"
report "everything written"
held=$(cat "$work/last-total")
rm -rf "${mnt:?}"/*
"$bin" snapshot "$mnt" > /dev/null
# Past the grace the sweep runs every grace/4 s (at most a minute apart): wait for the bucket
# to stop shrinking, at most 3 graces and a minute.
deadline=$(( SECONDS + 3 * GRACE + 60 ))
sleep "$GRACE"
last=-1
while (( SECONDS < deadline )); do
  now=$(( $(bucket_bytes fs/) ))
  (( now == last )) && break
  last=$now
  sleep "$(( GRACE / 4 + 2 ))"
done
report "after rm -rf and the grace"
after=$(cat "$work/last-total")
echo
awk -v a="$after" -v h="$held" 'BEGIN { printf "bucket after / bucket held: %.2f %%\n", 100 * a / h }'
