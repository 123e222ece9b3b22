// Proves the per-packet look-ups and the relay path do not touch the heap: the global operator new
// is replaced in this test binary and counts calls while a guard is armed.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>

#include <array>
#include <memory>
#include <vector>

#include "tern/allocation/allocation_manager.hpp"
#include "tern/allocation/allocation_table.hpp"
#include "tern/allocation/peer_policy.hpp"
#include "tern/allocation/transaction_cache.hpp"
#include "tern/protocol/attribute_type.hpp"
#include "tern/protocol/message.hpp"
#include "tern/protocol/message_builder.hpp"
#include "test_addresses.hpp"
#include "test_random.hpp"

// GCC sees the replaced delete inlined into std::allocator and takes its free() for a mismatch
// with operator new; here both sides are malloc/free by construction.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

namespace {
std::atomic<bool> armed{false};
std::atomic<int> allocations{0};
}  // namespace

void* operator new(std::size_t size) {
    if (armed.load(std::memory_order_relaxed)) allocations.fetch_add(1);
    if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
    throw std::bad_alloc();
}
void operator delete(void* p) noexcept {
    std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
    std::free(p);
}

namespace tern::allocation {
namespace {

using namespace std::chrono_literals;
using protocol::MessageBuilder;
using protocol::MessageClass;
using protocol::MessageView;
using protocol::Method;
using protocol::Transport;
using protocol::TransportAddress;

class HeapGuard {
public:
    HeapGuard() {
        allocations = 0;
        armed = true;
    }
    ~HeapGuard() { armed = false; }
    int count() const { return allocations.load(); }
};

TEST(HeapFreeRelay, CounterWorks) {
    int n = 0;
    {
        HeapGuard guard;
        // A direct call, not a new-expression: the compiler may not elide it.
        void* p = ::operator new(16);
        n = guard.count();
        ::operator delete(p);
    }
    EXPECT_EQ(n, 1);
}

TEST(HeapFreeRelay, PerPacketLookups) {
    const TimePoint t0 = TimePoint{} + 1000s;
    const auto peer = TransportAddress::parse("203.0.114.5:9").value();
    const auto v6 = TransportAddress::parse("[2001:4860::1]:9").value();
    const PeerPolicy policy({}, {}, {});
    AllocationTable table(AllocationLimits{});
    const FiveTuple tuple{TransportAddress::parse("192.0.2.1:4000").value(),
                          TransportAddress::parse("198.51.100.1:3478").value(), Transport::udp};
    Allocation* a = table.create(tuple, "alice", {}, std::nullopt, t0).allocation;
    ASSERT_NE(a, nullptr);
    ASSERT_EQ(bind_channel_with_permission(a->channels, a->permissions, 0x4000, peer, t0),
              ChannelBindResult::bound);
    TransactionCache cache(16, 128, 1);
    TransactionKey key{tuple, {}};
    const std::uint8_t response[20] = {1};
    ASSERT_TRUE(cache.store(key, response, t0));

    int n = -1;
    bool all = true;
    {
        HeapGuard guard;
        all &= policy.permits(peer) && policy.permits(v6);
        all &= table.find(tuple, t0) == a;
        all &= a->permissions.allowed(peer, t0);
        all &= a->channels.peer_for(0x4000, t0).has_value();
        all &= a->channels.channel_for(peer, t0).has_value();
        all &= cache.find(key, t0).has_value();
        key.transaction_id[0] = 7;
        all &= cache.store(key, response, t0);  // storing is allocation-free too
        all &= table.count_for("alice") == 1;
        n = guard.count();
    }
    EXPECT_TRUE(all);
    EXPECT_EQ(n, 0);
}

// Counts, and keeps nothing: a recording egress would itself allocate.
class CountingEgress final : public RelayEgress {
public:
    OpenRelayResult open_relay(const TransportAddress&, bool) override {
        return {OpenRelayStatus::opened, next_++};
    }
    void close_relay(RelayId) noexcept override {}
    bool send_to_peer(RelayId, const TransportAddress&,
                      std::span<const std::uint8_t> payload) noexcept override {
        ++to_peer;
        bytes += payload.size();
        return true;
    }
    bool send_to_client(const FiveTuple&, ClientRoute,
                        std::span<const std::uint8_t> message) noexcept override {
        ++to_client;
        bytes += message.size();
        return true;
    }
    std::uint64_t to_peer = 0;
    std::uint64_t to_client = 0;
    std::uint64_t bytes = 0;

private:
    RelayId next_ = 1;
};

// The whole relay path, not only its look-ups: ChannelData and Send indications from the client,
// and peer datagrams back as ChannelData or Data indications, with both bandwidth caps on.
TEST(HeapFreeRelay, RelayPathBothWays) {
    ManagerSettings settings;
    settings.limits.allocation_bandwidth = 4000000000u;  // on, but never short here
    settings.limits.user_bandwidth = 4000000000u;
    const std::vector<protocol::Cidr> none;
    const std::vector<TransportAddress> no_own;
    auto peers = std::make_shared<const PeerPolicy>(none, none, no_own);
    testing::SeededRandom random(1);
    RelayPorts ports(50000, 50099, random);
    CountingEgress egress;
    AllocationManager manager(settings, peers, ports, egress, 7);

    const FiveTuple tuple{testing::addr("203.0.113.5:40000"), testing::addr("198.51.100.1:3478"),
                          Transport::udp};
    const TransportAddress channel_peer = testing::addr("8.8.8.8:5000");
    const TransportAddress indication_peer = testing::addr("1.1.1.1:6000");
    const std::array<std::uint8_t, 16> key{};
    const Requester alice{"alice", key, false, std::nullopt};
    TimePoint now = testing::t0;
    std::array<std::uint8_t, 1024> out{};
    std::uint32_t serial = 0;
    auto request = [&](Method method, auto&& add) {
        std::array<std::uint8_t, 256> buf{};
        protocol::TransactionId id{};
        id.bytes[0] = static_cast<std::uint8_t>(++serial);
        MessageBuilder b(buf, {method, MessageClass::request}, id);
        add(b);
        MessageView view;
        ASSERT_EQ(MessageView::parse(b.finish(), view), protocol::ParseError::ok);
        const auto reply =
            manager.handle_request(view, tuple, ClientRoute::listener(1), alice, now, out);
        MessageView answer;
        ASSERT_EQ(MessageView::parse(reply, answer), protocol::ParseError::ok);
        ASSERT_FALSE(answer.error_code()) << answer.error_code()->code;
    };
    request(Method::allocate, [](MessageBuilder& b) { b.add_requested_transport(17); });
    request(Method::channel_bind, [&](MessageBuilder& b) {
        b.add_channel_number(0x4000);
        b.add_xor_address(protocol::attr::xor_peer_address, channel_peer);
    });
    request(Method::create_permission, [&](MessageBuilder& b) {
        b.add_xor_address(protocol::attr::xor_peer_address, indication_peer);
    });
    const Allocation* a = manager.find(tuple, now);
    ASSERT_NE(a, nullptr);
    const RelayId relay = a->relay_ids[0];

    // The packets, built before counting starts.
    std::vector<std::uint8_t> channel_data(4 + 160, 0x42);
    channel_data[0] = 0x40;
    channel_data[1] = 0x00;
    channel_data[2] = 0;
    channel_data[3] = 160;
    std::array<std::uint8_t, 512> send_buf{};
    MessageBuilder send(send_buf, {Method::send, MessageClass::indication}, {});
    send.add_xor_address(protocol::attr::xor_peer_address, indication_peer);
    const std::vector<std::uint8_t> payload(160, 0x24);
    send.add_bytes(protocol::attr::data, payload);
    MessageView send_view;
    ASSERT_EQ(MessageView::parse(send.finish(), send_view), protocol::ParseError::ok);

    constexpr int rounds = 10000;
    int allocations_seen = 0;
    {
        HeapGuard guard;
        for (int i = 0; i < rounds; ++i) {
            now += 100us;
            manager.on_channel_data(channel_data, tuple, now);
            manager.on_send_indication(send_view, tuple, now);
            manager.on_peer_datagram(relay, channel_peer, payload, now);     // as ChannelData
            manager.on_peer_datagram(relay, indication_peer, payload, now);  // a Data indication
        }
        allocations_seen = guard.count();
    }
    EXPECT_EQ(allocations_seen, 0);
    EXPECT_EQ(egress.to_peer, 2u * rounds);
    EXPECT_EQ(egress.to_client, 2u * rounds);
    EXPECT_EQ(manager.counters().dropped_bandwidth, 0u);
}

}  // namespace
}  // namespace tern::allocation
