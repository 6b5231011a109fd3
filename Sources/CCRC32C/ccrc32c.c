#include "ccrc32c.h"

#if defined(__x86_64__)
#include <cpuid.h>

int ccrc32c_available(void) { unsigned a, b, c, d; return __get_cpuid(1, &a, &b, &c, &d) && (c & bit_SSE4_2) != 0; }
__attribute__((target("sse4.2"))) uint64_t ccrc32c_u64(uint64_t crc, uint64_t word) { return __builtin_ia32_crc32di(crc, word); }
__attribute__((target("sse4.2"))) uint32_t ccrc32c_u8(uint32_t crc, uint8_t byte) { return __builtin_ia32_crc32qi(crc, byte); }
#else
int ccrc32c_available(void) { return 0; }
uint64_t ccrc32c_u64(uint64_t crc, uint64_t word) { (void)word; return crc; }
uint32_t ccrc32c_u8(uint32_t crc, uint8_t byte) { (void)byte; return crc; }
#endif
