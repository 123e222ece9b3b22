#include "tern/allocation/allocation_table.hpp"

#include <gtest/gtest.h>

#include <cstdint>

#include <string>

namespace tern::allocation {
namespace {

using namespace std::chrono_literals;
using protocol::Transport;
using protocol::TransportAddress;

const TimePoint t0 = TimePoint{} + 1000s;

TransportAddress addr(const std::string& text) {
    auto a = TransportAddress::parse(text);
    EXPECT_TRUE(a.has_value()) << text;
    return a.value_or(TransportAddress{});
}

FiveTuple tuple(int client_port, Transport t = Transport::udp) {
    return FiveTuple{addr("192.0.2.10:" + std::to_string(client_port)), addr("198.51.100.1:3478"),
                     t};
}

std::vector<TransportAddress> relay(int port) {
    return {addr("198.51.100.1:" + std::to_string(port))};
}

AllocationLimits small_limits() {
    AllocationLimits l;
    l.default_lifetime = 600s;
    l.max_lifetime = 3600s;
    l.max_allocations = 4;
    l.max_allocations_per_user = 2;
    l.max_permissions_per_allocation = 3;
    l.max_channels_per_allocation = 2;
    return l;
}

TEST(GrantedLifetime, DefaultMinimumAndCap) {
    const AllocationLimits l = small_limits();
    EXPECT_EQ(granted_lifetime(std::nullopt, l), 600s);
    EXPECT_EQ(granted_lifetime(0s, l), 600s);
    EXPECT_EQ(granted_lifetime(30s, l), 600s);
    EXPECT_EQ(granted_lifetime(601s, l), 601s);
    EXPECT_EQ(granted_lifetime(3600s, l), 3600s);
    EXPECT_EQ(granted_lifetime(3601s, l), 3600s);
    EXPECT_EQ(granted_lifetime(std::chrono::hours(24 * 365), l), 3600s);
}

TEST(AllocationTable, CreateFindAndDefaultLifetime) {
    AllocationTable table(small_limits());
    const auto out = table.create(tuple(1), "alice", relay(50000), std::nullopt, t0);
    ASSERT_EQ(out.result, CreateResult::created);
    ASSERT_NE(out.allocation, nullptr);
    EXPECT_EQ(out.allocation->username, "alice");
    EXPECT_EQ(out.allocation->relays, relay(50000));
    EXPECT_EQ(out.allocation->expires, t0 + 600s);
    EXPECT_EQ(out.allocation->permissions.max(), 3u);
    EXPECT_EQ(out.allocation->channels.max(), 2u);
    EXPECT_EQ(table.find(tuple(1), t0 + 599s), out.allocation);
    EXPECT_EQ(table.find(tuple(1), t0 + 600s), nullptr);  // lapsed exactly at its lifetime
    EXPECT_EQ(table.find(tuple(2), t0), nullptr);
    EXPECT_EQ(table.find(tuple(1, Transport::tcp), t0), nullptr);
    EXPECT_EQ(table.count_for("alice"), 1u);
}

TEST(AllocationTable, SameFiveTupleIsAMismatchWhileLive) {
    AllocationTable table(small_limits());
    ASSERT_EQ(table.create(tuple(1), "alice", relay(50000), std::nullopt, t0).result,
              CreateResult::created);
    EXPECT_EQ(table.create(tuple(1), "alice", relay(50002), std::nullopt, t0 + 599s).result,
              CreateResult::mismatch);
    // Once lapsed (even unswept) the 5-tuple is free again; the old one comes back via expire.
    const auto again = table.create(tuple(1), "alice", relay(50002), std::nullopt, t0 + 600s);
    ASSERT_EQ(again.result, CreateResult::created);
    EXPECT_EQ(again.allocation->relays, relay(50002));
    EXPECT_EQ(table.count_for("alice"), 1u);
    const auto freed = table.expire(t0 + 600s);
    ASSERT_EQ(freed.size(), 1u);
    EXPECT_EQ(freed[0].relays, relay(50000));
}

TEST(AllocationTable, PerUserQuotaIs486AndTotalIs508) {
    AllocationTable table(small_limits());
    ASSERT_EQ(table.create(tuple(1), "alice", relay(1), std::nullopt, t0).result,
              CreateResult::created);
    ASSERT_EQ(table.create(tuple(2), "alice", relay(2), std::nullopt, t0).result,
              CreateResult::created);
    EXPECT_EQ(table.create(tuple(3), "alice", relay(3), std::nullopt, t0).result,
              CreateResult::user_quota);
    EXPECT_EQ(table.admit(tuple(3), "alice", t0), CreateResult::user_quota);
    ASSERT_EQ(table.create(tuple(3), "bob", relay(3), std::nullopt, t0).result,
              CreateResult::created);
    ASSERT_EQ(table.create(tuple(4), "carol", relay(4), std::nullopt, t0).result,
              CreateResult::created);
    EXPECT_EQ(table.size(), 4u);
    EXPECT_EQ(table.create(tuple(5), "dave", relay(5), std::nullopt, t0).result,
              CreateResult::capacity);
    EXPECT_EQ(table.admit(tuple(5), "dave", t0), CreateResult::capacity);
    // Both limits hit: the user's own limit is reported.
    EXPECT_EQ(table.create(tuple(5), "alice", relay(5), std::nullopt, t0).result,
              CreateResult::user_quota);
    EXPECT_EQ(table.count_for("dave"), 0u);
    EXPECT_EQ(table.size(), 4u);
}

TEST(AllocationTable, UnlimitedPerUserKeepsNoCountsAndALimitLaterCountsTheLiveOnes) {
    AllocationLimits unlimited = small_limits();
    unlimited.max_allocations_per_user = SIZE_MAX;  // as under a shared AllocationQuota
    AllocationTable table(unlimited);
    for (int i = 1; i <= 3; ++i) {
        ASSERT_EQ(table.create(tuple(i), "alice", relay(i), std::nullopt, t0).result,
                  CreateResult::created);
    }
    EXPECT_EQ(table.count_for("alice"), 0u);  // not counted: nothing enforces it
    table.set_limits(small_limits());         // 2 per user: the three live ones count at once
    EXPECT_EQ(table.count_for("alice"), 3u);
    EXPECT_EQ(table.create(tuple(4), "alice", relay(4), std::nullopt, t0).result,
              CreateResult::user_quota);
    ASSERT_TRUE(table.remove(tuple(1)).has_value());
    EXPECT_EQ(table.count_for("alice"), 2u);
}

TEST(AllocationTable, LapsedAllocationsDoNotHoldQuota) {
    AllocationTable table(small_limits());
    ASSERT_EQ(table.create(tuple(1), "alice", relay(1), std::nullopt, t0).result,
              CreateResult::created);
    ASSERT_EQ(table.create(tuple(2), "alice", relay(2), 1200s, t0).result, CreateResult::created);
    EXPECT_EQ(table.create(tuple(3), "alice", relay(3), std::nullopt, t0 + 600s - 1ns).result,
              CreateResult::user_quota);
    EXPECT_EQ(table.create(tuple(3), "alice", relay(3), std::nullopt, t0 + 600s).result,
              CreateResult::created);
    EXPECT_EQ(table.count_for("alice"), 2u);
    const auto freed = table.expire(t0 + 600s);
    ASSERT_EQ(freed.size(), 1u);  // swept during create, handed over now
    EXPECT_EQ(freed[0].tuple, tuple(1));
    EXPECT_TRUE(table.expire(t0 + 600s).empty());
}

TEST(AllocationTable, RefreshExtendsCapsAndDeletes) {
    AllocationTable table(small_limits());
    ASSERT_EQ(table.create(tuple(1), "alice", relay(1), 100000s, t0).result, CreateResult::created);
    EXPECT_EQ(table.find(tuple(1), t0)->expires, t0 + 3600s);

    auto r = table.refresh(tuple(1), 1000s, t0 + 100s);
    EXPECT_EQ(r.result, RefreshResult::refreshed);
    EXPECT_EQ(r.lifetime, 1000s);
    EXPECT_EQ(table.find(tuple(1), t0)->expires, t0 + 1100s);

    r = table.refresh(tuple(1), std::nullopt, t0 + 200s);
    EXPECT_EQ(r.lifetime, 600s);
    EXPECT_EQ(table.find(tuple(1), t0)->expires, t0 + 800s);  // may shorten: RFC 8656 §7.3

    r = table.refresh(tuple(2), 1000s, t0 + 200s);
    EXPECT_EQ(r.result, RefreshResult::no_allocation);

    r = table.refresh(tuple(1), 0s, t0 + 300s);
    EXPECT_EQ(r.result, RefreshResult::deleted);
    ASSERT_TRUE(r.removed);
    EXPECT_EQ(r.removed->relays, relay(1));
    EXPECT_EQ(table.find(tuple(1), t0 + 300s), nullptr);
    EXPECT_EQ(table.size(), 0u);
    EXPECT_EQ(table.count_for("alice"), 0u);
    EXPECT_EQ(table.refresh(tuple(1), 0s, t0 + 300s).result, RefreshResult::no_allocation);
    EXPECT_TRUE(table.expire(t0 + 100000s).empty());  // deleted ones are not reported twice
}

TEST(AllocationTable, RefreshOfALapsedAllocationIs437) {
    AllocationTable table(small_limits());
    ASSERT_EQ(table.create(tuple(1), "alice", relay(1), std::nullopt, t0).result,
              CreateResult::created);
    EXPECT_EQ(table.refresh(tuple(1), 600s, t0 + 600s).result, RefreshResult::no_allocation);
    EXPECT_EQ(table.refresh(tuple(1), 600s, t0 + 599s).result, RefreshResult::refreshed);
}

TEST(AllocationTable, ExpireReturnsExactlyTheLapsed) {
    AllocationTable table(small_limits());
    ASSERT_EQ(table.create(tuple(1), "alice", relay(1), std::nullopt, t0).result,
              CreateResult::created);
    ASSERT_EQ(table.create(tuple(2), "bob", relay(2), 700s, t0).result, CreateResult::created);
    EXPECT_TRUE(table.expire(t0 + 600s - 1ns).empty());
    auto freed = table.expire(t0 + 600s);
    ASSERT_EQ(freed.size(), 1u);
    EXPECT_EQ(freed[0].username, "alice");
    EXPECT_EQ(table.count_for("alice"), 0u);
    EXPECT_NE(table.find(tuple(2), t0 + 600s), nullptr);
    freed = table.expire(t0 + 700s);
    ASSERT_EQ(freed.size(), 1u);
    EXPECT_EQ(freed[0].username, "bob");
    EXPECT_EQ(table.size(), 0u);
}

TEST(AllocationTable, ShortenedRefreshStillExpiresOnTime) {
    AllocationTable table(small_limits());
    ASSERT_EQ(table.create(tuple(1), "alice", relay(1), 3600s, t0).result, CreateResult::created);
    EXPECT_TRUE(table.expire(t0 + 10s).empty());
    ASSERT_EQ(table.refresh(tuple(1), std::nullopt, t0 + 20s).result, RefreshResult::refreshed);
    EXPECT_TRUE(table.expire(t0 + 620s - 1ns).empty());
    EXPECT_EQ(table.expire(t0 + 620s).size(), 1u);
}

TEST(AllocationTable, ExtendedRefreshIsNotExpiredEarly) {
    AllocationTable table(small_limits());
    ASSERT_EQ(table.create(tuple(1), "alice", relay(1), std::nullopt, t0).result,
              CreateResult::created);
    ASSERT_EQ(table.refresh(tuple(1), 3600s, t0 + 500s).result, RefreshResult::refreshed);
    EXPECT_TRUE(table.expire(t0 + 600s).empty());  // the stale lower bound only costs a scan
    EXPECT_TRUE(table.expire(t0 + 4100s - 1ns).empty());
    EXPECT_EQ(table.expire(t0 + 4100s).size(), 1u);
}

TEST(AllocationTable, EachAllocationHasItsOwnPermissionsAndChannels) {
    AllocationTable table(small_limits());
    Allocation* a = table.create(tuple(1), "alice", relay(1), std::nullopt, t0).allocation;
    Allocation* b = table.create(tuple(2), "alice", relay(2), std::nullopt, t0).allocation;
    ASSERT_TRUE(a && b);
    const auto peer = addr("203.0.114.5:9");
    EXPECT_EQ(bind_channel_with_permission(a->channels, a->permissions, 0x4000, peer, t0),
              ChannelBindResult::bound);
    EXPECT_TRUE(a->permissions.allowed(peer, t0));
    EXPECT_FALSE(b->permissions.allowed(peer, t0));
    EXPECT_FALSE(b->channels.peer_for(0x4000, t0));
    // Pointers survive further inserts (node-based map).
    ASSERT_EQ(table.create(tuple(3), "bob", relay(3), std::nullopt, t0).result,
              CreateResult::created);
    EXPECT_EQ(table.find(tuple(1), t0), a);
    EXPECT_TRUE(a->permissions.allowed(peer, t0));
}

// A closed control connection takes its allocation out at once, lapsed or not, and gives the
// user's quota back; a second remove finds nothing.
TEST(AllocationTable, RemoveTakesTheAllocationOutEvenWhenLapsed) {
    AllocationTable table(small_limits());
    ASSERT_EQ(table.create(tuple(1), "alice", relay(1), std::nullopt, t0).result,
              CreateResult::created);
    const auto later = t0 + std::chrono::hours(2);  // lapsed, not yet swept
    ASSERT_EQ(table.find(tuple(1), later), nullptr);
    const auto removed = table.remove(tuple(1));
    ASSERT_TRUE(removed);
    EXPECT_EQ(removed->username, "alice");
    EXPECT_EQ(removed->relays, relay(1));
    EXPECT_EQ(table.count_for("alice"), 0u);
    EXPECT_EQ(table.size(), 0u);
    EXPECT_FALSE(table.remove(tuple(1)));
    EXPECT_TRUE(table.expire(later).empty());  // nothing left for the sweep to hand back twice
}

}  // namespace
}  // namespace tern::allocation
