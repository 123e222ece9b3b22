#include "tern/allocation/channel_table.hpp"

#include <gtest/gtest.h>

#include "test_addresses.hpp"

namespace tern::allocation {
namespace {

using namespace std::chrono_literals;
using protocol::TransportAddress;
using R = ChannelBindResult;

using testing::addr;
using testing::t0;

const TransportAddress peer_a = addr("192.0.2.1:5000");
const TransportAddress peer_b = addr("192.0.2.1:5001");  // same IP, other port: other peer

TEST(ChannelTable, ChannelNumberRange) {
    ChannelTable t(10);
    EXPECT_EQ(t.bind(0x3FFF, peer_a, t0), R::invalid_channel);
    EXPECT_EQ(t.bind(0x8000, peer_a, t0), R::invalid_channel);
    EXPECT_EQ(t.bind(0xFFFF, peer_a, t0), R::invalid_channel);
    EXPECT_EQ(t.bind(0x0000, peer_a, t0), R::invalid_channel);
    EXPECT_EQ(t.bind(0x4000, peer_a, t0), R::bound);
    EXPECT_EQ(t.bind(0x4FFF, peer_b, t0), R::bound);
    EXPECT_EQ(t.live_count(t0), 2u);
    EXPECT_FALSE(t.peer_for(0x3FFF, t0));
}

TEST(ChannelTable, LookupsBothWays) {
    ChannelTable t(10);
    ASSERT_EQ(t.bind(0x4001, peer_a, t0), R::bound);
    ASSERT_EQ(t.bind(0x4002, peer_b, t0), R::bound);
    EXPECT_EQ(t.peer_for(0x4001, t0), std::optional<TransportAddress>(peer_a));
    EXPECT_EQ(t.peer_for(0x4002, t0), std::optional<TransportAddress>(peer_b));
    EXPECT_FALSE(t.peer_for(0x4003, t0));
    EXPECT_EQ(t.channel_for(peer_a, t0), std::optional<std::uint16_t>(0x4001));
    EXPECT_EQ(t.channel_for(peer_b, t0), std::optional<std::uint16_t>(0x4002));
    EXPECT_FALSE(t.channel_for(addr("192.0.2.1:5002"), t0));
}

TEST(ChannelTable, MappedPeerIsTheSamePeerAndStoredUnmapped) {
    ChannelTable t(10);
    ASSERT_EQ(t.bind(0x4001, addr("[::ffff:192.0.2.1]:5000"), t0), R::bound);
    EXPECT_EQ(t.peer_for(0x4001, t0), std::optional<TransportAddress>(peer_a));
    EXPECT_EQ(t.channel_for(peer_a, t0), std::optional<std::uint16_t>(0x4001));
    EXPECT_EQ(t.bind(0x4001, peer_a, t0 + 1s), R::refreshed);
    EXPECT_EQ(t.bind(0x4002, peer_a, t0 + 1s), R::peer_in_use);
}

TEST(ChannelTable, ConflictsAreRefused) {
    ChannelTable t(10);
    ASSERT_EQ(t.bind(0x4001, peer_a, t0), R::bound);
    EXPECT_EQ(t.bind(0x4001, peer_b, t0), R::channel_in_use);
    EXPECT_EQ(t.bind(0x4002, peer_a, t0), R::peer_in_use);
    EXPECT_EQ(t.live_count(t0), 1u);
    EXPECT_EQ(t.peer_for(0x4001, t0), std::optional<TransportAddress>(peer_a));
    EXPECT_FALSE(t.peer_for(0x4002, t0));
}

TEST(ChannelTable, LifetimeAndRefresh) {
    ChannelTable t(10);
    ASSERT_EQ(t.bind(0x4001, peer_a, t0), R::bound);
    EXPECT_TRUE(t.peer_for(0x4001, t0 + 600s - 1ns));
    EXPECT_FALSE(t.peer_for(0x4001, t0 + 600s));
    EXPECT_FALSE(t.channel_for(peer_a, t0 + 600s));
    EXPECT_EQ(t.bind(0x4001, peer_a, t0 + 500s), R::refreshed);
    EXPECT_TRUE(t.peer_for(0x4001, t0 + 1100s - 1ns));
    EXPECT_FALSE(t.peer_for(0x4001, t0 + 1100s));
}

TEST(ChannelTable, QuarantineBlocksDifferentBindingsForFiveMinutes) {
    ChannelTable t(10);
    ASSERT_EQ(t.bind(0x4001, peer_a, t0), R::bound);
    const TimePoint dead = t0 + 600s;  // binding lapses here; quarantine to t0 + 900 s
    EXPECT_EQ(t.bind(0x4001, peer_b, dead), R::channel_in_use);
    EXPECT_EQ(t.bind(0x4002, peer_a, dead), R::peer_in_use);
    EXPECT_EQ(t.bind(0x4001, peer_b, t0 + 900s - 1ns), R::channel_in_use);
    EXPECT_EQ(t.bind(0x4002, peer_a, t0 + 900s - 1ns), R::peer_in_use);
    EXPECT_EQ(t.expire(t0 + 900s - 1ns), 0u);
    // Quarantine over: both are free again, even without an explicit sweep.
    EXPECT_EQ(t.bind(0x4002, peer_a, t0 + 900s), R::bound);
    EXPECT_EQ(t.bind(0x4001, peer_b, t0 + 900s), R::bound);
    EXPECT_EQ(t.channel_for(peer_a, t0 + 900s), std::optional<std::uint16_t>(0x4002));
    EXPECT_EQ(t.channel_for(peer_b, t0 + 900s), std::optional<std::uint16_t>(0x4001));
    EXPECT_EQ(t.live_count(t0 + 900s), 2u);
}

TEST(ChannelTable, SamePairMayRebindDuringQuarantine) {
    ChannelTable t(10);
    ASSERT_EQ(t.bind(0x4001, peer_a, t0), R::bound);
    EXPECT_EQ(t.bind(0x4001, peer_a, t0 + 700s), R::bound);
    EXPECT_TRUE(t.peer_for(0x4001, t0 + 1299s));
    EXPECT_FALSE(t.peer_for(0x4001, t0 + 1300s));
}

TEST(ChannelTable, ExpireSweepsOnlyAfterQuarantine) {
    ChannelTable t(10);
    ASSERT_EQ(t.bind(0x4001, peer_a, t0), R::bound);
    ASSERT_EQ(t.bind(0x4002, peer_b, t0 + 100s), R::bound);
    EXPECT_EQ(t.expire(t0 + 899s), 0u);
    EXPECT_EQ(t.live_count(t0 + 650s), 1u);
    EXPECT_EQ(t.expire(t0 + 900s), 1u);
    EXPECT_EQ(t.expire(t0 + 1000s), 1u);
    EXPECT_EQ(t.expire(t0 + 5000s), 0u);
    EXPECT_EQ(t.live_count(t0), 0u);
}

TEST(ChannelTable, QuotaCountsLiveBindingsOnly) {
    ChannelTable t(2);
    ASSERT_EQ(t.bind(0x4001, peer_a, t0), R::bound);
    ASSERT_EQ(t.bind(0x4002, peer_b, t0 + 10s), R::bound);
    const auto peer_c = addr("[2001:db8::1]:7");
    EXPECT_EQ(t.bind(0x4003, peer_c, t0 + 20s), R::quota_exceeded);
    EXPECT_FALSE(t.peer_for(0x4003, t0 + 20s));
    EXPECT_EQ(t.bind(0x4001, peer_a, t0 + 20s), R::refreshed);  // refresh is not refused
    // peer_b's binding lapses at t0 + 610 s and stops counting, though still quarantined.
    EXPECT_EQ(t.bind(0x4003, peer_c, t0 + 610s - 1ns), R::quota_exceeded);
    EXPECT_EQ(t.bind(0x4003, peer_c, t0 + 610s), R::bound);
    // Re-binding the quarantined pair needs quota like a new binding.
    EXPECT_EQ(t.bind(0x4002, peer_b, t0 + 611s), R::quota_exceeded);
}

TEST(ChannelTable, AllChannelsUsable) {
    ChannelTable t(ChannelTable::channel_count);
    for (std::uint32_t c = ChannelTable::first_channel; c <= ChannelTable::last_channel; ++c) {
        const auto p = TransportAddress::v4(
            {203, 0, static_cast<std::uint8_t>(c >> 8), static_cast<std::uint8_t>(c & 0xFF)},
            static_cast<std::uint16_t>(c));
        ASSERT_EQ(t.bind(static_cast<std::uint16_t>(c), p, t0), R::bound) << c;
    }
    EXPECT_EQ(t.live_count(t0), 4096u);
    const auto p = TransportAddress::v4({203, 0, 0x4A, 0xBC}, 0x4ABC);
    EXPECT_EQ(t.channel_for(p, t0), std::optional<std::uint16_t>(0x4ABC));
    EXPECT_EQ(t.peer_for(0x4ABC, t0), std::optional<TransportAddress>(p));
}

TEST(BindChannelWithPermission, InstallsAndRefreshesThePermission) {
    ChannelTable channels(10);
    PermissionTable permissions(10);
    EXPECT_EQ(bind_channel_with_permission(channels, permissions, 0x4001, peer_a, t0), R::bound);
    EXPECT_TRUE(permissions.allowed(addr("192.0.2.1:1"), t0));
    EXPECT_FALSE(permissions.allowed(addr("192.0.2.1:1"), t0 + 300s));
    EXPECT_EQ(bind_channel_with_permission(channels, permissions, 0x4001, peer_a, t0 + 299s),
              R::refreshed);
    EXPECT_TRUE(permissions.allowed(addr("192.0.2.1:1"), t0 + 598s));
}

TEST(BindChannelWithPermission, FailedBindInstallsNothing) {
    ChannelTable channels(10);
    PermissionTable permissions(10);
    ASSERT_EQ(channels.bind(0x4001, peer_a, t0), R::bound);
    const auto other = addr("198.51.100.9:1");
    EXPECT_EQ(bind_channel_with_permission(channels, permissions, 0x4001, other, t0),
              R::channel_in_use);
    EXPECT_FALSE(permissions.allowed(other, t0));
    EXPECT_EQ(permissions.count(), 0u);
}

TEST(BindChannelWithPermission, PermissionQuotaLeavesChannelsUntouched) {
    ChannelTable channels(10);
    PermissionTable permissions(1);
    ASSERT_EQ(permissions.install(addr("198.51.100.9:1"), t0), PermissionResult::installed);
    EXPECT_EQ(bind_channel_with_permission(channels, permissions, 0x4001, peer_a, t0),
              R::permission_quota_exceeded);
    EXPECT_FALSE(channels.peer_for(0x4001, t0));
    // A peer whose IP already has a permission needs no new slot.
    const auto same_ip = addr("198.51.100.9:2");
    EXPECT_EQ(bind_channel_with_permission(channels, permissions, 0x4001, same_ip, t0), R::bound);
    // After the old permission lapses there is room again.
    EXPECT_EQ(bind_channel_with_permission(channels, permissions, 0x4002, peer_a, t0 + 300s),
              R::bound);
    EXPECT_TRUE(permissions.allowed(peer_a, t0 + 300s));
}

}  // namespace
}  // namespace tern::allocation
