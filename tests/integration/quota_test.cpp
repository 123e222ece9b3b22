// Per-allocation and process-wide quotas and credential size bounds against a real ternd:
// limits.max_permissions_per_allocation and max_channels_per_allocation give 508 past the
// quota (refreshes still pass), limits.max_allocations gives 508 across users, and oversized
// USERNAME or REALM values get their defined outcome (silent drop, 400) without disturbing the
// next request.
#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "support.hpp"
#include "tern/protocol/attribute_type.hpp"
#include "tern/protocol/message.hpp"
#include "tern/protocol/message_builder.hpp"

namespace tern::test {
namespace {

using namespace std::chrono_literals;
using protocol::MessageBuilder;
using protocol::MessageClass;
using protocol::MessageView;
using protocol::Method;

std::string quota_yaml(std::uint16_t port, const std::string& limits) {
    return "listen: [ \"udp://127.0.0.1:" + std::to_string(port) +
           "\" ]\n"
           "auth:\n  users:\n    alice: { password: wonderland }\n    bob: { password: builder }\n"
           "relay:\n  allow_peers: [ 127.0.0.0/8 ]\n"
           "limits: { " +
           limits + ", shutdown_grace: 0 }\n";
}

TransportAddress peer_at(std::uint8_t last_octet) {
    return TransportAddress::v4({127, 0, 0, last_octet}, 40000);
}

TEST(Quota, PermissionsAndChannelsPerAllocationStopAtTheirLimits) {
    const auto port = free_port();
    TerndProcess ternd(
        quota_yaml(port, "max_permissions_per_allocation: 2, max_channels_per_allocation: 1"));
    ASSERT_TRUE(ternd.wait_for_output("is listening on", 10s)) << ternd.output();
    TurnClient c(loopback4(port), "alice", "wonderland");
    ASSERT_EQ(c.request(Method::allocate, TurnClient::udp_transport()).code(), 0);

    EXPECT_EQ(c.permit(peer_at(2)), 0);
    EXPECT_EQ(c.permit(peer_at(3)), 0);
    EXPECT_EQ(c.permit(peer_at(4)), 508);  // a third peer IP
    EXPECT_EQ(c.permit(peer_at(2)), 0);    // refreshing one needs no room

    EXPECT_EQ(c.bind(0x4000, peer_at(2)), 0);
    EXPECT_EQ(c.bind(0x4001, peer_at(3)), 508);  // a second channel
    EXPECT_EQ(c.bind(0x4000, peer_at(2)), 0);    // refreshing the binding
}

TEST(Quota, TotalAllocationsStopAtTheLimitWhoeverAsks) {
    const auto port = free_port();
    TerndProcess ternd(quota_yaml(port, "max_allocations: 2"));
    ASSERT_TRUE(ternd.wait_for_output("is listening on", 10s)) << ternd.output();
    TurnClient a(loopback4(port), "alice", "wonderland");
    TurnClient b(loopback4(port), "bob", "builder");
    TurnClient a2(loopback4(port), "alice", "wonderland");
    ASSERT_EQ(a.request(Method::allocate, TurnClient::udp_transport()).code(), 0);
    ASSERT_EQ(b.request(Method::allocate, TurnClient::udp_transport()).code(), 0);
    EXPECT_EQ(a2.request(Method::allocate, TurnClient::udp_transport()).code(), 508);
    // Deleting one makes room again.
    ASSERT_EQ(b.request(Method::refresh, [](MessageBuilder& m) { m.add_lifetime(0); }).code(), 0);
    EXPECT_EQ(a2.request(Method::allocate, TurnClient::udp_transport()).code(), 0);
}

// An Allocate carrying `username` and `realm` with a MESSAGE-INTEGRITY over a dummy key: the
// server looks at the sizes before anything else.
Bytes signed_allocate(const std::string& username, const std::string& realm) {
    Bytes buf(4096);
    MessageBuilder b(buf, {Method::allocate, MessageClass::request}, random_id());
    b.add_requested_transport(17);
    b.add_text(protocol::attr::username, username);
    b.add_text(protocol::attr::realm, realm);
    b.add_text(protocol::attr::nonce, "nonce");
    const Bytes key(16, 0x11);
    b.add_message_integrity(key);
    b.add_fingerprint();
    const auto out = b.finish();
    return Bytes(out.begin(), out.end());
}

TEST(Quota, OversizedUsernameIsDroppedAndOversizedRealmIs400) {
    const auto port = free_port();
    TerndProcess ternd(quota_yaml(port, "max_allocations: 10"));
    ASSERT_TRUE(ternd.wait_for_output("is listening on", 10s)) << ternd.output();
    UdpClient socket(loopback4(0));
    const auto server = loopback4(port);

    // RFC 8489 §14.3: USERNAME is under 513 bytes; a longer one makes the message malformed,
    // and malformed messages get no answer.
    ASSERT_TRUE(socket.send_to(server, signed_allocate(std::string(600, 'u'), "tern")));
    EXPECT_FALSE(socket.receive(500ms));

    // §14.9: REALM is under 128 characters; 200 is a Bad Request.
    const Bytes long_realm = signed_allocate("alice", std::string(200, 'r'));
    ASSERT_TRUE(socket.send_to(server, long_realm));
    const auto answer = socket.receive(2s);
    ASSERT_TRUE(answer);
    MessageView v;
    ASSERT_EQ(MessageView::parse(*answer, v), protocol::ParseError::ok);
    ASSERT_TRUE(v.error_code());
    EXPECT_EQ(v.error_code()->code, 400);
    EXPECT_LT(answer->size(), long_realm.size());  // the long value is not echoed back

    // The server carries on.
    TurnClient c(server, "alice", "wonderland");
    EXPECT_EQ(c.request(Method::allocate, TurnClient::udp_transport()).code(), 0);
}

}  // namespace
}  // namespace tern::test
