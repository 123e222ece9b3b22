// Proves the per-packet look-ups do not touch the heap: the global operator new is replaced in
// this test binary and counts calls while a guard is armed.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>

#include "tern/allocation/allocation_table.hpp"
#include "tern/allocation/peer_policy.hpp"
#include "tern/allocation/transaction_cache.hpp"

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

TEST(NoAllocation, CounterWorks) {
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

TEST(NoAllocation, PerPacketLookups) {
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

}  // namespace
}  // namespace tern::allocation
