#include "tern/allocation/peer_policy.hpp"
#include "peer_policy_fixtures.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace tern::allocation {
namespace {

using protocol::Cidr;
using protocol::TransportAddress;

TransportAddress ip(const char* text) {
    auto a = TransportAddress::parse_ip(text);
    EXPECT_TRUE(a.has_value()) << text;
    return a.value_or(TransportAddress{});
}

Cidr cidr(const char* address, std::uint8_t prefix) {
    return Cidr::covering(ip(address), prefix);
}

// Adds `delta` (+1 or -1) to the address as a big-endian integer of its family's width.
TransportAddress step(TransportAddress a, int delta) {
    const std::size_t n = a.address_size();
    for (std::size_t i = n; i-- > 0;) {
        if (delta > 0) {
            if (++a.bytes[i] != 0) break;
        } else {
            if (a.bytes[i]-- != 0) break;
        }
    }
    return a;
}

TransportAddress last_of(const Cidr& c) {
    TransportAddress a = c.network;
    const std::size_t bits = a.address_size() * 8;
    for (std::size_t b = c.prefix_length; b < bits; ++b) {
        a.bytes[b / 8] |= static_cast<std::uint8_t>(0x80u >> (b % 8));
    }
    return a;
}

using testing::default_policy;
using testing::mapped;

TEST(PeerPolicy, DefaultRangeTableIsExactlyTheDocumentedList) {
    std::set<std::string> got;
    for (const auto& c : PeerPolicy::default_refused_ranges()) got.insert(c.to_string());
    const std::set<std::string> want = {"0.0.0.0/8",
                                        "10.0.0.0/8",
                                        "100.64.0.0/10",
                                        "127.0.0.0/8",
                                        "169.254.0.0/16",
                                        "172.16.0.0/12",
                                        "192.0.0.0/24",
                                        "192.0.2.0/24",
                                        "192.31.196.0/24",
                                        "192.52.193.0/24",
                                        "192.88.99.0/24",
                                        "192.168.0.0/16",
                                        "192.175.48.0/24",
                                        "198.18.0.0/15",
                                        "198.51.100.0/24",
                                        "203.0.113.0/24",
                                        "224.0.0.0/4",
                                        "240.0.0.0/4",
                                        "::/3",
                                        "4000::/2",
                                        "8000::/1",
                                        "2001::/23",
                                        "2001:db8::/32",
                                        "2002::/16",
                                        "2620:4f:8000::/48",
                                        "3fff::/20"};
    EXPECT_EQ(got, want);
    EXPECT_EQ(PeerPolicy::default_refused_ranges().size(), want.size());
}

// The ranges refused before the registries were taken in whole: each is still refused at both
// ends (and in mapped form for IPv4), though most IPv6 ones are now inside ::/3 or 8000::/1.
TEST(PeerPolicy, EveryRangeRefusedBeforeIsStillRefused) {
    const std::vector<Cidr> before = {
        cidr("0.0.0.0", 8),      cidr("10.0.0.0", 8),     cidr("100.64.0.0", 10),
        cidr("127.0.0.0", 8),    cidr("169.254.0.0", 16), cidr("172.16.0.0", 12),
        cidr("192.0.0.0", 24),   cidr("192.0.2.0", 24),   cidr("192.88.99.0", 24),
        cidr("192.168.0.0", 16), cidr("198.18.0.0", 15),  cidr("198.51.100.0", 24),
        cidr("203.0.113.0", 24), cidr("224.0.0.0", 4),    cidr("240.0.0.0", 4),
        cidr("::", 128),         cidr("::1", 128),        cidr("::", 96),
        cidr("64:ff9b::", 96),   cidr("64:ff9b:1::", 48), cidr("2001::", 23),
        cidr("2001:db8::", 32),  cidr("2002::", 16),      cidr("100::", 64),
        cidr("fc00::", 7),       cidr("fe80::", 10),      cidr("ff00::", 8)};
    for (const auto& range : before) {
        for (const auto& a : {range.network, last_of(range)}) {
            EXPECT_EQ(default_policy().check(a), PeerVerdict::special_purpose)
                << range.to_string() << " at " << a.ip_string();
            if (a.family == protocol::AddressFamily::ipv4) {
                EXPECT_EQ(default_policy().check(mapped(a)), PeerVerdict::special_purpose)
                    << range.to_string() << " at " << mapped(a).ip_string();
            }
        }
    }
}

// The blocks an outside audit found open, each at the address it tried and at both ends.
TEST(PeerPolicy, AuditedSpecialPurposeBlocksAreRefusedByDefault) {
    struct Case {
        const char* address;
        Cidr block;
    };
    const Case cases[] = {
        {"fec0::1", cidr("fec0::", 10)},                  // site-local (deprecated)
        {"::ffff:0:a00:1", cidr("::ffff:0:0:0", 96)},     // SIIT IPv4-translated, 10.0.0.1
        {"::ffff:0:808:808", cidr("::ffff:0:0:0", 96)},   // SIIT IPv4-translated, 8.8.8.8
        {"5f00::1", cidr("5f00::", 16)},                  // SRv6 SIDs
        {"3fff::1", cidr("3fff::", 20)},                  // documentation (RFC 9637)
        {"2620:4f:8000::1", cidr("2620:4f:8000::", 48)},  // AS112 direct delegation
        {"100:0:0:1::1", cidr("100:0:0:1::", 64)},        // dummy IPv6 prefix
        {"192.31.196.1", cidr("192.31.196.0", 24)},       // AS112-v4
        {"192.52.193.1", cidr("192.52.193.0", 24)},       // AMT
        {"192.175.48.1", cidr("192.175.48.0", 24)},       // AS112 direct delegation
    };
    for (const auto& c : cases) {
        for (const auto& a : {ip(c.address), c.block.network, last_of(c.block)}) {
            EXPECT_EQ(default_policy().check(a), PeerVerdict::special_purpose)
                << c.address << ": " << a.ip_string();
            EXPECT_FALSE(default_policy().permits(a)) << a.ip_string();
            if (a.family == protocol::AddressFamily::ipv4) {
                EXPECT_EQ(default_policy().check(mapped(a)), PeerVerdict::special_purpose)
                    << mapped(a).ip_string();
            }
        }
    }
}

// Every IPv6 address outside 2000::/3 is refused, except the IPv4 space ::ffff:0:0/96 (judged
// as IPv4); inside 2000::/3 only the special-purpose blocks are. Probed at the first, a middle
// and the last address of every /16.
TEST(PeerPolicy, Ipv6OutsideGlobalUnicastIsRefused) {
    int refused = 0;
    for (unsigned top = 0; top <= 0xFFFF; ++top) {
        if (top >= 0x2000 && top <= 0x3FFF) continue;
        std::array<std::uint8_t, 16> first{};
        first[0] = static_cast<std::uint8_t>(top >> 8);
        first[1] = static_cast<std::uint8_t>(top);
        std::array<std::uint8_t, 16> middle = first;
        middle[2] = 0x80;
        middle[15] = 1;
        std::array<std::uint8_t, 16> last = first;
        std::fill(last.begin() + 2, last.end(), 0xFF);
        for (const auto& bytes : {first, middle, last}) {
            const auto a = TransportAddress::v6(bytes, 0);
            if (default_policy().check(a) == PeerVerdict::special_purpose) {
                ++refused;
            } else {
                ADD_FAILURE() << a.ip_string() << " is allowed";
            }
        }
    }
    EXPECT_EQ(refused, 3 * (0x10000 - 0x2000));
    EXPECT_EQ(default_policy().check(ip("::ffff:8.8.8.8")), PeerVerdict::allowed);
    EXPECT_EQ(default_policy().check(ip("::ffff:10.0.0.1")), PeerVerdict::special_purpose);
    EXPECT_EQ(default_policy().check(ip("1fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")),
              PeerVerdict::special_purpose);
    EXPECT_EQ(default_policy().check(ip("2000::")), PeerVerdict::allowed);
    EXPECT_EQ(default_policy().check(ip("3fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")),
              PeerVerdict::allowed);
    EXPECT_EQ(default_policy().check(ip("4000::")), PeerVerdict::special_purpose);
}

// relay.allow_peers opens the newly refused ranges too, and only what it lists.
TEST(PeerPolicy, AllowPeersOpensTheRegistryBlocks) {
    const std::vector<Cidr> allow = {cidr("fec0::", 10), cidr("192.31.196.0", 24),
                                     cidr("5f00::", 16), cidr("::ffff:0:0:0", 96)};
    const PeerPolicy p(allow, {}, {});
    for (const char* text : {"fec0::1", "feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "192.31.196.1",
                             "::ffff:192.31.196.255", "5f00::1", "::ffff:0:a00:1"}) {
        EXPECT_EQ(p.check(ip(text)), PeerVerdict::allowed) << text;
    }
    for (const char* text : {"fe80::1", "192.52.193.1", "5f01::1", "::ffff:1:a00:1", "10.0.0.1"}) {
        EXPECT_EQ(p.check(ip(text)), PeerVerdict::special_purpose) << text;
    }
}

// Prefixes that embed an IPv4 address a translator or relay router would reach: a private
// IPv4 address must not be reachable through them.
TEST(PeerPolicy, Ipv4EmbeddingPrefixesAreRefused) {
    for (const char* text : {"64:ff9b:1::a00:1",                      // local-use NAT64 of 10.0.0.1
                             "2002:a00:1::1",                         // 6to4 for 10.0.0.1
                             "2001:0:4136:e378:8000:63bf:f5ff:fffe",  // Teredo
                             "2001:db8::1"}) {
        const auto a = TransportAddress::parse_ip(text);
        ASSERT_TRUE(a) << text;
        EXPECT_EQ(default_policy().check(*a), PeerVerdict::special_purpose) << text;
    }
    // Ordinary global unicast next door stays allowed.
    EXPECT_EQ(default_policy().check(*TransportAddress::parse_ip("2001:4860::8888")),
              PeerVerdict::allowed);
    EXPECT_EQ(default_policy().check(*TransportAddress::parse_ip("2003::1")), PeerVerdict::allowed);
}

// Every default range is refused at its first and last address (and in mapped form for IPv4);
// the addresses just outside are judged by an independent oracle (Cidr::contains over the
// whole list), because some ranges touch each other.
TEST(PeerPolicy, EveryDefaultRangeRefusedAtBothEdges) {
    const auto ranges = PeerPolicy::default_refused_ranges();
    auto covered = [&](const TransportAddress& a) {
        return std::any_of(ranges.begin(), ranges.end(),
                           [&](const Cidr& c) { return c.contains(a); });
    };
    int outside_allowed = 0;
    for (const auto& range : ranges) {
        SCOPED_TRACE(range.to_string());
        const TransportAddress first = range.network;
        const TransportAddress last = last_of(range);
        for (const auto& inside : {first, last}) {
            SCOPED_TRACE(inside.ip_string());
            EXPECT_EQ(default_policy().check(inside), PeerVerdict::special_purpose);
            if (inside.family == protocol::AddressFamily::ipv4) {
                EXPECT_EQ(default_policy().check(mapped(inside)), PeerVerdict::special_purpose);
            }
        }
        const bool at_bottom = std::all_of(first.bytes.begin(), first.bytes.end(),
                                           [](std::uint8_t b) { return b == 0; });
        if (!at_bottom) {
            const auto below = step(first, -1);
            SCOPED_TRACE("below " + below.ip_string());
            const auto want = covered(below) ? PeerVerdict::special_purpose : PeerVerdict::allowed;
            EXPECT_EQ(default_policy().check(below), want);
            if (want == PeerVerdict::allowed) ++outside_allowed;
        }
        const auto above = step(last, +1);
        const bool wrapped = above.bytes == TransportAddress{}.bytes;
        if (!wrapped) {
            SCOPED_TRACE("above " + above.ip_string());
            const auto want = covered(above) ? PeerVerdict::special_purpose : PeerVerdict::allowed;
            EXPECT_EQ(default_policy().check(above), want);
            if (want == PeerVerdict::allowed) ++outside_allowed;
        }
    }
    // Guards the oracle itself: most neighbours are ordinary public addresses.
    EXPECT_GT(outside_allowed, 20);
}

TEST(PeerPolicy, NamedDangerousAddresses) {
    for (const char* text : {"127.0.0.1",
                             "169.254.169.254",
                             "10.1.2.3",
                             "192.168.1.1",
                             "172.31.255.255",
                             "100.127.255.255",
                             "0.0.0.0",
                             "255.255.255.255",
                             "224.0.0.251",
                             "::1",
                             "::",
                             "fe80::1",
                             "fd00::1",
                             "ff02::1",
                             "::ffff:127.0.0.1",
                             "::ffff:169.254.169.254",
                             "::127.0.0.1",
                             "::8.8.8.8",
                             "64:ff9b::10.0.0.1",
                             "64:ff9b::8.8.8.8"}) {
        EXPECT_EQ(default_policy().check(ip(text)), PeerVerdict::special_purpose) << text;
    }
}

TEST(PeerPolicy, PublicAddressesAllowedInBothForms) {
    for (const char* text :
         {"8.8.8.8", "1.1.1.1", "172.32.0.0", "172.15.255.255", "100.63.255.255", "100.128.0.0",
          "11.0.0.0", "223.255.255.255", "::ffff:8.8.8.8", "2001:4860:4860::8888", "2a00:1450::1",
          "2606:4700::1111", "2001:200::", "2620:4f:7fff:ffff:ffff:ffff:ffff:ffff",
          "2620:4f:8001::", "3fff:1000::", "192.31.195.255", "192.31.197.0"}) {
        EXPECT_EQ(default_policy().check(ip(text)), PeerVerdict::allowed) << text;
    }
}

TEST(PeerPolicy, PortIsIgnored) {
    auto a = ip("127.0.0.1");
    a.port = 3478;
    EXPECT_EQ(default_policy().check(a), PeerVerdict::special_purpose);
    auto b = ip("8.8.8.8");
    b.port = 53;
    EXPECT_TRUE(default_policy().permits(b));
}

TEST(PeerPolicy, AllowOverridesSpecialRangeOnlyWhereItCovers) {
    const std::vector<Cidr> allow = {cidr("10.1.0.0", 16), cidr("fd00:1::", 32)};
    const PeerPolicy p(allow, {}, {});
    EXPECT_EQ(p.check(ip("10.1.0.0")), PeerVerdict::allowed);
    EXPECT_EQ(p.check(ip("10.1.255.255")), PeerVerdict::allowed);
    EXPECT_EQ(p.check(ip("::ffff:10.1.2.3")), PeerVerdict::allowed);
    EXPECT_EQ(p.check(ip("10.0.255.255")), PeerVerdict::special_purpose);
    EXPECT_EQ(p.check(ip("10.2.0.0")), PeerVerdict::special_purpose);
    EXPECT_EQ(p.check(ip("fd00:1::5")), PeerVerdict::allowed);
    EXPECT_EQ(p.check(ip("fd00:2::5")), PeerVerdict::special_purpose);
    EXPECT_EQ(p.check(ip("127.0.0.1")), PeerVerdict::special_purpose);
}

TEST(PeerPolicy, AllowWrittenInMappedFormCoversIpv4) {
    Cidr c;
    c.network = ip("::ffff:192.168.0.0");
    c.prefix_length = 112;  // hand-built, not canonicalised: 192.168.0.0/16
    const std::vector<Cidr> allow = {c};
    const PeerPolicy p(allow, {}, {});
    EXPECT_EQ(p.check(ip("192.168.7.7")), PeerVerdict::allowed);
    EXPECT_EQ(p.check(ip("192.169.0.1")), PeerVerdict::allowed);  // public anyway
    EXPECT_EQ(p.check(ip("192.167.255.255")), PeerVerdict::allowed);
    EXPECT_EQ(p.check(ip("10.0.0.1")), PeerVerdict::special_purpose);
}

TEST(PeerPolicy, DenyBeatsAllowAndDefaults) {
    const std::vector<Cidr> allow = {cidr("10.0.0.0", 8), cidr("0.0.0.0", 0)};
    const std::vector<Cidr> deny = {cidr("10.9.0.0", 16), cidr("8.8.8.8", 32),
                                    cidr("2001:db8::", 32)};
    const PeerPolicy p(allow, deny, {});
    EXPECT_EQ(p.check(ip("10.8.255.255")), PeerVerdict::allowed);
    EXPECT_EQ(p.check(ip("10.9.0.0")), PeerVerdict::denied_by_config);
    EXPECT_EQ(p.check(ip("10.9.255.255")), PeerVerdict::denied_by_config);
    EXPECT_EQ(p.check(ip("::ffff:10.9.1.1")), PeerVerdict::denied_by_config);
    EXPECT_EQ(p.check(ip("10.10.0.0")), PeerVerdict::allowed);
    EXPECT_EQ(p.check(ip("8.8.8.8")), PeerVerdict::denied_by_config);
    EXPECT_EQ(p.check(ip("8.8.8.9")), PeerVerdict::allowed);
    EXPECT_EQ(p.check(ip("2001:db8:ffff::1")), PeerVerdict::denied_by_config);
    EXPECT_EQ(p.check(ip("2001:db9::1")), PeerVerdict::allowed);
    // 0.0.0.0/0 is the IPv4 world only; it must not open IPv6 special ranges.
    EXPECT_EQ(p.check(ip("fe80::1")), PeerVerdict::special_purpose);
}

TEST(PeerPolicy, DenyPublicRangeWithoutAllow) {
    const std::vector<Cidr> deny = {cidr("::", 0)};
    const PeerPolicy p({}, deny, {});
    EXPECT_EQ(p.check(ip("2001:4860::1")), PeerVerdict::denied_by_config);
    EXPECT_EQ(p.check(ip("8.8.8.8")),
              PeerVerdict::denied_by_config);  // ::/0 spans the mapped space
}

TEST(PeerPolicy, OwnAddressesRefusedOnAnyPort) {
    auto listen = ip("198.51.99.10");
    listen.port = 3478;
    auto relay = ip("2001:4860:1::7");
    relay.port = 50000;
    const std::vector<TransportAddress> own = {listen, relay};
    const PeerPolicy p({}, {}, own);
    auto probe = ip("198.51.99.10");
    probe.port = 9090;
    EXPECT_EQ(p.check(probe), PeerVerdict::own_address);
    EXPECT_EQ(p.check(ip("::ffff:198.51.99.10")), PeerVerdict::own_address);
    EXPECT_EQ(p.check(ip("198.51.99.11")), PeerVerdict::allowed);
    EXPECT_EQ(p.check(ip("198.51.99.9")), PeerVerdict::allowed);
    EXPECT_EQ(p.check(ip("2001:4860:1::7")), PeerVerdict::own_address);
    EXPECT_EQ(p.check(ip("2001:4860:1::8")), PeerVerdict::allowed);
}

TEST(PeerPolicy, OwnAddressCanBeAllowListedAndDenied) {
    const std::vector<TransportAddress> own = {ip("198.51.99.10"), ip("127.0.0.1")};
    const std::vector<Cidr> allow = {cidr("198.51.99.10", 32)};
    const PeerPolicy p(allow, {}, own);
    EXPECT_EQ(p.check(ip("198.51.99.10")), PeerVerdict::allowed);
    EXPECT_EQ(p.check(ip("127.0.0.1")), PeerVerdict::own_address);  // own reported over special
    const std::vector<Cidr> deny = {cidr("198.51.99.0", 24)};
    const PeerPolicy q(allow, deny, own);
    EXPECT_EQ(q.check(ip("198.51.99.10")), PeerVerdict::denied_by_config);
}

TransportAddress at(const char* text, std::uint16_t port) {
    auto a = ip(text);
    a.port = port;
    return a;
}

// The relay port range of the default config, with a UDP listener on 3478.
OwnPeerPorts relay_range(std::vector<std::uint16_t> listeners = {3478}) {
    return OwnPeerPorts{49152, 65535, std::move(listeners)};
}

TEST(PeerPolicy, OwnAddressOnARelayPortIsAnotherClientsRelayAndAllowed) {
    const std::vector<TransportAddress> own = {ip("198.51.99.10"), ip("2001:4860:1::7")};
    const PeerPolicy p({}, {}, own, relay_range());
    EXPECT_EQ(p.check(at("198.51.99.10", 49152)), PeerVerdict::allowed);
    EXPECT_EQ(p.check(at("198.51.99.10", 50000)), PeerVerdict::allowed);
    EXPECT_EQ(p.check(at("198.51.99.10", 65535)), PeerVerdict::allowed);
    EXPECT_EQ(p.check(at("::ffff:198.51.99.10", 50000)), PeerVerdict::allowed);
    EXPECT_EQ(p.check(at("2001:4860:1::7", 60000)), PeerVerdict::allowed);
    // Other ports of tern's own addresses: its listeners, its metrics endpoint, other services.
    EXPECT_EQ(p.check(at("198.51.99.10", 49151)), PeerVerdict::own_address);
    EXPECT_EQ(p.check(at("198.51.99.10", 3478)), PeerVerdict::own_address);
    EXPECT_EQ(p.check(at("198.51.99.10", 9641)), PeerVerdict::own_address);
    EXPECT_EQ(p.check(at("198.51.99.10", 0)), PeerVerdict::own_address);
    EXPECT_EQ(p.check(at("::ffff:198.51.99.10", 3478)), PeerVerdict::own_address);
    EXPECT_EQ(p.check(at("2001:4860:1::7", 5349)), PeerVerdict::own_address);
}

TEST(PeerPolicy, WithoutARelayRangeEveryPortOfAnOwnAddressIsRefused) {
    const std::vector<TransportAddress> own = {ip("198.51.99.10")};
    for (const OwnPeerPorts& ports :
         {OwnPeerPorts{}, OwnPeerPorts{0, 65535, {}}, OwnPeerPorts{60000, 50000, {}}}) {
        const PeerPolicy p({}, {}, own, ports);
        EXPECT_EQ(p.check(at("198.51.99.10", 50000)), PeerVerdict::own_address);
        EXPECT_EQ(p.check(at("198.51.99.10", 65535)), PeerVerdict::own_address);
        EXPECT_FALSE(p.permits_send(at("198.51.99.10", 55000)));
    }
}

TEST(PeerPolicy, AListenerInsideTheRelayRangeStaysRefused) {
    const std::vector<TransportAddress> own = {ip("198.51.99.10")};
    const PeerPolicy p({}, {}, own, relay_range({3478, 50000, 5349}));
    EXPECT_EQ(p.check(at("198.51.99.10", 50000)), PeerVerdict::own_address);
    EXPECT_FALSE(p.permits_send(at("198.51.99.10", 50000)));
    EXPECT_EQ(p.check(at("198.51.99.10", 50001)), PeerVerdict::allowed);
    EXPECT_EQ(p.check(at("198.51.99.10", 49999)), PeerVerdict::allowed);
}

TEST(PeerPolicy, DenyStillWinsOnRelayPortsOfOwnAddresses) {
    const std::vector<TransportAddress> own = {ip("198.51.99.10")};
    const std::vector<Cidr> deny = {cidr("198.51.99.0", 24)};
    const PeerPolicy p({}, deny, own, relay_range());
    EXPECT_EQ(p.check(at("198.51.99.10", 50000)), PeerVerdict::denied_by_config);
    EXPECT_EQ(p.check(at("198.51.99.10", 3478)), PeerVerdict::denied_by_config);
    EXPECT_FALSE(p.permits_send(at("198.51.99.10", 50000)));
}

TEST(PeerPolicy, SpecialPurposeOwnAddressesStayRefusedOnRelayPorts) {
    const std::vector<TransportAddress> own = {ip("127.0.0.1"), ip("10.0.0.5"), ip("::1"),
                                               ip("fe80::1")};
    const PeerPolicy p({}, {}, own, relay_range());
    for (const char* text : {"127.0.0.1", "::ffff:127.0.0.1", "10.0.0.5", "::1", "fe80::1"}) {
        EXPECT_EQ(p.check(at(text, 50000)), PeerVerdict::special_purpose) << text;
        EXPECT_EQ(p.check(at(text, 3478)), PeerVerdict::own_address) << text;
        EXPECT_FALSE(p.permits_send(at(text, 50000))) << text;
    }
    // An allow-list opens them as it always did, on every port.
    const std::vector<Cidr> allow = {cidr("10.0.0.0", 8)};
    const PeerPolicy q(allow, {}, own, relay_range());
    EXPECT_EQ(q.check(at("10.0.0.5", 50000)), PeerVerdict::allowed);
    EXPECT_EQ(q.check(at("10.0.0.5", 3478)), PeerVerdict::allowed);
    EXPECT_EQ(q.check(at("127.0.0.1", 50000)), PeerVerdict::special_purpose);
}

TEST(PeerPolicy, PermitsSendLooksOnlyAtOwnAddresses) {
    const std::vector<TransportAddress> own = {ip("198.51.99.10"), ip("2001:4860:1::7")};
    const PeerPolicy p({}, {}, own, relay_range());
    EXPECT_TRUE(p.is_own(at("198.51.99.10", 1)));
    EXPECT_TRUE(p.is_own(at("::ffff:198.51.99.10", 1)));
    EXPECT_TRUE(p.is_own(at("2001:4860:1::7", 1)));
    EXPECT_FALSE(p.is_own(at("198.51.99.11", 1)));
    EXPECT_FALSE(p.is_own(at("2001:4860:1::8", 1)));
    EXPECT_TRUE(p.permits_send(at("198.51.99.10", 50000)));
    EXPECT_TRUE(p.permits_send(at("2001:4860:1::7", 65535)));
    EXPECT_FALSE(p.permits_send(at("198.51.99.10", 3478)));
    EXPECT_FALSE(p.permits_send(at("::ffff:198.51.99.10", 3478)));
    EXPECT_FALSE(p.permits_send(at("2001:4860:1::7", 22)));
    // Not own: the permission decided, whatever the port (even a refused range: not re-checked).
    EXPECT_TRUE(p.permits_send(at("8.8.8.8", 53)));
    EXPECT_TRUE(p.permits_send(at("198.51.99.11", 3478)));
    EXPECT_TRUE(default_policy().permits_send(at("127.0.0.1", 3478)));
    // An allow-listed own address takes every port, as check() says.
    const std::vector<Cidr> allow = {cidr("198.51.99.10", 32)};
    const PeerPolicy q(allow, {}, own, relay_range());
    EXPECT_TRUE(q.permits_send(at("198.51.99.10", 3478)));
}

TEST(PeerPolicy, VerdictNames) {
    EXPECT_STREQ(to_string(PeerVerdict::allowed), "allowed");
    EXPECT_STREQ(to_string(PeerVerdict::denied_by_config), "denied_by_config");
    EXPECT_STREQ(to_string(PeerVerdict::special_purpose), "special_purpose");
    EXPECT_STREQ(to_string(PeerVerdict::own_address), "own_address");
}

}  // namespace
}  // namespace tern::allocation
