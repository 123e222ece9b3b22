// NonceAuthority: format, lifetime, binding to the client, keys (random vs shared secret).
#include "tern/auth/nonce_authority.hpp"

#include <gtest/gtest.h>

#include <cctype>
#include <string>

namespace tern::auth {
namespace {

using protocol::TransportAddress;

constexpr std::int64_t t0 = 1700000000;
const std::string fleet_secret = "fleet-wide nonce secret, 32 bytes";
const TransportAddress client = TransportAddress::v4({192, 0, 2, 10}, 40000);

NonceAuthority shared(std::uint32_t lifetime = 600, SecurityFeatures features = {}) {
    return NonceAuthority(fleet_secret, lifetime, features);
}

TEST(NonceAuthority, FreshNonceIsValid) {
    const auto nonces = shared();
    const auto nonce = nonces.issue(t0, client);
    EXPECT_EQ(nonces.check(nonce, t0, client), NonceStatus::valid);
    EXPECT_EQ(nonces.check(nonce, t0 + 599, client), NonceStatus::valid);
}

TEST(NonceAuthority, StaleAfterLifetime) {
    const auto nonces = shared(30);
    EXPECT_EQ(nonces.lifetime(), 30u);
    const auto nonce = nonces.issue(t0, client);
    EXPECT_EQ(nonces.check(nonce, t0 + 29, client), NonceStatus::valid);
    EXPECT_EQ(nonces.check(nonce, t0 + 30, client), NonceStatus::stale);
    EXPECT_EQ(nonces.check(nonce, t0 + 100000, client), NonceStatus::stale);
}

TEST(NonceAuthority, IssuedInTheFarFutureIsInvalid) {
    const auto nonces = shared();
    const auto nonce = nonces.issue(t0 + NonceAuthority::max_clock_skew + 1, client);
    EXPECT_EQ(nonces.check(nonce, t0, client), NonceStatus::invalid);
    // Within the skew another fleet member's clock may run ahead.
    EXPECT_EQ(nonces.check(nonces.issue(t0 + 5, client), t0, client), NonceStatus::valid);
}

TEST(NonceAuthority, TimesBeforeTheEpochAreInvalid) {
    const auto nonces = shared();
    EXPECT_EQ(nonces.check(nonces.issue(-5, client), -5, client), NonceStatus::invalid);
    EXPECT_EQ(nonces.check(nonces.issue(t0, client), -5, client), NonceStatus::invalid);
}

TEST(NonceAuthority, WithoutFeaturesThereIsNoCookie) {
    const auto nonce = shared().issue(t0, client);
    EXPECT_FALSE(nonce.starts_with(nonce_cookie));
    EXPECT_EQ(nonce.size(), 35u);
    EXPECT_FALSE(NonceAuthority::features_of(nonce));
    for (const char c : nonce) {
        EXPECT_TRUE(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_') << nonce;
    }
}

TEST(NonceAuthority, CookieCarriesTheOfferedFeatures) {
    const auto pa = shared(600, {true, false}).issue(t0, client);
    EXPECT_TRUE(pa.starts_with("obMatJos2AAAB")) << pa;
    const auto anonymity = shared(600, {false, true}).issue(t0, client);
    EXPECT_TRUE(anonymity.starts_with("obMatJos2AAAC")) << anonymity;
    const auto both = shared(600, {true, true}).issue(t0, client);
    EXPECT_TRUE(both.starts_with("obMatJos2AAAD")) << both;
    EXPECT_EQ(both.size(), 48u);
    EXPECT_LT(both.size(), 128u);
    EXPECT_EQ(NonceAuthority::features_of(pa), (SecurityFeatures{true, false}));
    EXPECT_EQ(NonceAuthority::features_of(both), (SecurityFeatures{true, true}));
    // RFC 8489 Appendix B.1's nonce sets the "Username anonymity" bit only.
    EXPECT_EQ(NonceAuthority::features_of("obMatJos2AAACf//499k954d6OL34oL9FSTvy64sA"),
              (SecurityFeatures{false, true}));
    EXPECT_FALSE(NonceAuthority::features_of("obMatJos2A"));
    EXPECT_FALSE(NonceAuthority::features_of("obMatJos2!!!!abc"));
}

TEST(NonceAuthority, StrippingTheCookieBitsInvalidatesTheNonce) {
    const auto nonces = shared(600, {true, false});
    const auto nonce = nonces.issue(t0, client);
    ASSERT_EQ(nonces.check(nonce, t0, client), NonceStatus::valid);
    std::string downgraded = nonce;
    downgraded.replace(9, 4, "AAAA");
    EXPECT_EQ(nonces.check(downgraded, t0, client), NonceStatus::invalid);
    EXPECT_EQ(nonces.check(nonce.substr(13), t0, client), NonceStatus::invalid);
}

TEST(NonceAuthority, AnyTamperedCharacterIsInvalid) {
    const auto nonces = shared();
    const auto nonce = nonces.issue(t0, client);
    for (std::size_t i = 0; i < nonce.size(); ++i) {
        std::string tampered = nonce;
        tampered[i] = tampered[i] == 'A' ? 'B' : 'A';
        EXPECT_EQ(nonces.check(tampered, t0, client), NonceStatus::invalid) << i;
    }
    EXPECT_EQ(nonces.check(nonce + "A", t0, client), NonceStatus::invalid);
    EXPECT_EQ(nonces.check(nonce.substr(1), t0, client), NonceStatus::invalid);
    EXPECT_EQ(nonces.check("", t0, client), NonceStatus::invalid);
    EXPECT_EQ(nonces.check(std::string(200, 'A'), t0, client), NonceStatus::invalid);
}

TEST(NonceAuthority, BackdatingIsCaughtByTheMac) {
    // A stale nonce with its time bytes rewritten to now must not become valid.
    const auto nonces = shared(30);
    const auto old_nonce = nonces.issue(t0, client);
    const auto fresh_nonce = nonces.issue(t0 + 1000, client);
    ASSERT_NE(old_nonce.substr(0, 11), fresh_nonce.substr(0, 11));
    const std::string spliced = fresh_nonce.substr(0, 10) + old_nonce.substr(10);
    EXPECT_EQ(nonces.check(spliced, t0 + 1000, client), NonceStatus::invalid);
}

TEST(NonceAuthority, BoundToTheClientIpButNotItsPort) {
    const auto nonces = shared();
    const auto nonce = nonces.issue(t0, client);
    const auto other_port = TransportAddress::v4({192, 0, 2, 10}, 40001);
    const auto other_ip = TransportAddress::v4({192, 0, 2, 11}, 40000);
    // A TCP reconnect (or NAT rebinding) changes the port only: the nonce stays valid.
    EXPECT_EQ(nonces.check(nonce, t0, other_port), NonceStatus::valid);
    EXPECT_EQ(nonces.check(nonce, t0, other_ip), NonceStatus::invalid);
    // Another client's stale nonce is invalid, not stale.
    EXPECT_EQ(nonces.check(nonce, t0 + 10000, other_ip), NonceStatus::invalid);
}

TEST(NonceAuthority, TwoPortsBehindOneAddressNeverShareANonce) {
    // RFC 8489 §9.2.4: the same NONCE only for the same source IP address and port.
    const auto nonces = shared();
    const auto other_port = TransportAddress::v4({192, 0, 2, 10}, 40001);
    EXPECT_NE(nonces.issue(t0, client), nonces.issue(t0, other_port));
}

TEST(NonceAuthority, Ipv6AndMappedIpv4) {
    const auto nonces = shared();
    std::array<std::uint8_t, 16> v6{0x20, 0x01, 0x0d, 0xb8};
    v6[15] = 1;
    const auto v6_client = TransportAddress::v6(v6, 5000);
    const auto nonce = nonces.issue(t0, v6_client);
    EXPECT_EQ(nonces.check(nonce, t0, v6_client), NonceStatus::valid);
    EXPECT_EQ(nonces.check(nonce, t0, client), NonceStatus::invalid);
    // ::ffff:192.0.2.10 (a dual-stack socket) is the same client as 192.0.2.10.
    const auto mapped =
        TransportAddress::v6({0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 10}, 40000);
    EXPECT_EQ(nonces.check(nonces.issue(t0, client), t0, mapped), NonceStatus::valid);
}

TEST(NonceAuthority, FleetMembersSharingASecretAcceptEachOthersNonces) {
    const NonceAuthority a(fleet_secret, 600, {});
    const NonceAuthority b(fleet_secret, 600, {});
    EXPECT_EQ(b.check(a.issue(t0, client), t0 + 1, client), NonceStatus::valid);
    EXPECT_EQ(a.check(b.issue(t0, client), t0 + 1, client), NonceStatus::valid);
    // Deterministic for a given key, time and client.
    EXPECT_EQ(a.issue(t0, client), b.issue(t0, client));
}

TEST(NonceAuthority, DifferentSecretsRejectEachOther) {
    const NonceAuthority a(fleet_secret, 600, {});
    const NonceAuthority b(std::string("another fleet's secret value"), 600, {});
    EXPECT_EQ(b.check(a.issue(t0, client), t0, client), NonceStatus::invalid);
}

TEST(NonceAuthority, RandomKeysRejectEachOther) {
    const NonceAuthority a(std::nullopt, 600, {});
    const NonceAuthority b(std::nullopt, 600, {});
    const auto nonce = a.issue(t0, client);
    EXPECT_EQ(a.check(nonce, t0, client), NonceStatus::valid);
    EXPECT_EQ(b.check(nonce, t0, client), NonceStatus::invalid);
    EXPECT_NE(nonce, b.issue(t0, client));
}

TEST(NonceAuthority, ShortSecretFallsBackToARandomKey) {
    const NonceAuthority a(std::string("short"), 600, {});
    const NonceAuthority b(std::string("short"), 600, {});
    EXPECT_EQ(b.check(a.issue(t0, client), t0, client), NonceStatus::invalid);
}

}  // namespace
}  // namespace tern::auth
