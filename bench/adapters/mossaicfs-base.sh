#!/usr/bin/env bash
# mossaicfs-base: the harness's `mossaicfs` adapter (S3 on moto) run with another binary, so
# that one compare.sh run puts two builds side by side (an older build against this one:
# "nothing slower beyond noise"). Installed into a copy of the shared harness by bench/run.sh.
#
#   MOSSAICFS_BASE_BIN=/path/to/old/mossaicfs bench/run.sh mossaicfs-base mossaicfs
#
# MOSSAICFS_BASE_BIN  the other binary (required: without it the system is skipped as "binary
#                     not found", never silently run with the current build)
MOSSAICFS_BIN=${MOSSAICFS_BASE_BIN:-/MOSSAICFS_BASE_BIN-is-not-set}
MOSSAICFS_PREFIX=base
source "$(dirname "${BASH_SOURCE[0]}")/mossaicfs.sh"
