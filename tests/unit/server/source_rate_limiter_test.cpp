// The per-source token bucket for unauthenticated requests: a burst, then the rate; sources are
// independent; IPv4-mapped is the same source; a rate of 0 is no limit.
#include "tern/server/request/source_rate_limiter.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>

namespace tern::server {
namespace {

using namespace std::chrono_literals;
using protocol::TransportAddress;

const allocation::TimePoint t0 = allocation::TimePoint{} + 1000s;

TransportAddress ip(const char* text) {
    auto a = TransportAddress::parse(text);
    EXPECT_TRUE(a) << text;
    return a.value_or(TransportAddress{});
}

int allowed(SourceRateLimiter& l, const TransportAddress& a, int tries, allocation::TimePoint now) {
    int n = 0;
    for (int i = 0; i < tries; ++i) n += l.allow(a, now) ? 1 : 0;
    return n;
}

TEST(SourceRateLimiter, BurstThenRate) {
    SourceRateLimiter l(10, 30, 64, 1);
    const auto a = ip("198.51.100.1:5000");
    EXPECT_EQ(allowed(l, a, 100, t0), 30);
    EXPECT_EQ(l.refused(), 70u);
    EXPECT_EQ(allowed(l, a, 100, t0 + 1s), 10);  // one second of refill
    EXPECT_EQ(allowed(l, a, 100, t0 + 1s + 500ms), 5);
    EXPECT_EQ(allowed(l, a, 100, t0 + 100s), 30);  // never more than the burst
}

TEST(SourceRateLimiter, SourcesAreIndependentAndPortsDoNotMatter) {
    SourceRateLimiter l(1, 2, 64, 1);
    EXPECT_EQ(allowed(l, ip("198.51.100.1:1"), 5, t0), 2);
    EXPECT_EQ(allowed(l, ip("198.51.100.1:2"), 5, t0), 0);           // same host, other port
    EXPECT_EQ(allowed(l, ip("[::ffff:198.51.100.1]:3"), 5, t0), 0);  // same host, mapped
    EXPECT_EQ(allowed(l, ip("198.51.100.2:1"), 5, t0), 2);
}

// 30 addresses of one /64 used to get 30 bursts; they are one host and share one.
TEST(SourceRateLimiter, Ipv6AddressesOfOnePrefixShareABucket) {
    SourceRateLimiter l(1, 100, 64, 1, 64);
    int granted = 0;
    for (int i = 1; i <= 30; ++i) {
        const std::string text = "[2001:db8:5:6::" + std::to_string(i) + "]:4000";
        granted += allowed(l, ip(text.c_str()), 100, t0);
    }
    EXPECT_EQ(granted, 100);
    EXPECT_EQ(allowed(l, ip("[2001:db8:5:7::1]:4000"), 100, t0), 100);  // another /64
    EXPECT_EQ(allowed(l, ip("198.51.100.1:1"), 100, t0), 100);          // IPv4 per address
    EXPECT_EQ(allowed(l, ip("198.51.100.2:1"), 100, t0), 100);
}

TEST(SourceRateLimiter, Ipv6PrefixIsReloadable) {
    SourceRateLimiter l(1, 1, 64, 1, 128);
    EXPECT_EQ(allowed(l, ip("[2001:db8::1]:1"), 5, t0), 1);
    EXPECT_EQ(allowed(l, ip("[2001:db8::2]:1"), 5, t0), 1);
    l.set_rate(1, 1, 56);
    EXPECT_EQ(allowed(l, ip("[2001:db8:0:ff::1]:1"), 5, t0), 1);
    EXPECT_EQ(allowed(l, ip("[2001:db8:0:1::2]:1"), 5, t0), 0);  // same /56
}

TEST(SourceRateLimiter, ZeroRateIsNoLimit) {
    SourceRateLimiter l(0, 1, 64, 1);
    EXPECT_EQ(allowed(l, ip("198.51.100.1:1"), 1000, t0), 1000);
    l.set_rate(1, 1, 64);
    EXPECT_EQ(allowed(l, ip("198.51.100.1:1"), 10, t0), 1);
}

TEST(SourceRateLimiter, ManySourcesStayInBoundedMemory) {
    // 16 slots, 10,000 sources: nothing grows, and a fresh source always gets its burst.
    SourceRateLimiter l(1, 1, 16, 1);
    for (int i = 0; i < 10000; ++i) {
        const auto a = TransportAddress::v4(
            {10, static_cast<std::uint8_t>(i >> 8), static_cast<std::uint8_t>(i), 1}, 1);
        EXPECT_TRUE(l.allow(a, t0));
    }
}

// Workers share one limiter: two threads answering the same source (from different ports, as
// SO_REUSEPORT would spread them) together get its burst once, not once each.
TEST(SourceRateLimiter, ThreadsSharingItShareEachSourcesBucket) {
    SourceRateLimiter l(10, 500, 8192, 1);
    std::atomic<int> granted{0};
    auto worker = [&](std::uint16_t port) {
        int mine = 0;
        for (int i = 0; i < 5000; ++i) {
            if (l.allow(TransportAddress::v4({198, 51, 100, 1}, port), t0)) ++mine;
        }
        granted += mine;
    };
    std::thread a(worker, 1000);
    std::thread b(worker, 2000);
    a.join();
    b.join();
    EXPECT_EQ(granted.load(), 500);
    EXPECT_EQ(l.refused(), 9500u);
}

}  // namespace
}  // namespace tern::server
