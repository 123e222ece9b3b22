// The smaller pieces of the codec: transport addresses, the attribute registry, error values,
// CRC-32, and the builder's buffer and integrity handling.
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "tern/protocol/attribute_type.hpp"
#include "tern/protocol/error.hpp"
#include "tern/protocol/integrity.hpp"
#include "tern/protocol/message.hpp"
#include "tern/protocol/message_builder.hpp"

namespace tern::protocol {
namespace {

using Bytes = std::vector<std::uint8_t>;

std::span<const std::uint8_t> as_bytes(std::string_view text) {
    return {reinterpret_cast<const std::uint8_t*>(text.data()), text.size()};
}

const TransactionId test_id{
    {0xA0, 0xA1, 0xA2, 0xA3, 0xA4, 0xA5, 0xA6, 0xA7, 0xA8, 0xA9, 0xAA, 0xAB}};

TEST(TransportAddress, ParseAndFormat) {
    const auto v4 = TransportAddress::parse("192.0.2.1:3478");
    ASSERT_TRUE(v4);
    EXPECT_EQ(*v4, TransportAddress::v4({192, 0, 2, 1}, 3478));
    EXPECT_EQ(v4->to_string(), "192.0.2.1:3478");
    EXPECT_EQ(v4->ip_string(), "192.0.2.1");
    EXPECT_EQ(v4->address_size(), 4u);

    const auto v6 = TransportAddress::parse("[2001:db8::1]:65535");
    ASSERT_TRUE(v6);
    EXPECT_EQ(v6->family, AddressFamily::ipv6);
    EXPECT_EQ(v6->port, 65535);
    EXPECT_EQ(v6->bytes[0], 0x20);
    EXPECT_EQ(v6->bytes[15], 0x01);
    EXPECT_EQ(v6->to_string(), "[2001:db8::1]:65535");
    EXPECT_EQ(v6->address_size(), 16u);

    for (const std::string_view bad :
         {"", "192.0.2.1", "192.0.2.1:", "192.0.2.1:65536", "192.0.2.1:-1", "192.0.2.1:+1",
          "192.0.2.1:80x", "2001:db8::1:80", "[2001:db8::1]", "[2001:db8::1]80", "[192.0.2.1]:80",
          "300.0.2.1:80", "host.example:80", "[::1:80", "[fe80::1%eth0]:80"}) {
        EXPECT_FALSE(TransportAddress::parse(bad)) << bad;
    }
}

TEST(TransportAddress, ParseIp) {
    EXPECT_EQ(TransportAddress::parse_ip("10.1.2.3"), TransportAddress::v4({10, 1, 2, 3}, 0));
    const auto v6 = TransportAddress::parse_ip("::1");
    ASSERT_TRUE(v6);
    EXPECT_EQ(v6->family, AddressFamily::ipv6);
    EXPECT_EQ(v6->bytes[15], 1);
    EXPECT_EQ(TransportAddress::parse_ip("[::1]"), v6);
    EXPECT_FALSE(TransportAddress::parse_ip("10.1.2.3:80"));
    EXPECT_FALSE(TransportAddress::parse_ip("[10.1.2.3]"));
    EXPECT_FALSE(TransportAddress::parse_ip(""));
    EXPECT_FALSE(TransportAddress::parse_ip(std::string(200, '1')));
    using namespace std::string_view_literals;
    EXPECT_FALSE(TransportAddress::parse_ip("10.1.2.3\0junk"sv));
    EXPECT_FALSE(TransportAddress::parse("10.1.2.3\0:80"sv));
}

TEST(TransportAddress, V4Mapped) {
    const auto mapped = TransportAddress::parse("[::ffff:192.0.2.9]:9");
    ASSERT_TRUE(mapped);
    EXPECT_TRUE(mapped->is_v4_mapped());
    EXPECT_EQ(mapped->unmapped(), TransportAddress::v4({192, 0, 2, 9}, 9));
    EXPECT_EQ(mapped->ip_string(), "::ffff:192.0.2.9");
    const auto plain = TransportAddress::parse("[::1]:9");
    EXPECT_FALSE(plain->is_v4_mapped());
    EXPECT_EQ(plain->unmapped(), *plain);
    const auto v4 = TransportAddress::v4({1, 2, 3, 4}, 5);
    EXPECT_FALSE(v4.is_v4_mapped());
    EXPECT_EQ(v4.unmapped(), v4);
    // ::ffff:0:0/96 only; ::a.b.c.d (deprecated compatible form) is not mapped.
    EXPECT_FALSE(TransportAddress::parse_ip("::192.0.2.9")->is_v4_mapped());
}

TEST(AttributeRegistry, KnownRepeatableAndNames) {
    const std::uint16_t known[] = {attr::mapped_address,
                                   attr::username,
                                   attr::message_integrity,
                                   attr::error_code,
                                   attr::unknown_attributes,
                                   attr::realm,
                                   attr::nonce,
                                   attr::message_integrity_sha256,
                                   attr::password_algorithm,
                                   attr::userhash,
                                   attr::xor_mapped_address,
                                   attr::password_algorithms,
                                   attr::alternate_domain,
                                   attr::software,
                                   attr::alternate_server,
                                   attr::fingerprint,
                                   attr::channel_number,
                                   attr::lifetime,
                                   attr::xor_peer_address,
                                   attr::data,
                                   attr::xor_relayed_address,
                                   attr::requested_address_family,
                                   attr::even_port,
                                   attr::requested_transport,
                                   attr::dont_fragment,
                                   attr::reservation_token,
                                   attr::additional_address_family,
                                   attr::address_error_code,
                                   attr::icmp,
                                   attr::change_request,
                                   attr::padding,
                                   attr::response_port,
                                   attr::response_origin,
                                   attr::other_address,
                                   attr::connection_id,
                                   attr::mobility_ticket,
                                   attr::priority,
                                   attr::use_candidate,
                                   attr::ice_controlled,
                                   attr::ice_controlling};
    int known_count = 0;
    for (std::uint32_t t = 0; t <= 0xFFFF; ++t) {
        known_count += is_known_attribute(static_cast<std::uint16_t>(t)) ? 1 : 0;
    }
    EXPECT_EQ(known_count, static_cast<int>(std::size(known)));
    for (const auto t : known) {
        EXPECT_TRUE(is_known_attribute(t)) << t;
        EXPECT_STRNE(attribute_name(t), "UNKNOWN") << t;
    }
    EXPECT_STREQ(attribute_name(attr::xor_mapped_address), "XOR-MAPPED-ADDRESS");
    EXPECT_STREQ(attribute_name(attr::unknown_attributes), "UNKNOWN-ATTRIBUTES");
    EXPECT_STREQ(attribute_name(attr::message_integrity_sha256), "MESSAGE-INTEGRITY-SHA256");
    EXPECT_STREQ(attribute_name(0x0002), "UNKNOWN");
    EXPECT_FALSE(is_known_attribute(0x0002));
    EXPECT_FALSE(is_known_attribute(0xFFFF));
    EXPECT_TRUE(is_repeatable_attribute(attr::xor_peer_address));
    EXPECT_TRUE(is_repeatable_attribute(attr::xor_relayed_address));
    EXPECT_FALSE(is_repeatable_attribute(attr::xor_mapped_address));
    EXPECT_FALSE(is_repeatable_attribute(attr::username));
    EXPECT_TRUE(is_comprehension_required(0x7FFF));
    EXPECT_FALSE(is_comprehension_required(0x8000));
}

TEST(ParseErrors, NamesAndErrorCode) {
    EXPECT_STREQ(to_string(ParseError::ok), "ok");
    EXPECT_STREQ(to_string(ParseError::duplicate_attribute), "duplicate attribute");
    const std::error_code ec = ParseError::bad_magic_cookie;
    EXPECT_EQ(&ec.category(), &parse_error_category());
    EXPECT_STREQ(ec.category().name(), "tern.protocol");
    EXPECT_EQ(ec.message(), "bad magic cookie");
    EXPECT_TRUE(ec);
    EXPECT_EQ(ec, ParseError::bad_magic_cookie);
    EXPECT_FALSE(std::error_code(ParseError::ok));
    for (int e = 0; e <= static_cast<int>(ParseError::truncated_channel_data); ++e) {
        EXPECT_STRNE(to_string(static_cast<ParseError>(e)), "unknown parse error") << e;
    }
}

TEST(Crc32, KnownValues) {
    EXPECT_EQ(crc32(as_bytes("")), 0x00000000u);
    EXPECT_EQ(crc32(as_bytes("123456789")), 0xCBF43926u);  // the CRC-32/ISO-HDLC check value
    EXPECT_EQ(crc32(as_bytes("The quick brown fox jumps over the lazy dog")), 0x414FA339u);
    // Chaining equals one pass.
    EXPECT_EQ(crc32(as_bytes("6789"), crc32(as_bytes("12345"))), 0xCBF43926u);
}

TEST(Builder, HeaderLengthStaysCurrent) {
    std::array<std::uint8_t, 128> buffer{};
    MessageBuilder b(buffer, {Method::allocate, MessageClass::request}, test_id);
    ASSERT_TRUE(b.ok());
    EXPECT_EQ(b.size(), 20u);
    EXPECT_EQ(buffer[3], 0);
    b.add_requested_transport(17);
    EXPECT_EQ(b.size(), 28u);
    EXPECT_EQ(buffer[3], 8);
    b.add_text(attr::software, "x");  // one byte, three of padding
    EXPECT_EQ(b.size(), 36u);
    EXPECT_EQ(buffer[3], 16);
    EXPECT_EQ(buffer[32], 'x');
    EXPECT_EQ(buffer[33], 0);
    MessageView m;
    ASSERT_EQ(MessageView::parse(b.finish(), m), ParseError::ok);
    EXPECT_EQ(m.requested_transport(), 17);
    EXPECT_EQ(m.software(), "x");
}

TEST(Builder, PaddingByte) {
    std::array<std::uint8_t, 64> buffer{};
    MessageBuilder b(buffer, {Method::binding, MessageClass::request}, test_id);
    b.set_padding_byte(0x20);
    b.add_even_port(true);
    ASSERT_TRUE(b.ok());
    EXPECT_EQ(Bytes(buffer.begin() + 24, buffer.begin() + 28), (Bytes{0x80, 0x20, 0x20, 0x20}));
}

TEST(Builder, OverflowWritesNothingAndSticks) {
    std::array<std::uint8_t, 40> buffer{};
    buffer.fill(0xEE);
    MessageBuilder b(buffer, {Method::binding, MessageClass::request}, test_id);
    b.add_lifetime(1);  // 28 bytes
    ASSERT_TRUE(b.ok());
    b.add_text(attr::software, "0123456789");  // would need 28 + 16 > 40
    EXPECT_FALSE(b.ok());
    EXPECT_EQ(b.size(), 0u);
    EXPECT_TRUE(b.finish().empty());
    EXPECT_EQ(buffer[28], 0xEE);  // nothing written past the last good attribute
    EXPECT_EQ(buffer[3], 8);      // header length untouched
    b.add_lifetime(2);            // would fit, but the builder stays failed
    EXPECT_FALSE(b.ok());
    EXPECT_EQ(buffer[28], 0xEE);
}

TEST(Builder, ExactFit) {
    std::array<std::uint8_t, 28> buffer{};
    MessageBuilder b(buffer, {Method::binding, MessageClass::request}, test_id);
    b.add_fingerprint();
    EXPECT_TRUE(b.ok());
    EXPECT_EQ(b.size(), 28u);
}

TEST(Builder, BufferSmallerThanHeader) {
    std::array<std::uint8_t, 19> buffer{};
    MessageBuilder b(buffer, {Method::binding, MessageClass::request}, test_id);
    EXPECT_FALSE(b.ok());
    EXPECT_TRUE(b.finish().empty());
    b.add_lifetime(1);
    EXPECT_FALSE(b.ok());
}

TEST(Builder, MessageSizeLimit) {
    // The header length field holds at most 65532 bytes of attributes.
    std::vector<std::uint8_t> buffer(70000);
    MessageBuilder b(buffer, {Method::send, MessageClass::indication}, test_id);
    b.add_bytes(attr::data, Bytes(65528, 1));
    ASSERT_TRUE(b.ok());
    EXPECT_EQ(b.size(), 20u + 65532u);
    MessageView m;
    ASSERT_EQ(MessageView::parse(b.finish(), m), ParseError::ok);
    b.add_flag(attr::dont_fragment);
    EXPECT_FALSE(b.ok());
}

TEST(Builder, RejectsValuesItsParserWouldReject) {
    std::array<std::uint8_t, 128> buffer{};
    {
        MessageBuilder b(buffer, {Method::binding, MessageClass::error_response}, test_id);
        b.add_error_code(299, "no");
        EXPECT_FALSE(b.ok());
    }
    {
        MessageBuilder b(buffer, {Method::binding, MessageClass::error_response}, test_id);
        b.add_error_code(700, "no");
        EXPECT_FALSE(b.ok());
    }
    for (const std::uint16_t code : {299, 700}) {
        MessageBuilder b(buffer, {Method::allocate, MessageClass::success_response}, test_id);
        b.add_address_error_code(AddressFamily::ipv6, code, "no");
        EXPECT_FALSE(b.ok()) << code;
    }
    {
        MessageBuilder b(buffer, {Method::binding, MessageClass::error_response}, test_id);
        b.add_unknown_attributes({});
        EXPECT_FALSE(b.ok());
    }
    for (const std::size_t length : {0, 12, 18, 36}) {
        MessageBuilder b(buffer, {Method::binding, MessageClass::request}, test_id);
        b.add_message_integrity_sha256(as_bytes("k"), length);
        EXPECT_FALSE(b.ok()) << length;
    }
}

// RFC 8656 §18.12: family (0x01/0x02), 13 reserved bits, class (3 bits), number, then the
// reason phrase padded to 4 bytes.
TEST(Builder, AddressErrorCodeLayout) {
    std::array<std::uint8_t, 128> buffer{};
    const auto attribute = [&](AddressFamily family, std::uint16_t code, std::string_view reason) {
        MessageBuilder b(buffer, {Method::allocate, MessageClass::success_response}, test_id);
        b.add_address_error_code(family, code, reason);
        const auto m = b.finish();
        MessageView v;
        EXPECT_EQ(MessageView::parse(m, v), ParseError::ok);
        const auto aec = v.address_error_code();
        EXPECT_TRUE(aec && aec->family == family && aec->code == code && aec->reason == reason);
        return m.size() < 20 ? Bytes{} : Bytes(m.begin() + 20, m.end());
    };
    // Header and value bytes, then the reason and its padding (size-then-copy: vector::insert
    // trips a GCC 12 -Wstringop-overflow false alarm).
    const auto wire = [](std::initializer_list<std::uint8_t> head, std::string_view reason) {
        Bytes out(head.size() + (reason.size() + 3) / 4 * 4, 0);
        std::copy(head.begin(), head.end(), out.data());
        std::copy(reason.begin(), reason.end(), out.data() + head.size());
        return out;
    };
    const std::string_view capacity = "Insufficient Capacity";  // 21 bytes: 3 of padding
    EXPECT_EQ(attribute(AddressFamily::ipv6, 508, capacity),
              wire({0x80, 0x01, 0x00, 4 + 21, 0x02, 0x00, 0x05, 0x08}, capacity));
    const std::string_view family = "Address Family not Supported";  // 28 bytes: none
    EXPECT_EQ(attribute(AddressFamily::ipv4, 440, family),
              wire({0x80, 0x01, 0x00, 4 + 28, 0x01, 0x00, 0x04, 0x28}, family));
}

TEST(Builder, TypedAttributesReadBack) {
    std::array<std::uint8_t, 256> buffer{};
    MessageBuilder b(buffer, {Method::allocate, MessageClass::error_response}, test_id);
    b.add_error_code(420, "Unknown Attribute");
    const std::uint16_t unknown[] = {0x0050, 0x7001, 0x0002};
    b.add_unknown_attributes(unknown);
    b.add_channel_number(0x4123);
    b.add_lifetime(0xFFFFFFFF);
    b.add_even_port(false);
    b.add_reservation_token(0x0123456789ABCDEFu);
    b.add_flag(attr::dont_fragment);
    b.add_address(attr::mapped_address, TransportAddress::v4({203, 0, 113, 5}, 1));
    const auto peer = *TransportAddress::parse("[2001:db8::42]:4242");
    b.add_xor_address(attr::xor_peer_address, peer);
    ASSERT_TRUE(b.ok());
    MessageView m;
    ASSERT_EQ(MessageView::parse(b.finish(), m), ParseError::ok);
    ASSERT_TRUE(m.error_code());
    EXPECT_EQ(m.error_code()->code, 420);
    EXPECT_EQ(m.error_code()->reason, "Unknown Attribute");
    std::array<std::uint16_t, 3> listed{};
    ASSERT_EQ(m.unknown_attributes(listed), 3u);
    EXPECT_EQ(listed[1], 0x7001);
    EXPECT_EQ(m.channel_number(), 0x4123);
    EXPECT_EQ(m.lifetime(), 0xFFFFFFFFu);
    EXPECT_EQ(m.even_port(), false);
    EXPECT_EQ(m.reservation_token(), 0x0123456789ABCDEFu);
    EXPECT_TRUE(m.has(attr::dont_fragment));
    EXPECT_EQ(m.mapped_address(), TransportAddress::v4({203, 0, 113, 5}, 1));
    EXPECT_EQ(m.xor_peer_address(), peer);
    // The XOR coding really changed the bytes on the wire.
    const auto raw = m.find(attr::xor_peer_address)->value;
    EXPECT_EQ(raw[2], (4242 >> 8) ^ 0x21);
    EXPECT_EQ(raw[4], 0x20 ^ 0x21);
    EXPECT_EQ(raw[19], 0x42 ^ 0xAB);
    // plain_address on an XOR attribute reads the raw (still masked) value.
    EXPECT_NE(m.plain_address(attr::xor_peer_address), peer);
}

Bytes reference_hmac(const EVP_MD* md, std::span<const std::uint8_t> key,
                     std::span<const std::uint8_t> data) {
    std::array<std::uint8_t, EVP_MAX_MD_SIZE> out{};
    unsigned int size = 0;
    static const std::uint8_t empty = 0;
    HMAC(md, key.empty() ? &empty : key.data(), static_cast<int>(key.size()), data.data(),
         data.size(), out.data(), &size);
    return {out.begin(), out.begin() + size};
}

TEST(Integrity, Sha256MatchesReferenceAndTruncates) {
    const auto key = as_bytes("a long-term sha256 key");
    for (const std::size_t length : {16, 20, 24, 28, 32}) {
        std::array<std::uint8_t, 128> buffer{};
        MessageBuilder b(buffer, {Method::refresh, MessageClass::request}, test_id);
        b.add_lifetime(0);
        b.add_message_integrity_sha256(key, length);
        ASSERT_TRUE(b.ok());
        const auto bytes = b.finish();
        // Reference: HMAC-SHA256 over header+LIFETIME with the length already covering MI.
        const auto expected = reference_hmac(EVP_sha256(), key, bytes.first(28));
        EXPECT_EQ(Bytes(bytes.begin() + 32, bytes.end()),
                  Bytes(expected.begin(), expected.begin() + static_cast<long>(length)));
        MessageView m;
        ASSERT_EQ(MessageView::parse(bytes, m), ParseError::ok);
        EXPECT_EQ(verify_message_integrity_sha256(m, key), IntegrityResult::ok);
        EXPECT_EQ(verify_message_integrity_sha256(m, as_bytes("other")), IntegrityResult::mismatch);
        EXPECT_EQ(verify_message_integrity(m, key), IntegrityResult::absent);
    }
}

TEST(Integrity, LengthAdjustmentWithFingerprintAfterIntegrity) {
    // MI is computed with the length ending at MI; FINGERPRINT added afterwards must not
    // disturb it, and MI-SHA256 after MI covers the MI attribute.
    const auto key = as_bytes("pw");
    std::array<std::uint8_t, 256> buffer{};
    MessageBuilder b(buffer, {Method::binding, MessageClass::request}, test_id);
    b.add_text(attr::username, "user");
    b.add_message_integrity(key);
    b.add_message_integrity_sha256(key);
    b.add_fingerprint();
    ASSERT_TRUE(b.ok());
    const Bytes bytes(b.finish().begin(), b.finish().end());
    MessageView m;
    ASSERT_EQ(MessageView::parse(bytes, m), ParseError::ok);
    EXPECT_EQ(verify_message_integrity(m, key), IntegrityResult::ok);
    EXPECT_EQ(verify_message_integrity_sha256(m, key), IntegrityResult::ok);
    EXPECT_EQ(verify_fingerprint(m), IntegrityResult::ok);

    // Independent recomputation of MI: header with length 8 + 24 = 32, then USERNAME.
    Bytes covered(bytes.begin(), bytes.begin() + 28);
    covered[2] = 0;
    covered[3] = 32;
    const auto expected = reference_hmac(EVP_sha1(), key, covered);
    EXPECT_EQ(Bytes(bytes.begin() + 32, bytes.begin() + 52), expected);
}

TEST(Integrity, EmptyKeyIsAKeyNotTheLastOne) {
    // OpenSSL reuses the previous key when given a null key; an empty key must not do that.
    std::array<std::uint8_t, 64> first{};
    MessageBuilder keyed(first, {Method::binding, MessageClass::request}, test_id);
    keyed.add_message_integrity(as_bytes("secret"));
    ASSERT_TRUE(keyed.ok());
    std::array<std::uint8_t, 64> second{};
    MessageBuilder unkeyed(second, {Method::binding, MessageClass::request}, test_id);
    unkeyed.add_message_integrity({});
    ASSERT_TRUE(unkeyed.ok());
    const auto expected = reference_hmac(EVP_sha1(), {}, unkeyed.finish().first(20));
    EXPECT_EQ(Bytes(second.begin() + 24, second.begin() + 44), expected);

    MessageView m;
    ASSERT_EQ(MessageView::parse(keyed.finish(), m), ParseError::ok);
    EXPECT_EQ(verify_message_integrity(m, as_bytes("secret")), IntegrityResult::ok);
    EXPECT_EQ(verify_message_integrity(m, {}), IntegrityResult::mismatch);
}

TEST(Integrity, FingerprintMismatchAndAbsent) {
    std::array<std::uint8_t, 64> buffer{};
    MessageBuilder b(buffer, {Method::binding, MessageClass::request}, test_id);
    b.add_fingerprint();
    ASSERT_TRUE(b.ok());
    Bytes bytes(b.finish().begin(), b.finish().end());
    MessageView m;
    ASSERT_EQ(MessageView::parse(bytes, m), ParseError::ok);
    EXPECT_EQ(verify_fingerprint(m), IntegrityResult::ok);
    EXPECT_EQ(m.fingerprint(), crc32(std::span(bytes).first(20)) ^ 0x5354554Eu);
    bytes[27] ^= 1;
    ASSERT_EQ(MessageView::parse(bytes, m), ParseError::ok);
    EXPECT_EQ(verify_fingerprint(m), IntegrityResult::mismatch);
    const MessageView empty;
    EXPECT_EQ(verify_fingerprint(empty), IntegrityResult::absent);
    EXPECT_EQ(verify_message_integrity(empty, as_bytes("k")), IntegrityResult::absent);
}

}  // namespace
}  // namespace tern::protocol
