// ChannelData messages (RFC 8656 §12.4): a 4-byte header (channel, length) then the payload,
// padded to 4 bytes on stream transports. Decoding is a view; encoding writes a header in place.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "tern/protocol/error.hpp"

namespace tern::protocol {

inline constexpr std::size_t channel_data_header_size = 4;
inline constexpr std::uint16_t min_channel_number = 0x4000;
inline constexpr std::uint16_t max_channel_number = 0x4FFF;

constexpr bool is_valid_channel_number(std::uint16_t n) noexcept {
    return n >= min_channel_number && n <= max_channel_number;
}

// RFC 5766 allowed 0x4000-0x7FFF and older clients still bind there, so framing and parsing
// accept the wider range; whether such a channel may be bound is the server's policy.
inline constexpr std::uint16_t max_rfc5766_channel_number = 0x7FFF;
constexpr bool is_channel_data_number(std::uint16_t n) noexcept {
    return n >= min_channel_number && n <= max_rfc5766_channel_number;
}

struct ChannelDataView {
    std::uint16_t channel = 0;
    std::span<const std::uint8_t> payload;
};

// A datagram may carry trailing padding after the payload; a shorter one than the length field
// claims is truncated_channel_data (RFC 8656 §12.5: silently discarded).
ParseError parse_channel_data(std::span<const std::uint8_t> bytes, ChannelDataView& out) noexcept;

// Writes the 4-byte header in front of a payload of `payload_length` bytes.
void write_channel_data_header(std::span<std::uint8_t, channel_data_header_size> out,
                               std::uint16_t channel, std::uint16_t payload_length) noexcept;

// Bytes the message occupies on a stream (header + payload + padding to 4).
constexpr std::size_t channel_data_stream_size(std::size_t payload_length) noexcept {
    return channel_data_header_size + ((payload_length + 3) & ~std::size_t{3});
}

}  // namespace tern::protocol
