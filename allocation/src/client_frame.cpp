#include "tern/allocation/client_frame.hpp"

#include <cstring>

#include "tern/protocol/channel_data.hpp"

namespace tern::allocation {

std::span<const std::uint8_t> frame_for_client(std::span<std::uint8_t> slot,
                                               std::size_t payload_size,
                                               protocol::Transport transport, std::uint16_t channel,
                                               std::uint64_t serial,
                                               const protocol::TransportAddress& peer) noexcept {
    if (payload_size > 0xFFFF ||
        slot.size() < client_frame_headroom + payload_size + client_frame_tailroom) {
        return {};
    }
    std::uint8_t* payload = slot.data() + client_frame_headroom;
    if (channel != 0) {
        std::uint8_t* head = payload - protocol::channel_data_header_size;
        protocol::write_channel_data_header(
            std::span<std::uint8_t, protocol::channel_data_header_size>(head, 4), channel,
            static_cast<std::uint16_t>(payload_size));
        // Over UDP the datagram ends with the payload; streams pad to 4 bytes with zeros
        // (§12.5), the length field still giving the unpadded size.
        std::size_t size = protocol::channel_data_header_size + payload_size;
        if (transport != protocol::Transport::udp) {
            size = protocol::channel_data_stream_size(payload_size);
            std::memset(payload + payload_size, 0,
                        size - protocol::channel_data_header_size - payload_size);
        }
        return {head, size};
    }
    // An indication's transaction ID only has to be unique-ish (RFC 8489 §6): a counter.
    protocol::TransactionId id{};
    std::memcpy(id.bytes.data(), &serial, sizeof serial);
    const std::size_t prefix = protocol::data_indication_prefix_size(peer.family);
    std::uint8_t* head = payload - prefix;
    if (!protocol::write_data_indication_prefix({head, prefix}, id, peer, payload_size)) return {};
    const std::size_t padding = protocol::data_indication_padding(payload_size);
    std::memset(payload + payload_size, 0, padding);
    return {head, prefix + payload_size + padding};
}

}  // namespace tern::allocation
