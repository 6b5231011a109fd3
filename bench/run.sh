#!/usr/bin/env bash
# Benchmarks mossaicfs beside local disk and libfuse's passthrough example — and, with
# --anchors, JuiceFS, s3fs and rclone — on one moto S3 server, with the shared harness
# (../shared/bench/compare.sh): the same workloads, verified results, one table.
#
#   bench/run.sh              local passthrough mossaicfs-local mossaicfs
#   bench/run.sh --anchors    ... plus juicefs s3fs rclone (install them first, see the harness README)
#   bench/run.sh SYSTEM ...   exactly these systems (mossaicfs-sealed: S3 with --compress zstd --encrypt)
#
# Knobs are the harness's (SEQ_MIB, SMALL_FILES, RESULTS_DIR, ...); results land in
# $RESULTS_DIR (default /tmp/bench-results). Run from anywhere; needs root and `make build`.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
harness=${BENCH_HARNESS:-$root/../shared/bench}
[[ -x $harness/compare.sh ]] || { echo "bench: the shared harness is not at $harness (set BENCH_HARNESS)" >&2; exit 1; }

# The harness runs adapters from its own directory: work on a copy with ours added.
copy=$(mktemp -d /tmp/bench-harness.XXXXXX)
trap 'rm -rf "$copy"' EXIT
cp -a "$harness/." "$copy/"
cp "$here"/adapters/*.sh "$copy/adapters/"

systems=(local passthrough mossaicfs-local mossaicfs)
if [[ ${1:-} == --anchors ]]; then systems=(local passthrough juicefs s3fs rclone mossaicfs-local mossaicfs); shift; fi
if (( $# > 0 )); then systems=("$@"); fi

cd "$root"
export MOSSAICFS_BIN=${MOSSAICFS_BIN:-$root/.build/release/mossaicfs}
"$copy/compare.sh" "${systems[@]}"
