// limits.allocation_bandwidth and limits.user_bandwidth against a real ternd: ChannelData paced
// above the cap is cut to the token bucket's depth plus rate × time, in each direction, and
// the same traffic with the cap off arrives whole (so the cap, not loss, is what cuts it).
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <thread>

#include "support.hpp"
#include "tern/protocol/attribute_type.hpp"
#include "tern/protocol/channel_data.hpp"

namespace tern::test {
namespace {

using namespace std::chrono_literals;
using protocol::MessageBuilder;
using protocol::Method;

constexpr std::uint32_t cap = 200000;  // bytes per second; the bucket holds one second
constexpr std::size_t payload_size = 1000;
constexpr int packets = 1200;  // 2 s at 600 KB/s: three times the cap
constexpr auto spacing = std::chrono::microseconds(1667);

std::string config(std::uint16_t port, std::uint32_t allocation_cap, std::uint32_t user_cap) {
    return "listen: [ \"udp://127.0.0.1:" + std::to_string(port) +
           "\" ]\n"
           "threads: 1\n"
           "auth:\n  users:\n    alice: { password: wonderland }\n"
           "relay:\n  allow_peers: [ 127.0.0.0/8 ]\n"
           "limits: { allocation_bandwidth: " +
           std::to_string(allocation_cap) + ", user_bandwidth: " + std::to_string(user_cap) +
           ", shutdown_grace: 0 }\nlog: { level: info }\n";
}

struct Relay {
    TurnClient client;
    std::uint16_t channel;
    TransportAddress relayed{};
};

// Allocate, then bind `channel` to `peer`.
void set_up(Relay& r, const TransportAddress& peer) {
    const Reply allocated = r.client.request(Method::allocate, TurnClient::udp_transport());
    ASSERT_EQ(allocated.code(), 0) << allocated.describe();
    ASSERT_TRUE(allocated.view.xor_relayed_address());
    r.relayed = *allocated.view.xor_relayed_address();
    const Reply bound = r.client.request(Method::channel_bind, [&](MessageBuilder& b) {
        b.add_channel_number(r.channel);
        b.add_xor_address(protocol::attr::xor_peer_address, peer);
    });
    ASSERT_EQ(bound.code(), 0) << bound.describe();
}

// Sends `packets` ChannelData paced at `spacing` from each relay, all at once; returns how
// long the sending took.
double send_paced(std::initializer_list<Relay*> relays) {
    const Bytes payload(payload_size, 0x5A);
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < packets; ++i) {
        for (Relay* r : relays) r->client.send_raw(channel_data(r->channel, payload));
        std::this_thread::sleep_until(start + spacing * (i + 1));
    }
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// What the echo peer has counted once the relay has gone quiet.
int settled_count(const UdpEchoPeer& peer) {
    std::uint64_t last = peer.received();
    for (int i = 0; i < 20; ++i) {
        std::this_thread::sleep_for(100ms);
        const std::uint64_t now = peer.received();
        if (now == last && i >= 3) break;
        last = now;
    }
    return static_cast<int>(peer.received());
}

// What a bucket of depth `cap` refilled at `cap` per second lets through in packets, where
// `seconds` runs from the first packet it let through to the last, with one packet of slack.
// That span is timed by the receiving kernel, not by the sender: a starved ternd works through
// the sender's last packets late, when its bucket has refilled for longer than the sender took.
int ceiling(double seconds) {
    return static_cast<int>((cap + cap * seconds) / payload_size) + 1;
}

TEST(Bandwidth, AllocationCapCutsClientToPeerTrafficToTheBucket) {
    const auto port = free_port();
    TerndProcess ternd(config(port, cap, 0));
    ASSERT_TRUE(ternd.wait_for_output("is listening on", 10s)) << ternd.output();
    UdpEchoPeer peer;
    Relay r{TurnClient(loopback4(port), "alice", "wonderland"), 0x4000};
    ASSERT_NO_FATAL_FAILURE(set_up(r, peer.address()));
    const double sending = send_paced({&r});
    const int received = settled_count(peer);
    const double seconds = peer.arrival_span_seconds();
    ASSERT_GT(seconds, 0.0) << "the peer saw no arrival times";
    std::printf(
        "allocation cap %u B/s: %d of %d packets sent in %.2f s reached the peer in %.2f s\n", cap,
        received, packets, sending, seconds);
    EXPECT_LE(received, ceiling(seconds));
    // A limiter, not a blocker: close to what the bucket allows while the sender sends (a late
    // span may include a stall in which less was offered).
    EXPECT_GE(received, ceiling(std::min(seconds, sending)) * 9 / 10);
}

TEST(Bandwidth, AllocationCapCutsPeerToClientTrafficToTheBucket) {
    const auto port = free_port();
    TerndProcess ternd(config(port, cap, 0));
    ASSERT_TRUE(ternd.wait_for_output("is listening on", 10s)) << ternd.output();
    UdpClient peer(loopback4(0));
    Relay r{TurnClient(loopback4(port), "alice", "wonderland"), 0x4000};
    ASSERT_NO_FATAL_FAILURE(set_up(r, peer.local_address()));
    // Read while the peer sends: the client socket's buffer alone would hold only ~100.
    std::atomic<int> received{0};
    std::atomic<bool> sending{true};
    std::int64_t first_arrival = 0, last_arrival = 0;  // the reader's own; read after join
    std::thread reader([&] {
        while (true) {
            const auto got = r.client.receive_raw(300ms);
            if (!got) {
                if (!sending) break;
                continue;
            }
            if (got->empty() || !protocol::looks_like_channel_data((*got)[0])) continue;
            ++received;
            last_arrival = r.client.socket().last_arrival_ns();
            if (first_arrival == 0) first_arrival = last_arrival;
        }
    });
    const Bytes payload(payload_size, 0xA5);
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < packets; ++i) {
        peer.send_to(r.relayed, payload);
        std::this_thread::sleep_until(start + spacing * (i + 1));
    }
    const double sent_in =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    sending = false;
    reader.join();
    const double seconds = static_cast<double>(last_arrival - first_arrival) / 1e9;
    ASSERT_GT(seconds, 0.0) << "the client saw no arrival times";
    std::printf(
        "allocation cap %u B/s: %d of %d packets sent in %.2f s reached the client in %.2f s\n",
        cap, received.load(), packets, sent_in, seconds);
    EXPECT_LE(received.load(), ceiling(seconds));
    EXPECT_GE(received.load(), ceiling(std::min(seconds, sent_in)) * 9 / 10);
}

TEST(Bandwidth, WithTheCapOffTheSameTrafficArrivesWhole) {
    const auto port = free_port();
    TerndProcess ternd(config(port, 0, 0));
    ASSERT_TRUE(ternd.wait_for_output("is listening on", 10s)) << ternd.output();
    UdpEchoPeer peer;
    Relay r{TurnClient(loopback4(port), "alice", "wonderland"), 0x4000};
    ASSERT_NO_FATAL_FAILURE(set_up(r, peer.address()));
    send_paced({&r});
    const int received = settled_count(peer);
    EXPECT_GE(received, packets * 99 / 100);  // loopback at 600 KB/s loses nothing in practice
}

TEST(Bandwidth, UserCapIsSharedByTheUsersAllocations) {
    const auto port = free_port();
    TerndProcess ternd(config(port, 0, cap));
    ASSERT_TRUE(ternd.wait_for_output("is listening on", 10s)) << ternd.output();
    UdpEchoPeer peer;
    Relay a{TurnClient(loopback4(port), "alice", "wonderland"), 0x4000};
    Relay b{TurnClient(loopback4(port), "alice", "wonderland"), 0x4001};
    ASSERT_NO_FATAL_FAILURE(set_up(a, peer.address()));
    ASSERT_NO_FATAL_FAILURE(set_up(b, peer.address()));
    const double sending = send_paced({&a, &b});  // 2 × 600 KB/s against one 200 KB/s budget
    const int received = settled_count(peer);
    const double seconds = peer.arrival_span_seconds();
    ASSERT_GT(seconds, 0.0) << "the peer saw no arrival times";
    std::printf(
        "user cap %u B/s: %d of %d packets sent in %.2f s from two allocations reached "
        "the peer in %.2f s\n",
        cap, received, 2 * packets, sending, seconds);
    EXPECT_LE(received, ceiling(seconds));
    EXPECT_GE(received, ceiling(std::min(seconds, sending)) * 9 / 10);
}

}  // namespace
}  // namespace tern::test
