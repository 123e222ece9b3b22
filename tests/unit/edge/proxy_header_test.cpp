// PROXY protocol headers: v1 lines and v2 blocks as the spec writes them, every refusal, the
// earliest byte each verdict is known at, and write_proxy_v2 byte for byte and round trip.
#include <gtest/gtest.h>

#include <array>
#include <string>
#include <vector>

#include "hellos.hpp"
#include "tern/edge/proxy_header.hpp"

namespace tern::edge {
namespace {

using protocol::AddressFamily;
using protocol::TransportAddress;
using test::Bytes;
using test::concat;
using test::text_bytes;

TransportAddress address(std::string_view text) {
    const auto parsed = TransportAddress::parse(text);
    EXPECT_TRUE(parsed) << text;
    return parsed.value_or(TransportAddress{});
}

ProxyParse parse(const Bytes& bytes) {
    return parse_proxy_header(bytes);
}
ProxyParse parse(std::string_view text) {
    return parse_proxy_header(text_bytes(text));
}

// Every proper prefix is need_more, the whole is `expected`.
void expect_needs_all(const Bytes& bytes, ProxyStatus expected) {
    for (std::size_t n = 0; n < bytes.size(); ++n) {
        ASSERT_EQ(parse_proxy_header(std::span(bytes.data(), n)).status, ProxyStatus::need_more)
            << n;
    }
    EXPECT_EQ(parse(bytes).status, expected);
}

const Bytes v2_signature{0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

Bytes v2(std::uint8_t ver_cmd, std::uint8_t family, const Bytes& block) {
    Bytes header = v2_signature;
    header.insert(header.end(), {ver_cmd, family, static_cast<std::uint8_t>(block.size() >> 8),
                                 static_cast<std::uint8_t>(block.size() & 0xFF)});
    return concat({header, block});
}

TEST(ProxyV1, Tcp4) {
    const Bytes line = text_bytes("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n");
    const Bytes stream = concat({line, text_bytes("GET / HTTP/1.1\r\n")});
    expect_needs_all(line, ProxyStatus::complete);
    const ProxyParse p = parse(stream);
    ASSERT_EQ(p.status, ProxyStatus::complete);
    EXPECT_EQ(p.length, line.size());
    EXPECT_FALSE(p.local);
    EXPECT_EQ(p.source, address("192.168.0.1:56324"));
    EXPECT_EQ(p.destination, address("192.168.0.11:443"));
}

TEST(ProxyV1, Tcp6AndExtremes) {
    const ProxyParse p = parse("PROXY TCP6 2001:db8::1 ::ffff:10.0.0.1 0 65535\r\n");
    ASSERT_EQ(p.status, ProxyStatus::complete);
    EXPECT_EQ(p.source, address("[2001:db8::1]:0"));
    EXPECT_EQ(p.destination, address("[::ffff:10.0.0.1]:65535"));
    EXPECT_EQ(p.destination.family, AddressFamily::ipv6);
    // The spec's longest TCP6 line: 104 bytes.
    const std::string full = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
    const std::string longest = "PROXY TCP6 " + full + " " + full + " 65535 65535\r\n";
    ASSERT_EQ(longest.size(), 104u);
    EXPECT_EQ(parse(longest).status, ProxyStatus::complete);
    EXPECT_EQ(parse("PROXY TCP4 0.0.0.0 255.255.255.255 0 0\r\n").status, ProxyStatus::complete);
}

TEST(ProxyV1, UnknownKeepsTheConnectionsAddresses) {
    for (const std::string_view line :
         {"PROXY UNKNOWN\r\n", "PROXY UNKNOWN 1.2.3.4 whatever at all\r\n"}) {
        const ProxyParse p = parse(line);
        ASSERT_EQ(p.status, ProxyStatus::complete) << line;
        EXPECT_TRUE(p.local);
        EXPECT_EQ(p.length, line.size());
    }
    // The spec's worst case is exactly 107 bytes; one more byte and it is not v1 any more.
    const std::string full = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
    const std::string worst = "PROXY UNKNOWN " + full + " " + full + " 65535 65535\r\n";
    ASSERT_EQ(worst.size(), max_proxy_v1_bytes);
    EXPECT_EQ(parse(worst).status, ProxyStatus::complete);
    const std::string over = "PROXY UNKNOWN " + full + " " + full + " 65535 655350\r\n";
    EXPECT_EQ(parse(over).status, ProxyStatus::malformed);
    // 107 bytes with no CRLF yet: malformed at once, not need_more.
    EXPECT_EQ(parse(over.substr(0, 107)).status, ProxyStatus::malformed);
    EXPECT_EQ(parse(over.substr(0, 106)).status, ProxyStatus::need_more);
    // A CR at byte 107 could only end the line at 108.
    EXPECT_EQ(parse(over.substr(0, 106) + "\r").status, ProxyStatus::malformed);
}

TEST(ProxyV1, StrictFields) {
    for (const std::string_view line : {
             "PROXY TCP4 192.168.0.1  192.168.0.11 56324 443\r\n",  // two spaces
             "PROXY  TCP4 192.168.0.1 192.168.0.11 56324 443\r\n",  // two spaces
             "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443 \r\n",  // trailing space
             "PROXY TCP4 192.168.0.1 192.168.0.11 56324\r\n",       // missing port
             "PROXY TCP4 192.168.0.1 192.168.0.11 1 2 3\r\n",       // extra field
             "PROXY TCP4 192.168.0.1 192.168.0.11 056324 443\r\n",  // leading zero
             "PROXY TCP4 192.168.0.1 192.168.0.11 00 443\r\n",      // leading zero
             "PROXY TCP4 192.168.0.1 192.168.0.11 +80 443\r\n",     // sign
             "PROXY TCP4 192.168.0.1 192.168.0.11 65536 443\r\n",   // port range
             "PROXY TCP4 192.168.0.1 192.168.0.11 99999 443\r\n",   // port range
             "PROXY TCP4 192.168.0.1 192.168.0.11 123456 443\r\n",  // port digits
             "PROXY TCP4 192.168.000.1 192.168.0.11 1 2\r\n",       // leading zero
             "PROXY TCP4 192.168.0 192.168.0.11 1 2\r\n",           // short IPv4
             "PROXY TCP4 256.0.0.1 192.168.0.11 1 2\r\n",           // octet range
             "PROXY TCP4 ::1 192.168.0.11 1 2\r\n",                 // family mismatch
             "PROXY TCP6 192.168.0.1 ::1 1 2\r\n",                  // family mismatch
             "PROXY TCP6 [::1] ::1 1 2\r\n",                        // brackets
             "PROXY TCP6 ::1 1::2::3 1 2\r\n",                      // two double colons
             "PROXY TCP4\r\n",                                      // no addresses
             "PROXY TCP4 \r\n",                                     // no addresses
             "PROXY \r\n",                                          // no protocol
             "PROXY UNKNOWNX\r\n",                                  // not UNKNOWN
             "PROXY UNKNOWN\n",                                     // LF without CR
             "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",                    // LF without CR
             "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r\n",                // CR without LF
             "PROXY UNKNOWN\rX",                                    // CR without LF
         }) {
        EXPECT_EQ(parse(line).status, ProxyStatus::malformed) << line;
    }
}

TEST(ProxyV1, WrongProtocolWordIsRefusedBeforeTheLineEnds) {
    EXPECT_EQ(parse("PROXY T").status, ProxyStatus::need_more);
    EXPECT_EQ(parse("PROXY TCP").status, ProxyStatus::need_more);
    EXPECT_EQ(parse("PROXY TCP4").status, ProxyStatus::need_more);
    EXPECT_EQ(parse("PROXY UNK").status, ProxyStatus::need_more);
    EXPECT_EQ(parse("PROXY TCP5").status, ProxyStatus::malformed);
    EXPECT_EQ(parse("PROXY tcp4").status, ProxyStatus::malformed);
    EXPECT_EQ(parse("PROXY UDP4").status, ProxyStatus::malformed);
    EXPECT_EQ(parse("PROXY TCP4x").status, ProxyStatus::malformed);
    EXPECT_EQ(parse("PROXY TCP4 1.2.3.4 g").status, ProxyStatus::malformed);
    EXPECT_EQ(parse("PROXY TCP4 1.2.3.4 [").status, ProxyStatus::malformed);
}

TEST(ProxyHeader, NotProxyAtTheFirstDifferingByte) {
    EXPECT_EQ(parse(Bytes{}).status, ProxyStatus::need_more);
    EXPECT_EQ(parse("P").status, ProxyStatus::need_more);
    EXPECT_EQ(parse("PROXY").status, ProxyStatus::need_more);
    EXPECT_EQ(parse("PRX").status, ProxyStatus::not_proxy);
    EXPECT_EQ(parse("PROXY\r\n").status, ProxyStatus::not_proxy);
    EXPECT_EQ(parse("proxy ").status, ProxyStatus::not_proxy);
    EXPECT_EQ(parse("G").status, ProxyStatus::not_proxy);
    EXPECT_EQ(parse(Bytes{0x16}).status, ProxyStatus::not_proxy);
    EXPECT_EQ(parse(Bytes{0x00, 0x01}).status, ProxyStatus::not_proxy);
    EXPECT_EQ(parse(Bytes{0x0D, 0x0A, 0x0D}).status, ProxyStatus::need_more);
    EXPECT_EQ(parse(Bytes{0x0D, 0x0A, 0x0D, 0x0A, 0x01}).status, ProxyStatus::not_proxy);
    Bytes almost = v2_signature;
    almost[11] = 0x0D;
    EXPECT_EQ(parse(almost).status, ProxyStatus::not_proxy);
}

TEST(ProxyV2, Ipv4) {
    const Bytes header = v2(0x21, 0x11, {192, 0, 2, 1, 198, 51, 100, 7, 0xDC, 0x4A, 0x01, 0xBB});
    expect_needs_all(header, ProxyStatus::complete);
    const ProxyParse p = parse(concat({header, {0x16, 0x03, 0x01}}));
    ASSERT_EQ(p.status, ProxyStatus::complete);
    EXPECT_EQ(p.length, 28u);
    EXPECT_FALSE(p.local);
    EXPECT_EQ(p.source, address("192.0.2.1:56394"));
    EXPECT_EQ(p.destination, address("198.51.100.7:443"));
}

TEST(ProxyV2, Ipv6WithTlvsSkipped) {
    Bytes block(36, 0);
    block[0] = 0x20;
    block[1] = 0x01;
    block[15] = 0x01;
    block[16 + 15] = 0x02;
    block[32] = 0x13;
    block[33] = 0x88;
    block[34] = 0x01;
    block[35] = 0xBB;
    // PP2_TYPE_ALPN "h2" and a PP2_TYPE_NOOP of 3 bytes.
    const Bytes tlvs{0x01, 0x00, 0x02, 'h', '2', 0x04, 0x00, 0x03, 0, 0, 0};
    const Bytes header = v2(0x21, 0x21, concat({block, tlvs}));
    expect_needs_all(header, ProxyStatus::complete);
    const ProxyParse p = parse(header);
    ASSERT_EQ(p.status, ProxyStatus::complete);
    EXPECT_EQ(p.length, 16u + 36u + tlvs.size());
    EXPECT_EQ(p.source, address("[2001::1]:5000"));
    EXPECT_EQ(p.destination, address("[::2]:443"));
}

TEST(ProxyV2, LocalIgnoresTheAddressBlock) {
    for (const Bytes& header : {v2(0x20, 0x00, {}), v2(0x20, 0x11, Bytes(12, 7)),
                                v2(0x20, 0x31, Bytes(5, 1)), v2(0x20, 0xFF, {})}) {
        const ProxyParse p = parse(header);
        ASSERT_EQ(p.status, ProxyStatus::complete);
        EXPECT_TRUE(p.local);
        EXPECT_EQ(p.length, header.size());
    }
}

TEST(ProxyV2, FixedFieldsAreJudgedAsTheyArrive) {
    // Version 1 or 3, command 2..15: refused at byte 13.
    for (const std::uint8_t ver_cmd : {0x11, 0x31, 0x22, 0x2F, 0x01}) {
        Bytes b = v2_signature;
        b.push_back(ver_cmd);
        EXPECT_EQ(parse(b).status, ProxyStatus::malformed) << int{ver_cmd};
    }
    // PROXY with UNSPEC, UDP, UNIX or an unassigned family: refused at byte 14.
    for (const std::uint8_t family : {0x00, 0x12, 0x22, 0x31, 0x32, 0x10, 0x01, 0x41, 0x13}) {
        Bytes b = v2_signature;
        b.insert(b.end(), {0x21, family});
        EXPECT_EQ(parse(b).status, ProxyStatus::malformed) << int{family};
    }
    // A PROXY length too short for its address block: refused at byte 16.
    EXPECT_EQ(parse(v2(0x21, 0x11, Bytes(11, 0))).status, ProxyStatus::malformed);
    EXPECT_EQ(parse(v2(0x21, 0x21, Bytes(12, 0))).status, ProxyStatus::malformed);
    Bytes short_len = v2_signature;
    short_len.insert(short_len.end(), {0x21, 0x21, 0x00, 35});
    EXPECT_EQ(parse(short_len).status, ProxyStatus::malformed);
}

TEST(ProxyV2, CapOnTheDeclaredLength) {
    const std::size_t most = max_proxy_header_bytes - 16;
    Bytes at_cap = v2(0x21, 0x11, Bytes(most, 0));
    EXPECT_EQ(parse(at_cap).status, ProxyStatus::complete);
    EXPECT_EQ(parse(at_cap).length, max_proxy_header_bytes);
    // One more byte declared: too_large from the 16 fixed bytes alone.
    Bytes over = v2_signature;
    over.insert(over.end(), {0x21, 0x11, static_cast<std::uint8_t>((most + 1) >> 8),
                             static_cast<std::uint8_t>((most + 1) & 0xFF)});
    EXPECT_EQ(parse(over).status, ProxyStatus::too_large);
    Bytes huge = v2_signature;
    huge.insert(huge.end(), {0x20, 0x00, 0xFF, 0xFF});
    EXPECT_EQ(parse(huge).status, ProxyStatus::too_large);
}

TEST(ProxyV2Writer, Ipv4ByteForByte) {
    std::array<std::uint8_t, proxy_v2_max_bytes> out{};
    const std::size_t n =
        write_proxy_v2(out, address("192.0.2.1:56394"), address("198.51.100.7:443"));
    ASSERT_EQ(n, 28u);
    const Bytes expected =
        concat({v2_signature,
                {0x21, 0x11, 0x00, 0x0C, 192, 0, 2, 1, 198, 51, 100, 7, 0xDC, 0x4A, 0x01, 0xBB}});
    EXPECT_EQ(Bytes(out.begin(), out.begin() + 28), expected);
}

TEST(ProxyV2Writer, Ipv6ByteForByte) {
    std::array<std::uint8_t, proxy_v2_max_bytes> out{};
    const std::size_t n =
        write_proxy_v2(out, address("[2001:db8::1]:5000"), address("[2001:db8::2]:443"));
    ASSERT_EQ(n, 52u);
    Bytes expected = concat({v2_signature, {0x21, 0x21, 0x00, 0x24}});
    const Bytes src{0x20, 0x01, 0x0D, 0xB8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    Bytes dst = src;
    dst[15] = 2;
    expected = concat({expected, src, dst, {0x13, 0x88, 0x01, 0xBB}});
    EXPECT_EQ(Bytes(out.begin(), out.end()), expected);
}

TEST(ProxyV2Writer, MixedFamiliesMapIpv4IntoIpv6) {
    std::array<std::uint8_t, proxy_v2_max_bytes> out{};
    ASSERT_EQ(write_proxy_v2(out, address("203.0.113.9:1"), address("[2001:db8::2]:443")), 52u);
    EXPECT_EQ(out[13], 0x21);
    const Bytes mapped{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 203, 0, 113, 9};
    EXPECT_EQ(Bytes(out.begin() + 16, out.begin() + 32), mapped);
    const ProxyParse p = parse_proxy_header(out);
    ASSERT_EQ(p.status, ProxyStatus::complete);
    EXPECT_EQ(p.source, address("[::ffff:203.0.113.9]:1"));
    EXPECT_EQ(p.source.unmapped(), address("203.0.113.9:1"));
}

TEST(ProxyV2Writer, RoundTrips) {
    const std::vector<std::pair<std::string, std::string>> pairs{
        {"192.0.2.1:1", "192.0.2.2:2"},
        {"0.0.0.0:0", "255.255.255.255:65535"},
        {"[::]:0", "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535"},
        {"[2001:db8::7]:3478", "[::1]:443"},
    };
    for (const auto& [from, to] : pairs) {
        std::array<std::uint8_t, proxy_v2_max_bytes> out{};
        const std::size_t n = write_proxy_v2(out, address(from), address(to));
        const ProxyParse p = parse_proxy_header(std::span(out.data(), n));
        ASSERT_EQ(p.status, ProxyStatus::complete) << from;
        EXPECT_EQ(p.length, n);
        EXPECT_FALSE(p.local);
        EXPECT_EQ(p.source, address(from));
        EXPECT_EQ(p.destination, address(to));
    }
}

}  // namespace
}  // namespace tern::edge
