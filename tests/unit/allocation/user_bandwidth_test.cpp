// UserBandwidth: one budget per user name while any of its allocations lives, a fresh one after,
// and a map that does not grow with the number of user names ever seen.
#include "tern/allocation/user_bandwidth.hpp"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "test_addresses.hpp"

namespace tern::allocation {
namespace {

using testing::t0;

TEST(UserBandwidth, OneBudgetPerUserName) {
    UserBandwidth users;
    const auto rate = bucket_rate(100000);
    const auto a1 = users.attach("alice", t0, rate);
    const auto a2 = users.attach("alice", t0, rate);
    const auto b = users.attach("bob", t0, rate);
    EXPECT_EQ(a1, a2);
    EXPECT_NE(a1, b);
    ASSERT_TRUE(a1->to_peer.consume(100000, t0, rate));
    EXPECT_FALSE(a2->to_peer.consume(1, t0, rate));
    EXPECT_TRUE(a2->to_client.consume(100000, t0, rate));  // the other direction is its own
    EXPECT_TRUE(b->to_peer.consume(100000, t0, rate));
}

TEST(UserBandwidth, ABudgetEndsWithTheLastAllocationHoldingIt) {
    UserBandwidth users;
    const auto rate = bucket_rate(100000);
    auto held = users.attach("alice", t0, rate);
    ASSERT_TRUE(held->to_peer.consume(100000, t0, rate));
    held.reset();
    const auto fresh = users.attach("alice", t0, rate);
    EXPECT_TRUE(fresh->to_peer.consume(100000, t0, rate));
}

TEST(UserBandwidth, ChurnOfUserNamesDoesNotGrowTheMap) {
    UserBandwidth users;
    const auto rate = bucket_rate(1000);
    std::vector<std::shared_ptr<UserBuckets>> live;
    for (int i = 0; i < 100000; ++i) {
        auto b = users.attach("user-" + std::to_string(i), t0, rate);
        if (i % 1000 == 0) live.push_back(std::move(b));  // 100 stay alive
    }
    EXPECT_LE(users.size(), 2 * live.size() + 64);
    for (std::size_t i = 0; i < live.size(); ++i) {
        EXPECT_EQ(users.attach("user-" + std::to_string(i * 1000), t0, rate), live[i]);
    }
}

}  // namespace
}  // namespace tern::allocation
