#!/usr/bin/env bash
# CPU seconds the mossaicfs daemon spends on one workload, A/B between two binaries, rounds
# alternating, on one moto server (started and stopped here, by PID). CPU time (utime+stime of
# the daemon from /proc/PID/stat) is far steadier than throughput on a shared 2-core machine.
#
#   bench/daemon-cpu.sh OLD_BINARY NEW_BINARY [write|coldread|nocache] [ROUNDS]
#
# write:    dd bs=1M conv=fsync of a fresh 128 MiB random file
# coldread: dd of that file after a remount, page cache dropped, disk cache kept
# nocache:  the same with an empty disk cache (every chunk from the store)
# OLD_OPTS / NEW_OPTS: extra mount options for each side (e.g. NEW_OPTS=read_ahead=16).
# OLD_FORMAT / NEW_FORMAT: extra format options for each side (e.g. NEW_FORMAT="--compress zstd
# --encrypt"); with --encrypt a fresh key file is made and passed to format and mount.
# DATA=random (default) or text (the file is /usr/include's headers repeated: compressible).
# Also printed: moto's CPU seconds and the number of objects the file took (write).
# PERF=DIR: record the daemon's stacks during each timed step (perf record -g) into DIR/TAG-N.data.
# Needs root (mount, drop_caches) and moto_server on PATH. Scratch: /tmp/bench-cpu.
set -euo pipefail
old=$1 new=$2 workload=${3:-write} rounds=${4:-2}
OLD_OPTS=${OLD_OPTS:-} NEW_OPTS=${NEW_OPTS:-} OLD_FORMAT=${OLD_FORMAT:-} NEW_FORMAT=${NEW_FORMAT:-} DATA=${DATA:-random}
work=/tmp/bench-cpu
rm -rf "$work"; mkdir -p "$work/mnt"
source "$(dirname "${BASH_SOURCE[0]}")/moto.sh"
moto=
trap 'umount "$work/mnt" 2>/dev/null || true; [[ -n $moto ]] && kill "$moto"' EXIT
start_moto "$work"
curl -s -X PUT "http://127.0.0.1:$port/bench-cpu" > /dev/null
export AWS_ENDPOINT_URL=http://127.0.0.1:$port AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench
ticks=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
n=0
mib=${SIZE_MIB:-128}
# daemon PID of the mount of $1 on $work/mnt
daemon_of() { pgrep -f -- "$1 $work/mnt" | head -n 1; }
unmount_and_wait() { local pid; pid=$(daemon_of "$1"); umount "$work/mnt"; while kill -0 "$pid" 2> /dev/null; do sleep 0.1; done; }
objects() {
  python3 - "$port" "$1" <<'PY'
import sys, boto3
s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{sys.argv[1]}", region_name="us-east-1")
n = 0
for page in s3.get_paginator("list_objects_v2").paginate(Bucket="bench-cpu", Prefix=sys.argv[2] + "/"):
    n += sum(1 for o in page.get("Contents", []) if "/chunks/" in o["Key"] or "/packs/" in o["Key"])
print(n)
PY
}
for _ in $(seq "$rounds"); do
  for tag in old new; do
    n=$((n + 1)); bin=$old opts=$OLD_OPTS fmt=$OLD_FORMAT; [[ $tag == new ]] && bin=$new opts=$NEW_OPTS fmt=$NEW_FORMAT
    url=s3://bench-cpu/fs$n
    if [[ $fmt == *--encrypt* ]]; then
      (umask 077; head -c 32 /dev/urandom > "$work/key$n")
      fmt="$fmt --key-file $work/key$n" opts="${opts:+$opts,}key_file=$work/key$n"
    fi
    mount_it() { "$bin" mount "$url" "$work/mnt" -o "cache_dir=$1${opts:+,$opts}" < /dev/null >> "$work/daemon.log" 2>&1; }
    if [[ $DATA == text ]]; then
      rm -f "$work/src"
      while (( $(stat -c %s "$work/src" 2> /dev/null || echo 0) < mib << 20 )); do find /usr/include -type f -name '*.h' -exec cat {} + >> "$work/src"; done
      truncate -s $((mib << 20)) "$work/src"
    else
      head -c $((mib << 20)) /dev/urandom > "$work/src"
    fi
    # shellcheck disable=SC2086 # format options are words on purpose
    "$bin" format "$url" $fmt > /dev/null
    mount_it "$work/cache$n"
    if [[ $workload != write ]]; then
      cp "$work/src" "$work/mnt/f"; unmount_and_wait "$url"
      cache=$work/cache$n; [[ $workload == nocache ]] && cache=$work/cache$n-empty
      mount_it "$cache"
      sync; echo 3 > /proc/sys/vm/drop_caches
    fi
    pid=$(daemon_of "$url")
    before=$(cpu "$pid") moto_before=$(cpu "$moto") log_before=$(wc -l < "$work/moto.log")
    perf_pid=
    if [[ -n ${PERF:-} ]]; then
      mkdir -p "$PERF"
      perf record -q -F 2000 -g -p "$pid" -o "$PERF/$tag-$n.data" 2> /dev/null & perf_pid=$!
      sleep 0.5  # perf attaches asynchronously; this only keeps the first samples, nothing waits on it
    fi
    if [[ $workload != write ]]; then
      rate=$(dd if="$work/mnt/f" of=/dev/null bs=1M 2>&1 | tail -n 1 | awk '{print $(NF-1), $NF}')
    else
      rate=$(dd if="$work/src" of="$work/mnt/f" bs=1M conv=fsync 2>&1 | tail -n 1 | awk '{print $(NF-1), $NF}')
    fi
    [[ -n $perf_pid ]] && { kill -INT "$perf_pid"; wait "$perf_pid" || true; }
    after=$(cpu "$pid") moto_after=$(cpu "$moto") hwm=$(awk '/VmHWM/ {print int($2 / 1024)}' "/proc/$pid/status")
    unmount_and_wait "$url"
    echo "$tag $workload: $rate, daemon CPU $(echo "scale=2; ($after - $before) / $ticks" | bc) s, moto CPU $(echo "scale=2; ($moto_after - $moto_before) / $ticks" | bc) s, peak RSS $hwm MiB, $(objects "fs$n") objects, $(tail -n +$((log_before + 1)) "$work/moto.log" | grep -c '"GET /bench-cpu/fs[0-9]*/\(chunks\|packs\)/') GETs"
  done
done
