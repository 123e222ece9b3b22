// An IP address plus port, as STUN encodes it: a plain value type with no sockets behind it.
// Used for mapped, peer and relayed addresses and as the key of client 5-tuples.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace tern::protocol {

// Values are the STUN address family codes (RFC 8489 §14.1).
enum class AddressFamily : std::uint8_t { ipv4 = 0x01, ipv6 = 0x02 };

struct TransportAddress {
    AddressFamily family = AddressFamily::ipv4;
    std::uint16_t port = 0;
    std::array<std::uint8_t, 16> bytes{};  // IPv4 uses the first 4 bytes, the rest stay zero

    static TransportAddress v4(std::array<std::uint8_t, 4> addr, std::uint16_t port) noexcept;
    static TransportAddress v6(const std::array<std::uint8_t, 16>& addr,
                               std::uint16_t port) noexcept;

    // "192.0.2.1:3478", "[2001:db8::1]:3478"; without_port accepts "192.0.2.1" / "2001:db8::1"
    // (also bracketed) and leaves port 0.
    static std::optional<TransportAddress> parse(std::string_view text) noexcept;
    static std::optional<TransportAddress> parse_ip(std::string_view text) noexcept;

    std::size_t address_size() const noexcept { return family == AddressFamily::ipv4 ? 4 : 16; }
    bool is_v4_mapped() const noexcept;          // ::ffff:a.b.c.d
    TransportAddress unmapped() const noexcept;  // ::ffff:a.b.c.d -> a.b.c.d, else itself

    std::string ip_string() const;  // "192.0.2.1", "2001:db8::1"
    std::string to_string() const;  // "192.0.2.1:3478", "[2001:db8::1]:3478"

    friend bool operator==(const TransportAddress&, const TransportAddress&) noexcept = default;
};

}  // namespace tern::protocol
