// UdpListener's outgoing queue: whatever is batched (sendmmsg) or segmented (UDP GSO), each
// client must receive exactly the datagrams queued for it, whole and in order.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <vector>

#include "loopback_udp.hpp"
#include "tern/server/io/udp_listener.hpp"

namespace tern::server {
namespace {

using Bytes = std::vector<std::uint8_t>;

using Receiver = LoopbackUdp;

Bytes datagram(std::uint8_t tag, std::size_t size) {
    Bytes b(size, tag);
    if (size > 1) b[1] = static_cast<std::uint8_t>(size);  // size in the bytes too
    return b;
}

class UdpListenerQueue : public ::testing::TestWithParam<const char*> {
protected:
    void SetUp() override {
        ::setenv("TERN_UDP_GSO", GetParam(), 1);
        listener_ = std::make_unique<UdpListener>();
        ::unsetenv("TERN_UDP_GSO");
        ASSERT_FALSE(listener_->open(protocol::TransportAddress::v4({127, 0, 0, 1}, 0)));
        local_ = listener_->local_address();
    }
    std::unique_ptr<UdpListener> listener_;
    protocol::TransportAddress local_;
};

TEST_P(UdpListenerQueue, EachClientGetsItsDatagramsWholeAndInOrder) {
    Receiver a;
    Receiver b;
    // A run of equal sizes with a shorter tail (one GSO send), then interleaved clients, then
    // a size change mid-run: every boundary a segmented send must respect.
    std::vector<std::pair<Receiver*, Bytes>> plan;
    for (std::uint8_t i = 0; i < 5; ++i) plan.emplace_back(&a, datagram(i, 104));
    plan.emplace_back(&a, datagram(5, 60));
    plan.emplace_back(&b, datagram(6, 104));
    plan.emplace_back(&a, datagram(7, 104));
    plan.emplace_back(&b, datagram(8, 1204));
    plan.emplace_back(&b, datagram(9, 1204));
    plan.emplace_back(&b, datagram(10, 300));
    plan.emplace_back(&b, datagram(11, 1204));
    UdpListener::Flushed flushed;
    std::size_t payload = 0;
    for (const auto& [to, bytes] : plan) {
        // The counted size is the caller's (ChannelData counts its payload, not its header).
        ASSERT_TRUE(listener_->queue_to(to->address(), local_, bytes, bytes.size() - 4, flushed));
        payload += bytes.size() - 4;
    }
    EXPECT_TRUE(listener_->has_queued());
    flushed += listener_->flush();
    EXPECT_FALSE(listener_->has_queued());
    EXPECT_EQ(flushed.packets, plan.size());
    EXPECT_EQ(flushed.payload_bytes, payload);
    EXPECT_EQ(flushed.refused, 0u);

    for (Receiver* r : {&a, &b}) {
        std::vector<Bytes> expected;
        for (const auto& [to, bytes] : plan) {
            if (to == r) expected.push_back(bytes);
        }
        EXPECT_EQ(r->drain(), expected);
    }
}

TEST_P(UdpListenerQueue, AFullQueueFlushesItselfAndLargeDatagramsKeepTheirPlace) {
    Receiver a;
    std::vector<Bytes> sent;
    for (std::size_t i = 0; i < UdpListener::batch_size + 3; ++i) {
        sent.push_back(datagram(static_cast<std::uint8_t>(i), 200));
    }
    sent.insert(sent.begin() + 10, datagram(0xEE, 3000));  // queued in place, not copied
    // A run of 60 equal 1204-byte datagrams is more than one GSO send may carry (64 KiB).
    for (std::uint8_t i = 0; i < 60; ++i) sent.push_back(datagram(i, 1204));
    UdpListener::Flushed flushed;
    for (const Bytes& d : sent) {
        ASSERT_TRUE(listener_->queue_to(a.address(), local_, d, d.size(), flushed));
    }
    flushed += listener_->flush();
    EXPECT_EQ(flushed.packets, sent.size());
    EXPECT_EQ(flushed.refused, 0u);
    EXPECT_EQ(a.drain(), sent);
}

INSTANTIATE_TEST_SUITE_P(GsoOnAndOff, UdpListenerQueue, ::testing::Values("1", "0"));

}  // namespace
}  // namespace tern::server
