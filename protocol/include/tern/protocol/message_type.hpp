// STUN message type: a 12-bit method and a 2-bit class interleaved in 14 bits (RFC 8489 §5),
// plus the 96-bit transaction id. Methods of RFC 8489, RFC 8656 and RFC 6062.
#pragma once

#include <array>
#include <compare>
#include <cstdint>

namespace tern::protocol {

inline constexpr std::uint32_t magic_cookie = 0x2112A442;
inline constexpr std::size_t header_size = 20;

enum class Method : std::uint16_t {
    binding = 0x001,
    allocate = 0x003,
    refresh = 0x004,
    send = 0x006,
    data = 0x007,
    create_permission = 0x008,
    channel_bind = 0x009,
    connect = 0x00A,             // RFC 6062
    connection_bind = 0x00B,     // RFC 6062
    connection_attempt = 0x00C,  // RFC 6062
};

enum class MessageClass : std::uint8_t {
    request = 0b00,
    indication = 0b01,
    success_response = 0b10,
    error_response = 0b11,
};

struct MessageType {
    Method method = Method::binding;  // may hold any 12-bit value, not only the named ones
    MessageClass cls = MessageClass::request;

    constexpr std::uint16_t encode() const noexcept {
        const auto m = static_cast<std::uint16_t>(method) & 0x0FFF;
        const auto c = static_cast<std::uint16_t>(cls);
        return static_cast<std::uint16_t>((m & 0x000F) | ((c & 0b01) << 4) | ((m & 0x0070) << 1) |
                                          ((c & 0b10) << 7) | ((m & 0x0F80) << 2));
    }
    static constexpr MessageType decode(std::uint16_t t) noexcept {
        const auto m =
            static_cast<std::uint16_t>((t & 0x000F) | ((t >> 1) & 0x0070) | ((t >> 2) & 0x0F80));
        const auto c = static_cast<std::uint8_t>(((t >> 4) & 0b01) | ((t >> 7) & 0b10));
        return {static_cast<Method>(m), static_cast<MessageClass>(c)};
    }
    friend constexpr bool operator==(MessageType, MessageType) noexcept = default;
};

struct TransactionId {
    std::array<std::uint8_t, 12> bytes{};
    friend constexpr auto operator<=>(const TransactionId&, const TransactionId&) = default;
};

}  // namespace tern::protocol
