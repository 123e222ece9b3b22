#include "tern/protocol/cidr.hpp"

#include <gtest/gtest.h>

namespace tern::protocol {
namespace {

TransportAddress ip(std::string_view text) {
    return *TransportAddress::parse_ip(text);
}

TEST(Cidr, CoveringClearsHostBitsAndClampsThePrefix) {
    EXPECT_EQ(Cidr::covering(ip("10.1.2.3"), 8), (Cidr{ip("10.0.0.0"), 8}));
    EXPECT_EQ(Cidr::covering(ip("10.1.2.3"), 99), (Cidr{ip("10.1.2.3"), 32}));
    EXPECT_EQ(Cidr::covering(ip("2001:db8::1"), 32), (Cidr{ip("2001:db8::"), 32}));
    EXPECT_EQ(Cidr::covering(ip("::ffff:10.0.0.0"), 104), (Cidr{ip("10.0.0.0"), 8}));
}

TEST(Cidr, ContainsEdgePrefixes) {
    const Cidr all4{ip("0.0.0.0"), 0};
    EXPECT_TRUE(all4.contains(ip("255.255.255.255")));
    EXPECT_FALSE(all4.contains(ip("::1")));
    const Cidr one{ip("192.0.2.7"), 32};
    EXPECT_TRUE(one.contains(ip("192.0.2.7")));
    EXPECT_FALSE(one.contains(ip("192.0.2.6")));
    const Cidr host6{ip("::1"), 128};
    EXPECT_TRUE(host6.contains(ip("::1")));
    EXPECT_FALSE(host6.contains(ip("::")));
    const Cidr odd{ip("172.16.0.0"), 12};
    EXPECT_TRUE(odd.contains(ip("172.31.255.255")));
    EXPECT_FALSE(odd.contains(ip("172.32.0.0")));
}

TEST(Cidr, MappedIpv6PeerMatchesTheIpv4Range) {
    const Cidr loopback{ip("127.0.0.0"), 8};
    EXPECT_TRUE(loopback.contains(ip("::ffff:127.0.0.1")));
    EXPECT_FALSE(loopback.contains(ip("::ffff:128.0.0.1")));
}

TEST(Cidr, PortIsIgnored) {
    auto a = ip("10.9.8.7");
    a.port = 3478;
    EXPECT_TRUE((Cidr{ip("10.0.0.0"), 8}).contains(a));
    EXPECT_EQ(Cidr::covering(a, 8).network.port, 0);
    EXPECT_EQ((Cidr{ip("fd00::"), 8}).to_string(), "fd00::/8");
}

}  // namespace
}  // namespace tern::protocol
