#include "tern/auth/rest_credential.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>

namespace tern::auth {
namespace {

// Expected values computed independently with
// `echo -n USERNAME | openssl dgst -sha1 -hmac SECRET -binary | base64`.
TEST(RestCredential, PasswordMatchesOpensslCli) {
    EXPECT_EQ(rest_password("north-wind-secret", "1700000000:alice"),
              "r/l6ttQtMIfbS2lfULS0mDRRNUg=");
    EXPECT_EQ(rest_password("k", ""), "OoSiGO5mZSCbtw6EUl3YN2RaGWU=");
}

TEST(RestCredential, MakeEncodesExpiryAndUser) {
    const auto c = make_rest_credential("north-wind-secret", "alice", 1699996400, 3600);
    EXPECT_EQ(c.username, "1700000000:alice");
    EXPECT_EQ(c.password, "r/l6ttQtMIfbS2lfULS0mDRRNUg=");
}

TEST(RestCredential, DifferentSecretGivesDifferentPassword) {
    EXPECT_NE(rest_password("secret-a", "1700000000:alice"),
              rest_password("secret-b", "1700000000:alice"));
}

TEST(RestCredential, ExpiryParsing) {
    EXPECT_EQ(rest_username_expiry("1700000000:alice"), 1700000000);
    EXPECT_EQ(rest_username_expiry("1700000000"), 1700000000);
    EXPECT_EQ(rest_username_expiry("1700000000:a:b"), 1700000000);
    EXPECT_FALSE(rest_username_expiry("alice"));
    EXPECT_FALSE(rest_username_expiry(":alice"));
    EXPECT_FALSE(rest_username_expiry("17x:alice"));
    EXPECT_FALSE(rest_username_expiry("-5:alice"));
    EXPECT_FALSE(rest_username_expiry("99999999999999999999999:alice"));
}

TEST(RestCredential, ExpiryIsDecimalDigitsThatFitAnInt64) {
    EXPECT_EQ(rest_username_expiry("0:alice"), 0);
    EXPECT_EQ(rest_username_expiry("9223372036854775807:alice"),
              std::numeric_limits<std::int64_t>::max());
    EXPECT_FALSE(rest_username_expiry("9223372036854775808:alice"));   // 2^63
    EXPECT_FALSE(rest_username_expiry("18446744073709551616:alice"));  // 2^64
    EXPECT_FALSE(rest_username_expiry("99999999999999999999:alice"));
    // Signs, spaces and other number syntax are not digits.
    for (const char* username :
         {"-0:alice", "-1:alice", "+1700000000:alice", " 1700000000:alice", "1700000000 :alice",
          "0x6553f100:alice", "1.7e9:alice", "1700000000.0:alice", "\xd9\xa1:alice"}) {
        EXPECT_FALSE(rest_username_expiry(username)) << username;
    }
}

}  // namespace
}  // namespace tern::auth
