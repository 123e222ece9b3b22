#include "tern/allocation/transaction_cache.hpp"

#include <gtest/gtest.h>

#include <map>
#include <vector>

#include "test_random.hpp"

#include "test_addresses.hpp"

namespace tern::allocation {
namespace {

using namespace std::chrono_literals;
using protocol::Transport;
using protocol::TransportAddress;

using testing::addr;
using testing::t0;

FiveTuple tuple(const char* client = "192.0.2.10:40000", Transport t = Transport::udp) {
    return FiveTuple{addr(client), addr("198.51.100.1:3478"), t};
}

TransactionKey key(std::uint8_t id_byte, FiveTuple t = tuple()) {
    TransactionKey k{t, {}};
    k.transaction_id.fill(id_byte);
    return k;
}

std::vector<std::uint8_t> bytes(std::size_t n, std::uint8_t fill) {
    return std::vector<std::uint8_t>(n, fill);
}

bool same(std::optional<std::span<const std::uint8_t>> got, const std::vector<std::uint8_t>& want) {
    return got && std::vector<std::uint8_t>(got->begin(), got->end()) == want;
}

TEST(FiveTuple, HashCoversEveryFieldAndSeed) {
    const FiveTuple a = tuple();
    EXPECT_EQ(hash_value(a), hash_value(tuple()));
    EXPECT_NE(hash_value(a), hash_value(tuple("192.0.2.10:40001")));
    EXPECT_NE(hash_value(a), hash_value(tuple("192.0.2.11:40000")));
    EXPECT_NE(hash_value(a), hash_value(tuple("192.0.2.10:40000", Transport::tcp)));
    FiveTuple other_server = a;
    other_server.server.port = 3479;
    EXPECT_NE(hash_value(a), hash_value(other_server));
    EXPECT_NE(hash_value(a, 1), hash_value(a, 2));
    EXPECT_EQ(FiveTupleHash{7}(a), FiveTupleHash{7}(tuple()));
    // Client and server swapped is a different tuple.
    const FiveTuple swapped{a.server, a.client, a.transport};
    EXPECT_NE(hash_value(a), hash_value(swapped));
    EXPECT_FALSE(a == swapped);
}

TEST(TransactionCache, RetransmissionGetsTheSameBytes) {
    TransactionCache c(16, 256, 42);
    const auto response = bytes(100, 0xAB);
    EXPECT_FALSE(c.find(key(1), t0));
    ASSERT_TRUE(c.store(key(1), response, t0));
    EXPECT_TRUE(same(c.find(key(1), t0 + 1s), response));
    EXPECT_FALSE(c.find(key(2), t0));                                             // other txn id
    EXPECT_FALSE(c.find(key(1, tuple("192.0.2.10:40001")), t0));                  // other port
    EXPECT_FALSE(c.find(key(1, tuple("192.0.2.10:40000", Transport::tls)), t0));  // other transport
    EXPECT_EQ(c.size(), 1u);
}

TEST(TransactionCache, FortySecondsExactly) {
    TransactionCache c(16, 256, 42);
    ASSERT_TRUE(c.store(key(1), bytes(20, 1), t0));
    EXPECT_TRUE(c.find(key(1), t0 + 40s - 1ns));
    EXPECT_FALSE(c.find(key(1), t0 + 40s));
    EXPECT_EQ(TransactionCache::default_lifetime, 40s);
}

TEST(TransactionCache, OversizedResponseIsNotCached) {
    TransactionCache c(4, 64, 42);
    EXPECT_TRUE(c.store(key(1), bytes(64, 1), t0));
    EXPECT_FALSE(c.store(key(2), bytes(65, 1), t0));
    EXPECT_FALSE(c.find(key(2), t0));
    EXPECT_TRUE(c.store(key(3), {}, t0));  // an empty answer is still an answer
    const auto empty = c.find(key(3), t0);
    ASSERT_TRUE(empty);
    EXPECT_TRUE(empty->empty());
}

TEST(TransactionCache, ZeroCapacityCachesNothing) {
    TransactionCache c(0, 64, 42);
    EXPECT_FALSE(c.store(key(1), bytes(10, 1), t0));
    EXPECT_FALSE(c.find(key(1), t0));
}

TEST(TransactionCache, OldestIsEvictedWhenFull) {
    TransactionCache c(3, 32, 42);
    for (std::uint8_t i = 1; i <= 3; ++i) ASSERT_TRUE(c.store(key(i), bytes(8, i), t0 + i * 1s));
    ASSERT_TRUE(c.store(key(4), bytes(8, 4), t0 + 4s));
    EXPECT_FALSE(c.find(key(1), t0 + 4s));
    for (std::uint8_t i = 2; i <= 4; ++i) EXPECT_TRUE(same(c.find(key(i), t0 + 4s), bytes(8, i)));
    EXPECT_EQ(c.size(), 3u);
    ASSERT_TRUE(c.store(key(5), bytes(8, 5), t0 + 5s));
    EXPECT_FALSE(c.find(key(2), t0 + 5s));
    EXPECT_TRUE(same(c.find(key(3), t0 + 5s), bytes(8, 3)));
}

TEST(TransactionCache, StoringAnExistingKeyReplacesIt) {
    TransactionCache c(3, 32, 42);
    ASSERT_TRUE(c.store(key(1), bytes(8, 1), t0));
    ASSERT_TRUE(c.store(key(1), bytes(4, 9), t0 + 30s));
    EXPECT_EQ(c.size(), 1u);
    EXPECT_TRUE(same(c.find(key(1), t0 + 69s), bytes(4, 9)));
}

// Random operations against a simple model, on a tiny table so that probe runs collide, wrap
// around the index and get shifted back on eviction.
TEST(TransactionCache, MatchesAModelUnderChurn) {
    testing::SeededRandom rng(99);
    constexpr std::size_t capacity = 8;
    TransactionCache c(capacity, 16, 5, 1000s);
    std::vector<TransactionKey> order;  // insertion order of live model entries
    std::map<std::uint8_t, std::vector<std::uint8_t>> model;
    for (int step = 0; step < 20000; ++step) {
        const auto id = static_cast<std::uint8_t>(rng.next() % 40);
        const TransactionKey k = key(id);
        if (rng.next() % 2 == 0) {
            const auto payload = bytes(rng.next() % 17, static_cast<std::uint8_t>(step));
            ASSERT_TRUE(c.store(k, payload, t0));
            if (!model.count(id)) {
                if (order.size() == capacity) {
                    model.erase(order.front().transaction_id[0]);
                    order.erase(order.begin());
                }
                order.push_back(k);
            }
            model[id] = payload;
        } else {
            const auto got = c.find(k, t0);
            const auto it = model.find(id);
            if (it == model.end()) {
                ASSERT_FALSE(got) << "step " << step;
            } else {
                ASSERT_TRUE(same(got, it->second)) << "step " << step;
            }
        }
        ASSERT_EQ(c.size(), model.size());
    }
}

}  // namespace
}  // namespace tern::allocation
