#!/usr/bin/env bash
# A/B of two mossaicfs binaries on the local-directory store (no S3 server in the way, so
# the FUSE and daemon sides show): per round and binary, a fresh filesystem gets a 256 MiB
# dd conv=fsync, a read of that file, an untar of /usr/include/linux, 2,000 x 4 KiB files
# created with cp and read back with cat; then the daemon's CPU seconds for all of it. Every
# result is checked against its source. Rounds alternate the binaries.
#
#   bench/local-ab.sh OLD_BINARY NEW_BINARY [ROUNDS]
#
# OPTS: extra -o options for both mounts. Needs root. Scratch: /tmp/bench-local-ab, /dev/shm.
set -euo pipefail
old=$1 new=$2 rounds=${3:-3}
work=/tmp/bench-local-ab src=/dev/shm/bench-local-ab
rm -rf "$work" "$src"; mkdir -p "$work/mnt" "$src"
trap 'umount "$work/mnt" 2>/dev/null || true; rm -rf "$src"' EXIT
head -c $((256 << 20)) /dev/urandom > "$src/big"
tar -C /usr/include -cf "$src/linux.tar" linux
head -c 4096 /dev/urandom > "$src/4k"
ticks=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
ms_since() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
rate() { tail -n 1 | awk '{print $(NF-1), $NF}'; }
for _ in $(seq "$rounds"); do
  for tag in old new; do
    bin=$old; [[ $tag == new ]] && bin=$new
    rm -rf "$work/store" "$work/cache"
    "$bin" format "$work/store" > /dev/null
    "$bin" mount "$work/store" "$work/mnt" -o "cache_dir=$work/cache${OPTS:+,$OPTS}" < /dev/null >> "$work/daemon.log" 2>&1
    pid=$(pgrep -f -- "$work/store $work/mnt" | head -n 1)
    write=$(dd if="$src/big" of="$work/mnt/big" bs=1M conv=fsync 2>&1 | rate)
    read=$(dd if="$work/mnt/big" of=/dev/null bs=1M 2>&1 | rate)
    start=$(date +%s%N); tar -C "$work/mnt" -xf "$src/linux.tar"; untar=$(ms_since "$start")
    mkdir "$work/mnt/small"
    start=$(date +%s%N); for i in $(seq 2000); do cp "$src/4k" "$work/mnt/small/f$i"; done; create=$(ms_since "$start")
    start=$(date +%s%N); cat "$work/mnt/small"/* > "$work/small.cat"; readsmall=$(ms_since "$start")
    seconds=$(echo "scale=2; $(cpu "$pid") / $ticks" | bc)
    cmp -s "$src/big" "$work/mnt/big" || { echo "$tag: the 256 MiB file differs" >&2; exit 1; }
    diff -r /usr/include/linux "$work/mnt/linux" > /dev/null || { echo "$tag: the untarred tree differs" >&2; exit 1; }
    [[ $(stat -c %s "$work/small.cat") == $((2000 * 4096)) ]] || { echo "$tag: small files read back short" >&2; exit 1; }
    umount "$work/mnt"
    while kill -0 "$pid" 2> /dev/null; do sleep 0.1; done
    echo "$tag write $write, read $read, untar $untar ms, create 2000 $create ms, read 2000 $readsmall ms, daemon CPU $seconds s"
  done
done
