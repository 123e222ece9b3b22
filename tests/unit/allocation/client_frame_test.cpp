// A peer's payload framed for its client where it lies: what the client gets must parse as
// the ChannelData or Data indication RFC 8656 §11.4/§12.4 define, with the payload untouched.
#include "tern/allocation/client_frame.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "tern/protocol/channel_data.hpp"
#include "tern/protocol/message.hpp"

namespace tern::allocation {
namespace {

using Bytes = std::vector<std::uint8_t>;
using protocol::Transport;
using protocol::TransportAddress;

// A slot as PeerToClient fills it: headroom of 0xEE, the payload, tailroom of 0xEE.
Bytes slot_with(const Bytes& payload) {
    Bytes slot(client_frame_headroom + payload.size() + client_frame_tailroom, 0xEE);
    if (!payload.empty()) {
        std::memcpy(slot.data() + client_frame_headroom, payload.data(), payload.size());
    }
    return slot;
}

Bytes pattern(std::size_t n) {
    Bytes b(n);
    for (std::size_t i = 0; i < n; ++i) b[i] = static_cast<std::uint8_t>(i * 13 + 1);
    return b;
}

const TransportAddress peer4 = TransportAddress::v4({198, 51, 100, 7}, 40001);
const TransportAddress peer6 =
    TransportAddress::v6({0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9}, 40002);

TEST(ClientFrame, ChannelDataOverUdpIsHeaderAndPayloadOnly) {
    const Bytes payload = pattern(5);
    Bytes slot = slot_with(payload);
    const auto m = frame_for_client(slot, payload.size(), Transport::udp, 0x4abc, 0, peer4);
    EXPECT_EQ(Bytes(m.begin(), m.end()), (Bytes{0x4a, 0xbc, 0x00, 0x05, 1, 14, 27, 40, 53}));
}

TEST(ClientFrame, ChannelDataOverStreamsIsPaddedWithZeros) {
    for (const Transport t : {Transport::tcp, Transport::tls}) {
        const Bytes payload = pattern(5);
        Bytes slot = slot_with(payload);
        const auto m = frame_for_client(slot, payload.size(), t, 0x4000, 0, peer4);
        ASSERT_EQ(m.size(), protocol::channel_data_stream_size(5));
        EXPECT_EQ(Bytes(m.begin(), m.end()),
                  (Bytes{0x40, 0x00, 0x00, 0x05, 1, 14, 27, 40, 53, 0, 0, 0}));
        protocol::ChannelDataView v;
        ASSERT_EQ(protocol::parse_channel_data(m, v), protocol::ParseError::ok);
        EXPECT_EQ(Bytes(v.payload.begin(), v.payload.end()), payload);
    }
}

TEST(ClientFrame, DataIndicationParsesBackWithPeerAndPayload) {
    for (const auto& peer : {peer4, peer6}) {
        for (const std::size_t size : {0u, 1u, 3u, 4u, 1200u}) {
            const Bytes payload = pattern(size);
            Bytes slot = slot_with(payload);
            const auto m =
                frame_for_client(slot, size, Transport::udp, 0, 0x1122334455667788ull, peer);
            ASSERT_FALSE(m.empty());
            EXPECT_EQ(m.size() % 4, 0u);
            protocol::MessageView v;
            ASSERT_EQ(protocol::MessageView::parse(m, v), protocol::ParseError::ok) << size;
            EXPECT_EQ(v.method(), protocol::Method::data);
            EXPECT_EQ(v.message_class(), protocol::MessageClass::indication);
            EXPECT_EQ(v.xor_peer_address(), peer);
            ASSERT_TRUE(v.data());
            EXPECT_EQ(Bytes(v.data()->begin(), v.data()->end()), payload);
            // The padding behind the payload is zero.
            for (std::size_t i = 20 + 8 + peer.address_size() + 4 + size; i < m.size(); ++i) {
                EXPECT_EQ(m[i], 0) << i;
            }
        }
    }
}

TEST(ClientFrame, TooLargeOrTooSmallASlotIsRefused) {
    Bytes slot(client_frame_headroom + 70000 + client_frame_tailroom);
    EXPECT_TRUE(frame_for_client(slot, 65536, Transport::udp, 0x4000, 0, peer4).empty());
    EXPECT_TRUE(frame_for_client(slot, 65536, Transport::udp, 0, 0, peer4).empty());
    // A Data indication of 65508 bytes would exceed STUN's 16-bit length with its prefix.
    EXPECT_TRUE(frame_for_client(slot, 65508, Transport::udp, 0, 0, peer6).empty());
    EXPECT_FALSE(frame_for_client(slot, 65504, Transport::udp, 0, 0, peer6).empty());
    Bytes small(client_frame_headroom + 10);
    EXPECT_TRUE(frame_for_client(small, 10, Transport::udp, 0x4000, 0, peer4).empty());
}

}  // namespace
}  // namespace tern::allocation
