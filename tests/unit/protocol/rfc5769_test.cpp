// RFC 5769 test vectors: every sample parses with the documented fields, its MESSAGE-INTEGRITY
// and FINGERPRINT verify, and the builder reproduces it byte for byte.
#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "tern/protocol/integrity.hpp"
#include "tern/protocol/message.hpp"
#include "tern/protocol/message_builder.hpp"

#include "../hex.hpp"

namespace tern::protocol {
namespace {

using test::from_hex;

std::span<const std::uint8_t> as_bytes(std::string_view text) {
    return {reinterpret_cast<const std::uint8_t*>(text.data()), text.size()};
}

std::vector<std::uint8_t> to_vector(std::span<const std::uint8_t> bytes) {
    return {bytes.begin(), bytes.end()};
}

// RFC 5769 §2.1 Sample Request (SOFTWARE, PRIORITY, ICE-CONTROLLED, USERNAME, MI, FINGERPRINT).
const std::vector<std::uint8_t> sample_request = from_hex(
    "00 01 00 58 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae"
    "80 22 00 10 53 54 55 4e 20 74 65 73 74 20 63 6c 69 65 6e 74"
    "00 24 00 04 6e 00 01 ff"
    "80 29 00 08 93 2f f9 b1 51 26 3b 36"
    "00 06 00 09 65 76 74 6a 3a 68 36 76 59 20 20 20"
    "00 08 00 14 9a ea a7 0c bf d8 cb 56 78 1e f2 b5 b2 d3 f2 49 c1 b5 71 a2"
    "80 28 00 04 e5 7a 3b cf");

// RFC 5769 §2.2 Sample IPv4 Response.
const std::vector<std::uint8_t> sample_ipv4_response = from_hex(
    "01 01 00 3c 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae"
    "80 22 00 0b 74 65 73 74 20 76 65 63 74 6f 72 20"
    "00 20 00 08 00 01 a1 47 e1 12 a6 43"
    "00 08 00 14 2b 91 f5 99 fd 9e 90 c3 8c 74 89 f9 2a f9 ba 53 f0 6b e7 d7"
    "80 28 00 04 c0 7d 4c 96");

// RFC 5769 §2.3 Sample IPv6 Response.
const std::vector<std::uint8_t> sample_ipv6_response = from_hex(
    "01 01 00 48 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae"
    "80 22 00 0b 74 65 73 74 20 76 65 63 74 6f 72 20"
    "00 20 00 14 00 02 a1 47 01 13 a9 fa a5 d3 f1 79 bc 25 f4 b5 be d2 b9 d9"
    "00 08 00 14 a3 82 95 4e 4b e6 7b f1 17 84 c9 7c 82 92 c2 75 bf e3 ed 41"
    "80 28 00 04 c8 fb 0b 4c");

// RFC 5769 §2.4 Sample Request with Long-Term Authentication (USERNAME, NONCE, REALM, MI).
const std::vector<std::uint8_t> sample_long_term_request = from_hex(
    "00 01 00 60 21 12 a4 42 78 ad 34 33 c6 ad 72 c0 29 da 41 2e"
    "00 06 00 12 e3 83 9e e3 83 88 e3 83 aa e3 83 83 e3 82 af e3 82 b9 00 00"
    "00 15 00 1c 66 2f 2f 34 39 39 6b 39 35 34 64 36 4f 4c 33 34 6f 4c 39 46 53 54 76 79 36 34 73 "
    "41"
    "00 14 00 0b 65 78 61 6d 70 6c 65 2e 6f 72 67 00"
    "00 08 00 14 f6 70 24 65 6d d6 4a 3e 02 b8 e0 71 2e 85 c9 a2 8c a8 96 66");

constexpr std::string_view short_term_password = "VOkJxbRl1RmTxUk/WvJxBt";
constexpr std::string_view long_term_username =
    "\xe3\x83\x9e\xe3\x83\x88\xe3\x83\xaa\xe3\x83\x83\xe3\x82\xaf\xe3\x82\xb9";  // マトリックス
constexpr std::string_view long_term_realm = "example.org";
constexpr std::string_view long_term_nonce = "f//499k954d6OL34oL9FSTvy64sA";
// SASLprep("The<U+00AD>M<U+00AA>tr<U+2168>") as RFC 5769 §2.4 gives it.
constexpr std::string_view long_term_password = "TheMatrIX";

const TransactionId vector_id{
    {0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae}};
const TransactionId long_term_id{
    {0x78, 0xad, 0x34, 0x33, 0xc6, 0xad, 0x72, 0xc0, 0x29, 0xda, 0x41, 0x2e}};

std::array<std::uint8_t, 16> long_term_key() {
    std::string input;
    input.append(long_term_username).append(":").append(long_term_realm).append(":");
    input.append(long_term_password);
    std::array<std::uint8_t, 16> key{};
    unsigned int size = 0;
    EXPECT_EQ(EVP_Digest(input.data(), input.size(), key.data(), &size, EVP_md5(), nullptr), 1);
    EXPECT_EQ(size, 16u);
    return key;
}

std::vector<std::uint16_t> attribute_types(const MessageView& m) {
    std::vector<std::uint16_t> types;
    for (std::size_t i = 0; i < m.attribute_count(); ++i) types.push_back(m.attribute(i).type);
    return types;
}

TEST(Rfc5769, LongTermKeyIsTheDocumentedMd5) {
    // MD5("マトリックス:example.org:TheMatrIX"), computed independently with Python's hashlib.
    const auto key = long_term_key();
    EXPECT_EQ(to_vector(key), from_hex("e8 ca 7a d5 9d 5e b0 51 8e 31 29 11 d2 da b2 a9"));
}

TEST(Rfc5769, SampleRequestParses) {
    MessageView m;
    ASSERT_EQ(MessageView::parse(sample_request, m), ParseError::ok);
    EXPECT_EQ(m.method(), Method::binding);
    EXPECT_EQ(m.message_class(), MessageClass::request);
    EXPECT_EQ(m.transaction_id(), vector_id);
    EXPECT_EQ(m.bytes().size(), 108u);
    EXPECT_EQ(attribute_types(m), (std::vector<std::uint16_t>{
                                      attr::software, attr::priority, attr::ice_controlled,
                                      attr::username, attr::message_integrity, attr::fingerprint}));
    EXPECT_EQ(m.software(), "STUN test client");
    EXPECT_EQ(m.username(), "evtj:h6vY");
    ASSERT_TRUE(m.find(attr::priority));
    EXPECT_EQ(to_vector(m.find(attr::priority)->value), from_hex("6e 00 01 ff"));
    ASSERT_TRUE(m.find(attr::ice_controlled));
    EXPECT_EQ(to_vector(m.find(attr::ice_controlled)->value), from_hex("93 2f f9 b1 51 26 3b 36"));
    EXPECT_EQ(m.find(attr::username)->offset, 60u);
    EXPECT_EQ(m.find(attr::message_integrity)->offset, 76u);
    EXPECT_EQ(m.fingerprint(), 0xe57a3bcfu);
    EXPECT_FALSE(m.has(attr::realm));
    EXPECT_FALSE(m.xor_mapped_address());
    EXPECT_EQ(m.unknown_comprehension_required({}), 0u);
}

TEST(Rfc5769, SampleRequestVerifies) {
    MessageView m;
    ASSERT_EQ(MessageView::parse(sample_request, m), ParseError::ok);
    EXPECT_EQ(verify_message_integrity(m, as_bytes(short_term_password)), IntegrityResult::ok);
    EXPECT_EQ(verify_message_integrity(m, as_bytes("VOkJxbRl1RmTxUk/WvJxBu")),
              IntegrityResult::mismatch);
    EXPECT_EQ(verify_message_integrity_sha256(m, as_bytes(short_term_password)),
              IntegrityResult::absent);
    EXPECT_EQ(verify_fingerprint(m), IntegrityResult::ok);
}

TEST(Rfc5769, SampleRequestBuildsByteForByte) {
    std::array<std::uint8_t, 256> buffer{};
    MessageBuilder b(buffer, {Method::binding, MessageClass::request}, vector_id);
    b.set_padding_byte(0x20);
    b.add_text(attr::software, "STUN test client");
    b.add_u32(attr::priority, 0x6e0001ff);
    b.add_bytes(attr::ice_controlled, from_hex("93 2f f9 b1 51 26 3b 36"));
    b.add_text(attr::username, "evtj:h6vY");
    b.add_message_integrity(as_bytes(short_term_password));
    b.add_fingerprint();
    ASSERT_TRUE(b.ok());
    EXPECT_EQ(to_vector(b.finish()), sample_request);
}

TEST(Rfc5769, Ipv4ResponseParsesAndVerifies) {
    MessageView m;
    ASSERT_EQ(MessageView::parse(sample_ipv4_response, m), ParseError::ok);
    EXPECT_EQ(m.method(), Method::binding);
    EXPECT_EQ(m.message_class(), MessageClass::success_response);
    EXPECT_EQ(m.transaction_id(), vector_id);
    EXPECT_EQ(attribute_types(m),
              (std::vector<std::uint16_t>{attr::software, attr::xor_mapped_address,
                                          attr::message_integrity, attr::fingerprint}));
    EXPECT_EQ(m.software(), "test vector");
    const auto mapped = m.xor_mapped_address();
    ASSERT_TRUE(mapped);
    EXPECT_EQ(*mapped, TransportAddress::v4({192, 0, 2, 1}, 32853));
    EXPECT_EQ(mapped->to_string(), "192.0.2.1:32853");
    EXPECT_EQ(m.fingerprint(), 0xc07d4c96u);
    EXPECT_EQ(verify_message_integrity(m, as_bytes(short_term_password)), IntegrityResult::ok);
    EXPECT_EQ(verify_message_integrity(m, as_bytes("wrong")), IntegrityResult::mismatch);
    EXPECT_EQ(verify_fingerprint(m), IntegrityResult::ok);
}

TEST(Rfc5769, Ipv4ResponseBuildsByteForByte) {
    std::array<std::uint8_t, 256> buffer{};
    MessageBuilder b(buffer, {Method::binding, MessageClass::success_response}, vector_id);
    b.set_padding_byte(0x20);
    b.add_text(attr::software, "test vector");
    b.add_xor_address(attr::xor_mapped_address, TransportAddress::v4({192, 0, 2, 1}, 32853));
    b.add_message_integrity(as_bytes(short_term_password));
    b.add_fingerprint();
    ASSERT_TRUE(b.ok());
    EXPECT_EQ(to_vector(b.finish()), sample_ipv4_response);
}

const TransportAddress ipv6_mapped =
    TransportAddress::v6({0x20, 0x01, 0x0d, 0xb8, 0x12, 0x34, 0x56, 0x78, 0x00, 0x11, 0x22, 0x33,
                          0x44, 0x55, 0x66, 0x77},
                         32853);

TEST(Rfc5769, Ipv6ResponseParsesAndVerifies) {
    MessageView m;
    ASSERT_EQ(MessageView::parse(sample_ipv6_response, m), ParseError::ok);
    EXPECT_EQ(m.method(), Method::binding);
    EXPECT_EQ(m.message_class(), MessageClass::success_response);
    EXPECT_EQ(m.transaction_id(), vector_id);
    EXPECT_EQ(attribute_types(m),
              (std::vector<std::uint16_t>{attr::software, attr::xor_mapped_address,
                                          attr::message_integrity, attr::fingerprint}));
    EXPECT_EQ(m.software(), "test vector");
    const auto mapped = m.xor_mapped_address();
    ASSERT_TRUE(mapped);
    EXPECT_EQ(*mapped, ipv6_mapped);
    EXPECT_EQ(mapped->to_string(), "[2001:db8:1234:5678:11:2233:4455:6677]:32853");
    EXPECT_EQ(m.fingerprint(), 0xc8fb0b4cu);
    EXPECT_EQ(verify_message_integrity(m, as_bytes(short_term_password)), IntegrityResult::ok);
    EXPECT_EQ(verify_fingerprint(m), IntegrityResult::ok);
}

TEST(Rfc5769, Ipv6ResponseBuildsByteForByte) {
    std::array<std::uint8_t, 256> buffer{};
    MessageBuilder b(buffer, {Method::binding, MessageClass::success_response}, vector_id);
    b.set_padding_byte(0x20);
    b.add_text(attr::software, "test vector");
    b.add_xor_address(attr::xor_mapped_address, ipv6_mapped);
    b.add_message_integrity(as_bytes(short_term_password));
    b.add_fingerprint();
    ASSERT_TRUE(b.ok());
    EXPECT_EQ(to_vector(b.finish()), sample_ipv6_response);
}

TEST(Rfc5769, LongTermRequestParsesAndVerifies) {
    MessageView m;
    ASSERT_EQ(MessageView::parse(sample_long_term_request, m), ParseError::ok);
    EXPECT_EQ(m.method(), Method::binding);
    EXPECT_EQ(m.message_class(), MessageClass::request);
    EXPECT_EQ(m.transaction_id(), long_term_id);
    EXPECT_EQ(attribute_types(m),
              (std::vector<std::uint16_t>{attr::username, attr::nonce, attr::realm,
                                          attr::message_integrity}));
    EXPECT_EQ(m.username(), long_term_username);
    EXPECT_EQ(m.nonce(), long_term_nonce);
    EXPECT_EQ(m.realm(), long_term_realm);
    EXPECT_FALSE(m.fingerprint());
    EXPECT_EQ(verify_fingerprint(m), IntegrityResult::absent);
    const auto key = long_term_key();
    EXPECT_EQ(verify_message_integrity(m, key), IntegrityResult::ok);
    auto wrong = key;
    wrong[15] ^= 1;
    EXPECT_EQ(verify_message_integrity(m, wrong), IntegrityResult::mismatch);
}

TEST(Rfc5769, LongTermRequestBuildsByteForByte) {
    std::array<std::uint8_t, 256> buffer{};
    MessageBuilder b(buffer, {Method::binding, MessageClass::request}, long_term_id);
    b.add_text(attr::username, long_term_username);
    b.add_text(attr::nonce, long_term_nonce);
    b.add_text(attr::realm, long_term_realm);
    b.add_message_integrity(long_term_key());
    ASSERT_TRUE(b.ok());
    EXPECT_EQ(to_vector(b.finish()), sample_long_term_request);
}

TEST(Rfc5769, VerificationLeavesTheBytesUntouched) {
    auto bytes = sample_request;
    MessageView m;
    ASSERT_EQ(MessageView::parse(bytes, m), ParseError::ok);
    ASSERT_EQ(verify_message_integrity(m, as_bytes(short_term_password)), IntegrityResult::ok);
    ASSERT_EQ(verify_fingerprint(m), IntegrityResult::ok);
    EXPECT_EQ(bytes, sample_request);
}

}  // namespace
}  // namespace tern::protocol
