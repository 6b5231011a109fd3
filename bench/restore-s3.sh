#!/usr/bin/env bash
# restore-s3.sh — mount from the bucket alone, over S3 (issue 21): bench/restore.sh and
# scale.sh restore from a local-directory store; this puts such a store's objects into a fresh
# moto bucket and mounts it from there on an empty cache_dir, REPEAT times, timing each mount
# from the command's start until a stat of FILE succeeds, with the daemon's peak RSS (VmHWM).
# The local store is only read: a store that restore.sh left (BENCH_RUN_DIR/n<N>/store) works.
#
# usage: bench/restore-s3.sh STORE_DIR FILE     (FILE relative to the filesystem's root; as root)
#        e.g. bench/restore-s3.sh /tmp/bench-restore-run/n1000000/store tree/m99/l9999/f999999
# knobs: MOSSAICFS_BIN [<root>/.build/release/mossaicfs] REPEAT [2]
#        BENCH_RUN_DIR [/tmp/bench-restore-s3] BENCH_MNT [/mnt/bench-restore-s3]
#        BENCH_HARNESS [<root>/../shared/bench] (for lib/common.sh)
set -u
set -o pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
harness=${BENCH_HARNESS:-$root/../shared/bench}
[[ -r $harness/lib/common.sh ]] || { echo "restore-s3: the shared harness is not at $harness (set BENCH_HARNESS)" >&2; exit 1; }
source "$harness/lib/common.sh"
[[ $# == 2 && -r $1/mossaicfs.json ]] || { echo "usage: restore-s3.sh STORE_DIR FILE (STORE_DIR: a local mossaicfs store)" >&2; exit 2; }
store=$1 file=$2
: "${MOSSAICFS_BIN:=$root/.build/release/mossaicfs}" "${REPEAT:=2}"
: "${BENCH_RUN_DIR:=/tmp/bench-restore-s3}" "${BENCH_MNT:=/mnt/bench-restore-s3}"
case $BENCH_RUN_DIR in /tmp/bench-?*) ;; *) echo "restore-s3: BENCH_RUN_DIR must be under /tmp/bench-*" >&2; exit 2 ;; esac
case $BENCH_MNT in /mnt/bench-?*) ;; *) echo "restore-s3: BENCH_MNT must be under /mnt/bench-*" >&2; exit 2 ;; esac
source "$here/moto.sh"

rm -rf "$BENCH_RUN_DIR"; mkdir -p "$BENCH_RUN_DIR" "$BENCH_MNT"
moto="" daemon=""
cleanup() {
  is_mounted "$BENCH_MNT" && fuse_unmount "$BENCH_MNT" "$daemon" 60
  [[ -n $moto ]] && kill "$moto"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
start_moto "$BENCH_RUN_DIR" || exit 1
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1 AWS_ENDPOINT_URL=http://127.0.0.1:$port
bucket=restore-bench prefix=fs
# Every object of the store but its local scratch directory (.tmp: atomic renames, the lock).
python3 - "$store" "$bucket" "$prefix" <<'PY' || exit 1
import boto3, os, sys, time
root, bucket, prefix = sys.argv[1:]
s3 = boto3.client("s3")
s3.create_bucket(Bucket=bucket)
count = size = 0
t0 = time.monotonic()
for directory, _, names in os.walk(root):
    if os.path.relpath(directory, root).split(os.sep)[0] == ".tmp":
        continue
    for name in names:
        path = os.path.join(directory, name)
        s3.upload_file(path, bucket, f"{prefix}/{os.path.relpath(path, root)}")
        count += 1
        size += os.path.getsize(path)
print(f"uploaded {count} objects, {size / 2**20:.0f} MiB in {time.monotonic() - t0:.1f} s")
PY
for round in $(seq "$REPEAT"); do
  rm -rf "$BENCH_RUN_DIR/cache"
  t0=$EPOCHREALTIME
  "$MOSSAICFS_BIN" mount "s3://$bucket/$prefix" "$BENCH_MNT" \
    -o "cache_dir=$BENCH_RUN_DIR/cache,log=$BENCH_RUN_DIR/daemon.log" </dev/null || exit 1
  daemon=$(fuse_pids "$BENCH_MNT" | head -n 1)
  stat "$BENCH_MNT/$file" >/dev/null || exit 1
  seconds=$(elapsed "$t0")
  echo "round $round: mounted from the bucket in $seconds s; daemon peak RSS $(vmhwm_mib "$daemon") MiB"
  umount "$BENCH_MNT" && wait_pid_exit "$daemon" 600 || { warn "unmount of $BENCH_MNT failed"; exit 1; }
  daemon=""
done
