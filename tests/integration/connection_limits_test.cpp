// TCP/TLS connection limits against a real ternd: per source IP, given back on close, and a
// client that connects but never sends a request, or never authenticates one, cannot keep its
// slot (slowloris).
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

// limits.unauthenticated_timeout (3 s here): a client that only ever sends Bindings, or trickles
// a byte a second, is answered and then closed; one that authenticated a TURN request is kept
// for the idle timeout. Without the deadline all three would stay open for 600 s.
std::string deadline_yaml(std::uint16_t port, std::uint16_t tls_port) {
    return "listen: [ \"tcp://127.0.0.1:" + std::to_string(port) +
           "\", \"tls://127.0.0.1:" + std::to_string(tls_port) +
           "\" ]\n"
           "tls: { certificate: " +
           data_dir() + "/tls/cert.pem, private_key: " + data_dir() +
           "/tls/key.pem }\n"
           "auth: { secrets: [ \"s\" ] }\n"
           "limits: { unauthenticated_timeout: 3, handshake_timeout: 2 }\n";
}

void expect_closed_between(StreamClient& c, std::chrono::steady_clock::time_point opened,
                           std::chrono::milliseconds earliest, std::chrono::milliseconds latest) {
    const auto before = earliest - (std::chrono::steady_clock::now() - opened);
    if (before > 0ms) {
        EXPECT_FALSE(c.wait_closed(std::chrono::duration_cast<std::chrono::milliseconds>(before)))
            << "closed before the deadline";
    }
    EXPECT_TRUE(c.wait_closed(latest - earliest)) << "still open after the deadline";
}

TEST(ConnectionLimits, BindingOnlyStreamsAreAnsweredThenClosedAtTheAuthenticationDeadline) {
    const std::uint16_t port = free_port(), tls_port = free_port();
    TerndProcess ternd(deadline_yaml(port, tls_port));
    ASSERT_TRUE(ternd.wait_for_output("is listening on", 10s)) << ternd.output();
    const auto opened = std::chrono::steady_clock::now();
    auto tcp = StreamClient::connect_tcp(loopback4(port));
    auto tls =
        StreamClient::connect_tls(loopback4(tls_port), data_dir() + "/tls/cert.pem", "localhost");
    ASSERT_TRUE(tcp && tls);
    EXPECT_TRUE(binding_works(*tcp));  // STUN clients still get their answers first
    EXPECT_TRUE(binding_works(*tls));
    std::this_thread::sleep_for(1s);
    EXPECT_TRUE(binding_works(*tcp));  // a second Binding does not extend the deadline
    expect_closed_between(*tcp, opened, 2500ms, 6s);
    EXPECT_TRUE(tls->wait_closed(1s));
}

TEST(ConnectionLimits, AStreamTricklingAByteASecondIsClosedAtTheAuthenticationDeadline) {
    const std::uint16_t port = free_port(), tls_port = free_port();
    TerndProcess ternd(deadline_yaml(port, tls_port));
    ASSERT_TRUE(ternd.wait_for_output("is listening on", 10s)) << ternd.output();
    const auto opened = std::chrono::steady_clock::now();
    auto c = StreamClient::connect_tcp(loopback4(port));
    ASSERT_TRUE(c);
    ASSERT_TRUE(binding_works(*c));  // one frame inside the first-frame deadline
    const Bytes next = binding_request();
    bool closed = false;
    for (std::size_t i = 0; i < 8 && !closed; ++i) {  // then one byte a second
        c->send(Bytes{next[i]});
        closed = c->wait_closed(1s);
    }
    EXPECT_TRUE(closed);
    const auto lived = std::chrono::steady_clock::now() - opened;
    EXPECT_GE(lived, 2500ms);
    EXPECT_LE(lived, 6s);
}

TEST(ConnectionLimits, AnAuthenticatedStreamOutlivesTheAuthenticationDeadline) {
    const std::uint16_t port = free_port(), tls_port = free_port();
    TerndProcess ternd(deadline_yaml(port, tls_port));
    ASSERT_TRUE(ternd.wait_for_output("is listening on", 10s)) << ternd.output();
    auto stream = StreamClient::connect_tcp(loopback4(port));
    ASSERT_TRUE(stream);
    const std::string user = rest_username(unix_now() + 3600, "alice");
    TurnClient turn(std::move(*stream), user, rest_password("s", user));
    ASSERT_EQ(turn.request(protocol::Method::allocate, TurnClient::udp_transport()).code(), 0);
    EXPECT_FALSE(turn.stream().wait_closed(5s));
    EXPECT_EQ(turn.request(protocol::Method::refresh, {}).code(), 0);
}

}  // namespace
}  // namespace tern::test
