// One 128-bit key for an IPv4 or IPv6 address, with IPv4 placed in ::ffff:0:0/96, so a peer
// written a.b.c.d and one written ::ffff:a.b.c.d land on the same permission, channel and rule.
#pragma once

#include <array>
#include <compare>
#include <cstdint>

#include "tern/protocol/transport_address.hpp"

namespace tern::allocation {

struct IpKey {
    std::array<std::uint8_t, 16> bytes{};

    // IPv4 and IPv4-mapped IPv6 both become ::ffff:a.b.c.d; every other IPv6 address is kept
    // as it is (the IPv4-compatible ::a.b.c.d form is deliberately not folded: it is deprecated
    // and refused as special-purpose instead). The port is ignored.
    static IpKey of(const protocol::TransportAddress& address) noexcept {
        IpKey key;
        if (address.family == protocol::AddressFamily::ipv4) {
            key.bytes[10] = 0xFF;
            key.bytes[11] = 0xFF;
            for (std::size_t i = 0; i < 4; ++i) key.bytes[12 + i] = address.bytes[i];
        } else {
            key.bytes = address.bytes;
        }
        return key;
    }

    // The key a per-source limit counts under: an IPv4 address (either form) on its own, an
    // IPv6 address by its first `ipv6_prefix` bits (the rest zeroed), because one host commonly
    // holds a whole /64 (RFC 7421) and would otherwise get a fresh allowance per address.
    static IpKey source_of(const protocol::TransportAddress& address,
                           unsigned ipv6_prefix) noexcept {
        IpKey key = of(address);
        if (key.is_ipv4() || ipv6_prefix >= 128) return key;
        for (std::size_t i = ipv6_prefix / 8; i < key.bytes.size(); ++i) {
            const unsigned kept = i == ipv6_prefix / 8 ? ipv6_prefix % 8 : 0;
            key.bytes[i] &= static_cast<std::uint8_t>(0xFF00u >> kept);
        }
        return key;
    }

    // True for ::ffff:a.b.c.d, where of() puts every IPv4 address.
    bool is_ipv4() const noexcept {
        for (std::size_t i = 0; i < 10; ++i) {
            if (bytes[i] != 0) return false;
        }
        return bytes[10] == 0xFF && bytes[11] == 0xFF;
    }

    // Bit `index` counted from the most significant bit of the first byte.
    bool bit(std::size_t index) const noexcept {
        return ((bytes[index / 8] >> (7 - index % 8)) & 1u) != 0;
    }

    friend bool operator==(const IpKey&, const IpKey&) noexcept = default;
    // clang-tidy 14 reads the literal 0 of a defaulted <=> as a null pointer.
    friend auto operator<=>(const IpKey&,
                            const IpKey&) noexcept = default;  // NOLINT(modernize-use-nullptr)
};

// An IP key plus a port: a peer transport address in canonical form.
struct PeerKey {
    IpKey ip;
    std::uint16_t port = 0;

    static PeerKey of(const protocol::TransportAddress& address) noexcept {
        return PeerKey{IpKey::of(address), address.port};
    }
    friend bool operator==(const PeerKey&, const PeerKey&) noexcept = default;
    friend auto operator<=>(const PeerKey&,
                            const PeerKey&) noexcept = default;  // NOLINT(modernize-use-nullptr)
};

}  // namespace tern::allocation
