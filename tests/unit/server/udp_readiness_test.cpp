// The worker's UDP readiness loop: every socket registered once, edge-triggered, and the ready
// list drained in one pass, without losing a datagram a pass left behind.
#include "tern/server/io/udp_readiness.hpp"

#include <gtest/gtest.h>
#include <sys/socket.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <map>
#include <memory>
#include <thread>
#include <vector>

#include "loopback_udp.hpp"
#include "tern/server/io/relay_socket.hpp"

namespace tern::server {
namespace {

using Bytes = std::vector<std::uint8_t>;

// Reads at most `per_visit` datagrams from a socket per visit (0: until EAGAIN).
struct RecordingHandler final : UdpReadinessHandler {
    std::map<std::uint32_t, int> fds;  // token index -> descriptor
    std::map<std::uint32_t, int> received;
    std::size_t per_visit = 0;
    int passes = 0;
    int visits = 0;

    bool on_readable(UdpToken token, TimePoint) noexcept override {
        ++visits;
        const int fd = fds.at(token.index);
        std::uint8_t b[2048];
        for (std::size_t n = 0; per_visit == 0 || n < per_visit; ++n) {
            if (::recv(fd, b, sizeof b, MSG_DONTWAIT) < 0) return true;  // EAGAIN: drained
            ++received[token.index];
        }
        return false;
    }
    bool end_of_pass() noexcept override {
        ++passes;
        return false;
    }
    int total() const {
        int t = 0;
        for (const auto& [_, n] : received) t += n;
        return t;
    }
};

class UdpReadinessTest : public ::testing::Test {
protected:
    void open_sockets(std::size_t n) {
        for (std::size_t i = 0; i < n; ++i) {
            auto s = std::make_unique<RelaySocket>();
            ASSERT_FALSE(s->open(protocol::TransportAddress::v4({127, 0, 0, 1}, 0), false));
            handler.fds[static_cast<std::uint32_t>(i)] = s->native_handle();
            sockets.push_back(std::move(s));
        }
    }
    void add_all() {
        for (std::size_t i = 0; i < sockets.size(); ++i) {
            ASSERT_FALSE(loop.add(sockets[i]->native_handle(),
                                  {UdpToken::Kind::relay, static_cast<std::uint32_t>(i)}));
        }
    }
    void run_until(int total) {
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
        while (handler.total() < total && std::chrono::steady_clock::now() < deadline) {
            loop.run_one(10);
        }
        loop.run_one(20);  // and nothing more arrives
    }

    boost::asio::io_context io{1};
    RecordingHandler handler;
    UdpReadiness loop{io, handler};
    std::vector<std::unique_ptr<RelaySocket>> sockets;
    LoopbackUdp peer;
};

TEST_F(UdpReadinessTest, ManyReadySocketsAreVisitedInOnePass) {
    open_sockets(50);
    add_all();
    loop.start();
    loop.run_one(20);
    const int passes_before = handler.passes;
    // Datagrams on 40 sockets before the loop runs again: one wake-up sees them all.
    for (std::size_t i = 0; i < 40; ++i) peer.send(sockets[i]->local_address(), Bytes(100, 1));
    run_until(40);
    EXPECT_EQ(handler.total(), 40);
    EXPECT_EQ(handler.received.size(), 40u);
    EXPECT_LE(handler.passes - passes_before, 2);
}

TEST_F(UdpReadinessTest, ASocketLeftWithDataIsVisitedAgainWithoutANewDatagram) {
    open_sockets(2);
    add_all();
    handler.per_visit = 1;  // never drains in one visit
    loop.start();
    for (int i = 0; i < 5; ++i) peer.send(sockets[0]->local_address(), Bytes(10, 2));
    for (int i = 0; i < 3; ++i) peer.send(sockets[1]->local_address(), Bytes(10, 3));
    run_until(8);
    EXPECT_EQ(handler.received[0], 5);
    EXPECT_EQ(handler.received[1], 3);
}

TEST_F(UdpReadinessTest, DataThatArrivedBeforeRegistrationIsRead) {
    open_sockets(1);
    peer.send(sockets[0]->local_address(), Bytes(10, 4));
    ::usleep(20000);
    add_all();
    loop.start();
    run_until(1);
    EXPECT_EQ(handler.total(), 1);
}

TEST_F(UdpReadinessTest, AClosedSocketLeavesTheSet) {
    open_sockets(2);
    add_all();
    loop.start();
    sockets[0]->close();
    peer.send(sockets[1]->local_address(), Bytes(10, 5));
    run_until(1);
    EXPECT_EQ(handler.received.count(0), 0u);
    EXPECT_EQ(handler.received[1], 1);
}

TEST_F(UdpReadinessTest, TheLoopWaitsOnAsiosSetToo) {
    // The worker's thread blocks in this set alone: Asio's timers and posts from other threads
    // must still run.
    ASSERT_TRUE(loop.owns_the_wait());
    auto work = boost::asio::make_work_guard(io);  // as the worker's run() holds
    boost::asio::steady_timer timer(io, std::chrono::milliseconds(20));
    bool fired = false;
    timer.async_wait([&](const boost::system::error_code& ec) { fired = !ec; });
    const auto t0 = std::chrono::steady_clock::now();
    while (!fired && std::chrono::steady_clock::now() - t0 < std::chrono::seconds(2)) {
        loop.run_one(1000);
    }
    EXPECT_TRUE(fired);
    bool posted = false;
    std::thread other([&] {
        boost::asio::post(io, [&] { posted = true; });
        loop.wake();
    });
    other.join();
    loop.run_one(1000);
    EXPECT_TRUE(posted);
}

TEST_F(UdpReadinessTest, StopEndsTheLoop) {
    open_sockets(1);
    add_all();
    loop.start();
    loop.stop();
    peer.send(sockets[0]->local_address(), Bytes(10, 6));
    loop.run_one(50);
    EXPECT_EQ(handler.total(), 0);
}

}  // namespace
}  // namespace tern::server

namespace tern::server {
namespace {

// Should Asio's set not be found, the loop is one descriptor in Asio's loop instead
// (TERN_NESTED_LOOP=1 forces it, for measuring): datagrams must still be read, sockets left with
// data revisited.
TEST(UdpReadinessNested, RelaysThroughAsiosLoop) {
    ::setenv("TERN_NESTED_LOOP", "1", 1);
    boost::asio::io_context io{1};
    RecordingHandler handler;
    UdpReadiness loop{io, handler};
    ::unsetenv("TERN_NESTED_LOOP");
    ASSERT_FALSE(loop.owns_the_wait());
    std::vector<std::unique_ptr<RelaySocket>> sockets;
    for (std::uint32_t i = 0; i < 3; ++i) {
        auto s = std::make_unique<RelaySocket>();
        ASSERT_FALSE(s->open(protocol::TransportAddress::v4({127, 0, 0, 1}, 0), false));
        handler.fds[i] = s->native_handle();
        ASSERT_FALSE(loop.add(s->native_handle(), {UdpToken::Kind::relay, i}));
        sockets.push_back(std::move(s));
    }
    handler.per_visit = 1;
    loop.start();
    LoopbackUdp peer;
    for (int k = 0; k < 4; ++k) {
        for (auto& s : sockets) peer.send(s->local_address(), Bytes(10, 7));
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (handler.total() < 12 && std::chrono::steady_clock::now() < deadline) {
        io.run_for(std::chrono::milliseconds(10));
    }
    EXPECT_EQ(handler.total(), 12);
    loop.stop();
}

}  // namespace
}  // namespace tern::server
