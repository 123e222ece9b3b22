// Two clients of one ternd relaying to each other, the most common TURN case in WebRTC (both
// behind restrictive NATs, or both with iceTransportPolicy 'relay'): each one's peer is the
// other's relayed address, which is one of tern's own addresses. With the default peer policy
// (no allow_peers) that must work, while the other ports of tern's own addresses (its listeners)
// stay out of reach, by CreatePermission, ChannelBind and Send indication alike, and by requests
// whose source is forged to be a relayed address.
//
// The default policy refuses loopback and private peers, so this cannot run on 127.0.0.1: each
// test runs in a network namespace of its own, where ternd listens on a public address
// (198.51.99.1, not special-purpose) that never leaves the namespace. The namespace is unnamed
// (unshare on a thread of the test), so nothing is left behind on any path: it goes when that
// thread, ternd and the test's sockets are gone (private_network.hpp). Needs root.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <regex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "private_network.hpp"
#include "spoofed_datagram.hpp"
#include "support.hpp"
#include "tern/protocol/message.hpp"
#include "tern/protocol/message_builder.hpp"

namespace tern::test {
namespace {

using protocol::MessageBuilder;
using protocol::MessageClass;
using protocol::MessageView;
using protocol::Method;

constexpr const char* server_ip = "198.51.99.1";  // ternd's address in the namespace
constexpr const char* client_ip = "198.51.99.2";  // where the test's clients send from
constexpr std::uint16_t server_port = 3478;
constexpr const char* rest_secret = "s3cret";

TransportAddress at(const char* ip, std::uint16_t port) {
    auto a = TransportAddress::parse_ip(ip);
    if (!a) throw std::runtime_error("bad test address");
    a->port = port;
    return *a;
}

// The default peer policy and relay ports: no allow_peers, no relay.ports. Wildcard listeners,
// as in the embedded default, so tern's own addresses come from the interfaces. channel_numbers
// rfc5766 only for turnutils_uclient, which picks channels from RFC 5766's wider range.
std::string config_yaml() {
    std::string y = "realm: tern.test\nthreads: 2\n";
    y += "listen: [ \"udp://0.0.0.0:3478\", \"tcp://0.0.0.0:3478\" ]\n";
    y += "auth:\n  secrets: [ \"" + std::string(rest_secret) + "\" ]\n";
    y += "  users: { alice: { password: wonderland }, bob: { password: builder } }\n";
    y += "relay: { channel_numbers: rfc5766 }\n";
    y += "limits: { shutdown_grace: 0 }\n";
    return y;
}

std::string in_private_network(const std::function<void()>& body) {
    return test::in_private_network(
        {std::string(server_ip) + "/32", std::string(client_ip) + "/32"}, body);
}

// ternd in the namespace, up and listening, or a failure carrying its log.
struct Server {
    TerndProcess process{config_yaml()};
    bool ready() const { return process.wait_for_output("is listening on", 10s); }
};

// One of the two clients: an allocation made over UDP from `client_ip`.
struct Client {
    TurnClient turn;
    TransportAddress relayed;

    Client(const char* user, const char* password)
        : turn(at(server_ip, server_port), user, password, at(client_ip, 0)) {}

    ::testing::AssertionResult allocate() {
        const Reply r = turn.request(Method::allocate, TurnClient::udp_transport());
        if (r.code() != 0) return ::testing::AssertionFailure() << r.describe();
        const auto a = r.view.xor_relayed_address();
        if (!a) return ::testing::AssertionFailure() << "no XOR-RELAYED-ADDRESS";
        relayed = *a;
        return ::testing::AssertionSuccess();
    }

    bool send_indication(const TransportAddress& peer, const Bytes& payload) {
        Bytes buf(128 + payload.size());
        MessageBuilder b(buf, {Method::send, MessageClass::indication}, random_id());
        b.add_xor_address(protocol::attr::xor_peer_address, peer);
        b.add_bytes(protocol::attr::data, payload);
        const auto msg = b.finish();
        return turn.send_raw(Bytes(msg.begin(), msg.end()));
    }

    // The next Data indication's (peer, data), skipping anything else; nullopt on timeout.
    std::optional<std::pair<TransportAddress, Bytes>> receive_data_indication(
        std::chrono::milliseconds timeout) {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        while (std::chrono::steady_clock::now() < deadline) {
            const auto got = turn.receive_raw(50ms);
            if (!got) continue;
            MessageView v;
            if (MessageView::parse(*got, v) != protocol::ParseError::ok) continue;
            if (v.method() != Method::data || v.message_class() != MessageClass::indication) {
                continue;
            }
            if (!v.xor_peer_address() || !v.data()) continue;
            return std::make_pair(*v.xor_peer_address(), Bytes(v.data()->begin(), v.data()->end()));
        }
        return std::nullopt;
    }

    // The payloads of ChannelData on `channel` that arrive within `timeout`, until `want` came.
    std::vector<Bytes> receive_channel_data(std::uint16_t channel, std::size_t want,
                                            std::chrono::milliseconds timeout) {
        std::vector<Bytes> out;
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        while (out.size() < want && std::chrono::steady_clock::now() < deadline) {
            const auto got = turn.receive_raw(50ms);
            if (!got || got->size() < 4) continue;
            const auto number = static_cast<std::uint16_t>((*got)[0] << 8 | (*got)[1]);
            const std::size_t length = static_cast<std::size_t>((*got)[2] << 8 | (*got)[3]);
            if (number != channel || got->size() < 4 + length) continue;
            out.emplace_back(got->begin() + 4,
                             got->begin() + 4 + static_cast<std::ptrdiff_t>(length));
        }
        return out;
    }
};

// ternd with alice and bob, each holding an allocation on it once start() succeeds.
struct AliceAndBob {
    Server server;
    Client alice{"alice", "wonderland"};
    Client bob{"bob", "builder"};

    ::testing::AssertionResult start() {
        if (!server.ready()) return ::testing::AssertionFailure() << server.process.output();
        if (auto allocated = alice.allocate(); !allocated) return allocated;
        return bob.allocate();
    }
};

Bytes numbered(char tag, int i) {
    const std::string text = std::string(1, tag) + "-" + std::to_string(i);
    return Bytes(text.begin(), text.end());
}

// ChannelData from one client to the other's channel, `count` times; every payload must arrive,
// in order.
void expect_channel_traffic(Client& from, std::uint16_t from_channel, Client& to,
                            std::uint16_t to_channel, char tag, int count) {
    for (int i = 0; i < count; ++i) {
        ASSERT_TRUE(from.turn.send_raw(channel_data(from_channel, numbered(tag, i))));
    }
    const auto got = to.receive_channel_data(to_channel, static_cast<std::size_t>(count), 3s);
    ASSERT_EQ(got.size(), static_cast<std::size_t>(count));
    for (int i = 0; i < count; ++i) EXPECT_EQ(got[static_cast<std::size_t>(i)], numbered(tag, i));
}

class RelayToRelay : public ::testing::Test {
protected:
    void SetUp() override {
        if (::geteuid() != 0) GTEST_SKIP() << "needs root to create a network namespace";
    }
    void run(const std::function<void()>& body) {
        const std::string skip = in_private_network(body);
        if (!skip.empty()) GTEST_SKIP() << skip;
    }
};

TEST_F(RelayToRelay, TwoClientsOfOneServerRelayToEachOtherWithTheDefaultPeerPolicy) {
    run([] {
        AliceAndBob two;
        ASSERT_TRUE(two.start());
        auto& [server, alice, bob] = two;
        // Both relayed addresses are tern's own, on ports of the relay range.
        ASSERT_EQ(alice.relayed.ip_string(), server_ip);
        ASSERT_EQ(bob.relayed.ip_string(), server_ip);
        ASSERT_GE(alice.relayed.port, 49152);
        ASSERT_GE(bob.relayed.port, 49152);

        // What a browser does with the remote relay candidate: CreatePermission, then Send.
        ASSERT_EQ(alice.turn.permit(bob.relayed), 0) << server.process.output();
        ASSERT_EQ(bob.turn.permit(alice.relayed), 0);
        const Bytes hello{'h', 'e', 'l', 'l', 'o'};
        ASSERT_TRUE(alice.send_indication(bob.relayed, hello));
        const auto at_bob = bob.receive_data_indication(2s);
        ASSERT_TRUE(at_bob) << "alice's Send indication did not reach bob";
        EXPECT_EQ(at_bob->first, alice.relayed);
        EXPECT_EQ(at_bob->second, hello);
        const Bytes back{'b', 'a', 'c', 'k'};
        ASSERT_TRUE(bob.send_indication(alice.relayed, back));
        const auto at_alice = alice.receive_data_indication(2s);
        ASSERT_TRUE(at_alice) << "bob's Send indication did not reach alice";
        EXPECT_EQ(at_alice->first, bob.relayed);
        EXPECT_EQ(at_alice->second, back);

        // Then channels, both ways.
        ASSERT_EQ(alice.turn.bind(0x4000, bob.relayed), 0);
        ASSERT_EQ(bob.turn.bind(0x4001, alice.relayed), 0);
        expect_channel_traffic(alice, 0x4000, bob, 0x4001, 'a', 50);
        expect_channel_traffic(bob, 0x4001, alice, 0x4000, 'b', 50);
        EXPECT_TRUE(server.process.running()) << server.process.output();
    });
}

TEST_F(RelayToRelay, TernsOwnListenerStaysOutOfReach) {
    run([] {
        AliceAndBob two;
        ASSERT_TRUE(two.start());
        auto& [server, alice, bob] = two;
        const TransportAddress listener = at(server_ip, server_port);
        EXPECT_EQ(alice.turn.permit(listener), 403);
        EXPECT_EQ(alice.turn.bind(0x4000, listener), 403);
        EXPECT_EQ(alice.turn.permit(at(server_ip, 49151)), 403);

        // A permission for bob's relayed address covers its IP, which is also the listener's:
        // a Binding request sent there by Send indication would be answered to alice's relay
        // and come back to her as a Data indication. It must not leave the relay at all.
        ASSERT_EQ(alice.turn.permit(bob.relayed), 0);
        ASSERT_TRUE(alice.send_indication(listener, binding_request()));
        const auto echoed = alice.receive_data_indication(1s);
        EXPECT_FALSE(echoed.has_value())
            << "the listener answered a relayed Binding request (a Data indication came back)";
        // The control: the same Send path to bob's relayed address arrives.
        ASSERT_EQ(bob.turn.permit(alice.relayed), 0);
        const Bytes control{'o', 'k'};
        ASSERT_TRUE(alice.send_indication(bob.relayed, control));
        const auto at_bob = bob.receive_data_indication(2s);
        ASSERT_TRUE(at_bob) << "the control Send indication did not arrive";
        EXPECT_EQ(at_bob->second, control);
    });
}

// An attacker forges a Binding "from" alice's relayed address to tern's listener. Answered, the
// reply would go to alice's relay socket from tern's IP, which her permission for bob covers,
// and reach her as a Data indication. The listener must not answer, and a relay socket must
// not deliver what comes from a listener.
TEST_F(RelayToRelay, ARequestSpoofedFromARelayedAddressReachesNobody) {
    run([] {
        AliceAndBob two;
        ASSERT_TRUE(two.start());
        auto& [server, alice, bob] = two;
        const TransportAddress listener = at(server_ip, server_port);
        ASSERT_EQ(alice.turn.permit(bob.relayed), 0);
        // The control: a forged source that is not tern's own is answered, so the forging works.
        UdpClient witness(at(client_ip, 0));
        ASSERT_TRUE(send_spoofed_udp(witness.local_address(), listener, binding_request()));
        ASSERT_TRUE(witness.receive(2s)) << "a spoofed Binding from a client was not answered";

        ASSERT_TRUE(send_spoofed_udp(alice.relayed, listener, binding_request()));
        const auto leaked = alice.receive_data_indication(1s);
        EXPECT_FALSE(leaked.has_value()) << "tern's answer reached alice as a Data indication";
        EXPECT_TRUE(server.process.running()) << server.process.output();
    });
}

TEST_F(RelayToRelay, ARelaySocketDropsDatagramsFromTernsListener) {
    run([] {
        AliceAndBob two;
        ASSERT_TRUE(two.start());
        auto& [server, alice, bob] = two;
        ASSERT_EQ(alice.turn.permit(bob.relayed), 0);
        const Bytes payload{'f', 'o', 'r', 'g', 'e', 'd'};
        // The control: from bob's relayed address (a permitted peer) it arrives.
        ASSERT_TRUE(send_spoofed_udp(bob.relayed, alice.relayed, payload));
        const auto from_bob = alice.receive_data_indication(2s);
        ASSERT_TRUE(from_bob) << "a datagram from a permitted peer did not arrive";
        EXPECT_EQ(from_bob->first, bob.relayed);
        // From tern's listener: the same IP, a listener's port.
        ASSERT_TRUE(send_spoofed_udp(at(server_ip, server_port), alice.relayed, payload));
        EXPECT_FALSE(alice.receive_data_indication(1s).has_value())
            << "a datagram from tern's listener was delivered to alice";
    });
}

// coturn's client in its client-to-client mode (-y): pairs of its clients relay to each other
// through the one server, as two browsers in a call do.
TEST_F(RelayToRelay, CoturnUclientClientToClient) {
    std::string which;
    if (run_command("command -v turnutils_uclient", which) != 0) {
        GTEST_SKIP() << "turnutils_uclient (coturn) is not installed";
    }
    run([] {
        Server server;
        ASSERT_TRUE(server.ready()) << server.process.output();
        const std::string cmd = "timeout 30 turnutils_uclient -y -c -z 5 -n 20 -m 2 -l 120 -W " +
                                std::string(rest_secret) + " -u carol " + server_ip;
        std::string out;
        const int rc = run_command(cmd, out);
        out = "$ " + cmd + "\n" + out;
        EXPECT_EQ(rc, 0) << out << "\nternd:\n" << server.process.output();
        EXPECT_EQ(out.find("error 403"), std::string::npos) << out;
        static const std::regex totals(R"(tot_send_msgs=(\d+), tot_recv_msgs=(\d+)\n)");
        static const std::regex lost(R"(Total lost packets (\d+) .*total send dropped (\d+))");
        std::smatch m;
        ASSERT_TRUE(std::regex_search(out, m, totals)) << out;
        EXPECT_EQ(std::stol(m[1]), 40) << out;
        EXPECT_EQ(std::stol(m[2]), 40) << out;
        ASSERT_TRUE(std::regex_search(out, m, lost)) << out;
        EXPECT_EQ(std::stol(m[1]), 0) << out;
        EXPECT_EQ(std::stol(m[2]), 0) << out;
    });
}

}  // namespace
}  // namespace tern::test
