#!/usr/bin/env bash
# CPU seconds the mossaicfs daemon spends on one workload, A/B between two binaries, rounds
# alternating, on one moto server (started and stopped here, by PID). CPU time (utime+stime of
# the daemon from /proc/PID/stat) is far steadier than throughput on a shared 2-core machine.
#
#   bench/daemon-cpu.sh OLD_BINARY NEW_BINARY [write|coldread] [ROUNDS]
#
# write:    dd bs=1M conv=fsync of a fresh 128 MiB random file
# coldread: dd of that file after a remount, page cache dropped, disk cache kept
# Needs root (mount, drop_caches) and moto_server on PATH. Scratch: /tmp/bench-cpu.
set -euo pipefail
old=$1 new=$2 workload=${3:-write} rounds=${4:-2}
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
for _ in $(seq "$rounds"); do
  for tag in old new; do
    n=$((n + 1)); bin=$old; [[ $tag == new ]] && bin=$new
    url=s3://bench-cpu/fs$n
    head -c $((128 << 20)) /dev/urandom > "$work/src"
    "$bin" format "$url" > /dev/null
    "$bin" mount "$url" "$work/mnt" -o "cache_dir=$work/cache$n" < /dev/null >> "$work/daemon.log" 2>&1
    if [[ $workload == coldread ]]; then
      cp "$work/src" "$work/mnt/f"; umount "$work/mnt"
      "$bin" mount "$url" "$work/mnt" -o "cache_dir=$work/cache$n" < /dev/null >> "$work/daemon.log" 2>&1
      sync; echo 3 > /proc/sys/vm/drop_caches
    fi
    pid=$(pgrep -f -- "$url $work/mnt" | head -n 1)
    before=$(cpu "$pid")
    if [[ $workload == coldread ]]; then
      rate=$(dd if="$work/mnt/f" of=/dev/null bs=1M 2>&1 | tail -n 1 | awk '{print $(NF-1), $NF}')
    else
      rate=$(dd if="$work/src" of="$work/mnt/f" bs=1M conv=fsync 2>&1 | tail -n 1 | awk '{print $(NF-1), $NF}')
    fi
    after=$(cpu "$pid")
    umount "$work/mnt"
    while kill -0 "$pid" 2> /dev/null; do sleep 0.1; done
    echo "$tag $workload: daemon CPU $(echo "scale=2; ($after - $before) / $ticks" | bc) s, $rate"
  done
done
