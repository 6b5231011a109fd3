#!/usr/bin/env bash
# JuiceFS's read of a 256 MiB file with an empty disk cache, measured like
# `bench/daemon-cpu.sh ... nocache`: speed, CPU seconds of the JuiceFS daemon and of moto, peak
# RSS; 3 rounds on one moto server (started and stopped here, by PID). JuiceFS's defaults, cache
# dir in the scratch directory. Needs root, moto_server and juicefs on PATH. Scratch: /tmp/jfs-read.
#
#   bench/juicefs-nocache.sh
set -euo pipefail
work=/tmp/jfs-read; rm -rf $work; mkdir -p $work/mnt $work/cache
source "$(dirname "${BASH_SOURCE[0]}")/moto.sh"
moto=; jpid=
trap 'umount $work/mnt 2>/dev/null || true; [[ -n $jpid ]] && kill $jpid 2>/dev/null; [[ -n $moto ]] && kill "$moto"' EXIT
start_moto "$work"
curl -s -X PUT "http://127.0.0.1:$port/jfs" > /dev/null
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench
juicefs format --storage s3 --bucket http://127.0.0.1:$port/jfs --access-key bench --secret-key bench sqlite3://$work/meta.db benchjfs > $work/format.log 2>&1
ticks=$(getconf CLK_TCK); cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
mnt() { juicefs mount sqlite3://$work/meta.db $work/mnt --cache-dir $work/cache --no-usage-report > $work/d.log 2>&1 & jpid=$!; for i in $(seq 100); do mountpoint -q $work/mnt && break; sleep 0.1; done; }
umnt() { umount $work/mnt; wait $jpid || true; jpid=; }
mnt; head -c $((256<<20)) /dev/urandom > $work/src; dd if=$work/src of=$work/mnt/f bs=1M conv=fsync status=none; umnt
for r in 1 2 3; do
  rm -rf $work/cache; mkdir $work/cache; sync; echo 3 > /proc/sys/vm/drop_caches
  mnt
  d=$(pgrep -P $jpid | head -1); d=${d:-$jpid}; b=$(cpu $d); mb=$(cpu $moto); t0=$(date +%s.%N)
  dd if=$work/mnt/f of=/dev/null bs=1M status=none
  t1=$(date +%s.%N); a=$(cpu $d); ma=$(cpu $moto)
  echo "juicefs nocache: $(echo "256*1.048576/($t1-$t0)" | bc) MB/s daemon $(echo "scale=2;($a-$b)/$ticks"|bc) s moto $(echo "scale=2;($ma-$mb)/$ticks"|bc) s rss $(awk '/VmHWM/{print $2/1024}' /proc/$d/status) MiB"
  umnt
done
