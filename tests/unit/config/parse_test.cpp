// The text forms below the YAML layer: addresses, listener URLs, CIDRs, port ranges, and the
// value types' own text output.
#include <gtest/gtest.h>

#include "tern/config/config.hpp"
#include "tern/config/parse.hpp"

namespace tern::config {
namespace {

using protocol::AddressFamily;

TransportAddress v4(std::uint8_t a, std::uint8_t b, std::uint8_t c, std::uint8_t d,
                    std::uint16_t port = 0) {
    return TransportAddress::v4({a, b, c, d}, port);
}

// An IPv6 address from its eight 16-bit groups, written out so the test does not lean on the
// parser it checks.
TransportAddress v6(std::array<std::uint16_t, 8> groups, std::uint16_t port = 0) {
    std::array<std::uint8_t, 16> bytes{};
    for (std::size_t i = 0; i < groups.size(); ++i) {
        bytes[2 * i] = static_cast<std::uint8_t>(groups[i] >> 8);
        bytes[2 * i + 1] = static_cast<std::uint8_t>(groups[i] & 0xFF);
    }
    return TransportAddress::v6(bytes, port);
}

Cidr cidr(std::string_view text) {
    const auto parsed = parse_cidr(text);
    EXPECT_TRUE(parsed.value) << text << ": " << parsed.error;
    return parsed.value.value_or(Cidr{});
}

TEST(ParseIpAddress, AcceptsIpv4Ipv6AndBracketedIpv6) {
    EXPECT_EQ(parse_ip_address("203.0.113.7").value, v4(203, 0, 113, 7));
    EXPECT_EQ(parse_ip_address("2001:db8::7").value, v6({0x2001, 0xdb8, 0, 0, 0, 0, 0, 7}));
    EXPECT_EQ(parse_ip_address("[2001:db8::7]").value, v6({0x2001, 0xdb8, 0, 0, 0, 0, 0, 7}));
}

TEST(ParseIpAddress, RefusesHostNamesPortsAndJunkWithAReason) {
    EXPECT_EQ(parse_ip_address("localhost").error,
              "'localhost' is not an IPv4 or IPv6 address (host names are not accepted)");
    EXPECT_EQ(parse_ip_address("192.0.2.1:80").error,
              "'192.0.2.1:80' has a port; expected an address alone");
    EXPECT_EQ(parse_ip_address("").error, "empty address");
    EXPECT_EQ(parse_ip_address("[192.0.2.1]").error,
              "'[192.0.2.1]' is not a bracketed IPv6 address");
    EXPECT_FALSE(parse_ip_address("192.0.2.256").value);
    EXPECT_FALSE(parse_ip_address("fe80::1%eth0").value);
}

TEST(ParseSocketAddress, ParsesIpv4AndBracketedIpv6WithPort) {
    EXPECT_EQ(parse_socket_address("127.0.0.1:9641", 1).value, v4(127, 0, 0, 1, 9641));
    EXPECT_EQ(parse_socket_address("[::1]:9641", 1).value, v6({0, 0, 0, 0, 0, 0, 0, 1}, 9641));
    EXPECT_EQ(parse_socket_address("0.0.0.0:65535", 1).value, v4(0, 0, 0, 0, 65535));
}

TEST(ParseSocketAddress, NamesWhatIsWrong) {
    EXPECT_EQ(parse_socket_address("127.0.0.1", 1).error,
              "missing port in '127.0.0.1' (expected ip:port)");
    EXPECT_EQ(parse_socket_address("::1:80", 1).error,
              "IPv6 addresses need brackets, e.g. [2001:db8::1]:3478; got '::1:80'");
    EXPECT_EQ(parse_socket_address("[::1", 1).error,
              "missing ']' after the IPv6 address in '[::1'");
    EXPECT_EQ(parse_socket_address("[::1]", 1).error, "missing port in '[::1]'");
    EXPECT_EQ(parse_socket_address("[::1]x80", 1).error, "unexpected 'x80' after '[::1]'");
    EXPECT_EQ(parse_socket_address("127.0.0.1:http", 1).error, "'http' is not a port number");
    EXPECT_EQ(parse_socket_address("127.0.0.1:", 1).error, "missing port number");
    EXPECT_EQ(parse_socket_address("127.0.0.1:0", 1).error, "port 0 is out of range 1-65535");
    EXPECT_EQ(parse_socket_address("127.0.0.1:65536", 1).error,
              "port 65536 is out of range 1-65535");
    EXPECT_EQ(parse_socket_address("127.0.0.1:99999999999999999999", 1).error,
              "port 9999999999999999... is out of range 1-65535");
}

TEST(ParseListenerUrl, ParsesEachTransport) {
    const auto udp = parse_listener_url("udp://0.0.0.0:3478");
    ASSERT_TRUE(udp.value) << udp.error;
    EXPECT_EQ(udp.value->transport, Transport::udp);
    EXPECT_EQ(udp.value->address, v4(0, 0, 0, 0, 3478));

    const auto tcp = parse_listener_url("tcp://[::]:3478");
    ASSERT_TRUE(tcp.value) << tcp.error;
    EXPECT_EQ(tcp.value->transport, Transport::tcp);
    EXPECT_EQ(tcp.value->address, v6({}, 3478));

    const auto tls = parse_listener_url("tls://192.0.2.1:5349");
    ASSERT_TRUE(tls.value) << tls.error;
    EXPECT_EQ(tls.value->transport, Transport::tls);
    EXPECT_EQ(tls.value->address, v4(192, 0, 2, 1, 5349));
}

TEST(ParseListenerUrl, PortZeroMeansKernelsChoice) {
    const auto listener = parse_listener_url("udp://127.0.0.1:0");
    ASSERT_TRUE(listener.value) << listener.error;
    EXPECT_EQ(listener.value->address.port, 0);
}

TEST(ParseListenerUrl, RefusesBadUrls) {
    EXPECT_EQ(parse_listener_url("sctp://0.0.0.0:3478").error,
              "unknown scheme 'sctp' (expected udp, tcp or tls)");
    EXPECT_EQ(parse_listener_url("UDP://0.0.0.0:3478").error,
              "unknown scheme 'UDP' (expected udp, tcp or tls)");
    EXPECT_EQ(parse_listener_url("0.0.0.0:3478").error,
              "expected scheme://address:port such as udp://0.0.0.0:3478, got '0.0.0.0:3478'");
    EXPECT_EQ(parse_listener_url("udp://0.0.0.0:70000").error,
              "port 70000 is out of range 1-65535 (or 0 to let the kernel choose)");
    EXPECT_EQ(parse_listener_url("udp://::1:3478").error,
              "IPv6 addresses need brackets, e.g. [2001:db8::1]:3478; got '::1:3478'");
    EXPECT_FALSE(parse_listener_url("udp://0.0.0.0:3478/path").value);
    EXPECT_FALSE(parse_listener_url("udp://example.org:3478").value);
}

TEST(ParseRelayPortRange, AcceptsRangesOfTwoOrMorePortsFrom1024) {
    EXPECT_EQ(parse_relay_port_range("49152-65535").value, (PortRange{49152, 65535}));
    EXPECT_EQ(parse_relay_port_range("1024-1025").value, (PortRange{1024, 1025}));
    EXPECT_EQ(parse_relay_port_range(" 50000 - 50010 ").value, (PortRange{50000, 50010}));
}

TEST(ParseRelayPortRange, NamesWhatIsWrong) {
    EXPECT_EQ(parse_relay_port_range("60000-50000").error, "first port 60000 > last 50000");
    EXPECT_EQ(parse_relay_port_range("1023-2000").error,
              "first port 1023 is below 1024; relay ports must not be privileged ports");
    EXPECT_EQ(parse_relay_port_range("50000-50000").error,
              "the range holds 1 port; at least 2 are needed");
    EXPECT_EQ(parse_relay_port_range("50000").error,
              "expected a port range such as 49152-65535, got '50000'");
    EXPECT_EQ(parse_relay_port_range("50000-70000").error, "port 70000 is out of range 1-65535");
    EXPECT_EQ(parse_relay_port_range("a-b").error, "'a' is not a port number");
}

TEST(CidrParse, BareAddressIsAHostRoute) {
    EXPECT_EQ(parse_cidr("192.0.2.1").value, (Cidr{v4(192, 0, 2, 1), 32}));
    EXPECT_EQ(parse_cidr("2001:db8::1").value, (Cidr{v6({0x2001, 0xdb8, 0, 0, 0, 0, 0, 1}), 128}));
}

TEST(CidrParse, RefusesLongPrefixesHostBitsAndJunk) {
    EXPECT_FALSE(parse_cidr("10.0.0.0/33").value);
    EXPECT_FALSE(parse_cidr("2001:db8::/129").value);
    EXPECT_FALSE(parse_cidr("10.0.0.1/8").value);
    EXPECT_FALSE(parse_cidr("10.0.0.0/").value);
    EXPECT_FALSE(parse_cidr("10.0.0.0/-1").value);
    EXPECT_FALSE(parse_cidr("10.0.0.0/8/8").value);
    EXPECT_FALSE(parse_cidr("").value);
    EXPECT_FALSE(parse_cidr("/8").value);
    EXPECT_EQ(parse_cidr("10.0.0.1/8").error,
              "'10.0.0.1/8' has host bits set; did you mean 10.0.0.0/8?");
    EXPECT_EQ(parse_cidr("10.0.0.0/33").error,
              "prefix length 33 is too long for IPv4 (at most 32) in '10.0.0.0/33'");
    EXPECT_EQ(parse_cidr("fd00::/200").error,
              "prefix length 200 is too long for IPv6 (at most 128) in 'fd00::/200'");
    EXPECT_EQ(parse_cidr("10.0.0.0/x").error, "'x' is not a prefix length in '10.0.0.0/x'");
}

TEST(CidrParse, Ipv4MappedRangeBecomesTheIpv4Range) {
    EXPECT_EQ(parse_cidr("::ffff:10.0.0.0/104").value, (Cidr{v4(10, 0, 0, 0), 8}));
    EXPECT_EQ(parse_cidr("::ffff:0:0/96").value, (Cidr{v4(0, 0, 0, 0), 0}));
}

TEST(CidrToString, PrintsNetworkAndPrefix) {
    EXPECT_EQ(cidr("10.0.0.0/8").to_string(), "10.0.0.0/8");
    EXPECT_EQ(cidr("fd00::/8").to_string(), "fd00::/8");
    EXPECT_EQ(cidr("192.0.2.1").to_string(), "192.0.2.1/32");
    EXPECT_EQ(cidr("::/0").to_string(), "::/0");
}

TEST(CidrContains, Ipv4ZeroPrefixHoldsEveryIpv4AddressAndNoIpv6One) {
    const Cidr all = cidr("0.0.0.0/0");
    EXPECT_TRUE(all.contains(v4(0, 0, 0, 0)));
    EXPECT_TRUE(all.contains(v4(255, 255, 255, 255)));
    EXPECT_TRUE(all.contains(v4(169, 254, 169, 254)));
    EXPECT_FALSE(all.contains(v6({0, 0, 0, 0, 0, 0, 0, 1})));
}

TEST(CidrContains, Ipv4HostPrefixHoldsOnlyThatAddress) {
    const Cidr host = cidr("192.0.2.77/32");
    EXPECT_TRUE(host.contains(v4(192, 0, 2, 77)));
    EXPECT_FALSE(host.contains(v4(192, 0, 2, 76)));
    EXPECT_FALSE(host.contains(v4(192, 0, 2, 78)));
    EXPECT_FALSE(host.contains(v4(64, 0, 2, 77)));  // differs in the top bit only
}

TEST(CidrContains, Ipv4PrefixNotOnAByteBoundary) {
    const Cidr private_172 = cidr("172.16.0.0/12");
    EXPECT_TRUE(private_172.contains(v4(172, 16, 0, 0)));
    EXPECT_TRUE(private_172.contains(v4(172, 31, 255, 255)));
    EXPECT_FALSE(private_172.contains(v4(172, 32, 0, 0)));
    EXPECT_FALSE(private_172.contains(v4(172, 15, 255, 255)));
}

TEST(CidrContains, Ipv6ZeroPrefixHoldsEveryIpv6AddressAndNoIpv4One) {
    const Cidr all = cidr("::/0");
    EXPECT_TRUE(all.contains(v6({})));
    EXPECT_TRUE(all.contains(v6({0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff})));
    EXPECT_FALSE(all.contains(v4(1, 2, 3, 4)));
}

TEST(CidrContains, Ipv6HostPrefixHoldsOnlyThatAddress) {
    const Cidr host = cidr("2001:db8::1/128");
    EXPECT_TRUE(host.contains(v6({0x2001, 0xdb8, 0, 0, 0, 0, 0, 1})));
    EXPECT_FALSE(host.contains(v6({0x2001, 0xdb8, 0, 0, 0, 0, 0, 0})));
    EXPECT_FALSE(host.contains(v6({0x2001, 0xdb8, 0, 0, 0, 0, 0, 2})));
    EXPECT_FALSE(host.contains(v6({0xa001, 0xdb8, 0, 0, 0, 0, 0, 1})));
}

TEST(CidrContains, Ipv6PrefixNotOnAByteBoundary) {
    const Cidr link_local = cidr("fe80::/10");
    EXPECT_TRUE(link_local.contains(v6({0xfe80, 0, 0, 0, 0, 0, 0, 1})));
    EXPECT_TRUE(link_local.contains(v6({0xfebf, 0xffff, 0, 0, 0, 0, 0, 0})));
    EXPECT_FALSE(link_local.contains(v6({0xfec0, 0, 0, 0, 0, 0, 0, 0})));
    EXPECT_FALSE(link_local.contains(v6({0xfe40, 0, 0, 0, 0, 0, 0, 0})));
}

TEST(CidrContains, IgnoresThePort) {
    EXPECT_TRUE(cidr("10.0.0.0/8").contains(v4(10, 1, 2, 3, 3478)));
    EXPECT_TRUE(cidr("::1").contains(v6({0, 0, 0, 0, 0, 0, 0, 1}, 443)));
}

TEST(CidrContains, Ipv4RangeAlsoHoldsTheIpv4MappedForm) {
    // A deny rule for 10.0.0.0/8 must not be dodged by writing the peer as ::ffff:10.0.0.1.
    const auto mapped = v6({0, 0, 0, 0, 0, 0xffff, 0x0a00, 0x0001});
    EXPECT_TRUE(cidr("10.0.0.0/8").contains(mapped));
    EXPECT_FALSE(cidr("11.0.0.0/8").contains(mapped));
    EXPECT_TRUE(cidr("::ffff:10.0.0.0/104").contains(v4(10, 9, 9, 9)));
}

TEST(CidrContains, HandBuiltCidrWithHostBitsStillMatchesItsNetwork) {
    const Cidr sloppy{v4(10, 1, 2, 3), 8};
    EXPECT_TRUE(sloppy.contains(v4(10, 200, 0, 1)));
    EXPECT_FALSE(sloppy.contains(v4(11, 1, 2, 3)));
}

TEST(ListenerToUrl, WritesIpv6InBrackets) {
    EXPECT_EQ((Listener{Transport::udp, v4(0, 0, 0, 0, 3478)}).to_url(), "udp://0.0.0.0:3478");
    EXPECT_EQ((Listener{Transport::tls, v6({0, 0, 0, 0, 0, 0, 0, 1}, 5349)}).to_url(),
              "tls://[::1]:5349");
    EXPECT_EQ((Listener{Transport::tcp, v6({}, 3478)}).to_url(), "tcp://[::]:3478");
}

TEST(ListenerToUrl, RoundTripsThroughTheParser) {
    for (const char* url : {"udp://192.0.2.1:3478", "tcp://[2001:db8::1]:80", "tls://[::]:0"}) {
        const auto listener = parse_listener_url(url);
        ASSERT_TRUE(listener.value) << url;
        EXPECT_EQ(listener.value->to_url(), url);
    }
}

TEST(EnumToString, SpellsEveryValueAsTheFileDoes) {
    EXPECT_STREQ(to_string(Transport::udp), "udp");
    EXPECT_STREQ(to_string(Transport::tcp), "tcp");
    EXPECT_STREQ(to_string(Transport::tls), "tls");
    EXPECT_STREQ(to_string(LogLevel::trace), "trace");
    EXPECT_STREQ(to_string(LogLevel::debug), "debug");
    EXPECT_STREQ(to_string(LogLevel::info), "info");
    EXPECT_STREQ(to_string(LogLevel::warn), "warn");
    EXPECT_STREQ(to_string(LogLevel::error), "error");
    EXPECT_STREQ(to_string(LogLevel::critical), "critical");
    EXPECT_STREQ(to_string(LogLevel::off), "off");
    EXPECT_STREQ(to_string(LogFormat::text), "text");
    EXPECT_STREQ(to_string(LogFormat::json), "json");
}

TEST(ConfigErrorToString, SourceLineKeyMessage) {
    EXPECT_EQ(
        (ConfigError{"tern.yaml", 12, "relay.ports", "first port 60000 > last 50000"}).to_string(),
        "tern.yaml:12: relay.ports: first port 60000 > last 50000");
}

TEST(ConfigErrorToString, LeavesOutLineZeroAndAnEmptyKey) {
    EXPECT_EQ((ConfigError{"tern.yaml", 0, "tls.certificate", "gone"}).to_string(),
              "tern.yaml: tls.certificate: gone");
    EXPECT_EQ((ConfigError{"tern.yaml", 3, "", "YAML syntax error: x"}).to_string(),
              "tern.yaml:3: YAML syntax error: x");
    EXPECT_EQ((ConfigError{"tern.yaml", 0, "", "not a regular file"}).to_string(),
              "tern.yaml: not a regular file");
}

TEST(QuoteForMessage, EscapesControlBytesAndCutsLongText) {
    EXPECT_EQ(quote_for_message("abc"), "'abc'");
    EXPECT_EQ(quote_for_message(std::string_view("a\nb\0c", 5)), "'a\\x0ab\\x00c'");
    EXPECT_EQ(quote_for_message(std::string(100, 'x')), "'" + std::string(64, 'x') + "...'");
}

}  // namespace
}  // namespace tern::config
