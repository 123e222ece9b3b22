// TokenBucket and SharedTokenBucket: full at birth, refilled at the rate and never beyond the
// depth, slow rates not starved by rounding, and no time counted twice when threads race.
#include "tern/allocation/token_bucket.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>
#include <vector>

#include "test_addresses.hpp"
#include "test_random.hpp"

namespace tern::allocation {
namespace {

using namespace std::chrono_literals;
using testing::t0;

TEST(BucketRate, DepthIsOneSecondButAtLeastOneLargestDatagram) {
    EXPECT_EQ(bucket_rate(0).bytes_per_second, 0u);
    EXPECT_TRUE(bucket_rate(0).unlimited());
    EXPECT_EQ(bucket_rate(1).burst, min_bucket_burst);
    EXPECT_GE(min_bucket_burst, 65535u);
    EXPECT_EQ(bucket_rate(1000000).burst, 1000000u);
    EXPECT_EQ(bucket_rate(0xFFFFFFFFu).burst, 0xFFFFFFFFu);
}

TEST(TokenBucket, NewBucketIsFullAndRefusesBeyondItsDepth) {
    const auto rate = bucket_rate(100000);
    TokenBucket b;
    EXPECT_TRUE(b.consume(60000, t0, rate));
    EXPECT_TRUE(b.consume(40000, t0, rate));
    EXPECT_FALSE(b.consume(1, t0, rate));
}

TEST(TokenBucket, ARefusedPacketTakesNothing) {
    const auto rate = bucket_rate(100000);
    TokenBucket b;
    ASSERT_TRUE(b.consume(99000, t0, rate));
    EXPECT_FALSE(b.consume(1500, t0, rate));
    EXPECT_TRUE(b.consume(1000, t0, rate));
}

TEST(TokenBucket, RefillsAtTheRate) {
    const auto rate = bucket_rate(100000);
    TokenBucket b;
    ASSERT_TRUE(b.consume(100000, t0, rate));
    EXPECT_TRUE(b.consume(10000, t0 + 100ms, rate));
    EXPECT_FALSE(b.consume(1, t0 + 100ms, rate));
    EXPECT_TRUE(b.consume(100, t0 + 101ms, rate));
}

TEST(TokenBucket, NeverHoldsMoreThanItsDepthAfterALongIdle) {
    const auto rate = bucket_rate(100000);
    TokenBucket b;
    ASSERT_TRUE(b.consume(100000, t0, rate));
    EXPECT_TRUE(b.consume(100000, t0 + 1h, rate));
    EXPECT_FALSE(b.consume(1, t0 + 1h, rate));
}

TEST(TokenBucket, SlowRatesAreNotStarvedByRounding) {
    // 1000 B/s earns one byte per millisecond; asking every 0.1 ms must not throw the
    // fractions away.
    const auto rate = bucket_rate(1000);
    TokenBucket b;
    ASSERT_TRUE(b.consume(rate.burst, t0, rate));
    std::uint64_t granted = 0;
    for (int i = 1; i <= 100000; ++i) {  // 10 s
        if (b.consume(1, t0 + i * 100us, rate)) ++granted;
    }
    EXPECT_GE(granted, 9999u);
    EXPECT_LE(granted, 10000u);
}

TEST(TokenBucket, ZeroRateIsUnlimited) {
    const auto rate = bucket_rate(0);
    TokenBucket b;
    for (int i = 0; i < 1000; ++i) ASSERT_TRUE(b.consume(65535, t0, rate));
}

TEST(TokenBucket, RefundGivesBackButNotBeyondTheDepth) {
    const auto rate = bucket_rate(100000);
    TokenBucket b;
    ASSERT_TRUE(b.consume(100000, t0, rate));
    b.refund(500, rate);
    EXPECT_TRUE(b.consume(500, t0, rate));
    EXPECT_FALSE(b.consume(1, t0, rate));
    b.refund(1000000, rate);
    EXPECT_TRUE(b.consume(100000, t0, rate));
    EXPECT_FALSE(b.consume(1, t0, rate));
}

TEST(TokenBucket, ALoweredRateCapsWhatWasSaved) {
    TokenBucket b;
    ASSERT_TRUE(b.consume(1, t0, bucket_rate(1000000)));  // nearly 1 MB saved
    const auto lower = bucket_rate(100000);
    EXPECT_TRUE(b.consume(100000, t0 + 1ms, lower));
    EXPECT_FALSE(b.consume(1, t0 + 1ms, lower));
}

TEST(TokenBucket, ClockGoingBackwardsGrantsNothingExtra) {
    const auto rate = bucket_rate(100000);
    TokenBucket b;
    ASSERT_TRUE(b.consume(100000, t0 + 1s, rate));
    EXPECT_FALSE(b.consume(1, t0, rate));
    EXPECT_FALSE(b.consume(1, t0 + 1s, rate));
}

// Over any window, a bucket lets through at most depth + rate × time, and under a load above the
// rate it lets through nearly that much (it is a limiter, not a blocker).
TEST(TokenBucket, MatchesTheRateUnderRandomOverload) {
    testing::SeededRandom random(7);
    const auto rate = bucket_rate(250000);
    TokenBucket b;
    std::uint64_t granted = 0;
    auto now = t0;
    for (int i = 0; i < 200000; ++i) {  // about 10 s of ~4 MB/s offered
        now += std::chrono::microseconds(random.next() % 100);
        const std::size_t size = 20 + random.next() % 1200;
        if (b.consume(size, now, rate)) granted += size;
    }
    const double seconds = std::chrono::duration<double>(now - t0).count();
    const double ceiling = static_cast<double>(rate.burst) + 250000.0 * seconds;
    EXPECT_LE(static_cast<double>(granted), ceiling);
    EXPECT_GE(static_cast<double>(granted), 250000.0 * seconds - 1220.0);
}

// What the kernel fast path relayed is taken after the fact: all of it, or all there is.
TEST(TokenBucket, DrainTakesWhatWasSentElsewhereButNeverBelowEmpty) {
    const auto rate = bucket_rate(100000);
    TokenBucket b;
    b.drain(30000, t0, rate);
    EXPECT_TRUE(b.consume(70000, t0, rate));
    EXPECT_FALSE(b.consume(1, t0, rate));
    b.drain(500000, t0, rate);  // more than it held: empty, not in debt
    EXPECT_TRUE(b.consume(1000, t0 + 10ms, rate));
    TokenBucket unlimited;
    unlimited.drain(1 << 30, t0, bucket_rate(0));
    EXPECT_TRUE(unlimited.consume(1 << 20, t0, bucket_rate(0)));
}

TEST(SharedTokenBucket, DrainTakesWhatWasSentElsewhereButNeverBelowEmpty) {
    const auto rate = bucket_rate(100000);
    SharedTokenBucket b(t0, rate);
    b.drain(30000, t0, rate);
    EXPECT_TRUE(b.consume(70000, t0, rate));
    EXPECT_FALSE(b.consume(1, t0, rate));
    b.drain(500000, t0, rate);
    EXPECT_TRUE(b.consume(1000, t0 + 10ms, rate));
}

TEST(SharedTokenBucket, SameRulesAsThePlainOne) {
    const auto rate = bucket_rate(100000);
    SharedTokenBucket b(t0, rate);
    EXPECT_TRUE(b.consume(100000, t0, rate));
    EXPECT_FALSE(b.consume(1, t0, rate));
    EXPECT_TRUE(b.consume(10000, t0 + 100ms, rate));
    EXPECT_FALSE(b.consume(1, t0 + 100ms, rate));
    EXPECT_TRUE(b.consume(100000, t0 + 1h, rate));
    EXPECT_FALSE(b.consume(1, t0 + 1h, rate));
    EXPECT_TRUE(b.consume(1000000, t0, bucket_rate(0)));
}

TEST(SharedTokenBucket, SlowRatesAreNotStarvedByRounding) {
    const auto rate = bucket_rate(1000);
    SharedTokenBucket b(t0, rate);
    ASSERT_TRUE(b.consume(rate.burst, t0, rate));
    std::uint64_t granted = 0;
    for (int i = 1; i <= 100000; ++i) {
        if (b.consume(1, t0 + i * 100us, rate)) ++granted;
    }
    EXPECT_GE(granted, 9999u);
    EXPECT_LE(granted, 10000u);
}

// Two threads draw from one bucket on the same simulated time line: together they get no more
// than one bucket's worth, however the refills interleave.
TEST(SharedTokenBucket, RacingThreadsShareOneBudget) {
    const auto rate = bucket_rate(1000000);
    SharedTokenBucket b(t0, rate);
    std::atomic<std::uint64_t> granted{0};
    constexpr int steps = 200000;  // 2 s of simulated time in 10 us steps
    auto worker = [&] {
        std::uint64_t mine = 0;
        for (int i = 0; i < steps; ++i) {
            if (b.consume(100, t0 + i * 10us, rate)) mine += 100;
        }
        granted += mine;
    };
    std::thread a(worker);
    std::thread c(worker);
    a.join();
    c.join();
    const std::uint64_t ceiling = rate.burst + 1000000ull * 2;
    EXPECT_LE(granted.load(), ceiling);
    // Offered 2 × 2 MB over 2 s at a 1 MB/s rate: close to the ceiling.
    EXPECT_GE(granted.load(), ceiling - 2000);
}

}  // namespace
}  // namespace tern::allocation
