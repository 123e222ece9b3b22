// Per-source limits count an IPv6 source by its prefix (limits.ipv6_source_prefix, /64 by
// default): one host holding a /64 used to get a fresh allowance per address (30 addresses of
// one /64: 3,000 of 3,000 Bindings answered; 250 TCP connections all accepted). Runs in a
// network namespace of its own, where the test's sockets use 30 addresses of one /64 and one of
// another (private_network.hpp). Needs root.
#include <gtest/gtest.h>
#include <unistd.h>

#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "private_network.hpp"
#include "support.hpp"
#include "tern/protocol/message.hpp"

namespace tern::test {
namespace {

constexpr const char* server_ip = "2001:db8:ff::1";
constexpr int host_addresses = 30;  // 2001:db8:64::1 .. ::30, one /64

TransportAddress at(const std::string& ip, std::uint16_t port) {
    auto a = TransportAddress::parse_ip(ip);
    if (!a) throw std::runtime_error("bad test address " + ip);
    a->port = port;
    return *a;
}

std::string host_address(int i) {
    return "2001:db8:64::" + std::to_string(i);
}
constexpr const char* other_prefix_address = "2001:db8:65::1";

class Ipv6SourcePrefix : public ::testing::Test {
protected:
    void SetUp() override {
        if (::geteuid() != 0) GTEST_SKIP() << "needs root to create a network namespace";
    }
    void run(const std::function<void()>& body) {
        std::vector<std::string> addresses{std::string(server_ip) + "/128",
                                           std::string(other_prefix_address) + "/128"};
        for (int i = 1; i <= host_addresses; ++i) addresses.push_back(host_address(i) + "/128");
        const std::string skip = in_private_network(addresses, body);
        if (!skip.empty()) GTEST_SKIP() << skip;
    }
};

std::string server_yaml(const std::string& limits) {
    return "listen: [ \"udp://[" + std::string(server_ip) + "]:3478\", \"tcp://[" +
           std::string(server_ip) +
           "]:3478\" ]\n"
           "auth: { secrets: [ \"s\" ] }\n"
           "limits: { " +
           limits + " }\n";
}

bool is_binding_success(const std::optional<Bytes>& reply) {
    protocol::MessageView view;
    return reply && protocol::MessageView::parse(*reply, view) == protocol::ParseError::ok &&
           view.message_class() == protocol::MessageClass::success_response;
}

// Sends `per_address` Bindings from each of `sources`, then counts the answers.
int bindings_answered(const std::vector<std::string>& sources, int per_address) {
    const auto server = at(server_ip, 3478);
    std::vector<std::unique_ptr<UdpClient>> sockets;
    for (const auto& s : sources) {
        sockets.push_back(std::make_unique<UdpClient>(at(s, 0)));
        for (int i = 0; i < per_address; ++i) sockets.back()->send_to(server, binding_request());
    }
    int answered = 0;
    for (auto& socket : sockets) {
        while (is_binding_success(socket->receive(200ms))) ++answered;
    }
    return answered;
}

// The first `n` addresses of the one host's /64.
std::vector<std::string> one_host(int n = host_addresses) {
    std::vector<std::string> out;
    for (int i = 1; i <= n; ++i) out.push_back(host_address(i));
    return out;
}

// Bucket of 20, 1 per second: 30 addresses × 5 Bindings from one /64 get about the one
// bucket; with /128 (the old per-address behaviour) every one of the 150 is answered.
TEST_F(Ipv6SourcePrefix, AddressesOfOneSlash64ShareTheUnauthenticatedBucket) {
    run([] {
        TerndProcess ternd(server_yaml("unauthenticated_rate: 1, unauthenticated_burst: 20"));
        ASSERT_TRUE(ternd.wait_for_output("is listening on", 10s)) << ternd.output();
        const auto start = std::chrono::steady_clock::now();
        const int answered = bindings_answered(one_host(), 5);
        const double seconds =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        EXPECT_GE(answered, 20);
        EXPECT_LE(answered, 20 + seconds + 2) << "in " << seconds << " s";
        // Another /64 has its own bucket.
        EXPECT_EQ(bindings_answered({other_prefix_address}, 5), 5);
    });
}

TEST_F(Ipv6SourcePrefix, WithPrefix128EveryAddressHasItsOwnBucket) {
    run([] {
        TerndProcess ternd(server_yaml(
            "unauthenticated_rate: 1, unauthenticated_burst: 20, ipv6_source_prefix: 128"));
        ASSERT_TRUE(ternd.wait_for_output("is listening on", 10s)) << ternd.output();
        EXPECT_EQ(bindings_answered(one_host(), 5), host_addresses * 5);
    });
}

// Opens one TCP connection from each source and counts those ternd keeps and answers.
int connections_admitted(const std::vector<std::string>& sources, std::vector<StreamClient>& kept) {
    int admitted = 0;
    for (const auto& s : sources) {
        auto c = StreamClient::connect_tcp(at(server_ip, 3478), 0, at(s, 0));
        if (!c || !c->send(binding_request())) continue;
        if (!is_binding_success(c->receive_message(1s))) continue;
        ++admitted;
        kept.push_back(std::move(*c));
    }
    return admitted;
}

// ternd with `limits`; one TCP connection from each of 10 addresses of the one /64, then one from
// another /64: how many of each ternd admitted.
std::pair<int, int> admitted_per_prefix(const std::string& limits) {
    TerndProcess ternd(server_yaml(limits));
    if (!ternd.wait_for_output("is listening on", 10s)) {
        ADD_FAILURE() << ternd.output();
        return {-1, -1};
    }
    std::vector<StreamClient> kept;
    const int same = connections_admitted(one_host(10), kept);
    return {same, connections_admitted({other_prefix_address}, kept)};
}

TEST_F(Ipv6SourcePrefix, ConnectionsPerSourceCountTheWholeSlash64) {
    run([] { EXPECT_EQ(admitted_per_prefix("max_connections_per_ip: 3"), std::make_pair(3, 1)); });
}

TEST_F(Ipv6SourcePrefix, WithPrefix128ConnectionsCountPerAddress) {
    run([] {
        EXPECT_EQ(admitted_per_prefix("max_connections_per_ip: 3, ipv6_source_prefix: 128"),
                  std::make_pair(10, 1));
    });
}

}  // namespace
}  // namespace tern::test
