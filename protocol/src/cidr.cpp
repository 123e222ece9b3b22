#include "tern/protocol/cidr.hpp"

#include <algorithm>

namespace tern::protocol {

namespace {
std::size_t address_bits(const TransportAddress& a) noexcept {
    return a.family == AddressFamily::ipv4 ? 32 : 128;
}
constexpr std::size_t mapped_prefix_bits = 96;  // ::ffff:0:0/96 holds the IPv4-mapped addresses
}  // namespace

TransportAddress mask_address(TransportAddress address, std::size_t prefix_length) noexcept {
    for (std::size_t byte = 0; byte < address.bytes.size(); ++byte) {
        const std::size_t first_bit = byte * 8;
        if (first_bit >= prefix_length) {
            address.bytes[byte] = 0;
        } else if (prefix_length - first_bit < 8) {
            const auto keep = static_cast<unsigned>(prefix_length - first_bit);
            address.bytes[byte] &= static_cast<std::uint8_t>(0xFFu << (8 - keep));
        }
    }
    return address;
}

Cidr Cidr::covering(const TransportAddress& address, std::size_t prefix_length) noexcept {
    const std::size_t length = std::min(prefix_length, address_bits(address));
    Cidr c;
    c.network = mask_address(address, length);
    c.network.port = 0;
    c.prefix_length = static_cast<std::uint8_t>(length);
    if (c.network.is_v4_mapped() && length >= mapped_prefix_bits) {
        c.network = c.network.unmapped();
        c.prefix_length = static_cast<std::uint8_t>(length - mapped_prefix_bits);
    }
    return c;
}

bool Cidr::contains(const TransportAddress& address) const noexcept {
    // An IPv4 peer may also be written ::ffff:a.b.c.d; both forms must meet the same rule.
    const TransportAddress candidate = address.unmapped();
    if (candidate.family != network.family) return false;
    const std::size_t length = std::min<std::size_t>(prefix_length, address_bits(network));
    // Mask both sides: a hand-built Cidr may carry host bits.
    return mask_address(candidate, length).bytes == mask_address(network, length).bytes;
}

std::string Cidr::to_string() const {
    return network.ip_string() + "/" + std::to_string(prefix_length);
}

}  // namespace tern::protocol
