#include "core/crc32c.h"

#include <cstdint>
#include <random>
#include <string>

#include "gtest/gtest.h"

namespace recurrent::core {
namespace {

// Bit-at-a-time CRC-32C straight from the definition: the reference the fast path must match.
uint32_t ReferenceCrc32c(const std::string& data) {
  uint32_t crc = 0xFFFFFFFFu;
  for (const char c : data) {
    crc ^= static_cast<unsigned char>(c);
    for (int bit = 0; bit < 8; ++bit) crc = (crc >> 1) ^ ((crc & 1u) ? 0x82F63B78u : 0u);
  }
  return ~crc;
}

TEST(Crc32cTest, MatchesTheStandardCheckValue) { EXPECT_EQ(Crc32c("123456789"), 0xE3069283u); }

TEST(Crc32cTest, EmptyInputIsZero) { EXPECT_EQ(Crc32c(""), 0u); }

// The iSCSI test vectors of RFC 3720, appendix B.4.
TEST(Crc32cTest, MatchesRfc3720Vectors) {
  EXPECT_EQ(Crc32c(std::string(32, '\0')), 0x8A9136AAu);
  EXPECT_EQ(Crc32c(std::string(32, '\xFF')), 0x62A8AB43u);
  std::string ascending(32, '\0');
  std::string descending(32, '\0');
  for (int i = 0; i < 32; ++i) {
    ascending[i] = static_cast<char>(i);
    descending[i] = static_cast<char>(31 - i);
  }
  EXPECT_EQ(Crc32c(ascending), 0x46DD794Eu);
  EXPECT_EQ(Crc32c(descending), 0x113FDB5Cu);
}

TEST(Crc32cTest, MatchesTheBitwiseReferenceForEveryLengthAndAlignment) {
  std::mt19937 rng(7);
  std::string buffer(300, '\0');
  for (char& c : buffer) c = static_cast<char>(rng());
  // Every start offset in 0..15 and every length up to 256 crosses the 8-byte loop's edges.
  for (size_t offset = 0; offset < 16; ++offset) {
    for (size_t length = 0; length <= 256; ++length) {
      const std::string data = buffer.substr(offset, length);
      ASSERT_EQ(Crc32c(absl::string_view(buffer).substr(offset, length)), ReferenceCrc32c(data))
          << "offset " << offset << " length " << length;
    }
  }
}

TEST(Crc32cTest, ExtendEqualsChecksumOfTheConcatenation) {
  const std::string data = "The quick brown fox jumps over the lazy dog, twice over.";
  for (size_t split = 0; split <= data.size(); ++split) {
    const absl::string_view view(data);
    EXPECT_EQ(Crc32cExtend(Crc32c(view.substr(0, split)), view.substr(split)), Crc32c(data))
        << "split at " << split;
  }
}

TEST(Crc32cTest, DetectsEverySingleBitFlip) {
  const std::string data = "model artifact bytes";
  const uint32_t original = Crc32c(data);
  for (size_t i = 0; i < data.size() * 8; ++i) {
    std::string flipped = data;
    flipped[i / 8] = static_cast<char>(flipped[i / 8] ^ (1 << (i % 8)));
    EXPECT_NE(Crc32c(flipped), original) << "bit " << i;
  }
}

}  // namespace
}  // namespace recurrent::core
