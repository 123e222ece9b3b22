// An address range such as 10.0.0.0/8 or fd00::/8, for peer filtering and allow/deny lists.
// IPv4 peers written as ::ffff:a.b.c.d match IPv4 ranges, so one form cannot bypass another.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "tern/protocol/transport_address.hpp"

namespace tern::protocol {

// Zeroes every address bit after the first `prefix_length` bits (the port is kept).
TransportAddress mask_address(TransportAddress address, std::size_t prefix_length) noexcept;

struct Cidr {
    TransportAddress network;  // port unused, host bits zero
    std::uint8_t prefix_length = 0;

    // The range of `prefix_length` bits around `address`: host bits cleared, the prefix clamped
    // to the family's size, and ::ffff:0:0/96 and longer turned into the IPv4 range they cover.
    static Cidr covering(const TransportAddress& address, std::size_t prefix_length) noexcept;
    bool contains(const TransportAddress& address) const noexcept;  // ignores the port
    std::string to_string() const;                                  // "10.0.0.0/8"
    friend bool operator==(const Cidr&, const Cidr&) = default;
};

}  // namespace tern::protocol
