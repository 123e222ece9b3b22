// limits.max_connections and max_connections_per_ip as one shared count: per IP (IPv4-mapped
// folded with IPv4), in total, given back on close, re-limited by a reload.
#include "tern/server/request/connection_quota.hpp"

#include <gtest/gtest.h>

namespace tern::server {
namespace {

using protocol::TransportAddress;

TransportAddress ip(const char* text) {
    auto a = TransportAddress::parse(text);
    EXPECT_TRUE(a) << text;
    return a.value_or(TransportAddress{});
}

TEST(ConnectionQuota, PerIpLimitCountsEveryPortOfOneAddress) {
    ConnectionQuota q(100, 2);
    EXPECT_TRUE(q.try_acquire(ip("198.51.100.1:1000")));
    EXPECT_TRUE(q.try_acquire(ip("198.51.100.1:1001")));
    EXPECT_FALSE(q.try_acquire(ip("198.51.100.1:1002")));
    // The same host written as IPv4-mapped IPv6 is the same host.
    EXPECT_FALSE(q.try_acquire(ip("[::ffff:198.51.100.1]:1003")));
    EXPECT_TRUE(q.try_acquire(ip("198.51.100.2:1000")));
    EXPECT_EQ(q.count_for(ip("198.51.100.1:1")), 2u);
}

TEST(ConnectionQuota, TotalLimitAndRelease) {
    ConnectionQuota q(2, 10);
    EXPECT_TRUE(q.try_acquire(ip("198.51.100.1:1")));
    EXPECT_TRUE(q.try_acquire(ip("[2001:db8::1]:1")));
    EXPECT_FALSE(q.try_acquire(ip("198.51.100.3:1")));
    q.release(ip("198.51.100.1:1"));
    EXPECT_EQ(q.total(), 1u);
    EXPECT_EQ(q.count_for(ip("198.51.100.1:1")), 0u);
    EXPECT_TRUE(q.try_acquire(ip("198.51.100.3:1")));
}

TEST(ConnectionQuota, ReleasingWhatWasNeverTakenChangesNothing) {
    ConnectionQuota q(1, 1);
    q.release(ip("198.51.100.9:9"));
    EXPECT_EQ(q.total(), 0u);
    EXPECT_TRUE(q.try_acquire(ip("198.51.100.9:9")));
}

TEST(ConnectionQuota, ReloadedLimitsApplyToNewConnections) {
    ConnectionQuota q(10, 1);
    EXPECT_TRUE(q.try_acquire(ip("198.51.100.1:1")));
    EXPECT_FALSE(q.try_acquire(ip("198.51.100.1:2")));
    q.set_limits(10, 2, 64);
    EXPECT_TRUE(q.try_acquire(ip("198.51.100.1:2")));
}

// One host commonly holds a /64: its addresses are one source, other /64s are not.
TEST(ConnectionQuota, Ipv6SourcesCountPerPrefix) {
    ConnectionQuota q(100, 2, 64);
    EXPECT_TRUE(q.try_acquire(ip("[2001:db8:1:2::1]:1")));
    EXPECT_TRUE(q.try_acquire(ip("[2001:db8:1:2:ffff:ffff:ffff:ffff]:1")));
    EXPECT_FALSE(q.try_acquire(ip("[2001:db8:1:2:abcd::9]:1")));
    EXPECT_EQ(q.count_for(ip("[2001:db8:1:2::77]:5")), 2u);
    EXPECT_TRUE(q.try_acquire(ip("[2001:db8:1:3::1]:1")));  // the next /64
}

TEST(ConnectionQuota, Ipv6PrefixOf128CountsEachAddress) {
    ConnectionQuota q(100, 1, 128);
    EXPECT_TRUE(q.try_acquire(ip("[2001:db8::1]:1")));
    EXPECT_TRUE(q.try_acquire(ip("[2001:db8::2]:1")));
    EXPECT_FALSE(q.try_acquire(ip("[2001:db8::2]:2")));
}

// A reload that changes the prefix must not leave a connection opened before it holding a slot
// it can never give back: the connection releases the key it took.
TEST(ConnectionQuota, KeyTakenBeforeAPrefixReloadIsGivenBack) {
    ConnectionQuota q(100, 1, 64);
    const auto key = q.source_of(ip("[2001:db8:1:2::1]:1"));
    ASSERT_EQ(q.acquire(key), allocation::QuotaVerdict::granted);
    q.set_limits(100, 1, 48);
    q.release(key);
    EXPECT_EQ(q.total(), 0u);
    EXPECT_TRUE(q.try_acquire(ip("[2001:db8:1:9::1]:1")));   // the /48 is free again
    EXPECT_FALSE(q.try_acquire(ip("[2001:db8:1:2::1]:1")));  // and now counted per /48
}

}  // namespace
}  // namespace tern::server
