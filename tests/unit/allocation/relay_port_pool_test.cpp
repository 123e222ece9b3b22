#include "tern/allocation/relay_port_pool.hpp"

#include <gtest/gtest.h>

#include <map>
#include <set>

#include "test_random.hpp"

namespace tern::allocation {
namespace {

using namespace std::chrono_literals;
using testing::SeededRandom;

const TimePoint t0 = TimePoint{} + 1000s;

TEST(RelayPortPool, HandsOutEveryPortOnceThenExhausts) {
    SeededRandom rng(1);
    RelayPortPool pool(50000, 50099, rng);
    EXPECT_EQ(pool.capacity(), 100u);
    std::set<std::uint16_t> got;
    for (int i = 0; i < 100; ++i) {
        const auto p = pool.acquire();
        ASSERT_TRUE(p.has_value()) << i;
        EXPECT_GE(*p, 50000);
        EXPECT_LE(*p, 50099);
        EXPECT_TRUE(got.insert(*p).second) << "duplicate " << *p;
        EXPECT_TRUE(pool.in_use(*p));
    }
    EXPECT_EQ(pool.available(), 0u);
    EXPECT_FALSE(pool.acquire().has_value());
    EXPECT_FALSE(pool.acquire_even(false, t0).has_value());
    pool.release(50042);
    EXPECT_FALSE(pool.in_use(50042));
    EXPECT_EQ(pool.acquire(), std::optional<std::uint16_t>(50042));
    EXPECT_FALSE(pool.acquire().has_value());
}

TEST(RelayPortPool, SinglePortAndRangeEdges) {
    SeededRandom rng(2);
    RelayPortPool one(65535, 65535, rng);
    EXPECT_EQ(one.acquire(), std::optional<std::uint16_t>(65535));
    EXPECT_FALSE(one.acquire().has_value());
    one.release(65535);
    EXPECT_EQ(one.available(), 1u);

    RelayPortPool inverted(2000, 1999, rng);
    EXPECT_EQ(inverted.capacity(), 0u);
    EXPECT_FALSE(inverted.acquire().has_value());
    EXPECT_FALSE(inverted.acquire_even(true, t0).has_value());
}

TEST(RelayPortPool, ReleaseIgnoresForeignAndFreePorts) {
    SeededRandom rng(3);
    RelayPortPool pool(1000, 1001, rng);
    pool.release(999);
    pool.release(1002);
    pool.release(1000);  // never acquired
    EXPECT_EQ(pool.available(), 2u);
    const auto p = pool.acquire();
    ASSERT_TRUE(p);
    pool.release(*p);
    pool.release(*p);  // double release must not corrupt the count
    EXPECT_EQ(pool.available(), 2u);
}

TEST(RelayPortPool, EvenPortsOnly) {
    SeededRandom rng(4);
    RelayPortPool pool(40001, 40020, rng);  // odd first: evens are 40002..40020
    std::set<std::uint16_t> got;
    for (int i = 0; i < 10; ++i) {
        const auto g = pool.acquire_even(false, t0);
        ASSERT_TRUE(g) << i;
        EXPECT_EQ(g->port % 2, 0);
        EXPECT_FALSE(g->reservation_token);
        got.insert(g->port);
    }
    EXPECT_EQ(got.size(), 10u);
    EXPECT_FALSE(pool.acquire_even(false, t0).has_value());  // only odd ports left
    EXPECT_EQ(pool.available(), 10u);
    const auto odd = pool.acquire();
    ASSERT_TRUE(odd);
    EXPECT_EQ(*odd % 2, 1);
}

TEST(RelayPortPool, ReserveNextNeedsAFreeOddNeighbourInRange) {
    SeededRandom rng(5);
    RelayPortPool pool(3000, 3002, rng);  // pairs: (3000,3001); 3002 has no neighbour in range
    const auto g = pool.acquire_even(true, t0);
    ASSERT_TRUE(g);
    EXPECT_EQ(g->port, 3000);
    ASSERT_TRUE(g->reservation_token);
    EXPECT_NE(*g->reservation_token, 0u);
    EXPECT_FALSE(pool.in_use(3001));  // reserved, not in use
    EXPECT_EQ(pool.reservations(), 1u);
    EXPECT_EQ(pool.available(), 1u);
    EXPECT_FALSE(pool.acquire_even(true, t0).has_value());
    const auto plain = pool.acquire_even(false, t0);
    ASSERT_TRUE(plain);
    EXPECT_EQ(plain->port, 3002);
    // The reserved port is not handed to a plain Allocate either.
    EXPECT_FALSE(pool.acquire().has_value());
}

TEST(RelayPortPool, EvenPairSkipsBusyOddNeighbour) {
    SeededRandom rng(6);
    RelayPortPool pool(3000, 3003, rng);
    // Occupy everything, then free 3000 and 3002 but keep 3001 busy.
    for (int i = 0; i < 4; ++i) ASSERT_TRUE(pool.acquire());
    pool.release(3000);
    pool.release(3002);
    pool.release(3003);
    const auto g = pool.acquire_even(true, t0);
    ASSERT_TRUE(g);
    EXPECT_EQ(g->port, 3002);
}

TEST(RelayPortPool, TokenClaimExactlyOnce) {
    SeededRandom rng(7);
    RelayPortPool pool(5000, 5009, rng);
    const auto g = pool.acquire_even(true, t0);
    ASSERT_TRUE(g && g->reservation_token);
    const std::uint64_t token = *g->reservation_token;
    EXPECT_FALSE(pool.claim(token + 1, t0 + 1s).has_value());  // wrong token
    const auto claimed = pool.claim(token, t0 + 29s);
    ASSERT_TRUE(claimed);
    EXPECT_EQ(*claimed, g->port + 1);
    EXPECT_TRUE(pool.in_use(*claimed));
    EXPECT_EQ(pool.reservations(), 0u);
    EXPECT_FALSE(pool.claim(token, t0 + 29s).has_value());  // second claim
    EXPECT_EQ(pool.expire(t0 + 1h), 0u);                    // a claimed port is not freed by expiry
    EXPECT_TRUE(pool.in_use(*claimed));
    pool.release(*claimed);
    EXPECT_FALSE(pool.in_use(*claimed));
}

TEST(RelayPortPool, ReservationLapsesExactlyAtThirtySeconds) {
    SeededRandom rng(8);
    RelayPortPool pool(5000, 5001, rng);
    const auto g = pool.acquire_even(true, t0);
    ASSERT_TRUE(g && g->reservation_token);
    EXPECT_EQ(pool.expire(t0 + 30s - 1ns), 0u);
    EXPECT_EQ(pool.available(), 0u);
    EXPECT_FALSE(pool.claim(*g->reservation_token, t0 + 30s).has_value());
    EXPECT_EQ(pool.expire(t0 + 30s), 1u);
    EXPECT_EQ(pool.available(), 1u);
    EXPECT_EQ(pool.reservations(), 0u);
    EXPECT_EQ(pool.acquire(), std::optional<std::uint16_t>(5001));
    EXPECT_FALSE(pool.claim(*g->reservation_token, t0 + 31s).has_value());
}

TEST(RelayPortPool, ReservedPortCannotBeReleasedByAnyone) {
    SeededRandom rng(9);
    RelayPortPool pool(5000, 5001, rng);
    const auto g = pool.acquire_even(true, t0);
    ASSERT_TRUE(g && g->reservation_token);
    pool.release(5001);
    EXPECT_EQ(pool.available(), 0u);
    EXPECT_EQ(pool.claim(*g->reservation_token, t0), std::optional<std::uint16_t>(5001));
}

TEST(RelayPortPool, TokensAreNonZeroAndUnique) {
    SeededRandom rng(10);
    RelayPortPool pool(6000, 6009, rng);
    // Force the generator to offer 0 and then a duplicate of the first token.
    rng.script(0);       // first probe: index 0 (port 6000), free, taken
    rng.script(0);       // token candidate 0 is skipped
    rng.script(0xABCD);  // first token
    const auto a = pool.acquire_even(true, t0);
    ASSERT_TRUE(a && a->reservation_token);
    EXPECT_EQ(a->port, 6000);
    EXPECT_EQ(*a->reservation_token, 0xABCDu);
    rng.script(2);       // probe -> index 4 (port 6004)
    rng.script(0xABCD);  // duplicate token must be skipped
    const auto b = pool.acquire_even(true, t0);
    ASSERT_TRUE(b && b->reservation_token);
    EXPECT_EQ(b->port, 6004);
    EXPECT_NE(*b->reservation_token, 0xABCDu);
    EXPECT_NE(*b->reservation_token, 0u);
}

TEST(RelayPortPool, BrokenRandomSourceCannotHangTokenMinting) {
    SeededRandom rng(14);
    RelayPortPool pool(6000, 6009, rng);
    rng.script(0);                               // probe: port 6000
    for (int i = 0; i < 16; ++i) rng.script(0);  // every token candidate is zero
    EXPECT_FALSE(pool.acquire_even(true, t0).has_value());
    EXPECT_EQ(pool.available(), 10u);  // nothing was taken
    EXPECT_EQ(pool.reservations(), 0u);
    const auto g = pool.acquire_even(true, t0);  // the generator resumes
    ASSERT_TRUE(g && g->reservation_token);
}

TEST(RelayPortPool, UnusablePortSitsOutItsCooldown) {
    SeededRandom rng(11);
    RelayPortPool pool(7000, 7001, rng, 30s, 60s);
    const auto p = pool.acquire();
    ASSERT_TRUE(p);
    pool.mark_unusable(*p, t0);  // bind failed
    EXPECT_FALSE(pool.in_use(*p));
    const auto q = pool.acquire();
    ASSERT_TRUE(q);
    EXPECT_NE(*q, *p);
    pool.release(*q);
    pool.release(*p);  // releasing an unusable port does not shorten the cooldown
    EXPECT_EQ(pool.available(), 1u);
    EXPECT_EQ(pool.expire(t0 + 60s - 1ns), 0u);
    EXPECT_EQ(pool.expire(t0 + 60s), 1u);
    EXPECT_EQ(pool.available(), 2u);
}

TEST(RelayPortPool, SpreadIsRoughlyUniform) {
    SeededRandom rng(12);
    RelayPortPool pool(49152, 49152 + 63, rng);
    std::map<std::uint16_t, int> hits;
    constexpr int draws = 64 * 200;
    // Keep half the pool busy so probes miss often.
    for (int i = 0; i < 32; ++i) ASSERT_TRUE(pool.acquire());
    for (int i = 0; i < draws; ++i) {
        const auto p = pool.acquire();
        ASSERT_TRUE(p);
        ++hits[*p];
        pool.release(*p);
    }
    ASSERT_EQ(hits.size(), 32u);  // every free port was chosen at some point
    double chi2 = 0;
    const double expected = draws / 32.0;
    for (const auto& [port, n] : hits) chi2 += (n - expected) * (n - expected) / expected;
    // 31 degrees of freedom: p = 0.001 at about 61.1. A biased scan (always lowest) fails hard.
    EXPECT_LT(chi2, 61.1);
}

TEST(RelayPortPool, FallbackScanFindsLastFreePortInLargeRange) {
    SeededRandom rng(13);
    RelayPortPool pool(1024, 65535, rng);
    for (std::size_t i = 0; i + 1 < pool.capacity(); ++i) ASSERT_TRUE(pool.acquire());
    EXPECT_EQ(pool.available(), 1u);
    const auto last = pool.acquire();
    ASSERT_TRUE(last);
    EXPECT_FALSE(pool.acquire());
    pool.release(*last);
    EXPECT_EQ(pool.acquire(), last);
}

}  // namespace
}  // namespace tern::allocation
