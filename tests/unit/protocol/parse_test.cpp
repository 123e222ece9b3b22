// MessageView::parse on hand-assembled messages: one test per malformation, plus the RFC 8489
// §14.5/§14.6 rule that attributes after the integrity attributes are skipped.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <initializer_list>
#include <string_view>
#include <vector>

#include "tern/protocol/integrity.hpp"
#include "tern/protocol/message.hpp"
#include "tern/protocol/message_builder.hpp"

namespace tern::protocol {
namespace {

using Bytes = std::vector<std::uint8_t>;

// Assembles messages without MessageBuilder, so malformed input can be written on purpose.
class Raw {
public:
    explicit Raw(std::uint16_t type = 0x0001) {
        bytes_ = {static_cast<std::uint8_t>(type >> 8),
                  static_cast<std::uint8_t>(type),
                  0,
                  0,
                  0x21,
                  0x12,
                  0xA4,
                  0x42,
                  1,
                  2,
                  3,
                  4,
                  5,
                  6,
                  7,
                  8,
                  9,
                  10,
                  11,
                  12};
    }
    // Appends a TLV whose length field is value.size(), padded with zeros to 4.
    Raw& add(std::uint16_t type, const Bytes& value) {
        return add_with_length(type, static_cast<std::uint16_t>(value.size()), value);
    }
    Raw& add(std::uint16_t type, std::string_view text) {
        return add(type, Bytes(text.begin(), text.end()));
    }
    Raw& add_zeros(std::uint16_t type, std::size_t length) { return add(type, Bytes(length, 0)); }
    // Writes `length` in the TLV header but `value` (padded) as the body.
    Raw& add_with_length(std::uint16_t type, std::uint16_t length, const Bytes& value) {
        push16(type);
        push16(length);
        bytes_.insert(bytes_.end(), value.begin(), value.end());
        while (bytes_.size() % 4 != 0) bytes_.push_back(0);
        return *this;
    }
    // The message with its header length set to the body size.
    Bytes bytes() const {
        Bytes out = bytes_;
        const auto length = out.size() - 20;
        out[2] = static_cast<std::uint8_t>(length >> 8);
        out[3] = static_cast<std::uint8_t>(length);
        return out;
    }

private:
    void push16(std::uint16_t v) {
        bytes_.push_back(static_cast<std::uint8_t>(v >> 8));
        bytes_.push_back(static_cast<std::uint8_t>(v));
    }
    Bytes bytes_;
};

ParseError parse(const Bytes& bytes) {
    MessageView m;
    return MessageView::parse(bytes, m);
}

ParseError parse_one(std::uint16_t type, const Bytes& value) {
    return parse(Raw().add(type, value).bytes());
}

Bytes v4_address_value(std::uint8_t family = 0x01) {
    return {0, family, 0x12, 0x34, 1, 2, 3, 4};
}
Bytes v6_address_value(std::uint8_t family = 0x02) {
    Bytes v{0, family, 0x12, 0x34};
    for (std::uint8_t i = 0; i < 16; ++i) v.push_back(i);
    return v;
}
Bytes error_code_value(std::uint8_t error_class, std::uint8_t number, std::string_view reason) {
    Bytes v(4 + reason.size(), 0);
    v[2] = error_class;
    v[3] = number;
    std::copy(reason.begin(), reason.end(), v.begin() + 4);
    return v;
}

std::span<const std::uint8_t> as_bytes(std::string_view text) {
    return {reinterpret_cast<const std::uint8_t*>(text.data()), text.size()};
}

TEST(Parse, EmptyMessageIsValid) {
    MessageView m;
    const auto bytes = Raw(0x0003).bytes();
    ASSERT_EQ(MessageView::parse(bytes, m), ParseError::ok);
    EXPECT_EQ(m.method(), Method::allocate);
    EXPECT_EQ(m.message_class(), MessageClass::request);
    EXPECT_EQ(m.attribute_count(), 0u);
    EXPECT_EQ(m.transaction_id().bytes[11], 12);
}

TEST(Parse, TruncatedHeader) {
    const auto bytes = Raw().bytes();
    for (std::size_t n = 0; n < 20; ++n) {
        EXPECT_EQ(parse(Bytes(bytes.begin(), bytes.begin() + static_cast<long>(n))),
                  ParseError::truncated_header)
            << n;
    }
}

TEST(Parse, TopBitsMustBeZero) {
    for (const std::uint8_t top : {0x40, 0x80, 0xC0}) {
        auto bytes = Raw().bytes();
        bytes[0] |= top;
        EXPECT_EQ(parse(bytes), ParseError::not_stun);
    }
}

TEST(Parse, BadMagicCookie) {
    for (std::size_t i = 4; i < 8; ++i) {
        auto bytes = Raw().bytes();
        bytes[i] ^= 0x01;
        EXPECT_EQ(parse(bytes), ParseError::bad_magic_cookie) << i;
    }
}

TEST(Parse, LengthNotMultipleOfFour) {
    auto bytes = Raw().add(attr::software, "abc").bytes();
    bytes.pop_back();
    bytes[3] = static_cast<std::uint8_t>(bytes.size() - 20);  // 7: consistent but unaligned
    EXPECT_EQ(parse(bytes), ParseError::bad_length);
}

TEST(Parse, LengthMismatch) {
    const auto good = Raw().add(attr::software, "abcd").bytes();
    auto longer = good;
    longer.insert(longer.end(), {0, 0, 0, 0});  // trailing bytes beyond the header length
    EXPECT_EQ(parse(longer), ParseError::length_mismatch);
    auto shorter = good;
    shorter[3] = 4;  // header claims less than the datagram holds
    EXPECT_EQ(parse(shorter), ParseError::length_mismatch);
    auto truncated = good;
    truncated.resize(truncated.size() - 4);  // header claims more than the datagram holds
    EXPECT_EQ(parse(truncated), ParseError::length_mismatch);
}

TEST(Parse, AttributeOverrun) {
    // Length field 9 but only 8 value bytes before the message ends.
    const auto bytes = Raw().add_with_length(attr::software, 9, Bytes(8, 'a')).bytes();
    EXPECT_EQ(parse(bytes), ParseError::attribute_overrun);
    // Length field 0xFFFF in a short message.
    EXPECT_EQ(parse(Raw().add_with_length(0x8050, 0xFFFF, Bytes(4, 0)).bytes()),
              ParseError::attribute_overrun);
    // Overrun by one byte in the last attribute: length 5 with 4 value bytes left.
    EXPECT_EQ(parse(Raw().add_with_length(attr::data, 5, Bytes(4, 0)).bytes()),
              ParseError::attribute_overrun);
}

TEST(Parse, DuplicateSingleValuedAttribute) {
    EXPECT_EQ(parse(Raw().add(attr::username, "a").add(attr::username, "b").bytes()),
              ParseError::duplicate_attribute);
    EXPECT_EQ(parse(Raw()
                        .add_zeros(attr::lifetime, 4)
                        .add(attr::software, "x")
                        .add_zeros(attr::lifetime, 4)
                        .bytes()),
              ParseError::duplicate_attribute);
    EXPECT_EQ(parse(Raw()
                        .add(attr::xor_mapped_address, v4_address_value())
                        .add(attr::xor_mapped_address, v4_address_value())
                        .bytes()),
              ParseError::duplicate_attribute);
}

TEST(Parse, RepeatableAndUnknownAttributesMayRepeat) {
    MessageView m;
    const auto bytes = Raw(0x0008)
                           .add(attr::xor_peer_address, v4_address_value())
                           .add(attr::xor_peer_address, v6_address_value())
                           .add(attr::xor_relayed_address, v4_address_value())
                           .add(attr::xor_relayed_address, v6_address_value())
                           .add(0x8050, "x")
                           .add(0x8050, "y")
                           .add(0x0050, "z")
                           .add(0x0050, "w")
                           .bytes();
    ASSERT_EQ(MessageView::parse(bytes, m), ParseError::ok);
    EXPECT_EQ(m.attribute_count(), 8u);
    std::array<TransportAddress, 4> peers{};
    EXPECT_EQ(m.xor_addresses(attr::xor_peer_address, peers), 2u);
    EXPECT_EQ(peers[0].family, AddressFamily::ipv4);
    EXPECT_EQ(peers[1].family, AddressFamily::ipv6);
    std::array<TransportAddress, 1> one{};
    EXPECT_EQ(m.xor_addresses(attr::xor_relayed_address, one), 2u);  // counts beyond out
    EXPECT_EQ(one[0].family, AddressFamily::ipv4);
    EXPECT_EQ(m.text(0x8050), "x");  // find() returns the first occurrence
}

TEST(Parse, AttributeAfterFingerprint) {
    EXPECT_EQ(parse(Raw().add_zeros(attr::fingerprint, 4).add(attr::software, "x").bytes()),
              ParseError::attribute_after_fingerprint);
    EXPECT_EQ(parse(Raw().add_zeros(attr::fingerprint, 4).add_zeros(attr::fingerprint, 4).bytes()),
              ParseError::attribute_after_fingerprint);
    // Also when the attribute after FINGERPRINT would otherwise be skipped (after MI).
    EXPECT_EQ(parse(Raw()
                        .add_zeros(attr::message_integrity, 20)
                        .add_zeros(attr::fingerprint, 4)
                        .add(0x8050, "x")
                        .bytes()),
              ParseError::attribute_after_fingerprint);
}

TEST(Parse, ZeroLengthWhereForbidden) {
    for (const std::uint16_t type :
         {attr::username, attr::realm, attr::nonce, attr::alternate_domain,
          attr::unknown_attributes, attr::error_code, attr::address_error_code,
          attr::password_algorithm, attr::password_algorithms, attr::mapped_address,
          attr::xor_peer_address, attr::lifetime, attr::even_port, attr::userhash,
          attr::message_integrity, attr::fingerprint}) {
        EXPECT_EQ(parse_one(type, {}), ParseError::bad_attribute_length) << attribute_name(type);
    }
}

TEST(Parse, ZeroLengthWhereAllowed) {
    for (const std::uint16_t type :
         {attr::software, attr::data, attr::padding, attr::mobility_ticket, attr::dont_fragment,
          attr::use_candidate, std::uint16_t{0x8050}}) {
        MessageView m;
        const auto bytes = Raw().add(type, Bytes{}).bytes();
        ASSERT_EQ(MessageView::parse(bytes, m), ParseError::ok) << attribute_name(type);
        ASSERT_TRUE(m.find(type));
        EXPECT_TRUE(m.find(type)->value.empty());
    }
    MessageView m;
    const auto bytes = Raw(0x0004).add(attr::mobility_ticket, Bytes{}).bytes();
    ASSERT_EQ(MessageView::parse(bytes, m), ParseError::ok);
    ASSERT_TRUE(m.mobility_ticket());  // RFC 8016: an empty ticket asks for one
    EXPECT_TRUE(m.mobility_ticket()->empty());
}

struct FixedLength {
    std::uint16_t type;
    std::size_t length;
};

TEST(Parse, WrongFixedLength) {
    const FixedLength rules[] = {
        {attr::message_integrity, 20},
        {attr::fingerprint, 4},
        {attr::userhash, 32},
        {attr::channel_number, 4},
        {attr::lifetime, 4},
        {attr::requested_transport, 4},
        {attr::requested_address_family, 4},
        {attr::additional_address_family, 4},
        {attr::change_request, 4},
        {attr::response_port, 4},
        {attr::connection_id, 4},
        {attr::priority, 4},
        {attr::even_port, 1},
        {attr::dont_fragment, 0},
        {attr::use_candidate, 0},
        {attr::reservation_token, 8},
        {attr::icmp, 8},
        {attr::ice_controlled, 8},
        {attr::ice_controlling, 8},
    };
    for (const auto& rule : rules) {
        EXPECT_EQ(parse_one(rule.type, Bytes(rule.length, 0)), ParseError::ok)
            << attribute_name(rule.type);
        for (const std::size_t wrong : {rule.length + 1, rule.length + 4}) {
            EXPECT_EQ(parse_one(rule.type, Bytes(wrong, 0)), ParseError::bad_attribute_length)
                << attribute_name(rule.type) << " length " << wrong;
        }
        if (rule.length > 0) {
            EXPECT_EQ(parse_one(rule.type, Bytes(rule.length - 1, 0)),
                      ParseError::bad_attribute_length)
                << attribute_name(rule.type);
        }
    }
}

TEST(Parse, VariableLengthLimits) {
    EXPECT_EQ(parse_one(attr::username, Bytes(512, 'u')), ParseError::ok);
    EXPECT_EQ(parse_one(attr::username, Bytes(513, 'u')), ParseError::bad_attribute_length);
    for (const std::uint16_t type : {attr::realm, attr::nonce, attr::software}) {
        EXPECT_EQ(parse_one(type, Bytes(763, 'r')), ParseError::ok) << attribute_name(type);
        EXPECT_EQ(parse_one(type, Bytes(764, 'r')), ParseError::bad_attribute_length)
            << attribute_name(type);
    }
    EXPECT_EQ(parse_one(attr::alternate_domain, Bytes(255, 'd')), ParseError::ok);
    EXPECT_EQ(parse_one(attr::alternate_domain, Bytes(256, 'd')), ParseError::bad_attribute_length);
    for (std::size_t n = 0; n <= 40; ++n) {
        const bool valid = n >= 16 && n <= 32 && n % 4 == 0;
        EXPECT_EQ(parse_one(attr::message_integrity_sha256, Bytes(n, 0)),
                  valid ? ParseError::ok : ParseError::bad_attribute_length)
            << n;
    }
    EXPECT_EQ(parse_one(attr::unknown_attributes, Bytes(2, 0)), ParseError::ok);
    EXPECT_EQ(parse_one(attr::unknown_attributes, Bytes(3, 0)), ParseError::bad_attribute_length);
    EXPECT_EQ(parse_one(attr::data, Bytes(1200, 0xAB)), ParseError::ok);
}

TEST(Parse, AddressFamilyAndLength) {
    for (const std::uint16_t type :
         {attr::mapped_address, attr::xor_mapped_address, attr::xor_peer_address,
          attr::xor_relayed_address, attr::alternate_server, attr::response_origin,
          attr::other_address}) {
        EXPECT_EQ(parse_one(type, v4_address_value()), ParseError::ok) << attribute_name(type);
        EXPECT_EQ(parse_one(type, v6_address_value()), ParseError::ok) << attribute_name(type);
        EXPECT_EQ(parse_one(type, v4_address_value(0x03)), ParseError::bad_attribute_value);
        EXPECT_EQ(parse_one(type, v4_address_value(0x00)), ParseError::bad_attribute_value);
        EXPECT_EQ(parse_one(type, v6_address_value(0x03)), ParseError::bad_attribute_value);
        // A family that disagrees with the length is a length error.
        EXPECT_EQ(parse_one(type, v4_address_value(0x02)), ParseError::bad_attribute_length);
        EXPECT_EQ(parse_one(type, v6_address_value(0x01)), ParseError::bad_attribute_length);
        EXPECT_EQ(parse_one(type, Bytes(12, 0)), ParseError::bad_attribute_length);
        EXPECT_EQ(parse_one(type, Bytes(4, 0)), ParseError::bad_attribute_length);
    }
}

TEST(Parse, ErrorCodeRules) {
    EXPECT_EQ(parse_one(attr::error_code, error_code_value(4, 1, "Bad")), ParseError::ok);
    EXPECT_EQ(parse_one(attr::error_code, error_code_value(3, 0, "")), ParseError::ok);
    EXPECT_EQ(parse_one(attr::error_code, error_code_value(6, 99, "x")), ParseError::ok);
    EXPECT_EQ(parse_one(attr::error_code, error_code_value(2, 0, "x")),
              ParseError::bad_attribute_value);
    EXPECT_EQ(parse_one(attr::error_code, error_code_value(7, 0, "x")),
              ParseError::bad_attribute_value);
    EXPECT_EQ(parse_one(attr::error_code, error_code_value(4, 100, "x")),
              ParseError::bad_attribute_value);
    EXPECT_EQ(parse_one(attr::error_code, Bytes{0, 0, 4}), ParseError::bad_attribute_length);
    EXPECT_EQ(parse_one(attr::error_code, error_code_value(4, 1, std::string(763, 'r'))),
              ParseError::ok);
    EXPECT_EQ(parse_one(attr::error_code, error_code_value(4, 1, std::string(764, 'r'))),
              ParseError::bad_attribute_length);

    MessageView m;
    const auto bytes =
        Raw(0x0113).add(attr::error_code, error_code_value(4, 38, "Stale Nonce")).bytes();
    ASSERT_EQ(MessageView::parse(bytes, m), ParseError::ok);
    ASSERT_TRUE(m.error_code());
    EXPECT_EQ(m.error_code()->code, 438);
    EXPECT_EQ(m.error_code()->reason, "Stale Nonce");
}

TEST(Parse, AddressErrorCodeRules) {
    Bytes good{0x02, 0, 4, 40, 'n', 'o'};
    EXPECT_EQ(parse_one(attr::address_error_code, good), ParseError::ok);
    EXPECT_EQ(parse_one(attr::address_error_code, Bytes{0x03, 0, 4, 40}),
              ParseError::bad_attribute_value);
    EXPECT_EQ(parse_one(attr::address_error_code, Bytes{0x01, 0, 1, 40}),
              ParseError::bad_attribute_value);
    EXPECT_EQ(parse_one(attr::address_error_code, Bytes{0x01, 0, 4}),
              ParseError::bad_attribute_length);
    MessageView m;
    const auto bytes = Raw(0x0113).add(attr::address_error_code, good).bytes();
    ASSERT_EQ(MessageView::parse(bytes, m), ParseError::ok);
    const auto value = m.address_error_code();
    ASSERT_TRUE(value);
    EXPECT_EQ(value->family, AddressFamily::ipv6);
    EXPECT_EQ(value->code, 440);
    EXPECT_EQ(value->reason, "no");
}

TEST(Parse, PasswordAlgorithmRules) {
    // Algorithm 2, no parameters.
    EXPECT_EQ(parse_one(attr::password_algorithm, Bytes{0, 2, 0, 0}), ParseError::ok);
    // Parameters of length 3, padded to 4 inside the value.
    EXPECT_EQ(parse_one(attr::password_algorithm, Bytes{0, 9, 0, 3, 1, 2, 3, 0}), ParseError::ok);
    // Parameter length that does not fill the value, or runs past it.
    EXPECT_EQ(parse_one(attr::password_algorithm, Bytes{0, 9, 0, 3, 1, 2, 3}),
              ParseError::bad_attribute_length);
    EXPECT_EQ(parse_one(attr::password_algorithm, Bytes{0, 1, 0, 0, 0, 0, 0, 0}),
              ParseError::bad_attribute_length);
    EXPECT_EQ(parse_one(attr::password_algorithm, Bytes{0, 1, 0, 8, 0, 0, 0, 0}),
              ParseError::bad_attribute_length);
    EXPECT_EQ(parse_one(attr::password_algorithm, Bytes{0, 1, 0}),
              ParseError::bad_attribute_length);

    EXPECT_EQ(parse_one(attr::password_algorithms, Bytes{0, 2, 0, 0, 0, 1, 0, 0}), ParseError::ok);
    EXPECT_EQ(parse_one(attr::password_algorithms, Bytes{0, 2, 0, 1, 7, 0, 0, 0, 0, 1, 0, 0}),
              ParseError::ok);
    EXPECT_EQ(parse_one(attr::password_algorithms, Bytes{0, 2, 0, 0, 0, 1}),
              ParseError::bad_attribute_length);
    EXPECT_EQ(parse_one(attr::password_algorithms, Bytes{0, 2, 0, 0, 0, 1, 0, 4}),
              ParseError::bad_attribute_length);

    MessageView m;
    const auto bytes =
        Raw()
            .add(attr::password_algorithm, Bytes{0, 9, 0, 3, 1, 2, 3, 0})
            .add(attr::password_algorithms, Bytes{0, 2, 0, 1, 7, 0, 0, 0, 0, 1, 0, 0})
            .bytes();
    ASSERT_EQ(MessageView::parse(bytes, m), ParseError::ok);
    const auto algorithm = m.password_algorithm();
    ASSERT_TRUE(algorithm);
    EXPECT_EQ(algorithm->algorithm, 9);
    EXPECT_EQ(Bytes(algorithm->parameters.begin(), algorithm->parameters.end()), (Bytes{1, 2, 3}));
    std::array<PasswordAlgorithmValue, 1> listed{};
    EXPECT_EQ(m.password_algorithms(listed), 2u);
    EXPECT_EQ(listed[0].algorithm, 2);
    EXPECT_EQ(Bytes(listed[0].parameters.begin(), listed[0].parameters.end()), (Bytes{7}));
    std::array<PasswordAlgorithmValue, 4> all{};
    ASSERT_EQ(m.password_algorithms(all), 2u);
    EXPECT_EQ(all[1].algorithm, 1);
    EXPECT_TRUE(all[1].parameters.empty());
}

TEST(Parse, TooManyAttributes) {
    Raw at_limit;
    for (std::size_t i = 0; i < max_attributes; ++i) at_limit.add(0x8050, "x");
    MessageView m;
    const auto ok_bytes = at_limit.bytes();
    ASSERT_EQ(MessageView::parse(ok_bytes, m), ParseError::ok);
    EXPECT_EQ(m.attribute_count(), max_attributes);
    at_limit.add(0x8051, "y");
    EXPECT_EQ(parse(at_limit.bytes()), ParseError::too_many_attributes);
}

TEST(Parse, FailedParseLeavesAnEmptyView) {
    MessageView m;
    const auto good = Raw().add(attr::software, "abc").bytes();
    ASSERT_EQ(MessageView::parse(good, m), ParseError::ok);
    ASSERT_EQ(m.attribute_count(), 1u);
    const auto bad = Raw().add(attr::username, "").bytes();
    ASSERT_NE(MessageView::parse(bad, m), ParseError::ok);
    EXPECT_EQ(m.attribute_count(), 0u);
    EXPECT_FALSE(m.software());
    EXPECT_TRUE(m.bytes().empty());
}

TEST(Parse, AttributesAfterMessageIntegrityAreIgnored) {
    // Build a signed message, then append attributes after MI by hand.
    std::array<std::uint8_t, 512> buffer{};
    const TransactionId id{{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}};
    MessageBuilder b(buffer, {Method::allocate, MessageClass::request}, id);
    b.add_lifetime(600);
    b.add_message_integrity(as_bytes("key"));
    ASSERT_TRUE(b.ok());
    Bytes signed_bytes(b.finish().begin(), b.finish().end());

    auto append = [](Bytes bytes, std::uint16_t type, const Bytes& value) {
        bytes.push_back(static_cast<std::uint8_t>(type >> 8));
        bytes.push_back(static_cast<std::uint8_t>(type));
        bytes.push_back(static_cast<std::uint8_t>(value.size() >> 8));
        bytes.push_back(static_cast<std::uint8_t>(value.size()));
        bytes.insert(bytes.end(), value.begin(), value.end());
        while (bytes.size() % 4 != 0) bytes.push_back(0);
        bytes[2] = static_cast<std::uint8_t>((bytes.size() - 20) >> 8);
        bytes[3] = static_cast<std::uint8_t>(bytes.size() - 20);
        return bytes;
    };
    // USERNAME (known), a duplicate LIFETIME, an invalid LIFETIME length, an unknown
    // comprehension-required type and a second MI: all skipped, none is an error.
    auto tampered = append(signed_bytes, attr::username, {'e', 'v', 'e'});
    tampered = append(tampered, attr::lifetime, {0, 0, 0, 0});
    tampered = append(tampered, attr::lifetime, {0, 0, 0});
    tampered = append(tampered, 0x0050, {1});
    tampered = append(tampered, attr::message_integrity, Bytes(20, 0));
    MessageView m;
    ASSERT_EQ(MessageView::parse(tampered, m), ParseError::ok);
    EXPECT_EQ(m.attribute_count(), 2u);
    EXPECT_FALSE(m.username());
    EXPECT_EQ(m.lifetime(), 600u);
    EXPECT_EQ(m.unknown_comprehension_required({}), 0u);
    EXPECT_EQ(verify_message_integrity(m, as_bytes("key")), IntegrityResult::ok);

    // MI-SHA256 and FINGERPRINT after MI are kept; after them only FINGERPRINT is.
    auto with_sha = append(signed_bytes, attr::message_integrity_sha256, Bytes(32, 0));
    with_sha = append(with_sha, attr::software, {'s'});
    with_sha = append(with_sha, attr::message_integrity, Bytes(20, 0));
    with_sha = append(with_sha, attr::fingerprint, {0, 0, 0, 0});
    ASSERT_EQ(MessageView::parse(with_sha, m), ParseError::ok);
    EXPECT_EQ(m.attribute_count(), 4u);
    EXPECT_TRUE(m.has(attr::message_integrity_sha256));
    EXPECT_TRUE(m.has(attr::fingerprint));
    EXPECT_FALSE(m.software());
    EXPECT_EQ(m.attribute(3).type, attr::fingerprint);
    EXPECT_EQ(verify_message_integrity(m, as_bytes("key")), IntegrityResult::ok);

    // A skipped attribute must still fit in the message.
    auto overrun = append(signed_bytes, attr::software, {'s'});
    overrun[overrun.size() - 5] = 8;  // SOFTWARE length 1 -> 8 with only 4 bytes left
    EXPECT_EQ(parse(overrun), ParseError::attribute_overrun);
}

TEST(Parse, MessageIntegrityAfterSha256IsIgnored) {
    const auto bytes = Raw()
                           .add_zeros(attr::message_integrity_sha256, 32)
                           .add_zeros(attr::message_integrity, 20)
                           .add(attr::username, "u")
                           .bytes();
    MessageView m;
    ASSERT_EQ(MessageView::parse(bytes, m), ParseError::ok);
    EXPECT_EQ(m.attribute_count(), 1u);
    EXPECT_FALSE(m.has(attr::message_integrity));
    EXPECT_EQ(verify_message_integrity(m, as_bytes("k")), IntegrityResult::absent);
}

TEST(Parse, UnknownComprehensionRequiredListing) {
    const auto bytes = Raw()
                           .add(0x0050, "a")
                           .add(attr::software, "known")
                           .add(0x8050, "optional")
                           .add(0x7FFF, "b")
                           .add(0x0050, "again")
                           .add(0x0002, "c")  // RESPONSE-ADDRESS: RFC 3489, not in our registry
                           .bytes();
    MessageView m;
    ASSERT_EQ(MessageView::parse(bytes, m), ParseError::ok);
    std::array<std::uint16_t, 8> out{};
    ASSERT_EQ(m.unknown_comprehension_required(out), 3u);
    EXPECT_EQ(out[0], 0x0050);
    EXPECT_EQ(out[1], 0x7FFF);
    EXPECT_EQ(out[2], 0x0002);
    std::array<std::uint16_t, 1> small{};
    EXPECT_EQ(m.unknown_comprehension_required(small), 3u);
    EXPECT_EQ(small[0], 0x0050);
}

TEST(Parse, TypedAccessors) {
    const auto bytes = Raw(0x0003)
                           .add(attr::lifetime, Bytes{0, 0, 0x0E, 0x10})
                           .add(attr::channel_number, Bytes{0x40, 0x01, 0xAA, 0xBB})
                           .add(attr::requested_transport, Bytes{17, 0, 0, 0})
                           .add(attr::requested_address_family, Bytes{0x02, 0, 0, 0})
                           .add(attr::additional_address_family, Bytes{0x02, 0, 0, 0})
                           .add(attr::even_port, Bytes{0x80})
                           .add(attr::reservation_token, Bytes{1, 2, 3, 4, 5, 6, 7, 8})
                           .add(attr::data, Bytes{9, 8, 7})
                           .add(attr::icmp, Bytes{0, 0, 3, 1, 0, 0, 5, 0xDC})
                           .add(attr::change_request, Bytes{0, 0, 0, 6})
                           .add(attr::response_port, Bytes{0x0D, 0x96, 0, 0})
                           .add(attr::connection_id, Bytes{0xDE, 0xAD, 0xBE, 0xEF})
                           .add(attr::userhash, Bytes(32, 0x5A))
                           .add(attr::unknown_attributes, Bytes{0x00, 0x50, 0x7F, 0xFF})
                           .add(attr::mapped_address, v4_address_value())
                           .add(attr::realm, "example.org")
                           .add(attr::nonce, "n0nce")
                           .bytes();
    MessageView m;
    ASSERT_EQ(MessageView::parse(bytes, m), ParseError::ok);
    EXPECT_EQ(m.lifetime(), 3600u);
    EXPECT_EQ(m.channel_number(), 0x4001);
    EXPECT_EQ(m.requested_transport(), 17);
    EXPECT_EQ(m.requested_address_family(), 0x02);
    EXPECT_EQ(m.additional_address_family(), 0x02);
    EXPECT_EQ(m.even_port(), true);
    EXPECT_EQ(m.reservation_token(), 0x0102030405060708u);
    ASSERT_TRUE(m.data());
    EXPECT_EQ(Bytes(m.data()->begin(), m.data()->end()), (Bytes{9, 8, 7}));
    ASSERT_TRUE(m.icmp());
    EXPECT_EQ(m.icmp()->type, 3);
    EXPECT_EQ(m.icmp()->code, 1);
    EXPECT_EQ(m.icmp()->error_data, 1500u);
    EXPECT_EQ(m.change_request(), 6u);
    EXPECT_EQ(m.response_port(), 3478);
    EXPECT_EQ(m.connection_id(), 0xDEADBEEFu);
    ASSERT_TRUE(m.userhash());
    EXPECT_EQ(m.userhash()->size(), 32u);
    std::array<std::uint16_t, 4> unknown{};
    ASSERT_EQ(m.unknown_attributes(unknown), 2u);
    EXPECT_EQ(unknown[0], 0x0050);
    EXPECT_EQ(unknown[1], 0x7FFF);
    EXPECT_EQ(m.mapped_address(), TransportAddress::v4({1, 2, 3, 4}, 0x1234));
    EXPECT_EQ(m.realm(), "example.org");
    EXPECT_EQ(m.nonce(), "n0nce");
    EXPECT_FALSE(m.username());
    EXPECT_FALSE(m.error_code());
    EXPECT_FALSE(m.fingerprint());
    EXPECT_FALSE(m.mobility_ticket());
    EXPECT_FALSE(m.xor_peer_address());
    EXPECT_FALSE(m.password_algorithm());
    EXPECT_EQ(m.attribute(m.attribute_count()).type, 0);  // out of range: empty view

    const auto no_reserve = Raw().add(attr::even_port, Bytes{0x7F}).bytes();
    ASSERT_EQ(MessageView::parse(no_reserve, m), ParseError::ok);
    EXPECT_EQ(m.even_port(), false);
}

TEST(Parse, MessageTypeCoding) {
    struct Case {
        std::uint16_t wire;
        Method method;
        MessageClass cls;
    };
    const Case cases[] = {
        {0x0001, Method::binding, MessageClass::request},
        {0x0101, Method::binding, MessageClass::success_response},
        {0x0111, Method::binding, MessageClass::error_response},
        {0x0003, Method::allocate, MessageClass::request},
        {0x0113, Method::allocate, MessageClass::error_response},
        {0x0016, Method::send, MessageClass::indication},
        {0x0017, Method::data, MessageClass::indication},
        {0x0009, Method::channel_bind, MessageClass::request},
        {0x3EEF, static_cast<Method>(0xFFF), MessageClass::request},
        {0x3FFF, static_cast<Method>(0xFFF), MessageClass::error_response},
    };
    for (const auto& c : cases) {
        MessageView m;
        const auto bytes = Raw(c.wire).bytes();
        ASSERT_EQ(MessageView::parse(bytes, m), ParseError::ok);
        EXPECT_EQ(m.method(), c.method) << std::hex << c.wire;
        EXPECT_EQ(m.message_class(), c.cls) << std::hex << c.wire;
        EXPECT_EQ((MessageType{c.method, c.cls}.encode()), c.wire);
    }
}

}  // namespace
}  // namespace tern::protocol
