// The CPU's CRC-32C instruction (SSE 4.2) for Swift.
//
// Swift cannot call compiler intrinsics, and the instruction needs a target attribute that a
// Swift function cannot carry. These wrappers forward one instruction each, plus the CPUID
// check that says whether the instruction exists; the loop over the bytes is Swift
// (MossaicObjectStore/CRC32C.swift). On other CPUs ccrc32c_available() is 0 and the Swift
// table is used. No logic lives here.
#ifndef CCRC32C_H
#define CCRC32C_H
#include <stdint.h>
int ccrc32c_available(void);
uint64_t ccrc32c_u64(uint64_t crc, uint64_t word);
uint32_t ccrc32c_u8(uint32_t crc, uint8_t byte);
#endif
