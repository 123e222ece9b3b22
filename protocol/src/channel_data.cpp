// ChannelData decoding and header encoding (RFC 8656 §12.4).
#include "tern/protocol/channel_data.hpp"

namespace tern::protocol {

ParseError parse_channel_data(std::span<const std::uint8_t> bytes, ChannelDataView& out) noexcept {
    if (bytes.size() < channel_data_header_size) return ParseError::truncated_header;
    const auto channel = static_cast<std::uint16_t>((bytes[0] << 8) | bytes[1]);
    if (!is_channel_data_number(channel)) return ParseError::bad_channel_number;
    const std::size_t length = static_cast<std::size_t>((bytes[2] << 8) | bytes[3]);
    if (length > bytes.size() - channel_data_header_size) {
        return ParseError::truncated_channel_data;
    }
    out.channel = channel;
    out.payload = bytes.subspan(channel_data_header_size, length);
    return ParseError::ok;
}

void write_channel_data_header(std::span<std::uint8_t, channel_data_header_size> out,
                               std::uint16_t channel, std::uint16_t payload_length) noexcept {
    out[0] = static_cast<std::uint8_t>(channel >> 8);
    out[1] = static_cast<std::uint8_t>(channel);
    out[2] = static_cast<std::uint8_t>(payload_length >> 8);
    out[3] = static_cast<std::uint8_t>(payload_length);
}

}  // namespace tern::protocol
