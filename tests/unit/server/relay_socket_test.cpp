#include "tern/server/relay_socket.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <vector>

#include "tern/server/socket_address.hpp"

namespace tern::server {
namespace {

using Bytes = std::vector<std::uint8_t>;

struct RecordingSink final : RelaySink {
    void on_peer_datagram(RelaySocket&, const protocol::TransportAddress& peer,
                          std::span<const std::uint8_t> payload) override {
        peers.push_back(peer);
        payloads.emplace_back(payload.begin(), payload.end());
    }
    std::vector<protocol::TransportAddress> peers;
    std::vector<Bytes> payloads;
};

// A plain peer socket on 127.0.0.1.
struct Peer {
    Peer() {
        fd = ::socket(AF_INET, SOCK_DGRAM, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
        int big = 1 << 20;
        ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
        ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
    }
    ~Peer() { ::close(fd); }
    protocol::TransportAddress address() const {
        sockaddr_storage ss{};
        socklen_t len = sizeof ss;
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
        return from_sockaddr(reinterpret_cast<sockaddr*>(&ss));
    }
    void send(const protocol::TransportAddress& to, const Bytes& b) const {
        sockaddr_storage ss{};
        const socklen_t len = to_sockaddr(to, ss);
        ASSERT_EQ(::sendto(fd, b.data(), b.size(), 0, reinterpret_cast<sockaddr*>(&ss), len),
                  static_cast<ssize_t>(b.size()));
    }
    int fd;
};

Bytes pattern(std::size_t n, std::uint8_t seed) {
    Bytes b(n);
    for (std::size_t i = 0; i < n; ++i) b[i] = static_cast<std::uint8_t>(seed + i * 7);
    return b;
}

// Every test owns a worker-like setup: one io_context, one sink, one shared buffer set.
class RelaySocketTest : public ::testing::Test {
protected:
    static protocol::TransportAddress any_loopback_port() {
        return protocol::TransportAddress::v4({127, 0, 0, 1}, 0);
    }
    boost::asio::io_context io;
    RecordingSink sink;
    RelayReceiveBuffers buffers;
};

TEST_F(RelaySocketTest, DeliversPeerDatagramsIntactWithTheirSource) {
    RelaySocket relay(io, sink, buffers);
    ASSERT_FALSE(relay.open(any_loopback_port(), false));
    ASSERT_NE(relay.local_address().port, 0);
    relay.start();

    Peer peer;
    // Largest legal UDP payload over IPv4, an empty one, and a typical media-sized one.
    const std::vector<Bytes> sent{pattern(65507, 1), Bytes{}, pattern(1200, 9)};
    for (const auto& b : sent) peer.send(relay.local_address(), b);

    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (sink.payloads.size() < sent.size() && std::chrono::steady_clock::now() < deadline) {
        io.run_for(std::chrono::milliseconds(20));
    }
    ASSERT_EQ(sink.payloads.size(), sent.size());
    for (std::size_t i = 0; i < sent.size(); ++i) {
        EXPECT_EQ(sink.payloads[i], sent[i]) << i;
        EXPECT_EQ(sink.peers[i], peer.address());
    }
}

TEST_F(RelaySocketTest, SendsToAPeer) {
    RelaySocket relay(io, sink, buffers);
    ASSERT_FALSE(relay.open(any_loopback_port(), false));
    Peer peer;
    const Bytes payload = pattern(1000, 3);
    ASSERT_TRUE(relay.send_to(peer.address(), payload));
    pollfd p{peer.fd, POLLIN, 0};
    ASSERT_EQ(::poll(&p, 1, 2000), 1);
    Bytes got(2000);
    sockaddr_storage from{};
    socklen_t len = sizeof from;
    const auto n =
        ::recvfrom(peer.fd, got.data(), got.size(), 0, reinterpret_cast<sockaddr*>(&from), &len);
    got.resize(static_cast<std::size_t>(n));
    EXPECT_EQ(got, payload);
    EXPECT_EQ(from_sockaddr(reinterpret_cast<sockaddr*>(&from)), relay.local_address());
}

TEST_F(RelaySocketTest, DontFragmentSetsDfOnIpv4) {
    for (const bool df : {false, true}) {
        RelaySocket relay(io, sink, buffers);
        ASSERT_FALSE(relay.open(any_loopback_port(), df));
        int value = -1;
        socklen_t len = sizeof value;
        ASSERT_EQ(::getsockopt(relay.native_handle(), IPPROTO_IP, IP_MTU_DISCOVER, &value, &len),
                  0);
        if (df)
            EXPECT_EQ(value, IP_PMTUDISC_PROBE);
        else
            EXPECT_NE(value, IP_PMTUDISC_PROBE);
        relay.close();
    }
}

TEST_F(RelaySocketTest, DontFragmentSetsDontFragOnIpv6) {
    for (const bool df : {false, true}) {
        RelaySocket relay(io, sink, buffers);
        ASSERT_FALSE(relay.open(
            protocol::TransportAddress::v6({0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, 0),
            df));
        int value = -1;
        socklen_t len = sizeof value;
        ASSERT_EQ(::getsockopt(relay.native_handle(), IPPROTO_IPV6, IPV6_DONTFRAG, &value, &len),
                  0);
        EXPECT_EQ(value, df ? 1 : 0);
        relay.close();
    }
}

TEST_F(RelaySocketTest, BindingATakenPortFails) {
    RelaySocket first(io, sink, buffers);
    ASSERT_FALSE(first.open(any_loopback_port(), false));
    RelaySocket second(io, sink, buffers);
    EXPECT_TRUE(second.open(first.local_address(), false));  // no SO_REUSEPORT on relay ports
}

}  // namespace
}  // namespace tern::server
