// Network-byte-order loads and stores and STUN's 4-byte padding, shared by the codec's sources.
// Private to protocol/: callers outside see only typed values.
#pragma once

#include <cstddef>
#include <cstdint>

namespace tern::protocol::wire {

constexpr std::uint16_t load16(const std::uint8_t* p) noexcept {
    return static_cast<std::uint16_t>((p[0] << 8) | p[1]);
}
constexpr std::uint32_t load32(const std::uint8_t* p) noexcept {
    return (std::uint32_t{load16(p)} << 16) | load16(p + 2);
}
constexpr void store16(std::uint8_t* p, std::uint16_t v) noexcept {
    p[0] = static_cast<std::uint8_t>(v >> 8);
    p[1] = static_cast<std::uint8_t>(v);
}
constexpr void store32(std::uint8_t* p, std::uint32_t v) noexcept {
    store16(p, static_cast<std::uint16_t>(v >> 16));
    store16(p + 2, static_cast<std::uint16_t>(v));
}
// Type and length in front of every attribute value (RFC 8489 §14).
inline constexpr std::size_t attribute_header_size = 4;
// Attribute values are padded to a multiple of 4 bytes (RFC 8489 §14).
constexpr std::size_t padded(std::size_t n) noexcept {
    return (n + 3) & ~std::size_t{3};
}

}  // namespace tern::protocol::wire
