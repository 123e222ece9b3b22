// Data indications (RFC 8656 §11.4) framed around a payload that is already in place: the relay
// receives a peer's datagram with room in front, writes this prefix there and the padding
// behind, and sends the whole without copying the payload.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "tern/protocol/message_type.hpp"
#include "tern/protocol/transport_address.hpp"

namespace tern::protocol {

// Header, XOR-PEER-ADDRESS and the DATA attribute's type and length: 36 bytes for an IPv4
// peer, 48 for IPv6.
constexpr std::size_t data_indication_prefix_size(AddressFamily family) noexcept {
    return 20 + 4 + 4 + (family == AddressFamily::ipv6 ? 16 : 4) + 4;
}
inline constexpr std::size_t max_data_indication_prefix_size = 48;

// Zero bytes after the payload that pad DATA to a multiple of 4 (RFC 8489 §14).
constexpr std::size_t data_indication_padding(std::size_t payload_length) noexcept {
    return (4 - payload_length % 4) % 4;
}

// Writes the prefix into `prefix` (exactly data_indication_prefix_size(peer.family) bytes, or
// nothing and false when it is not, or when the message would exceed STUN's 16-bit length).
bool write_data_indication_prefix(std::span<std::uint8_t> prefix, const TransactionId& id,
                                  const TransportAddress& peer,
                                  std::size_t payload_length) noexcept;

}  // namespace tern::protocol
