// Builders for the responses every STUN method shares: error responses with an optional
// UNKNOWN-ATTRIBUTES list, always with SOFTWARE (if configured) and FINGERPRINT.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include "tern/protocol/message.hpp"

namespace tern::server {

// Writes an error response to `request` into `out`; returns the bytes, empty if `out` is small.
std::span<const std::uint8_t> write_error_response(const protocol::MessageView& request,
                                                   std::uint16_t code, std::string_view reason,
                                                   std::string_view software,
                                                   std::span<std::uint8_t> out,
                                                   std::span<const std::uint16_t> unknown = {});

}  // namespace tern::server
