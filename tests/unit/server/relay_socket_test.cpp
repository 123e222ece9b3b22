#include "tern/server/io/relay_socket.hpp"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <vector>

#include "loopback_udp.hpp"
#include "tern/server/request/socket_address.hpp"

namespace tern::server {
namespace {

using Bytes = std::vector<std::uint8_t>;

Bytes pattern(std::size_t n, std::uint8_t seed) {
    Bytes b(n);
    for (std::size_t i = 0; i < n; ++i) b[i] = static_cast<std::uint8_t>(seed + i * 7);
    return b;
}

protocol::TransportAddress any_loopback_port() {
    return protocol::TransportAddress::v4({127, 0, 0, 1}, 0);
}

TEST(RelaySocket, BindsExactlyAndReceivesNonBlocking) {
    RelaySocket relay;
    ASSERT_FALSE(relay.open(any_loopback_port(), false));
    ASSERT_TRUE(relay.is_open());
    ASSERT_NE(relay.local_address().port, 0);
    // Non-blocking: the readiness loop reads until EAGAIN.
    Bytes b(100);
    EXPECT_LT(::recv(relay.native_handle(), b.data(), b.size(), 0), 0);
    EXPECT_TRUE(errno == EAGAIN || errno == EWOULDBLOCK);

    LoopbackUdp peer;
    const Bytes sent = pattern(65507, 1);  // the largest UDP payload over IPv4
    peer.send(relay.local_address(), sent);
    pollfd p{relay.native_handle(), POLLIN, 0};
    ASSERT_EQ(::poll(&p, 1, 2000), 1);
    Bytes got(65536);
    const auto n = ::recv(relay.native_handle(), got.data(), got.size(), 0);
    got.resize(static_cast<std::size_t>(n));
    EXPECT_EQ(got, sent);
}

TEST(RelaySocket, SendsToAPeer) {
    RelaySocket relay;
    ASSERT_FALSE(relay.open(any_loopback_port(), false));
    LoopbackUdp peer;
    const Bytes payload = pattern(1000, 3);
    ASSERT_TRUE(relay.send_to(peer.address(), payload));
    protocol::TransportAddress from;
    EXPECT_EQ(peer.receive(&from), payload);
    EXPECT_EQ(from, relay.local_address());
}

TEST(RelaySocket, MovesOwnershipAndClosesOnce) {
    RelaySocket a;
    ASSERT_FALSE(a.open(any_loopback_port(), false));
    const int fd = a.native_handle();
    RelaySocket b = std::move(a);
    EXPECT_FALSE(a.is_open());
    EXPECT_EQ(b.native_handle(), fd);
    b.close();
    EXPECT_FALSE(b.is_open());
    EXPECT_FALSE(b.send_to(any_loopback_port(), Bytes{1}));
}

TEST(RelaySocket, DontFragmentSetsDfOnIpv4) {
    for (const bool df : {false, true}) {
        RelaySocket relay;
        ASSERT_FALSE(relay.open(any_loopback_port(), df));
        int value = -1;
        socklen_t len = sizeof value;
        ASSERT_EQ(::getsockopt(relay.native_handle(), IPPROTO_IP, IP_MTU_DISCOVER, &value, &len),
                  0);
        if (df)
            EXPECT_EQ(value, IP_PMTUDISC_PROBE);
        else
            EXPECT_NE(value, IP_PMTUDISC_PROBE);
    }
}

TEST(RelaySocket, DontFragmentSetsDontFragOnIpv6) {
    for (const bool df : {false, true}) {
        RelaySocket relay;
        ASSERT_FALSE(relay.open(
            protocol::TransportAddress::v6({0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, 0),
            df));
        int value = -1;
        socklen_t len = sizeof value;
        ASSERT_EQ(::getsockopt(relay.native_handle(), IPPROTO_IPV6, IPV6_DONTFRAG, &value, &len),
                  0);
        EXPECT_EQ(value, df ? 1 : 0);
    }
}

TEST(RelaySocket, BindingATakenPortFails) {
    RelaySocket first;
    ASSERT_FALSE(first.open(any_loopback_port(), false));
    RelaySocket second;
    const auto ec = second.open(first.local_address(), false);  // no SO_REUSEPORT on relays
    EXPECT_EQ(ec.value(), EADDRINUSE);
    EXPECT_FALSE(second.is_open());
}

}  // namespace
}  // namespace tern::server
