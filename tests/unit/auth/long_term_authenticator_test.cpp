// LongTermAuthenticator: every outcome of RFC 8489 §9.2.4 in the RFC's order, REST credentials
// and rotation, PASSWORD-ALGORITHM(S) negotiation, USERHASH, and the response helpers.
#include "tern/auth/long_term_authenticator.hpp"

#include <gtest/gtest.h>

#include <array>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tern/auth/expiry_policy.hpp"
#include "tern/auth/rest_credential.hpp"
#include "tern/protocol/attribute_type.hpp"
#include "tern/protocol/integrity.hpp"

#include "../hex.hpp"

namespace tern::auth {
namespace {

using protocol::MessageBuilder;
using protocol::MessageClass;
using protocol::MessageView;
using protocol::Method;
using protocol::TransactionId;
using protocol::TransportAddress;
namespace attr = protocol::attr;

constexpr std::int64_t now = 1700000000;
constexpr std::string_view realm = "example.org";
const TransportAddress client = TransportAddress::v4({198, 51, 100, 7}, 50000);
const std::string nonce_secret = "a nonce secret of more than 16 bytes";

using test::from_hex;

enum class Mac { none, sha1, sha256 };

struct Request {
    Method method = Method::allocate;
    std::optional<std::string> username;
    std::optional<std::array<std::uint8_t, 32>> userhash_value;
    std::optional<std::string> realm_value;
    std::optional<std::string> nonce;
    std::optional<std::vector<std::uint8_t>> password_algorithm;   // raw attribute value
    std::optional<std::vector<std::uint8_t>> password_algorithms;  // raw attribute value
    Mac mac = Mac::sha1;
    std::vector<std::uint8_t> key;
};

const TransactionId id{{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}};

std::vector<std::uint8_t> build(const Request& r) {
    std::vector<std::uint8_t> buffer(1024);
    MessageBuilder b(buffer, {r.method, MessageClass::request}, id);
    b.add_requested_transport(17);
    if (r.username) b.add_text(attr::username, *r.username);
    if (r.userhash_value) b.add_bytes(attr::userhash, *r.userhash_value);
    if (r.realm_value) b.add_text(attr::realm, *r.realm_value);
    if (r.nonce) b.add_text(attr::nonce, *r.nonce);
    if (r.password_algorithms) b.add_bytes(attr::password_algorithms, *r.password_algorithms);
    if (r.password_algorithm) b.add_bytes(attr::password_algorithm, *r.password_algorithm);
    if (r.mac == Mac::sha1) b.add_message_integrity(r.key);
    if (r.mac == Mac::sha256) b.add_message_integrity_sha256(r.key);
    b.add_fingerprint();
    EXPECT_TRUE(b.ok());
    const auto bytes = b.finish();
    return {bytes.begin(), bytes.end()};
}

std::vector<std::uint8_t> key_bytes(const LongTermKey& key) {
    return {key.bytes().begin(), key.bytes().end()};
}

const std::vector<std::uint8_t> md5_only = {0x00, 0x01, 0x00, 0x00};
const std::vector<std::uint8_t> sha256_only = {0x00, 0x02, 0x00, 0x00};
const std::vector<std::uint8_t> offered = {0x00, 0x02, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00};

// Keys computed independently with Python's hashlib: MD5 / SHA-256 of
// "alice:example.org:wonderland", and MD5 of "bob:example.org:builder".
const std::vector<std::uint8_t> alice_md5_key = from_hex("72f86f2053703faa0f521ce71cfe6f59");
const std::vector<std::uint8_t> alice_sha256_key =
    from_hex("f0c3ae808cef897043f79de49549776f1f58cb7c5364e03ab40abac620459848");
const std::vector<std::uint8_t> bob_md5_key = from_hex("b70615a74a524becc6960f540634bb00");

std::array<std::uint8_t, 16> bob_key_array() {
    std::array<std::uint8_t, 16> key{};
    std::copy(bob_md5_key.begin(), bob_md5_key.end(), key.begin());
    return key;
}

class Authenticate : public ::testing::Test {
protected:
    CredentialStore store{std::string(realm),
                          {"current-secret", "previous-secret"},
                          {{"alice", "wonderland", std::nullopt}, {"bob", "", bob_key_array()}}};
    NonceAuthority plain_nonces{nonce_secret, 600, {}};
    NonceAuthority pa_nonces{nonce_secret, 600, {true, false}};
    LongTermAuthenticator plain{store, plain_nonces};
    LongTermAuthenticator negotiating{store, pa_nonces};

    // A correct MD5 request from alice with a fresh nonce from `nonces`.
    static Request alice(const NonceAuthority& nonces) {
        Request r;
        r.username = "alice";
        r.realm_value = std::string(realm);
        r.nonce = nonces.issue(now, client);
        r.key = alice_md5_key;
        return r;
    }

    static AuthResult run(const LongTermAuthenticator& auth, const Request& r,
                          const TransportAddress& from = client, std::int64_t at = now) {
        const auto bytes = build(r);
        MessageView view;
        EXPECT_EQ(MessageView::parse(bytes, view), protocol::ParseError::ok);
        return auth.authenticate(view, from, at);
    }
};

// --- the §9.2.4 checks in order ------------------------------------------------------------

TEST_F(Authenticate, NoIntegrityIsAChallenge) {
    Request r = alice(plain_nonces);
    r.mac = Mac::none;
    const auto result = run(plain, r);
    EXPECT_EQ(result.outcome, AuthOutcome::challenge);
    EXPECT_EQ(result.error_code(), 401);
    EXPECT_TRUE(result.needs_challenge());
    EXPECT_FALSE(result.ok());
    EXPECT_TRUE(result.username.empty());
    EXPECT_TRUE(result.key.empty());
    // Even an empty request.
    Request bare;
    bare.mac = Mac::none;
    EXPECT_EQ(run(plain, bare).outcome, AuthOutcome::challenge);
}

TEST_F(Authenticate, IntegrityWithoutUsernameRealmOrNonceIsBadRequest) {
    for (int missing = 0; missing < 3; ++missing) {
        for (const Mac mac : {Mac::sha1, Mac::sha256}) {
            Request r = alice(plain_nonces);
            r.mac = mac;
            if (missing == 0) r.username.reset();
            if (missing == 1) r.realm_value.reset();
            if (missing == 2) r.nonce.reset();
            const auto result = run(plain, r);
            EXPECT_EQ(result.outcome, AuthOutcome::bad_request) << missing;
            EXPECT_EQ(result.error_code(), 400);
            EXPECT_FALSE(result.needs_challenge());
        }
    }
}

TEST_F(Authenticate, RealmOf128CharactersIsBadRequest) {
    Request r = alice(plain_nonces);
    r.realm_value = std::string(128, 'r');
    EXPECT_EQ(run(plain, r).outcome, AuthOutcome::bad_request);
    // 127 characters in multi-byte UTF-8 are fine as far as length goes (the realm is wrong).
    std::string long_utf8;
    for (int i = 0; i < 127; ++i) long_utf8 += "\xc3\xa9";  // é
    r.realm_value = long_utf8;
    EXPECT_EQ(run(plain, r).outcome, AuthOutcome::integrity_mismatch);
}

TEST_F(Authenticate, UnknownUserIs401) {
    Request r = alice(plain_nonces);
    r.username = "mallory";
    const auto result = run(plain, r);
    EXPECT_EQ(result.outcome, AuthOutcome::unknown_user);
    EXPECT_EQ(result.error_code(), 401);
    EXPECT_TRUE(result.needs_challenge());
}

TEST_F(Authenticate, WrongPasswordIs401) {
    Request r = alice(plain_nonces);
    r.key = key_bytes(md5_key("alice", realm, "wonderlant"));
    EXPECT_EQ(run(plain, r).outcome, AuthOutcome::integrity_mismatch);
    r.mac = Mac::sha256;
    EXPECT_EQ(run(plain, r).outcome, AuthOutcome::integrity_mismatch);
}

TEST_F(Authenticate, OtherRealmIs401EvenWithThatRealmsKey) {
    Request r = alice(plain_nonces);
    r.realm_value = "other.org";
    r.key = key_bytes(md5_key("alice", "other.org", "wonderland"));
    EXPECT_EQ(run(plain, r).outcome, AuthOutcome::integrity_mismatch);
}

TEST_F(Authenticate, CorrectMd5RequestSucceeds) {
    const auto result = run(plain, alice(plain_nonces));
    ASSERT_EQ(result.outcome, AuthOutcome::ok);
    EXPECT_EQ(result.error_code(), 0);
    EXPECT_EQ(result.username, "alice");
    EXPECT_EQ(key_bytes(result.key), alice_md5_key);
    EXPECT_EQ(result.integrity, IntegrityKind::message_integrity);
    EXPECT_FALSE(result.rest_expiry);
}

TEST_F(Authenticate, MessageIntegritySha256WithTheMd5KeySucceeds) {
    // Without a PASSWORD-ALGORITHM the key is MD5 whichever MAC carries it (§9.2.4).
    Request r = alice(plain_nonces);
    r.mac = Mac::sha256;
    const auto result = run(plain, r);
    ASSERT_EQ(result.outcome, AuthOutcome::ok);
    EXPECT_EQ(result.integrity, IntegrityKind::message_integrity_sha256);
    EXPECT_EQ(key_bytes(result.key), alice_md5_key);
}

TEST_F(Authenticate, PrecomputedKeyUserSucceeds) {
    Request r = alice(plain_nonces);
    r.username = "bob";
    r.key = bob_md5_key;
    const auto result = run(plain, r);
    ASSERT_EQ(result.outcome, AuthOutcome::ok);
    EXPECT_EQ(result.username, "bob");
}

TEST_F(Authenticate, StaleNonceWithCorrectIntegrityIs438) {
    const auto result = run(plain, alice(plain_nonces), client, now + 600);
    EXPECT_EQ(result.outcome, AuthOutcome::stale_nonce);
    EXPECT_EQ(result.error_code(), 438);
    EXPECT_TRUE(result.needs_challenge());
    EXPECT_TRUE(result.username.empty());
    EXPECT_EQ(run(plain, alice(plain_nonces), client, now + 599).outcome, AuthOutcome::ok);
}

TEST_F(Authenticate, IntegrityIsCheckedBeforeTheNonce) {
    // RFC 8489 §9.2.4 orders the 401 for a bad MAC before the 438 for a bad nonce.
    Request r = alice(plain_nonces);
    r.key = key_bytes(md5_key("alice", realm, "guess"));
    EXPECT_EQ(run(plain, r, client, now + 10000).outcome, AuthOutcome::integrity_mismatch);
}

TEST_F(Authenticate, ForeignOrForgedNoncesAre438) {
    Request r = alice(plain_nonces);
    // Another client's nonce.
    r.nonce = plain_nonces.issue(now, TransportAddress::v4({203, 0, 113, 1}, 50000));
    EXPECT_EQ(run(plain, r).outcome, AuthOutcome::stale_nonce);
    // A nonce from a server with another key.
    const NonceAuthority stranger(std::nullopt, 600, {});
    r.nonce = stranger.issue(now, client);
    EXPECT_EQ(run(plain, r).outcome, AuthOutcome::stale_nonce);
    // Made up.
    r.nonce = "f//499k954d6OL34oL9FSTvy64sA";
    EXPECT_EQ(run(plain, r).outcome, AuthOutcome::stale_nonce);
}

TEST_F(Authenticate, SamePortChangeKeepsTheNonce) {
    const auto result = run(plain, alice(plain_nonces), TransportAddress::v4({198, 51, 100, 7}, 1));
    EXPECT_EQ(result.outcome, AuthOutcome::ok);
}

TEST_F(Authenticate, Rfc5769LongTermVectorVerifiesThenFailsOnlyOnTheNonce) {
    // RFC 5769 §2.4: the integrity verifies with MD5("マトリックス:example.org:TheMatrIX"), so the
    // request gets as far as the nonce check; its nonce is not ours, hence 438.
    const auto bytes = from_hex(
        "00 01 00 60 21 12 a4 42 78 ad 34 33 c6 ad 72 c0 29 da 41 2e"
        "00 06 00 12 e3 83 9e e3 83 88 e3 83 aa e3 83 83 e3 82 af e3 82 b9 00 00"
        "00 15 00 1c 66 2f 2f 34 39 39 6b 39 35 34 64 36 4f 4c 33 34 6f 4c 39 46 53 54 76 79 36 34 "
        "73 41"
        "00 14 00 0b 65 78 61 6d 70 6c 65 2e 6f 72 67 00"
        "00 08 00 14 f6 70 24 65 6d d6 4a 3e 02 b8 e0 71 2e 85 c9 a2 8c a8 96 66");
    MessageView view;
    ASSERT_EQ(MessageView::parse(bytes, view), protocol::ParseError::ok);
    const std::string user =
        "\xe3\x83\x9e\xe3\x83\x88\xe3\x83\xaa\xe3\x83\x83\xe3\x82\xaf\xe3\x82\xb9";
    const CredentialStore right("example.org", {}, {{user, "TheMatrIX", std::nullopt}});
    const LongTermAuthenticator auth(right, plain_nonces);
    EXPECT_EQ(auth.authenticate(view, client, now).outcome, AuthOutcome::stale_nonce);
    const CredentialStore wrong("example.org", {}, {{user, "TheMatrix", std::nullopt}});
    const LongTermAuthenticator wrong_auth(wrong, plain_nonces);
    EXPECT_EQ(wrong_auth.authenticate(view, client, now).outcome, AuthOutcome::integrity_mismatch);
}

// --- TURN REST credentials -----------------------------------------------------------------

TEST_F(Authenticate, RestCredentialWithTheCurrentSecretSucceeds) {
    const auto credential = make_rest_credential("current-secret", "carol", now, 3600);
    Request r = alice(plain_nonces);
    r.username = credential.username;
    r.key = key_bytes(md5_key(credential.username, realm, credential.password));
    const auto result = run(plain, r);
    ASSERT_EQ(result.outcome, AuthOutcome::ok);
    EXPECT_EQ(result.username, credential.username);
    EXPECT_EQ(result.rest_expiry, now + 3600);
}

TEST_F(Authenticate, RestCredentialMintedWithThePreviousSecretValidates) {
    const auto credential = make_rest_credential("previous-secret", "carol", now, 60);
    Request r = alice(plain_nonces);
    r.username = credential.username;
    r.key = key_bytes(md5_key(credential.username, realm, credential.password));
    const auto result = run(plain, r);
    ASSERT_EQ(result.outcome, AuthOutcome::ok);
    EXPECT_EQ(key_bytes(result.key), r.key);
}

TEST_F(Authenticate, RestCredentialFromAnUnknownSecretIs401) {
    const auto credential = make_rest_credential("retired-secret", "carol", now, 60);
    Request r = alice(plain_nonces);
    r.username = credential.username;
    r.key = key_bytes(md5_key(credential.username, realm, credential.password));
    EXPECT_EQ(run(plain, r).outcome, AuthOutcome::integrity_mismatch);
}

TEST_F(Authenticate, ExpiredRestCredentialIs401WithItsIdentity) {
    const auto credential = make_rest_credential("current-secret", "carol", now - 100, 100);
    Request r = alice(plain_nonces);
    r.username = credential.username;
    r.key = key_bytes(md5_key(credential.username, realm, credential.password));
    const auto result = run(plain, r);
    EXPECT_EQ(result.outcome, AuthOutcome::credential_expired);
    EXPECT_EQ(result.error_code(), 401);
    EXPECT_TRUE(result.needs_challenge());
    EXPECT_EQ(result.username, credential.username);
    EXPECT_EQ(result.rest_expiry, now);
    EXPECT_EQ(key_bytes(result.key), r.key);
    // One second earlier it was still good.
    EXPECT_EQ(run(plain, r, client, now - 1).outcome, AuthOutcome::ok);
}

TEST_F(Authenticate, ForgedRestUsernameIs401) {
    // The expiry is part of the HMAC input: editing it breaks the password.
    const auto credential = make_rest_credential("current-secret", "carol", now, 60);
    Request r = alice(plain_nonces);
    r.username = std::to_string(now + 86400) + ":carol";
    r.key = key_bytes(md5_key(*r.username, realm, credential.password));
    EXPECT_EQ(run(plain, r).outcome, AuthOutcome::integrity_mismatch);
}

// --- the ceiling on a REST credential's lifetime (auth.max_credential_lifetime) ------------

// A request from `username`, signed with the REST password `secret` gives it: a credential
// exactly as a backend holding the secret would mint it, whatever its expiry.
Request rest_request(const NonceAuthority& nonces, const std::string& username,
                     const std::string& secret = "current-secret") {
    Request r;
    r.username = username;
    r.realm_value = std::string(realm);
    r.nonce = nonces.issue(now, client);
    r.key = key_bytes(md5_key(username, realm, rest_password(secret, username)));
    return r;
}

std::string expiring_at(std::int64_t expiry) {
    return std::to_string(expiry) + ":carol";
}

constexpr std::int64_t three_days = 259200;  // the default ceiling
constexpr std::int64_t year = 365 * 86400;

// Refused as if expired: 401 with a challenge, identity filled in, and an effective expiry that
// no expiry policy lets allocate with.
void expect_refused_as_expired(const AuthResult& result, const std::string& username) {
    EXPECT_EQ(result.outcome, AuthOutcome::credential_expired) << username;
    EXPECT_EQ(result.error_code(), 401) << username;
    EXPECT_TRUE(result.needs_challenge()) << username;
    EXPECT_EQ(result.username, username);
    for (const auto policy :
         {ExpiryPolicy::allocate, ExpiryPolicy::request, ExpiryPolicy::strict}) {
        EXPECT_TRUE(refuses(policy, Method::allocate, result.rest_expiry, now))
            << username << " could allocate";
    }
}

TEST_F(Authenticate, RestCredentialExactlyAtTheDefaultCeilingIsAccepted) {
    const auto result = run(plain, rest_request(plain_nonces, expiring_at(now + three_days)));
    ASSERT_EQ(result.outcome, AuthOutcome::ok);
    EXPECT_EQ(result.rest_expiry, now + three_days);
}

TEST_F(Authenticate, RestCredentialOneSecondPastTheDefaultCeilingIsRefusedAsIfExpired) {
    const std::string username = expiring_at(now + three_days + 1);
    expect_refused_as_expired(run(plain, rest_request(plain_nonces, username)), username);
    // A second later the same credential is within the ceiling.
    EXPECT_EQ(run(plain, rest_request(plain_nonces, username), client, now + 1).outcome,
              AuthOutcome::ok);
}

TEST_F(Authenticate, RestCredentialsExpiringInYearsAreRefusedAsIfExpired) {
    for (const std::int64_t expiry :
         {now + 10 * year, now + 100 * year, std::numeric_limits<std::int64_t>::max()}) {
        const std::string username = expiring_at(expiry);
        expect_refused_as_expired(run(plain, rest_request(plain_nonces, username)), username);
    }
    // The same holds with MESSAGE-INTEGRITY-SHA256 and with the previous secret.
    Request r = rest_request(plain_nonces, expiring_at(now + 10 * year), "previous-secret");
    r.mac = Mac::sha256;
    expect_refused_as_expired(run(plain, r), *r.username);
}

TEST_F(Authenticate, RestCredentialBeyondTheCeilingExpiresNow) {
    const auto beyond = run(plain, rest_request(plain_nonces, expiring_at(now + 10 * year)));
    EXPECT_EQ(beyond.outcome, AuthOutcome::credential_expired);
    EXPECT_EQ(beyond.rest_expiry, now);  // refused as if it had expired just now
    // Under the default policy (allocate) that still lets an existing allocation of the same
    // name be refreshed, exactly as an expired credential may; never a new one.
    EXPECT_FALSE(refuses(ExpiryPolicy::allocate, Method::refresh, beyond.rest_expiry, now));
    const auto expired = run(plain, rest_request(plain_nonces, expiring_at(now - 1)));
    EXPECT_EQ(expired.outcome, AuthOutcome::credential_expired);
    EXPECT_EQ(expired.rest_expiry, now - 1);  // a plain expiry keeps its own timestamp
}

TEST_F(Authenticate, TheCeilingIsAConstructorParameter) {
    EXPECT_EQ(plain.max_credential_lifetime(), default_max_credential_lifetime);
    const std::string ten_years = expiring_at(now + 10 * year);
    const LongTermAuthenticator twenty_years(store, plain_nonces, 20 * year);
    EXPECT_EQ(run(twenty_years, rest_request(plain_nonces, ten_years)).outcome, AuthOutcome::ok);
    const LongTermAuthenticator one_year(store, plain_nonces, year);
    EXPECT_EQ(run(one_year, rest_request(plain_nonces, expiring_at(now + year))).outcome,
              AuthOutcome::ok);
    expect_refused_as_expired(run(one_year, rest_request(plain_nonces, ten_years)), ten_years);
    const std::string later = expiring_at(now + year + 1);
    expect_refused_as_expired(run(one_year, rest_request(plain_nonces, later)), later);
    // Even the largest ceiling does not wrap for the largest timestamp.
    const LongTermAuthenticator unbounded(store, plain_nonces,
                                          std::numeric_limits<std::int64_t>::max());
    const std::string last = expiring_at(std::numeric_limits<std::int64_t>::max());
    EXPECT_EQ(run(unbounded, rest_request(plain_nonces, last)).outcome, AuthOutcome::ok);
    // A ceiling of 0 (or below) admits only credentials that are already expired or expire now.
    const LongTermAuthenticator none(store, plain_nonces, -5);
    EXPECT_EQ(none.max_credential_lifetime(), 0);
    const std::string soon = expiring_at(now + 1);
    expect_refused_as_expired(run(none, rest_request(plain_nonces, soon)), soon);
    // Static users have no expiry, so no ceiling either.
    EXPECT_EQ(run(none, alice(plain_nonces)).outcome, AuthOutcome::ok);
}

TEST_F(Authenticate, RestCredentialBeyondTheCeilingIsStillA401ForTheWrongSecret) {
    // Only a credential that verifies is "expired"; a forged one stays a wrong password.
    const Request r = rest_request(plain_nonces, expiring_at(now + 10 * year), "not-our-secret");
    EXPECT_EQ(run(plain, r).outcome, AuthOutcome::integrity_mismatch);
}

TEST_F(Authenticate, RestTimestampsThatAreNotAnInt64AreUnknownUsers) {
    for (const std::string timestamp : {
             "9223372036854775808",      // 2^63
             "18446744073709551616",     // 2^64
             "99999999999999999999",     // 20 digits
             "-1", "-0", "-1700000000",  // negative, and a minus sign on zero
             "+1700000000",              // a sign is not a digit
             " 1700000000", "1700000000 ", "0x6553f100", "1.7e9", "1700000000.5",
             "\xd9\xa1\xd9\xa7",  // Arabic-Indic digits
         }) {
        const std::string username = timestamp + ":carol";
        const auto result = run(plain, rest_request(plain_nonces, username));
        EXPECT_EQ(result.outcome, AuthOutcome::unknown_user) << username;
        EXPECT_EQ(result.error_code(), 401) << username;
        EXPECT_TRUE(result.needs_challenge()) << username;
        EXPECT_FALSE(result.rest_expiry) << username;
    }
}

// --- PASSWORD-ALGORITHM(S) negotiation (nonce cookie "Password algorithms" bit) -----------

TEST_F(Authenticate, NegotiationOmittedMeansMd5) {
    Request r = alice(pa_nonces);
    const auto result = run(negotiating, r);
    ASSERT_EQ(result.outcome, AuthOutcome::ok);
    EXPECT_EQ(result.key.algorithm(), PasswordAlgorithm::md5);
    r.key = alice_sha256_key;  // a SHA-256 key is not what "processed as MD5" uses
    r.mac = Mac::sha256;
    EXPECT_EQ(run(negotiating, r).outcome, AuthOutcome::integrity_mismatch);
}

TEST_F(Authenticate, NegotiatedSha256UsesTheSha256Key) {
    Request r = alice(pa_nonces);
    r.password_algorithms = offered;
    r.password_algorithm = sha256_only;
    r.key = alice_sha256_key;
    r.mac = Mac::sha256;
    const auto result = run(negotiating, r);
    ASSERT_EQ(result.outcome, AuthOutcome::ok);
    EXPECT_EQ(result.key.algorithm(), PasswordAlgorithm::sha256);
    EXPECT_EQ(key_bytes(result.key), alice_sha256_key);
    EXPECT_EQ(result.integrity, IntegrityKind::message_integrity_sha256);
    // The MD5 key does not verify once SHA-256 is chosen.
    r.key = alice_md5_key;
    EXPECT_EQ(run(negotiating, r).outcome, AuthOutcome::integrity_mismatch);
}

TEST_F(Authenticate, NegotiatedMd5UsesTheMd5Key) {
    Request r = alice(pa_nonces);
    r.password_algorithms = offered;
    r.password_algorithm = md5_only;
    ASSERT_EQ(run(negotiating, r).outcome, AuthOutcome::ok);
}

TEST_F(Authenticate, NegotiationViolationsAreBadRequests) {
    const std::vector<std::uint8_t> reordered = {0x00, 0x01, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00};
    const std::vector<std::uint8_t> unknown_algorithm = {0x00, 0x03, 0x00, 0x00};
    const std::vector<std::uint8_t> with_parameters = {0x00, 0x02, 0x00, 0x02, 0xab, 0xcd, 0, 0};
    struct Case {
        const char* name;
        std::optional<std::vector<std::uint8_t>> list;
        std::optional<std::vector<std::uint8_t>> chosen;
    };
    const std::vector<Case> cases = {
        {"algorithm without the list", std::nullopt, sha256_only},
        {"list without an algorithm", offered, std::nullopt},
        {"list not as sent", reordered, sha256_only},
        {"list shortened (bid-down)", md5_only, md5_only},
        {"algorithm not in the list", offered, unknown_algorithm},
        {"algorithm with parameters", offered, with_parameters},
    };
    for (const auto& c : cases) {
        Request r = alice(pa_nonces);
        r.password_algorithms = c.list;
        r.password_algorithm = c.chosen;
        const auto result = run(negotiating, r);
        EXPECT_EQ(result.outcome, AuthOutcome::bad_request) << c.name;
        EXPECT_FALSE(result.needs_challenge()) << c.name;
    }
}

TEST_F(Authenticate, Sha256ForAKeyOnlyUserIsUnknownUser) {
    Request r = alice(pa_nonces);
    r.username = "bob";
    r.password_algorithms = offered;
    r.password_algorithm = sha256_only;
    r.key = bob_md5_key;
    EXPECT_EQ(run(negotiating, r).outcome, AuthOutcome::unknown_user);
}

TEST_F(Authenticate, WithoutTheCookieBitAlgorithmAttributesAreIgnored) {
    // The plain authenticator offers no negotiation: the request is MD5 whatever it says.
    Request r = alice(plain_nonces);
    r.password_algorithm = sha256_only;
    EXPECT_EQ(run(plain, r).outcome, AuthOutcome::ok);
}

TEST_F(Authenticate, StrippedCookieBitEndsIn438) {
    // A bid-down that rewrites the cookie to "no features" skips negotiation but breaks the
    // nonce MAC.
    Request r = alice(pa_nonces);
    r.nonce->replace(9, 4, "AAAA");
    EXPECT_EQ(run(negotiating, r).outcome, AuthOutcome::stale_nonce);
}

// --- USERHASH ------------------------------------------------------------------------------

TEST_F(Authenticate, UserhashResolvesAStaticUser) {
    Request r = alice(plain_nonces);
    r.username.reset();
    r.userhash_value = userhash("alice", realm);
    const auto result = run(plain, r);
    ASSERT_EQ(result.outcome, AuthOutcome::ok);
    EXPECT_EQ(result.username, "alice");
}

TEST_F(Authenticate, UnknownUserhashIs401) {
    Request r = alice(plain_nonces);
    r.username.reset();
    r.userhash_value = userhash("mallory", realm);
    EXPECT_EQ(run(plain, r).outcome, AuthOutcome::unknown_user);
    // REST users cannot be found by USERHASH.
    const auto credential = make_rest_credential("current-secret", "carol", now, 60);
    r.userhash_value = userhash(credential.username, realm);
    r.key = key_bytes(md5_key(credential.username, realm, credential.password));
    EXPECT_EQ(run(plain, r).outcome, AuthOutcome::unknown_user);
}

// --- response helpers ----------------------------------------------------------------------

std::vector<std::uint8_t> challenge_response(const LongTermAuthenticator& auth,
                                             std::uint16_t code) {
    std::vector<std::uint8_t> buffer(512);
    MessageBuilder b(buffer, {Method::allocate, MessageClass::error_response}, id);
    b.add_error_code(code, "Unauthenticated");
    auth.add_challenge(b, client, now);
    EXPECT_TRUE(b.ok());
    const auto bytes = b.finish();
    return {bytes.begin(), bytes.end()};
}

TEST_F(Authenticate, ChallengeCarriesRealmAndAFreshNonce) {
    const auto bytes = challenge_response(plain, 401);
    MessageView view;
    ASSERT_EQ(MessageView::parse(bytes, view), protocol::ParseError::ok);
    EXPECT_EQ(view.realm(), realm);
    ASSERT_TRUE(view.nonce());
    EXPECT_EQ(plain_nonces.check(*view.nonce(), now, client), NonceStatus::valid);
    EXPECT_FALSE(view.has(attr::password_algorithms));
    EXPECT_FALSE(view.has(attr::message_integrity));
}

TEST_F(Authenticate, NegotiatingChallengeOffersSha256ThenMd5) {
    const auto bytes = challenge_response(negotiating, 401);
    MessageView view;
    ASSERT_EQ(MessageView::parse(bytes, view), protocol::ParseError::ok);
    std::array<protocol::PasswordAlgorithmValue, 4> list{};
    ASSERT_EQ(view.password_algorithms(list), 2u);
    EXPECT_EQ(list[0].algorithm, 0x0002);
    EXPECT_EQ(list[1].algorithm, 0x0001);
    ASSERT_TRUE(view.nonce());
    EXPECT_TRUE(view.nonce()->starts_with("obMatJos2AAAB"));
}

TEST_F(Authenticate, ChallengeThenRetryRoundTrip) {
    // A client that follows §9.2.5: copy REALM, NONCE, PASSWORD-ALGORITHMS from the 401, pick
    // SHA-256, sign with MESSAGE-INTEGRITY-SHA256.
    const auto challenge = challenge_response(negotiating, 401);
    MessageView view;
    ASSERT_EQ(MessageView::parse(challenge, view), protocol::ParseError::ok);
    Request r;
    r.username = "alice";
    r.realm_value = std::string(*view.realm());
    r.nonce = std::string(*view.nonce());
    const auto list = view.find(attr::password_algorithms);
    ASSERT_TRUE(list);
    r.password_algorithms = std::vector<std::uint8_t>(list->value.begin(), list->value.end());
    r.password_algorithm = sha256_only;
    r.key = key_bytes(sha256_key("alice", realm, "wonderland"));
    r.mac = Mac::sha256;
    EXPECT_EQ(run(negotiating, r).outcome, AuthOutcome::ok);
}

TEST_F(Authenticate, ResponseIntegrityMatchesWhatTheClientUsed) {
    for (const Mac mac : {Mac::sha1, Mac::sha256}) {
        Request r = alice(plain_nonces);
        r.mac = mac;
        const auto result = run(plain, r);
        ASSERT_TRUE(result.ok());
        std::vector<std::uint8_t> buffer(256);
        MessageBuilder b(buffer, {Method::allocate, MessageClass::success_response}, id);
        b.add_lifetime(600);
        LongTermAuthenticator::add_integrity(b, result);
        b.add_fingerprint();
        ASSERT_TRUE(b.ok());
        MessageView response;
        ASSERT_EQ(MessageView::parse(b.finish(), response), protocol::ParseError::ok);
        if (mac == Mac::sha1) {
            EXPECT_EQ(protocol::verify_message_integrity(response, alice_md5_key),
                      protocol::IntegrityResult::ok);
            EXPECT_FALSE(response.has(attr::message_integrity_sha256));
        } else {
            EXPECT_EQ(protocol::verify_message_integrity_sha256(response, alice_md5_key),
                      protocol::IntegrityResult::ok);
            EXPECT_FALSE(response.has(attr::message_integrity));
        }
    }
}

TEST(AuthOutcome, ErrorCodesAndReasons) {
    EXPECT_EQ(error_code(AuthOutcome::ok), 0);
    EXPECT_EQ(error_code(AuthOutcome::challenge), 401);
    EXPECT_EQ(error_code(AuthOutcome::bad_request), 400);
    EXPECT_EQ(error_code(AuthOutcome::unknown_user), 401);
    EXPECT_EQ(error_code(AuthOutcome::integrity_mismatch), 401);
    EXPECT_EQ(error_code(AuthOutcome::stale_nonce), 438);
    EXPECT_EQ(error_code(AuthOutcome::credential_expired), 401);
    EXPECT_EQ(reason_phrase(AuthOutcome::ok), "");
    EXPECT_EQ(reason_phrase(AuthOutcome::bad_request), "Bad Request");
    EXPECT_EQ(reason_phrase(AuthOutcome::integrity_mismatch), "Unauthenticated");
    EXPECT_EQ(reason_phrase(AuthOutcome::stale_nonce), "Stale Nonce");
}

}  // namespace
}  // namespace tern::auth
