// A peer's payload framed for its client where it lies (RFC 8656 §11.3, §12.6): ChannelData on
// a bound channel, else a Data indication. The I/O layer receives peer datagrams into slots with
// `client_frame_headroom` bytes in front and `client_frame_tailroom` behind, so framing writes
// around the payload and never copies it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "tern/allocation/five_tuple.hpp"
#include "tern/protocol/data_indication.hpp"
#include "tern/protocol/transport.hpp"
#include "tern/protocol/transport_address.hpp"

namespace tern::allocation {

inline constexpr std::size_t client_frame_headroom = protocol::max_data_indication_prefix_size;
inline constexpr std::size_t client_frame_tailroom = 4;  // padding to 4 bytes

// `slot` holds headroom, then `payload_size` bytes of payload, then tailroom. `channel` 0 means
// a Data indication with transaction ID `serial`. Returns the message to send (a sub-span of
// slot), or empty when the payload cannot be carried (over 65535 bytes, or a STUN message
// longer than its length field allows).
std::span<const std::uint8_t> frame_for_client(std::span<std::uint8_t> slot,
                                               std::size_t payload_size,
                                               protocol::Transport transport, std::uint16_t channel,
                                               std::uint64_t serial,
                                               const protocol::TransportAddress& peer) noexcept;

}  // namespace tern::allocation
