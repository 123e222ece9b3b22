// The registry as read from Redis hashes, and the node a 300 names: the least loaded other node
// that accepts allocations and has an address of the request's family (RFC 8489 §14.15), over
// TLS its TLS address and domain (§14.16).
#include "tern/server/request/fleet_directory.hpp"

#include <gtest/gtest.h>

namespace tern::server {
namespace {

using protocol::AddressFamily;
using protocol::Transport;
using protocol::TransportAddress;

TransportAddress at(const char* text) {
    return *TransportAddress::parse(text);
}

FleetNode node(const char* id, std::uint64_t allocations, const char* udp,
               const char* tls = nullptr) {
    FleetNode n;
    n.id = id;
    n.allocations = allocations;
    n.advertise.push_back(at(udp));
    if (tls != nullptr) {
        n.advertise_tls.push_back(at(tls));
        n.tls_domain = std::string(id) + ".example.com";
    }
    return n;
}

TEST(FleetDirectory, FieldsRoundTrip) {
    FleetNode n = node("turn-b", 12, "192.0.2.2:3478", "192.0.2.2:5349");
    n.advertise.push_back(at("[2001:db8::2]:3478"));
    n.draining = true;
    n.redirect_above = 100;
    auto fields = node_fields(n);
    fields.emplace_back("updated_ms", "1796667529000");
    const auto back = node_from_fields(fields);
    ASSERT_TRUE(back.has_value());
    EXPECT_EQ(back->id, "turn-b");
    EXPECT_TRUE(back->draining);
    EXPECT_EQ(back->allocations, 12U);
    EXPECT_EQ(back->redirect_above, 100U);
    EXPECT_EQ(back->advertise, n.advertise);
    EXPECT_EQ(back->advertise_tls, n.advertise_tls);
    EXPECT_EQ(back->tls_domain, "turn-b.example.com");
    EXPECT_EQ(back->updated_ms, 1796667529000);
}

TEST(FleetDirectory, AHashWithoutAnIdIsNoNodeAndBadAddressesAreSkipped) {
    EXPECT_FALSE(node_from_fields({{"allocations", "3"}}).has_value());
    const auto n = node_from_fields({{"id", "x"}, {"advertise", "nonsense,192.0.2.9:3478,"}});
    ASSERT_TRUE(n.has_value());
    ASSERT_EQ(n->advertise.size(), 1U);
    EXPECT_EQ(n->advertise[0], at("192.0.2.9:3478"));
}

TEST(FleetDirectory, PicksTheLeastLoadedOtherAcceptingNode) {
    FleetNode busy = node("a", 50, "192.0.2.1:3478");
    FleetNode self = node("self", 0, "192.0.2.0:3478");
    FleetNode draining = node("c", 0, "192.0.2.3:3478");
    draining.draining = true;
    FleetNode full = node("d", 10, "192.0.2.4:3478");
    full.redirect_above = 10;
    FleetNode light = node("e", 7, "192.0.2.5:3478");
    const FleetDirectory d({busy, self, draining, full, light}, "self");
    const auto pick = d.pick(AddressFamily::ipv4, Transport::udp);
    ASSERT_TRUE(pick.has_value());
    EXPECT_EQ(pick->address, at("192.0.2.5:3478"));
    EXPECT_TRUE(pick->domain.empty());
    EXPECT_EQ(d.accepting(), 3U);  // a, self and e
}

TEST(FleetDirectory, TheFamilyMustMatchAndTiesGoToTheLowerId) {
    FleetNode v6 = node("z", 0, "[2001:db8::9]:3478");
    const FleetDirectory d({node("b", 1, "192.0.2.2:3478"), node("a", 1, "192.0.2.1:3478"), v6},
                           "self");
    EXPECT_EQ(d.pick(AddressFamily::ipv4, Transport::udp)->address, at("192.0.2.1:3478"));
    EXPECT_EQ(d.pick(AddressFamily::ipv6, Transport::tcp)->address, at("[2001:db8::9]:3478"));
}

TEST(FleetDirectory, TlsUsesTheTlsAddressAndNamesTheDomain) {
    const FleetDirectory d(
        {node("plain", 0, "192.0.2.1:3478"), node("secure", 5, "192.0.2.2:3478", "192.0.2.2:5349")},
        "self");
    const auto pick = d.pick(AddressFamily::ipv4, Transport::tls);
    ASSERT_TRUE(pick.has_value());
    EXPECT_EQ(pick->address, at("192.0.2.2:5349"));
    EXPECT_EQ(pick->domain, "secure.example.com");
}

TEST(FleetDirectory, NoCandidateNoRedirect) {
    EXPECT_FALSE(FleetDirectory().pick(AddressFamily::ipv4, Transport::udp).has_value());
    const FleetDirectory only_self({node("self", 0, "192.0.2.0:3478")}, "self");
    EXPECT_FALSE(only_self.pick(AddressFamily::ipv4, Transport::udp).has_value());
}

}  // namespace
}  // namespace tern::server
