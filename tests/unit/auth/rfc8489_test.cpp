// RFC 8489 Appendix B.1 (Binding request with USERHASH, NONCE, REALM, PASSWORD-ALGORITHM and
// MESSAGE-INTEGRITY-SHA256, long-term credential), as corrected by verified erratum 6268: the
// codec parses it, the SHA-256 key of §9.2.2 verifies its MAC, USERHASH is SHA-256 of
// username ":" realm (§14.4) and finds the user in a CredentialStore, and the builder
// reproduces it byte for byte.
//
// Sources: https://www.rfc-editor.org/rfc/rfc8489#appendix-B.1 and
// https://www.rfc-editor.org/errata/eid6268. What the erratum corrects in the published vector:
//   1. The header's message length: published 0x9c (156), the size of the whole message
//      including the 20-byte header; §5 says the length excludes the header (0x9c - 20 = 0x88
//      for the published attributes).
//   2. The PASSWORD-ALGORITHM attribute was missing: the MAC is keyed with the SHA-256 key, not
//      the default MD5 one, so the request must say so. The corrected vector adds
//      PASSWORD-ALGORITHM SHA-256 (0x0002, no parameters) between REALM and
//      MESSAGE-INTEGRITY-SHA256, making the length 0x90 (144).
//   3. The MESSAGE-INTEGRITY-SHA256 value, recomputed over the corrected message.
// The published MAC (e4 68 6c 8f ...) is HMAC-SHA256 with the SHA-256 key over the published
// bytes with the wrong length 0x9c left in the header (checked below), which no receiver that
// adjusts the length as §14.6 says can reproduce.
//
// The vector's NONCE carries the cookie "obMatJos2" with features "AAAC" (username anonymity
// only, no password-algorithm negotiation) and the request has no PASSWORD-ALGORITHMS, so this
// is a codec and key-derivation vector, not a §9.2.4 negotiation.
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <array>
#include <cstdint>
#include <string_view>
#include <vector>

#include "tern/auth/credential_store.hpp"
#include "tern/protocol/attribute_type.hpp"
#include "tern/protocol/integrity.hpp"
#include "tern/protocol/message.hpp"
#include "tern/protocol/message_builder.hpp"

#include "../hex.hpp"

namespace tern::auth {
namespace {

using namespace tern::protocol;
using test::from_hex;

std::vector<std::uint8_t> to_vector(std::span<const std::uint8_t> bytes) {
    return {bytes.begin(), bytes.end()};
}

// RFC 8489 Appendix B.1 as erratum 6268 corrects it.
const std::vector<std::uint8_t> sample_request = from_hex(
    "00 01 00 90"                          // Binding request, message length 144
    "21 12 a4 42"                          // magic cookie
    "78 ad 34 33 c6 ad 72 c0 29 da 41 2e"  // transaction id
    "00 1e 00 20"                          // USERHASH, 32 bytes
    "4a 3c f3 8f ef 69 92 bd a9 52 c6 78 04 17 da 0f"
    "24 81 94 15 56 9e 60 b2 05 c4 6e 41 40 7f 17 04"
    "00 15 00 29"  // NONCE, 41 bytes and 3 bytes of padding
    "6f 62 4d 61 74 4a 6f 73 32 41 41 41 43 66 2f 2f 34 39 39 6b 39 35 34 64"
    "36 4f 4c 33 34 6f 4c 39 46 53 54 76 79 36 34 73 41 00 00 00"
    "00 14 00 0b"  // REALM, 11 bytes and 1 byte of padding
    "65 78 61 6d 70 6c 65 2e 6f 72 67 00"
    "00 1d 00 04"  // PASSWORD-ALGORITHM (added by the erratum)
    "00 02 00 00"  // SHA-256, no parameters
    "00 1c 00 20"  // MESSAGE-INTEGRITY-SHA256, 32 bytes
    "b5 c7 bf 00 5b 6c 52 a2 1c 51 c5 e8 92 f8 19 24"
    "13 62 96 cb 92 7c 43 14 93 09 27 8c c6 51 8e 65");

// The vector as RFC 8489 published it, before the erratum.
const std::vector<std::uint8_t> published_request = from_hex(
    "00 01 00 9c 21 12 a4 42 78 ad 34 33 c6 ad 72 c0 29 da 41 2e"
    "00 1e 00 20"
    "4a 3c f3 8f ef 69 92 bd a9 52 c6 78 04 17 da 0f"
    "24 81 94 15 56 9e 60 b2 05 c4 6e 41 40 7f 17 04"
    "00 15 00 29"
    "6f 62 4d 61 74 4a 6f 73 32 41 41 41 43 66 2f 2f 34 39 39 6b 39 35 34 64"
    "36 4f 4c 33 34 6f 4c 39 46 53 54 76 79 36 34 73 41 00 00 00"
    "00 14 00 0b 65 78 61 6d 70 6c 65 2e 6f 72 67 00"
    "00 1c 00 20"
    "e4 68 6c 8f 0e de b5 90 13 e0 70 90 01 0a 93 ef"
    "cc bc cc 54 4c 0a 45 d9 f8 30 aa 6d 6f 73 5a 01");

// "<U+30DE><U+30C8><U+30EA><U+30C3><U+30AF><U+30B9>" in UTF-8; OpaqueString leaves it unchanged.
constexpr std::string_view username =
    "\xe3\x83\x9e\xe3\x83\x88\xe3\x83\xaa\xe3\x83\x83\xe3\x82\xaf\xe3\x82\xb9";
// OpaqueString (RFC 8265) of "The<U+00AD>M<U+00AA>tr<U+2168>", as Appendix B.1 gives it: tern
// has no string preparation, so the prepared bytes are written out.
constexpr std::string_view password = "TheMatrIX";
constexpr std::string_view realm = "example.org";
constexpr std::string_view nonce = "obMatJos2AAACf//499k954d6OL34oL9FSTvy64sA";
const TransactionId transaction_id{
    {0x78, 0xad, 0x34, 0x33, 0xc6, 0xad, 0x72, 0xc0, 0x29, 0xda, 0x41, 0x2e}};
constexpr std::array<std::uint8_t, 4> sha256_algorithm = {0x00, 0x02, 0x00, 0x00};

// §9.2.2: key = SHA-256(username ":" OpaqueString(realm) ":" OpaqueString(password)).
LongTermKey vector_key() {
    return derive_key(PasswordAlgorithm::sha256, username, realm, password);
}

TEST(Rfc8489B1, KeyIsSha256OfUsernameRealmPassword) {
    // hashlib.sha256("マトリックス:example.org:TheMatrIX".encode()), computed apart.
    const auto key = vector_key();
    EXPECT_EQ(key.algorithm(), PasswordAlgorithm::sha256);
    EXPECT_EQ(to_vector(key.bytes()),
              from_hex("dd295a613b9058c3c23d6dc7165bda072304d989c9d0af3a8c7e184b4f9bb4a1"));
}

TEST(Rfc8489B1, UserhashIsSha256OfUsernameAndRealm) {
    MessageView m;
    ASSERT_EQ(MessageView::parse(sample_request, m), ParseError::ok);
    ASSERT_TRUE(m.userhash());
    const auto hash = userhash(username, realm);
    EXPECT_EQ(to_vector(*m.userhash()), to_vector(hash));
}

TEST(Rfc8489B1, ParsesWithTheDocumentedAttributes) {
    MessageView m;
    ASSERT_EQ(MessageView::parse(sample_request, m), ParseError::ok);
    EXPECT_EQ(m.method(), Method::binding);
    EXPECT_EQ(m.message_class(), MessageClass::request);
    EXPECT_EQ(m.transaction_id(), transaction_id);
    EXPECT_EQ(m.bytes().size(), 164u);
    std::vector<std::uint16_t> types;
    for (std::size_t i = 0; i < m.attribute_count(); ++i) types.push_back(m.attribute(i).type);
    EXPECT_EQ(types, (std::vector<std::uint16_t>{attr::userhash, attr::nonce, attr::realm,
                                                 attr::password_algorithm,
                                                 attr::message_integrity_sha256}));
    EXPECT_FALSE(m.username());
    EXPECT_EQ(m.nonce(), nonce);
    EXPECT_EQ(m.realm(), realm);
    const auto algorithm = m.password_algorithm();
    ASSERT_TRUE(algorithm);
    EXPECT_EQ(algorithm->algorithm, static_cast<std::uint16_t>(PasswordAlgorithm::sha256));
    EXPECT_TRUE(algorithm->parameters.empty());
    EXPECT_EQ(m.find(attr::message_integrity_sha256)->offset, 128u);
    EXPECT_EQ(m.find(attr::message_integrity_sha256)->value.size(), 32u);
}

TEST(Rfc8489B1, MessageIntegritySha256VerifiesWithTheSha256Key) {
    MessageView m;
    ASSERT_EQ(MessageView::parse(sample_request, m), ParseError::ok);
    const auto key = vector_key();
    EXPECT_EQ(verify_message_integrity_sha256(m, key.bytes()), IntegrityResult::ok);
    // The MD5 key of the same credential (what a request without PASSWORD-ALGORITHM would
    // use) does not verify, nor does a key one bit off.
    const auto md5 = derive_key(PasswordAlgorithm::md5, username, realm, password);
    EXPECT_EQ(verify_message_integrity_sha256(m, md5.bytes()), IntegrityResult::mismatch);
    auto wrong = to_vector(key.bytes());
    wrong[31] ^= 1;
    EXPECT_EQ(verify_message_integrity_sha256(m, wrong), IntegrityResult::mismatch);
    EXPECT_EQ(verify_message_integrity(m, key.bytes()), IntegrityResult::absent);
}

TEST(Rfc8489B1, HasNoFingerprintAndOneAppendedVerifiesWithoutDisturbingTheMac) {
    MessageView m;
    ASSERT_EQ(MessageView::parse(sample_request, m), ParseError::ok);
    EXPECT_FALSE(m.fingerprint());
    EXPECT_EQ(verify_fingerprint(m), IntegrityResult::absent);

    // The same message with FINGERPRINT after MESSAGE-INTEGRITY-SHA256 (§14.7): the CRC
    // (zlib.crc32 ^ 0x5354554e, computed apart) and the MAC both verify (§14.6 takes the length
    // back to the end of MESSAGE-INTEGRITY-SHA256).
    std::array<std::uint8_t, 256> buffer{};
    MessageBuilder b(buffer, {Method::binding, MessageClass::request}, transaction_id);
    for (std::size_t i = 0; i < m.attribute_count(); ++i) {
        b.add_bytes(m.attribute(i).type, m.attribute(i).value);
    }
    b.add_fingerprint();
    ASSERT_TRUE(b.ok());
    MessageView with_fingerprint;
    ASSERT_EQ(MessageView::parse(b.finish(), with_fingerprint), ParseError::ok);
    EXPECT_EQ(with_fingerprint.fingerprint(), 0x2b9c4949u);
    EXPECT_EQ(verify_fingerprint(with_fingerprint), IntegrityResult::ok);
    EXPECT_EQ(verify_message_integrity_sha256(with_fingerprint, vector_key().bytes()),
              IntegrityResult::ok);
}

TEST(Rfc8489B1, CredentialStoreResolvesTheUserhashAndItsKeyVerifies) {
    const CredentialStore store(std::string(realm), {},
                                {{std::string(username), std::string(password), std::nullopt}});
    MessageView m;
    ASSERT_EQ(MessageView::parse(sample_request, m), ParseError::ok);
    const auto user = store.user_for_userhash(*m.userhash());
    ASSERT_TRUE(user);
    EXPECT_EQ(*user, username);
    const auto keys = store.keys_for(*user, PasswordAlgorithm::sha256);
    ASSERT_EQ(keys.size(), 1u);
    EXPECT_EQ(keys[0].key, vector_key());
    EXPECT_EQ(verify_message_integrity_sha256(m, keys[0].key.bytes()), IntegrityResult::ok);
}

TEST(Rfc8489B1, BuildsByteForByte) {
    std::array<std::uint8_t, 256> buffer{};
    MessageBuilder b(buffer, {Method::binding, MessageClass::request}, transaction_id);
    b.add_bytes(attr::userhash, userhash(username, realm));
    b.add_text(attr::nonce, nonce);
    b.add_text(attr::realm, realm);
    b.add_bytes(attr::password_algorithm, sha256_algorithm);
    b.add_message_integrity_sha256(vector_key().bytes());
    ASSERT_TRUE(b.ok());
    EXPECT_EQ(to_vector(b.finish()), sample_request);
}

TEST(Rfc8489B1, PublishedVectorIsRefusedForItsLength) {
    // Before the erratum: 0x9c counts the header too, so the length disagrees with the bytes.
    MessageView m;
    EXPECT_EQ(MessageView::parse(published_request, m), ParseError::length_mismatch);

    // Its MAC is HMAC-SHA256 over the published bytes as they stand, wrong length included.
    const auto key = vector_key();
    std::array<std::uint8_t, EVP_MAX_MD_SIZE> mac{};
    unsigned int mac_size = 0;
    const std::size_t covered = published_request.size() - 36;  // up to MI-SHA256
    ASSERT_NE(HMAC(EVP_sha256(), key.bytes().data(), static_cast<int>(key.bytes().size()),
                   published_request.data(), covered, mac.data(), &mac_size),
              nullptr);
    ASSERT_EQ(mac_size, 32u);
    EXPECT_EQ(std::vector<std::uint8_t>(mac.begin(), mac.begin() + 32),
              std::vector<std::uint8_t>(published_request.end() - 32, published_request.end()));
}

}  // namespace
}  // namespace tern::auth
