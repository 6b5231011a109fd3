#!/usr/bin/env bash
# mossaicfs on its local-directory store (the embedded default): the same daemon as the
# `mossaicfs` adapter, with chunks in <work>/store instead of a bucket. Installed into a copy of
# the shared harness by bench/run.sh.
#
# MOSSAICFS_BIN   binary (default: .build/release/mossaicfs under the current directory)
# MOSSAICFS_OPTS  extra -o options appended to cache_dir=... (default: none)
source "$(dirname "${BASH_SOURCE[0]}")/_lib.sh"

: "${MOSSAICFS_BIN:=$PWD/.build/release/mossaicfs}"
: "${MOSSAICFS_OPTS:=}"
STORE="$SYS_WORK/store"
CACHE_DIR="$SYS_WORK/cache"

sys_check() {
  [[ -x $MOSSAICFS_BIN ]] || { echo "binary not found (set MOSSAICFS_BIN, or run from the project root after make build)"; return 1; }
  [[ -e /dev/fuse ]] || { echo "/dev/fuse missing"; return 1; }
}

sys_info() {
  echo "version: $("$MOSSAICFS_BIN" --version 2>/dev/null | head -n 1 || echo unknown)"
  echo "flags: format <work>/store; mount <work>/store <mnt> -o cache_dir=<work>/cache${MOSSAICFS_OPTS:+,$MOSSAICFS_OPTS}"
  echo "cache: none besides the store, which is on local disk"
  echo "s3: no"
}

sys_setup() {
  scratch_ok "$SYS_WORK" || return 1
  rm -rf "$STORE" "$CACHE_DIR"; mkdir -p "$SYS_MNT"
  "$MOSSAICFS_BIN" format "$STORE" >> "$SYS_WORK/format.log" 2>&1 || { tail -n 5 "$SYS_WORK/format.log" >&2; return 1; }
}

sys_mount() {
  "$MOSSAICFS_BIN" mount "$STORE" "$SYS_MNT" -o "cache_dir=$CACHE_DIR${MOSSAICFS_OPTS:+,$MOSSAICFS_OPTS}" \
    < /dev/null >> "$SYS_WORK/daemon.log" 2>&1 || { tail -n 5 "$SYS_WORK/daemon.log" >&2; return 1; }
  wait_mounted "$SYS_MNT" "$MOUNT_TIMEOUT"
}

sys_unmount() {
  local pids p rc=0
  pids=$(fuse_pids "$SYS_MNT")
  if is_mounted "$SYS_MNT"; then
    umount "$SYS_MNT" || fuse_unmount "$SYS_MNT" || rc=1
  fi
  for p in $pids; do
    wait_pid_exit "$p" "$UNMOUNT_TIMEOUT" || { warn "mossaicfs daemon $p did not exit"; rc=1; }
  done
  return $rc
}

sys_pid() { fuse_pids "$SYS_MNT"; }

adapter_main "$@"
