// TCP/TLS connection limits against a real ternd: per source IP, given back on close, and a
// client that connects but never sends a request cannot keep its slot (slowloris).
#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

#include "support.hpp"
#include "tern/protocol/message.hpp"

namespace tern::test {
namespace {

std::string limits_yaml(std::uint16_t port) {
    return "listen: [ \"tcp://127.0.0.1:" + std::to_string(port) +
           "\" ]\n"
           "auth: { secrets: [ \"s\" ] }\n"
           "limits: { max_connections: 50, max_connections_per_ip: 2 }\n";
}

bool binding_works(StreamClient& c) {
    if (!c.send(binding_request())) return false;
    const auto reply = c.receive_message(2s);
    protocol::MessageView view;
    return reply && protocol::MessageView::parse(*reply, view) == protocol::ParseError::ok &&
           view.message_class() == protocol::MessageClass::success_response;
}

TEST(ConnectionLimits, ThirdConnectionFromOneAddressIsClosedAndASlotComesBackOnClose) {
    const std::uint16_t port = free_port();
    TerndProcess ternd(limits_yaml(port));
    ASSERT_TRUE(ternd.wait_for_output("is listening on", 10s)) << ternd.output();

    auto first = StreamClient::connect_tcp(loopback4(port));
    auto second = StreamClient::connect_tcp(loopback4(port));
    ASSERT_TRUE(first && second);
    ASSERT_TRUE(binding_works(*first));
    ASSERT_TRUE(binding_works(*second));
    {
        auto third = StreamClient::connect_tcp(loopback4(port));
        ASSERT_TRUE(third);  // the kernel accepts; ternd closes it at once
        EXPECT_TRUE(third->wait_closed(2s));
    }
    // The two admitted connections are untouched.
    EXPECT_TRUE(binding_works(*first));
    first.reset();
    // Closing one gives its slot back (the count drops when ternd sees the close).
    bool admitted = false;
    for (int attempt = 0; attempt < 20 && !admitted; ++attempt) {
        auto again = StreamClient::connect_tcp(loopback4(port));
        admitted = again && binding_works(*again);
        if (!admitted) std::this_thread::sleep_for(100ms);
    }
    EXPECT_TRUE(admitted);
}

TEST(ConnectionLimits, AConnectionThatNeverSendsARequestIsClosedWithinTheDeadline) {
    const std::uint16_t port = free_port();
    TerndProcess ternd(limits_yaml(port));
    ASSERT_TRUE(ternd.wait_for_output("is listening on", 10s)) << ternd.output();
    auto idle = StreamClient::connect_tcp(loopback4(port));
    ASSERT_TRUE(idle);
    // Half a request is not a request: the deadline (10 s) still applies.
    const Bytes request = binding_request();
    ASSERT_TRUE(idle->send(Bytes(request.begin(), request.begin() + 10)));
    const auto start = std::chrono::steady_clock::now();
    EXPECT_FALSE(idle->wait_closed(5s));  // not before the deadline...
    EXPECT_TRUE(idle->wait_closed(8s));   // ...but soon after it
    EXPECT_GE(std::chrono::steady_clock::now() - start, 9s);
}

}  // namespace
}  // namespace tern::test
