#!/usr/bin/env bash
# Does splice pay at the FUSE ceiling on this kernel? libfuse's own passthrough_ll example
# answers reads with an fd buffer (fuse_reply_data): built as shipped, libfuse copies the
# bytes through a user buffer; built with FUSE_CAP_SPLICE_WRITE|SPLICE_MOVE wanted in its
# init, it splices them from the file into /dev/fuse. Both mount a directory holding a
# 256 MiB file (in the page cache) with cache=never, so every read reaches the daemon; dd
# reads it with 1 MiB requests (mossaicfs's max_read) and with 128 KiB ones.
#
#   bench/fuse-splice.sh [ROUNDS]
#
# Needs root, gcc and libfuse3-dev (its examples). Scratch: /tmp/bench-splice.
set -euo pipefail
rounds=${1:-5}
examples=${FUSE_EXAMPLES_DIR:-/usr/share/doc/libfuse3-dev/examples}
work=/tmp/bench-splice
rm -rf "$work"; mkdir -p "$work/src" "$work/mnt"
cp "$examples/passthrough_ll.c" "$work/copy.c"
sed 's|^\tif(conn->capable & FUSE_CAP_EXPORT_SUPPORT)|\tconn->want \|= conn->capable \& (FUSE_CAP_SPLICE_WRITE \| FUSE_CAP_SPLICE_MOVE);\n&|' \
  "$work/copy.c" > "$work/splice.c"
cmp -s "$work/copy.c" "$work/splice.c" && { echo "could not patch passthrough_ll.c's init" >&2; exit 1; }
for variant in copy splice; do
  gcc -O2 -I"$examples" "$work/$variant.c" $(pkg-config fuse3 --cflags --libs) -o "$work/$variant"
done
head -c $((256 << 20)) /dev/urandom > "$work/src/f"
cat "$work/src/f" > /dev/null
daemon=
trap 'umount "$work/mnt" 2>/dev/null || true; [[ -n $daemon ]] && kill "$daemon" 2>/dev/null || true' EXIT
rate() { dd if="$work/mnt/f" of=/dev/null bs="$1" 2>&1 | tail -n 1 | awk '{print $(NF-1), $NF}'; }
for _ in $(seq "$rounds"); do
  for variant in copy splice; do
    "$work/$variant" -f -o source="$work/src",cache=never "$work/mnt" 2> "$work/$variant.log" &
    daemon=$!
    for _ in $(seq 100); do mountpoint -q "$work/mnt" && break; sleep 0.05; done
    mountpoint -q "$work/mnt" || { echo "passthrough_ll ($variant) did not mount" >&2; exit 1; }
    big=$(rate 1M) small=$(rate 128k)
    umount "$work/mnt"; wait "$daemon"; daemon=
    printf '%-6s  bs=1M %-10s  bs=128k %s\n' "$variant" "$big" "$small"
  done
done
