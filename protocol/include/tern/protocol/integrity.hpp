// Verification of MESSAGE-INTEGRITY, MESSAGE-INTEGRITY-SHA256 and FINGERPRINT on a parsed
// message, with the length adjustments of RFC 8489 §14.5-14.7. MAC comparisons are constant time.
#pragma once

#include <cstdint>
#include <span>

#include "tern/protocol/message.hpp"

namespace tern::protocol {

enum class IntegrityResult : std::uint8_t { ok, absent, mismatch };

IntegrityResult verify_message_integrity(const MessageView& message,
                                         std::span<const std::uint8_t> key) noexcept;
IntegrityResult verify_message_integrity_sha256(const MessageView& message,
                                                std::span<const std::uint8_t> key) noexcept;
IntegrityResult verify_fingerprint(const MessageView& message) noexcept;

// CRC-32 (ISO-HDLC, as in zlib) used by FINGERPRINT; exposed for tests and the builder.
std::uint32_t crc32(std::span<const std::uint8_t> bytes, std::uint32_t crc = 0) noexcept;

}  // namespace tern::protocol
