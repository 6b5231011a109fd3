#!/usr/bin/env bash
# Peak memory of the daemon while 16 writers write 64 MiB each at once (issue 19: the global
# write-buffer bound, mem_buffer_size). Prints the daemon's VmHWM (peak RSS) for each bound.
#   bench/write-memory.sh [BINARY]        (root; a local-directory store in a temp dir)
set -euo pipefail
bin=${1:-$(dirname "$0")/../.build/release/mossaicfs}
work=$(mktemp -d)
trap 'mountpoint -q "$work/mnt" && "$bin" umount "$work/mnt"; rm -rf "$work"' EXIT
for bound in 16M 64M 256M; do
  rm -rf "$work/store" "$work/cache" "$work/mnt"; mkdir -p "$work/mnt"
  "$bin" format "$work/store" >/dev/null
  "$bin" mount "$work/store" "$work/mnt" -o cache_dir="$work/cache",mem_buffer_size=$bound
  pid=$(head -1 "$work/cache/lock")
  for i in $(seq 16); do
    head -c $((64 << 20)) /dev/urandom > "$work/mnt/f$i" &
  done
  wait $(jobs -p)
  hwm=$(awk '/VmHWM/ {print $2, $3}' /proc/$pid/status)
  "$bin" umount "$work/mnt"
  echo "mem_buffer_size=$bound: 16 writers x 64 MiB, daemon peak RSS (VmHWM) $hwm"
done
