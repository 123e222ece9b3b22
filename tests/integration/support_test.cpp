// The test harness's own guarantees that tests lean on: a stream frame cut by a receive timeout
// is resumed, not lost, and free_port() never hands out one port twice in a process.

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "support.hpp"

namespace tern::test {
namespace {

// A listening TCP socket on 127.0.0.1 and the one connection accepted on it.
class LoopbackListener {
public:
    LoopbackListener() {
        listener_ = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof a;
        if (listener_ < 0 || ::bind(listener_, reinterpret_cast<sockaddr*>(&a), len) != 0 ||
            ::listen(listener_, 1) != 0 ||
            ::getsockname(listener_, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
            throw std::runtime_error("cannot listen on 127.0.0.1");
        }
        port_ = ntohs(a.sin_port);
    }
    ~LoopbackListener() {
        if (peer_ >= 0) ::close(peer_);
        if (listener_ >= 0) ::close(listener_);
    }
    LoopbackListener(const LoopbackListener&) = delete;
    LoopbackListener& operator=(const LoopbackListener&) = delete;

    std::uint16_t port() const { return port_; }
    bool accept() { return (peer_ = ::accept(listener_, nullptr, nullptr)) >= 0; }
    bool write(const Bytes& bytes) const {
        return ::send(peer_, bytes.data(), bytes.size(), MSG_NOSIGNAL) ==
               static_cast<ssize_t>(bytes.size());
    }

private:
    int listener_ = -1;
    int peer_ = -1;
    std::uint16_t port_ = 0;
};

Bytes slice(const Bytes& b, std::size_t from, std::size_t to) {
    return Bytes(b.begin() + static_cast<std::ptrdiff_t>(from),
                 b.begin() + static_cast<std::ptrdiff_t>(to));
}

// A receiver preempted between a frame's header and its body once read the rest of a TCP stream
// out of frame (CI lost 284 of 2000 packets that way): the bytes must wait for the next call.
TEST(StreamClientFraming, AFrameCutByAReceiveTimeoutIsResumedByTheNextCall) {
    LoopbackListener server;
    auto client = StreamClient::connect_tcp(loopback4(server.port()));
    ASSERT_TRUE(client);
    ASSERT_TRUE(server.accept());

    const Bytes first = channel_data(0x4000, Bytes{'f', 'i', 'r', 's', 't', '-', '1'});
    const Bytes second = channel_data(0x4001, Bytes{'s', 'e', 'c', 'o', 'n', 'd'});
    // Header and two payload bytes only: the call times out holding them.
    ASSERT_TRUE(server.write(slice(first, 0, 6)));
    EXPECT_FALSE(client->receive_frame(100ms));
    ASSERT_TRUE(server.write(slice(first, 6, first.size())));
    ASSERT_TRUE(server.write(second));

    const auto got_first = client->receive_frame(1s);
    ASSERT_TRUE(got_first);
    EXPECT_EQ(*got_first, slice(first, 0, 4 + 7));  // the stream padding is dropped
    const auto got_second = client->receive_frame(1s);
    ASSERT_TRUE(got_second);
    EXPECT_EQ(*got_second, slice(second, 0, 4 + 6));
}

TEST(StreamClientFraming, AStunMessageCutInItsHeaderIsResumedToo) {
    LoopbackListener server;
    auto client = StreamClient::connect_tcp(loopback4(server.port()));
    ASSERT_TRUE(client);
    ASSERT_TRUE(server.accept());

    const Bytes request = binding_request();
    ASSERT_TRUE(server.write(slice(request, 0, 10)));
    EXPECT_FALSE(client->receive_message(100ms));
    ASSERT_TRUE(server.write(slice(request, 10, request.size())));
    const auto got = client->receive_message(1s);
    ASSERT_TRUE(got);
    EXPECT_EQ(*got, request);
}

// Two listeners of one ternd once drew the same number; 1,000 draws from 25,001 ports would
// collide with near certainty if a port could come back.
TEST(FreePort, NeverHandsOutTheSamePortTwiceInOneProcess) {
    std::set<std::uint16_t> seen;
    for (int i = 0; i < 1000; ++i) {
        const std::uint16_t port = free_port();
        EXPECT_TRUE(seen.insert(port).second) << "port " << port << " handed out twice";
    }
}

// A receiver with the smallest buffer the kernel allows, flooded before it reads: every datagram
// is either read or counted as dropped at its port.
TEST(KernelUdpDrops, CountsEveryDatagramAFullReceiveBufferLost) {
    const int receiver = ::socket(AF_INET, SOCK_DGRAM, 0);
    const int sender = ::socket(AF_INET, SOCK_DGRAM, 0);
    ASSERT_GE(receiver, 0);
    ASSERT_GE(sender, 0);
    const int tiny = 1;
    ::setsockopt(receiver, SOL_SOCKET, SO_RCVBUF, &tiny, sizeof tiny);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    ASSERT_EQ(::bind(receiver, reinterpret_cast<sockaddr*>(&a), len), 0);
    ASSERT_EQ(::getsockname(receiver, reinterpret_cast<sockaddr*>(&a), &len), 0);
    const std::uint16_t port = ntohs(a.sin_port);
    const std::uint64_t before = kernel_udp_drops(port);

    constexpr int sent = 200;
    const std::array<std::uint8_t, 100> payload{};
    for (int i = 0; i < sent; ++i) {
        ASSERT_EQ(::sendto(sender, payload.data(), payload.size(), 0,
                           reinterpret_cast<sockaddr*>(&a), len),
                  static_cast<ssize_t>(payload.size()));
    }
    int received = 0;
    std::array<std::uint8_t, 200> buffer{};
    for (auto deadline = std::chrono::steady_clock::now() + 2s;
         std::chrono::steady_clock::now() < deadline;) {
        if (::recv(receiver, buffer.data(), buffer.size(), MSG_DONTWAIT) > 0) {
            ++received;
        } else if (received + static_cast<int>(kernel_udp_drops(port) - before) == sent) {
            break;
        } else {
            std::this_thread::sleep_for(1ms);
        }
    }
    const std::uint64_t dropped = kernel_udp_drops(port) - before;  // while the socket is open
    ::close(sender);
    ::close(receiver);
    EXPECT_LT(received, sent) << "the buffer did not fill; nothing was tested";
    EXPECT_GT(dropped, 0u);
    EXPECT_EQ(received + static_cast<int>(dropped), sent);
}

// Loopback datagrams all read in time pass the input backlog without a drop, while its first
// column (packets processed) grows by at least as many: reading the wrong column would show here.
TEST(KernelBacklogDrops, ReadsTheDropColumnNotTheProcessedOne) {
    UdpClient receiver(loopback4(0));
    UdpClient sender(loopback4(0));
    const std::uint64_t before = kernel_backlog_drops();
    constexpr int sent = 300;
    int received = 0;
    for (int i = 0; i < sent; ++i) {
        ASSERT_TRUE(sender.send_to(receiver.local_address(), Bytes(100, 0x42)));
        if (receiver.receive(1s)) ++received;
    }
    const std::uint64_t dropped = kernel_backlog_drops() - before;
    ASSERT_EQ(received, sent);
    // Other tests' traffic may overflow the backlog meanwhile, but not by one per datagram here.
    EXPECT_LT(dropped, static_cast<std::uint64_t>(sent));
}

}  // namespace
}  // namespace tern::test
