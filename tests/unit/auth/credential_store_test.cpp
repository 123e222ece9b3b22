// CredentialStore: static and REST keys against digests computed independently (Python
// hashlib / hmac), USERHASH against RFC 8489 Appendix B.1, and secret rotation.
#include "tern/auth/credential_store.hpp"

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

#include "tern/auth/rest_credential.hpp"

#include "../hex.hpp"

namespace tern::auth {
namespace {

using test::from_hex;

std::vector<std::uint8_t> bytes(const LongTermKey& key) {
    return {key.bytes().begin(), key.bytes().end()};
}

constexpr std::string_view matrix_user =
    "\xe3\x83\x9e\xe3\x83\x88\xe3\x83\xaa\xe3\x83\x83\xe3\x82\xaf\xe3\x82\xb9";  // マトリックス

TEST(Keys, Md5KeyMatchesRfc5769LongTermVector) {
    // RFC 5769 §2.4: MD5("マトリックス:example.org:TheMatrIX").
    const auto key = md5_key(matrix_user, "example.org", "TheMatrIX");
    EXPECT_EQ(key.algorithm(), PasswordAlgorithm::md5);
    EXPECT_EQ(bytes(key), from_hex("e8ca7ad59d5eb0518e312911d2dab2a9"));
}

TEST(Keys, Sha256KeyIsSha256OfUserRealmPassword) {
    // hashlib.sha256("マトリックス:example.org:TheMatrIX".encode()).hexdigest()
    const auto key = sha256_key(matrix_user, "example.org", "TheMatrIX");
    EXPECT_EQ(key.algorithm(), PasswordAlgorithm::sha256);
    EXPECT_EQ(bytes(key),
              from_hex("dd295a613b9058c3c23d6dc7165bda072304d989c9d0af3a8c7e184b4f9bb4a1"));
    EXPECT_EQ(derive_key(PasswordAlgorithm::sha256, matrix_user, "example.org", "TheMatrIX"), key);
}

TEST(Keys, UserhashMatchesRfc8489AppendixB1) {
    const auto hash = userhash(matrix_user, "example.org");
    EXPECT_EQ(std::vector<std::uint8_t>(hash.begin(), hash.end()),
              from_hex("4a3cf38fef6992bda952c6780417da0f24819415569e60b205c46e41407f1704"));
}

CredentialStore example_store() {
    std::array<std::uint8_t, 16> bob_key{};
    const auto bob = from_hex("b70615a74a524becc6960f540634bb00");  // MD5(bob:example.org:builder)
    std::copy(bob.begin(), bob.end(), bob_key.begin());
    return CredentialStore("example.org", {"north-wind-secret", "old-secret"},
                           {{"alice", "wonderland", std::nullopt},
                            {"bob", "", bob_key},
                            {"", "nameless", std::nullopt},
                            {"carol", "", std::nullopt}});
}

TEST(CredentialStore, StaticPasswordUserHasMd5AndSha256Keys) {
    const auto store = example_store();
    EXPECT_EQ(store.realm(), "example.org");
    EXPECT_EQ(store.static_user_count(), 2u);  // the nameless and credential-less are skipped
    const auto md5 = store.keys_for("alice", PasswordAlgorithm::md5);
    ASSERT_EQ(md5.size(), 1u);
    EXPECT_EQ(md5[0].key, md5_key("alice", "example.org", "wonderland"));
    EXPECT_FALSE(md5[0].rest_expiry);
    const auto sha = store.keys_for("alice", PasswordAlgorithm::sha256);
    ASSERT_EQ(sha.size(), 1u);
    EXPECT_EQ(bytes(sha[0].key),
              from_hex("f0c3ae808cef897043f79de49549776f1f58cb7c5364e03ab40abac620459848"));
}

TEST(CredentialStore, KeyOnlyUserHasNoSha256Key) {
    const auto store = example_store();
    const auto md5 = store.keys_for("bob", PasswordAlgorithm::md5);
    ASSERT_EQ(md5.size(), 1u);
    EXPECT_EQ(bytes(md5[0].key), from_hex("b70615a74a524becc6960f540634bb00"));
    EXPECT_TRUE(store.keys_for("bob", PasswordAlgorithm::sha256).empty());
}

TEST(CredentialStore, UnknownUsersHaveNoKeys) {
    const auto store = example_store();
    EXPECT_TRUE(store.keys_for("mallory", PasswordAlgorithm::md5).empty());
    EXPECT_TRUE(store.keys_for("carol", PasswordAlgorithm::md5).empty());
    EXPECT_TRUE(store.keys_for("", PasswordAlgorithm::md5).empty());
    EXPECT_TRUE(store.keys_for("ALICE", PasswordAlgorithm::md5).empty());
}

TEST(CredentialStore, RestUsernameGetsOneKeyPerSecretInOrder) {
    const auto store = example_store();
    EXPECT_TRUE(store.has_rest_secrets());
    // Keys computed with Python: password = base64(HMAC-SHA1(secret, username)),
    // key = MD5 / SHA-256 of "1700000000:alice:example.org:<password>".
    const auto md5 = store.keys_for("1700000000:alice", PasswordAlgorithm::md5);
    ASSERT_EQ(md5.size(), 2u);
    EXPECT_EQ(bytes(md5[0].key), from_hex("851269dcdc28d059a5e71d91581363e7"));
    EXPECT_EQ(bytes(md5[1].key), from_hex("d003b0d5246d3c8351f88d75ef804813"));
    EXPECT_EQ(md5[0].rest_expiry, 1700000000);
    EXPECT_EQ(md5[1].rest_expiry, 1700000000);
    const auto sha = store.keys_for("1700000000:alice", PasswordAlgorithm::sha256);
    ASSERT_EQ(sha.size(), 2u);
    EXPECT_EQ(bytes(sha[0].key),
              from_hex("a16b3499d780891b3ef364bf80be97031086d51d70c6e97201a2e84724603c92"));
    EXPECT_EQ(bytes(sha[1].key),
              from_hex("b3ad607c243702f13e66f675dc008d368ecdff5750c435069e69a01346bf829d"));
}

TEST(CredentialStore, RestKeyEqualsKeyOfTheMintedPassword) {
    const auto store = example_store();
    const auto minted = make_rest_credential("old-secret", "dave", 1700000000, 600);
    const auto keys = store.keys_for(minted.username, PasswordAlgorithm::md5);
    ASSERT_EQ(keys.size(), 2u);
    EXPECT_EQ(keys[1].key, md5_key(minted.username, "example.org", minted.password));
    EXPECT_NE(keys[0].key, keys[1].key);
}

TEST(CredentialStore, WithoutSecretsRestUsernamesAreUnknown) {
    const CredentialStore store("example.org", {"", ""}, {});
    EXPECT_FALSE(store.has_rest_secrets());
    EXPECT_TRUE(store.keys_for("1700000000:alice", PasswordAlgorithm::md5).empty());
}

TEST(CredentialStore, NonTimestampNamesAreNotRestNames) {
    const auto store = example_store();
    EXPECT_TRUE(store.keys_for("soon:alice", PasswordAlgorithm::md5).empty());
    EXPECT_TRUE(store.keys_for("-1:alice", PasswordAlgorithm::md5).empty());
}

TEST(CredentialStore, StaticUserNamedLikeARestUserGetsBothKinds) {
    const CredentialStore store("r", {"s1"}, {{"5:eve", "pw", std::nullopt}});
    const auto keys = store.keys_for("5:eve", PasswordAlgorithm::md5);
    ASSERT_EQ(keys.size(), 2u);
    EXPECT_EQ(keys[0].key, md5_key("5:eve", "r", "pw"));
    EXPECT_FALSE(keys[0].rest_expiry);
    EXPECT_EQ(keys[1].rest_expiry, 5);
}

TEST(CredentialStore, UserhashResolvesStaticUsersOnly) {
    const auto store = example_store();
    const auto alice = userhash("alice", "example.org");
    EXPECT_EQ(store.user_for_userhash(alice), "alice");
    EXPECT_EQ(store.user_for_userhash(userhash("bob", "example.org")), "bob");
    EXPECT_FALSE(store.user_for_userhash(userhash("alice", "other.org")));
    EXPECT_FALSE(store.user_for_userhash(userhash("1700000000:alice", "example.org")));
    EXPECT_FALSE(store.user_for_userhash(std::span<const std::uint8_t>(alice).first(31)));
}

TEST(LongTermKey, EqualityComparesAlgorithmAndBytes) {
    const std::array<std::uint8_t, 16> a{1};
    const std::array<std::uint8_t, 16> b{2};
    EXPECT_EQ(LongTermKey(PasswordAlgorithm::md5, a), LongTermKey(PasswordAlgorithm::md5, a));
    EXPECT_NE(LongTermKey(PasswordAlgorithm::md5, a), LongTermKey(PasswordAlgorithm::md5, b));
    EXPECT_NE(LongTermKey(PasswordAlgorithm::md5, a), LongTermKey(PasswordAlgorithm::sha256, a));
    EXPECT_TRUE(LongTermKey().empty());
    EXPECT_EQ(LongTermKey(PasswordAlgorithm::md5, a).bytes().size(), 16u);
}

}  // namespace
}  // namespace tern::auth
