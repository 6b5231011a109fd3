// libfuse3's low-level API for Swift.
//
// FUSE_USE_VERSION must be defined here, in the header the Swift importer reads: a define in
// build settings does not reach dependent Swift targets, and fuse_lowlevel.h refuses to compile
// without it. 314 (3.14) selects the opaque fuse_loop_config and the versioned
// fuse_session_loop_mt symbol that Swift can call directly. Everything else in libfuse's
// low-level API imports as is, so there is deliberately no C code here.
#ifndef CFUSE_SHIM_H
#define CFUSE_SHIM_H
#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>
/* The kernel's protocol structs, for the one request libfuse 3.14 does not know (FUSE_TMPFILE,
 * served from the read path: Sources/MossaicFUSE/FUSETmpfile.swift). */
#include <linux/fuse.h>
#include <sys/xattr.h>
#include <sys/statvfs.h>
#endif
