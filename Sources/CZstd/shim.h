// libzstd (Debian libzstd-dev), for the per-chunk compression of `format --compress zstd`
// (ARCHITECTURE.md §10). Its one-shot API (ZSTD_compress, ZSTD_decompress, ZSTD_getFrameContentSize)
// is plain functions, so Swift calls it directly: this header only names the library.
#include <zstd.h>
