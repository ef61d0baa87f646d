// CRC-32C (Castagnoli), the checksum that guards model artifacts against truncation and bit rot.
//
// Parameters: polynomial 0x1EDC6F41 (reflected 0x82F63B78), initial value and final XOR
// 0xFFFFFFFF: the same CRC as iSCSI (RFC 3720), ext4, LevelDB and Python's `crc32c` package, so an
// artifact's checksum can be verified from any language. Crc32c("123456789") == 0xE3069283.
//
// Portable slicing-by-8 (about 1-3 GB/s): Debian's Abseil 20220623 has no absl::crc32c and the
// artifact is checksummed once per load, so a hardware (SSE4.2) path is not worth its complexity.
// Thread-safe: the functions are pure.
#ifndef RECURRENT_CORE_CRC32C_H_
#define RECURRENT_CORE_CRC32C_H_

#include <cstdint>

#include "absl/strings/string_view.h"

namespace recurrent::core {

// CRC-32C of `data`. Crc32c("") == 0.
uint32_t Crc32c(absl::string_view data);

// Continues a checksum: Crc32cExtend(Crc32c(a), b) == Crc32c(a + b), for streaming large inputs.
uint32_t Crc32cExtend(uint32_t crc, absl::string_view data);

}  // namespace recurrent::core

#endif  // RECURRENT_CORE_CRC32C_H_
