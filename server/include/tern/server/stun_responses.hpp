// Builders for the responses every STUN method shares: error responses with an optional
// UNKNOWN-ATTRIBUTES list, always with SOFTWARE (if configured) and FINGERPRINT, signed when the
// request was authenticated.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "tern/protocol/message.hpp"

namespace tern::server {

// The requester's long-term key: a response to an authenticated request carries
// MESSAGE-INTEGRITY, or MESSAGE-INTEGRITY-SHA256 when the request used it (RFC 8489 §9.2.4).
struct ResponseKey {
    std::span<const std::uint8_t> key;
    bool sha256 = false;
};

// Writes an error response to `request` into `out`; returns the bytes, empty if `out` is small.
std::span<const std::uint8_t> write_error_response(const protocol::MessageView& request,
                                                   std::uint16_t code, std::string_view reason,
                                                   std::string_view software,
                                                   std::span<std::uint8_t> out,
                                                   std::span<const std::uint16_t> unknown = {},
                                                   std::optional<ResponseKey> sign = std::nullopt);

}  // namespace tern::server
