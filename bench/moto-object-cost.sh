#!/usr/bin/env bash
# What one S3 request costs the test server (moto) by object size: moto's CPU seconds
# (utime+stime from /proc/PID/stat) to take 128 MiB as 1, 4 and 8 MiB PUTs and to serve it
# back as GETs, sent by the curl CLI signing SigV4, 4 parallel connections. moto is one
# Python process on about one core, so its CPU per byte stored is what bounds the
# sequential S3 workloads of bench/run.sh: mossaicfs sends one request per 1 MiB chunk,
# JuiceFS one per 4 MiB block.
#
#   bench/moto-object-cost.sh [ROUNDS]
#
# Needs moto_server and curl on PATH. Scratch: /tmp/bench-moto-cost.
set -euo pipefail
rounds=${1:-2}
work=/tmp/bench-moto-cost
rm -rf "$work"; mkdir -p "$work"
source "$(dirname "${BASH_SOURCE[0]}")/moto.sh"
moto=
trap '[[ -n $moto ]] && kill "$moto"' EXIT
start_moto "$work"
bucket=http://127.0.0.1:$port/moto-cost
curl -sf -X PUT "$bucket" > /dev/null
ticks=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$moto/stat"; }
sign=(--aws-sigv4 "aws:amz:us-east-1:s3" -u bench:bench -H "x-amz-content-sha256: UNSIGNED-PAYLOAD")

# Runs one curl per config file in parallel and waits for exactly those (not for moto).
parallel_curl() {
  local pids=() cfg
  for cfg in "$@"; do curl -sf "${sign[@]}" -K "$cfg" & pids+=($!); done
  for pid in "${pids[@]}"; do wait "$pid"; done
}

for round in $(seq "$rounds"); do
  for mib in 1 4 8; do
    head -c $((mib << 20)) /dev/urandom > "$work/object"
    per=$((128 / mib / 4))
    puts=() gets=()
    for p in 0 1 2 3; do
      for i in $(seq "$per"); do
        printf 'url = "%s/r%d-%d-%d-%d"\nupload-file = "%s"\noutput = "/dev/null"\n' "$bucket" "$round" "$mib" "$p" "$i" "$work/object"
      done > "$work/put$p"
      for i in $(seq "$per"); do
        printf 'url = "%s/r%d-%d-%d-%d"\noutput = "/dev/null"\n' "$bucket" "$round" "$mib" "$p" "$i"
      done > "$work/get$p"
      puts+=("$work/put$p"); gets+=("$work/get$p")
    done
    c0=$(cpu)
    parallel_curl "${puts[@]}"  # with curl's Expect: 100-continue, as the daemon's libcurl sends
    c1=$(cpu)
    parallel_curl "${gets[@]}"
    c2=$(cpu)
    printf '%d MiB objects x %3d: moto CPU %4d ms for the PUTs, %4d ms for the GETs\n' \
      "$mib" $((128 / mib)) $(( (c1 - c0) * 1000 / ticks )) $(( (c2 - c1) * 1000 / ticks ))
  done
done
