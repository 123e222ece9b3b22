// make_peer_policy: tern's own addresses as peers are refused, with a wildcard listener standing
// for every address of every interface of this host (read here with getifaddrs, independently).
#include "tern/server/request/relay_settings.hpp"

#include <gtest/gtest.h>
#include <ifaddrs.h>
#include <netinet/in.h>

#include <cstring>
#include <vector>

#include "tern/config/config.hpp"

namespace tern::server {
namespace {

using allocation::PeerVerdict;
using protocol::TransportAddress;

std::vector<TransportAddress> interface_addresses(int family) {
    std::vector<TransportAddress> out;
    ifaddrs* list = nullptr;
    if (::getifaddrs(&list) != 0) return out;
    for (const ifaddrs* i = list; i != nullptr; i = i->ifa_next) {
        if (i->ifa_addr == nullptr || i->ifa_addr->sa_family != family) continue;
        if (family == AF_INET) {
            const auto* in = reinterpret_cast<const sockaddr_in*>(i->ifa_addr);
            std::array<std::uint8_t, 4> b{};
            std::memcpy(b.data(), &in->sin_addr, 4);
            out.push_back(TransportAddress::v4(b, 9));
        } else {
            const auto* in6 = reinterpret_cast<const sockaddr_in6*>(i->ifa_addr);
            std::array<std::uint8_t, 16> b{};
            std::memcpy(b.data(), &in6->sin6_addr, 16);
            out.push_back(TransportAddress::v6(b, 9));
        }
    }
    ::freeifaddrs(list);
    return out;
}

config::Listener listener(const char* ip) {
    return config::Listener{protocol::Transport::udp, *TransportAddress::parse_ip(ip)};
}

TEST(MakePeerPolicy, AWildcardListenerRefusesEveryInterfaceAddressAsOwn) {
    const config::Config c;
    const std::vector<config::Listener> bound{listener("0.0.0.0"), listener("::")};
    const auto policy = make_peer_policy(c, bound);
    const auto v4 = interface_addresses(AF_INET);
    ASSERT_FALSE(v4.empty());  // loopback at least
    for (const auto& a : v4) {
        EXPECT_EQ(policy->check(a), PeerVerdict::own_address) << a.to_string();
    }
    for (const auto& a : interface_addresses(AF_INET6)) {
        EXPECT_EQ(policy->check(a), PeerVerdict::own_address) << a.to_string();
    }
}

TEST(MakePeerPolicy, ASpecificListenerIsOwnButOtherInterfaceAddressesAreNot) {
    const config::Config c;
    const std::vector<config::Listener> bound{listener("192.0.2.1")};
    const auto policy = make_peer_policy(c, bound);
    EXPECT_EQ(policy->check(*TransportAddress::parse("192.0.2.1:5000")), PeerVerdict::own_address);
    // Loopback is still refused, but as special-purpose space, not as one of tern's addresses.
    EXPECT_EQ(policy->check(*TransportAddress::parse("127.0.0.1:5000")),
              PeerVerdict::special_purpose);
}

TEST(MakePeerPolicy, RelayAndExternalAddressesAreOwn) {
    config::Config c;
    c.relay.addresses = {*TransportAddress::parse_ip("198.51.100.20")};
    c.relay.external_addresses = {
        {*TransportAddress::parse_ip("10.1.2.3"), *TransportAddress::parse_ip("203.0.113.9")}};
    const auto policy = make_peer_policy(c, {});
    EXPECT_EQ(policy->check(*TransportAddress::parse("198.51.100.20:1")), PeerVerdict::own_address);
    EXPECT_EQ(policy->check(*TransportAddress::parse("203.0.113.9:1")), PeerVerdict::own_address);
    EXPECT_EQ(policy->check(*TransportAddress::parse("10.1.2.3:1")), PeerVerdict::own_address);
}

TEST(MakePeerPolicy, OwnAddressesAreOpenOnRelayPortsOnlyAndNeverOnAListenersPort) {
    config::Config c;
    c.relay.addresses = {*TransportAddress::parse_ip("198.51.99.20")};
    c.relay.ports = {50000, 50100};
    // A listener inside relay.ports (the loader allows it) stays refused.
    const std::vector<config::Listener> bound{
        {protocol::Transport::udp, *TransportAddress::parse("198.51.99.20:3478")},
        {protocol::Transport::udp, *TransportAddress::parse("198.51.99.20:50050")}};
    const auto policy = make_peer_policy(c, bound);
    EXPECT_EQ(policy->check(*TransportAddress::parse("198.51.99.20:50000")), PeerVerdict::allowed);
    EXPECT_EQ(policy->check(*TransportAddress::parse("198.51.99.20:50100")), PeerVerdict::allowed);
    EXPECT_EQ(policy->check(*TransportAddress::parse("198.51.99.20:49999")),
              PeerVerdict::own_address);
    EXPECT_EQ(policy->check(*TransportAddress::parse("198.51.99.20:50101")),
              PeerVerdict::own_address);
    EXPECT_EQ(policy->check(*TransportAddress::parse("198.51.99.20:3478")),
              PeerVerdict::own_address);
    EXPECT_EQ(policy->check(*TransportAddress::parse("198.51.99.20:50050")),
              PeerVerdict::own_address);
    EXPECT_FALSE(policy->permits_send(*TransportAddress::parse("198.51.99.20:3478")));
    EXPECT_TRUE(policy->permits_send(*TransportAddress::parse("198.51.99.20:50001")));
}

}  // namespace
}  // namespace tern::server
