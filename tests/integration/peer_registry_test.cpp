// The IANA special-purpose blocks an outside audit found open, against a real ternd: with the
// default peer policy CreatePermission (and ChannelBind) to them gets 403 Forbidden, while a
// public peer of the same family on the same allocation is permitted, so the 403 cannot be a
// family mismatch or a client mistake; and relay.allow_peers opens exactly the blocks it lists.
// One dual-stack allocation (ADDITIONAL-ADDRESS-FAMILY, RFC 8656 §7.2) carries both families:
// ternd answers 443 rather than 403 for a peer whose family has no relayed address.
// Permissions need no traffic, so no packet leaves the host.
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "support.hpp"
#include "tern/protocol/message.hpp"
#include "tern/protocol/message_builder.hpp"

namespace tern::test {
namespace {

using protocol::MessageBuilder;
using protocol::Method;

constexpr const char* rest_secret = "registry-secret";

TransportAddress peer(const char* ip) {
    auto a = TransportAddress::parse_ip(ip);
    EXPECT_TRUE(a.has_value()) << ip;
    if (!a) return {};
    a->port = 9000;
    return *a;
}

// A UDP listener on 127.0.0.1, relays on 127.0.0.1 and ::1, REST credentials.
std::string registry_yaml(std::uint16_t port, const std::string& allow_peers) {
    std::string y = "realm: tern.test\nthreads: 1\n";
    y += "listen: [ \"udp://127.0.0.1:" + std::to_string(port) + "\" ]\n";
    y += "auth:\n  secrets: [ \"" + std::string(rest_secret) + "\" ]\n";
    y += "relay:\n  addresses: [ 127.0.0.1, \"::1\" ]\n  ports: 47100-47199\n";
    if (!allow_peers.empty()) y += "  allow_peers: [ " + allow_peers + " ]\n";
    y += "limits: { shutdown_grace: 0 }\n";
    return y;
}

// ternd and one dual-stack allocation on it, made with a REST credential.
struct DualStackAllocation {
    std::uint16_t port = free_port();
    std::unique_ptr<TerndProcess> server;
    std::unique_ptr<TurnClient> client;

    explicit DualStackAllocation(const std::string& allow_peers = {}) {
        server = std::make_unique<TerndProcess>(registry_yaml(port, allow_peers));
        const std::string user = rest_username(unix_now() + 3600, "registry");
        client =
            std::make_unique<TurnClient>(loopback4(port), user, rest_password(rest_secret, user));
    }

    // Up, allocated, with an IPv4 and an IPv6 relayed address; a failure says why.
    ::testing::AssertionResult allocate() {
        if (!server->wait_for_output("is listening on", 10s)) {
            return ::testing::AssertionFailure() << "ternd did not come up:\n" << server->output();
        }
        const Reply r = client->request(Method::allocate, [](MessageBuilder& b) {
            b.add_requested_transport(17);
            const std::uint8_t ipv6[4] = {0x02, 0, 0, 0};
            b.add_bytes(protocol::attr::additional_address_family, ipv6);
        });
        if (r.code() != 0) {
            return ::testing::AssertionFailure() << r.describe() << "\n" << server->output();
        }
        return ::testing::AssertionSuccess();
    }
};

TEST(RegistryPeers, AuditedSpecialPurposePeersGet403WithTheDefaultPolicy) {
    DualStackAllocation a;
    ASSERT_TRUE(a.allocate());
    // Controls first: each family has a relay and a public peer is permitted.
    EXPECT_EQ(a.client->permit(peer("8.8.8.8")), 0);
    EXPECT_EQ(a.client->permit(peer("2606:4700::1111")), 0);
    // fec0::/10 site-local, 5f00::/16 SRv6 SIDs, 192.31.196.0/24 AS112-v4.
    for (const char* refused : {"fec0::1", "5f00::1", "192.31.196.1"}) {
        EXPECT_EQ(a.client->permit(peer(refused)), 403) << refused;
    }
    // The rest of the audit list, by CreatePermission and by ChannelBind.
    std::uint16_t channel = 0x4000;
    for (const char* refused : {"::ffff:0:a00:1", "3fff::1", "2620:4f:8000::1", "100:0:0:1::1",
                                "192.52.193.1", "192.175.48.1", "fec0::1"}) {
        EXPECT_EQ(a.client->permit(peer(refused)), 403) << refused;
        EXPECT_EQ(a.client->bind(channel++, peer(refused)), 403) << refused;
    }
    EXPECT_TRUE(a.server->running()) << a.server->output();
}

TEST(RegistryPeers, AllowPeersOpensTheListedBlocksOnly) {
    DualStackAllocation a("192.31.196.0/24, \"fec0::/10\"");
    ASSERT_TRUE(a.allocate());
    EXPECT_EQ(a.client->permit(peer("192.31.196.1")), 0);
    EXPECT_EQ(a.client->permit(peer("192.31.196.254")), 0);
    EXPECT_EQ(a.client->permit(peer("fec0::1")), 0);
    EXPECT_EQ(a.client->bind(0x4000, peer("192.31.196.1")), 0);
    // Next door, still refused.
    EXPECT_EQ(a.client->permit(peer("192.52.193.1")), 403);
    EXPECT_EQ(a.client->permit(peer("5f00::1")), 403);
    EXPECT_EQ(a.client->permit(peer("fe80::1")), 403);
    EXPECT_TRUE(a.server->running()) << a.server->output();
}

}  // namespace
}  // namespace tern::test
