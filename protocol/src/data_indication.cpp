#include "tern/protocol/data_indication.hpp"

#include "tern/protocol/attribute_type.hpp"
#include "tern/protocol/message_builder.hpp"

namespace tern::protocol {

bool write_data_indication_prefix(std::span<std::uint8_t> prefix, const TransactionId& id,
                                  const TransportAddress& peer,
                                  std::size_t payload_length) noexcept {
    const std::size_t size = data_indication_prefix_size(peer.family);
    const std::size_t body = size - 20 + payload_length + data_indication_padding(payload_length);
    if (prefix.size() != size || body > 0xFFFF) return false;
    // The builder writes the header and XOR-PEER-ADDRESS (whose mask is the header's cookie and
    // transaction ID); the DATA attribute's value is the payload behind the prefix.
    MessageBuilder b(prefix.first(size - 4), MessageType{Method::data, MessageClass::indication},
                     id);
    b.add_xor_address(attr::xor_peer_address, peer);
    if (b.size() != size - 4) return false;
    std::uint8_t* data = prefix.data() + size - 4;
    data[0] = static_cast<std::uint8_t>(attr::data >> 8);
    data[1] = static_cast<std::uint8_t>(attr::data & 0xFF);
    data[2] = static_cast<std::uint8_t>(payload_length >> 8);
    data[3] = static_cast<std::uint8_t>(payload_length & 0xFF);
    prefix[2] = static_cast<std::uint8_t>(body >> 8);
    prefix[3] = static_cast<std::uint8_t>(body & 0xFF);
    return true;
}

}  // namespace tern::protocol
