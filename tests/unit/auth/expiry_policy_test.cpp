// ExpiryPolicy: which requests an expired REST credential may still make.
#include "tern/auth/expiry_policy.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>

namespace tern::auth {
namespace {

using protocol::Method;

constexpr std::int64_t expiry = 1700000000;

TEST(ExpiryPolicy, ExpiredFromTheExpirySecondOn) {
    EXPECT_FALSE(is_expired(expiry, expiry - 1));
    EXPECT_TRUE(is_expired(expiry, expiry));
    EXPECT_TRUE(is_expired(expiry, expiry + 1));
}

TEST(ExpiryPolicy, LifetimeCeilingIsInclusiveAndNeverOverflows) {
    constexpr std::int64_t max = std::numeric_limits<std::int64_t>::max();
    constexpr std::int64_t min = std::numeric_limits<std::int64_t>::min();
    EXPECT_FALSE(exceeds_lifetime(expiry + 600, expiry, 600));
    EXPECT_TRUE(exceeds_lifetime(expiry + 601, expiry, 600));
    EXPECT_FALSE(exceeds_lifetime(expiry, expiry, 0));
    EXPECT_TRUE(exceeds_lifetime(expiry + 1, expiry, 0));
    // Past expiries are never "too far ahead"; that is is_expired's business.
    EXPECT_FALSE(exceeds_lifetime(0, expiry, 600));
    EXPECT_FALSE(exceeds_lifetime(min, max, 0));
    // The whole int64 range apart: no sum or difference may wrap.
    EXPECT_TRUE(exceeds_lifetime(max, expiry, default_max_credential_lifetime));
    EXPECT_TRUE(exceeds_lifetime(max, min, max));
    EXPECT_TRUE(exceeds_lifetime(max, -1, max));
    EXPECT_FALSE(exceeds_lifetime(max, 0, max));
    EXPECT_FALSE(exceeds_lifetime(max, max - 1, 1));
    EXPECT_TRUE(exceeds_lifetime(max, max - 2, 1));
    // A negative ceiling admits nothing in the future.
    EXPECT_TRUE(exceeds_lifetime(expiry + 1, expiry, -1));
    EXPECT_EQ(default_max_credential_lifetime, 3 * 86400);
}

TEST(ExpiryPolicy, NothingIsRefusedBeforeExpiry) {
    for (const auto policy :
         {ExpiryPolicy::allocate, ExpiryPolicy::request, ExpiryPolicy::strict}) {
        for (const auto method :
             {Method::allocate, Method::refresh, Method::create_permission, Method::channel_bind}) {
            EXPECT_FALSE(refuses(policy, method, expiry, expiry - 1));
        }
    }
}

TEST(ExpiryPolicy, StaticUsersNeverExpire) {
    for (const auto policy :
         {ExpiryPolicy::allocate, ExpiryPolicy::request, ExpiryPolicy::strict}) {
        EXPECT_FALSE(refuses(policy, Method::allocate, std::nullopt, expiry * 2));
        EXPECT_FALSE(teardown_at(policy, std::nullopt));
    }
}

TEST(ExpiryPolicy, AllocateRefusesOnlyNewAllocations) {
    EXPECT_TRUE(refuses(ExpiryPolicy::allocate, Method::allocate, expiry, expiry));
    EXPECT_FALSE(refuses(ExpiryPolicy::allocate, Method::refresh, expiry, expiry + 3600));
    EXPECT_FALSE(refuses(ExpiryPolicy::allocate, Method::create_permission, expiry, expiry + 1));
    EXPECT_FALSE(refuses(ExpiryPolicy::allocate, Method::channel_bind, expiry, expiry + 1));
    EXPECT_FALSE(teardown_at(ExpiryPolicy::allocate, expiry));
}

TEST(ExpiryPolicy, RequestRefusesEveryRequestButTearsNothingDown) {
    for (const auto method : {Method::allocate, Method::refresh, Method::create_permission,
                              Method::channel_bind, Method::connect}) {
        EXPECT_TRUE(refuses(ExpiryPolicy::request, method, expiry, expiry));
    }
    EXPECT_FALSE(teardown_at(ExpiryPolicy::request, expiry));
}

TEST(ExpiryPolicy, StrictRefusesEveryRequestAndTearsDownAtExpiry) {
    for (const auto method :
         {Method::allocate, Method::refresh, Method::create_permission, Method::channel_bind}) {
        EXPECT_TRUE(refuses(ExpiryPolicy::strict, method, expiry, expiry + 5));
    }
    EXPECT_EQ(teardown_at(ExpiryPolicy::strict, expiry), expiry);
}

}  // namespace
}  // namespace tern::auth
