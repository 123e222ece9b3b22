// Datagrams to peers from several relay sockets in one flush: each peer must receive exactly
// what was queued for it, whole, in order, and from the relay socket it was queued on.
#include "tern/server/io/peer_send_queue.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <memory>
#include <vector>

#include "loopback_udp.hpp"
#include "tern/server/io/relay_socket.hpp"

namespace tern::server {
namespace {

using Bytes = std::vector<std::uint8_t>;

Bytes datagram(std::uint8_t tag, std::size_t size) {
    Bytes b(size, tag);
    if (size > 1) b[1] = static_cast<std::uint8_t>(size);
    return b;
}

class PeerSendQueueTest : public ::testing::TestWithParam<const char*> {
protected:
    void SetUp() override {
        ::setenv("TERN_UDP_GSO", GetParam(), 1);
        queue = std::make_unique<PeerSendQueue>();
        ::unsetenv("TERN_UDP_GSO");
        for (auto* r : {&relay_a, &relay_b}) {
            ASSERT_FALSE(r->open(protocol::TransportAddress::v4({127, 0, 0, 1}, 0), false));
        }
    }
    std::unique_ptr<PeerSendQueue> queue;
    RelaySocket relay_a;
    RelaySocket relay_b;
};

TEST_P(PeerSendQueueTest, EachPeerGetsItsDatagramsFromItsRelayInOrder) {
    LoopbackUdp peer_1;
    LoopbackUdp peer_2;
    struct Planned {
        const RelaySocket* relay;
        LoopbackUdp* peer;
        Bytes bytes;
    };
    // Interleaved sockets, runs to one peer with a shorter tail, a size change mid-run, and a
    // run of 60 x 1200 bytes (more than one segmented send may carry).
    std::vector<Planned> plan;
    for (std::uint8_t i = 0; i < 4; ++i) plan.push_back({&relay_a, &peer_1, datagram(i, 100)});
    plan.push_back({&relay_b, &peer_1, datagram(4, 100)});
    plan.push_back({&relay_a, &peer_1, datagram(5, 40)});
    plan.push_back({&relay_a, &peer_2, datagram(6, 100)});
    plan.push_back({&relay_b, &peer_2, datagram(7, 1200)});
    plan.push_back({&relay_a, &peer_1, datagram(8, 100)});
    for (std::uint8_t i = 0; i < 60; ++i) plan.push_back({&relay_b, &peer_2, datagram(i, 1200)});
    PeerSendQueue::Sent sent;
    std::uint64_t bytes = 0;
    for (const auto& p : plan) {
        queue->push(p.relay->native_handle(), p.peer->address(), p.bytes, sent);
        bytes += p.bytes.size();
    }
    const auto last = queue->flush();
    EXPECT_TRUE(queue->empty());
    EXPECT_EQ(sent.packets + last.packets, plan.size());
    EXPECT_EQ(sent.bytes + last.bytes, bytes);
    EXPECT_EQ(sent.refused + last.refused, 0u);

    for (LoopbackUdp* peer : {&peer_1, &peer_2}) {
        // Order is kept per relay socket: receive everything, then split by source.
        std::vector<Bytes> got_a;
        std::vector<Bytes> got_b;
        for (;;) {
            protocol::TransportAddress from;
            Bytes b = peer->receive(&from, 200);
            if (b.empty()) break;
            (from == relay_a.local_address() ? got_a : got_b).push_back(std::move(b));
        }
        std::vector<Bytes> want_a;
        std::vector<Bytes> want_b;
        for (const auto& p : plan) {
            if (p.peer != peer) continue;
            (p.relay == &relay_a ? want_a : want_b).push_back(p.bytes);
        }
        EXPECT_EQ(got_a, want_a);
        EXPECT_EQ(got_b, want_b);
    }
}

TEST_P(PeerSendQueueTest, AClosedSocketCountsAsRefusedAndTheRestStillGoes) {
    LoopbackUdp peer;
    RelaySocket gone;
    ASSERT_FALSE(gone.open(protocol::TransportAddress::v4({127, 0, 0, 1}, 0), false));
    const int stale = gone.native_handle();
    gone.close();
    PeerSendQueue::Sent sent;
    const Bytes one = datagram(1, 50);
    queue->push(stale, peer.address(), one, sent);
    queue->push(relay_a.native_handle(), peer.address(), one, sent);
    const auto s = queue->flush();
    EXPECT_EQ(s.refused, 1u);
    EXPECT_EQ(s.packets, 1u);
    EXPECT_EQ(peer.drain(), std::vector<Bytes>{one});
}

TEST_P(PeerSendQueueTest, DatagramsCountedByTheCallerAreSentButNotCountedTwice) {
    LoopbackUdp peer;
    PeerSendQueue::Sent sent;
    const Bytes a = datagram(1, 60);
    const Bytes b = datagram(2, 60);
    queue->push(relay_a.native_handle(), peer.address(), a, sent, /*counted=*/true);
    queue->push(relay_a.native_handle(), peer.address(), b, sent);
    const auto s = queue->flush();
    EXPECT_EQ(s.packets, 1u);
    EXPECT_EQ(s.bytes, b.size());
    EXPECT_EQ(s.refused, 0u);
    EXPECT_EQ(peer.drain(), (std::vector<Bytes>{a, b}));
}

INSTANTIATE_TEST_SUITE_P(GsoOnAndOff, PeerSendQueueTest, ::testing::Values("1", "0"));

}  // namespace
}  // namespace tern::server
