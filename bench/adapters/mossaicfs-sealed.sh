#!/usr/bin/env bash
# mossaicfs on S3 with its chunk transforms on: the same daemon and bucket as the `mossaicfs`
# adapter, formatted with compression and encryption (issue 23's "compare.sh with encryption +
# compression on"), so one run puts both side by side. Installed into a copy of the shared
# harness by bench/run.sh.
#
# MOSSAICFS_BIN          binary (default: .build/release/mossaicfs under the current directory)
# MOSSAICFS_SEALED_ARGS  format options (default: --compress zstd --encrypt; a fresh random key
#                        file is made in <work>/master.key and passed to mount as key_file=)
# MOSSAICFS_OPTS         extra -o options appended to cache_dir=... (default: none)
source "$(dirname "${BASH_SOURCE[0]}")/_lib.sh"

: "${MOSSAICFS_BIN:=$PWD/.build/release/mossaicfs}"
: "${MOSSAICFS_SEALED_ARGS:=--compress zstd --encrypt}"
: "${MOSSAICFS_OPTS:=}"
URL="s3://$SYS_BUCKET/sealed"
CACHE_DIR="$SYS_WORK/cache"
KEY_FILE="$SYS_WORK/master.key"

sys_check() {
  [[ -x $MOSSAICFS_BIN ]] || { echo "binary not found (set MOSSAICFS_BIN, or run from the project root after make build)"; return 1; }
  [[ -e /dev/fuse ]] || { echo "/dev/fuse missing"; return 1; }
}

sys_info() {
  echo "version: $("$MOSSAICFS_BIN" --version 2>/dev/null | head -n 1 || echo unknown)"
  echo "flags: format $URL $MOSSAICFS_SEALED_ARGS --key-file <work>/master.key; mount $URL <mnt> -o cache_dir=<work>/cache,key_file=<work>/master.key${MOSSAICFS_OPTS:+,$MOSSAICFS_OPTS}"
  echo "cache: disk cache <work>/cache"
  echo "s3: yes"
}

sys_setup() {
  scratch_ok "$SYS_WORK" || return 1
  rm -rf "$CACHE_DIR" "$KEY_FILE"; mkdir -p "$CACHE_DIR" "$SYS_MNT"
  (umask 077; head -c 32 /dev/urandom > "$KEY_FILE")
  # shellcheck disable=SC2086 # the format options are words on purpose
  AWS_ENDPOINT_URL="$S3_ENDPOINT" "$MOSSAICFS_BIN" format "$URL" $MOSSAICFS_SEALED_ARGS --key-file "$KEY_FILE" \
    >> "$SYS_WORK/format.log" 2>&1 || { tail -n 5 "$SYS_WORK/format.log" >&2; return 1; }
}

sys_mount() {
  AWS_ENDPOINT_URL="$S3_ENDPOINT" "$MOSSAICFS_BIN" mount "$URL" "$SYS_MNT" \
    -o "cache_dir=$CACHE_DIR,key_file=$KEY_FILE${MOSSAICFS_OPTS:+,$MOSSAICFS_OPTS}" < /dev/null >> "$SYS_WORK/daemon.log" 2>&1 \
    || { tail -n 5 "$SYS_WORK/daemon.log" >&2; return 1; }
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

# The empty-cache read: the whole cache_dir goes, as in the `mossaicfs` adapter (the mount then
# restores the metadata from the bucket; the key file stays, outside it).
sys_drop_cache() {
  scratch_ok "$CACHE_DIR" || return 1
  rm -rf "$CACHE_DIR" && mkdir -p "$CACHE_DIR"
}

adapter_main "$@"
