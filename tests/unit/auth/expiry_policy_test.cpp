// ExpiryPolicy: which requests an expired REST credential may still make.
#include "tern/auth/expiry_policy.hpp"

#include <gtest/gtest.h>

namespace tern::auth {
namespace {

using protocol::Method;

constexpr std::int64_t expiry = 1700000000;

TEST(ExpiryPolicy, ExpiredFromTheExpirySecondOn) {
    EXPECT_FALSE(is_expired(expiry, expiry - 1));
    EXPECT_TRUE(is_expired(expiry, expiry));
    EXPECT_TRUE(is_expired(expiry, expiry + 1));
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
