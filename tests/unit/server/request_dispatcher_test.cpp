#include "tern/server/request/request_dispatcher.hpp"

#include <gtest/gtest.h>

#include <arpa/inet.h>

#include <array>
#include <cstring>
#include <vector>

#include "tern/protocol/integrity.hpp"
#include "tern/protocol/message.hpp"
#include "tern/protocol/message_builder.hpp"
#include "tern/server/request/socket_address.hpp"

namespace tern::server {
namespace {

using protocol::MessageBuilder;
using protocol::MessageClass;
using protocol::MessageView;
using protocol::Method;
using Bytes = std::vector<std::uint8_t>;

std::shared_ptr<const config::Config> make_config(std::string software = "tern-test") {
    config::Config c;
    c.software = std::move(software);
    return std::make_shared<const config::Config>(c);
}

PacketContext context() {
    PacketContext ctx;
    ctx.source = protocol::TransportAddress::v4({192, 0, 2, 33}, 40000);
    ctx.local = protocol::TransportAddress::v4({192, 0, 2, 1}, 3478);
    return ctx;
}

protocol::TransactionId tid(std::uint8_t seed) {
    protocol::TransactionId id;
    for (std::size_t i = 0; i < id.bytes.size(); ++i)
        id.bytes[i] = static_cast<std::uint8_t>(seed + i);
    return id;
}

template <class F>
Bytes build(protocol::MessageType type, const protocol::TransactionId& id, F&& add) {
    Bytes buf(512);
    MessageBuilder b(buf, type, id);
    add(b);
    const auto out = b.finish();
    return Bytes(out.begin(), out.end());
}

class DispatcherTest : public ::testing::Test {
protected:
    std::span<const std::uint8_t> handle(const Bytes& packet) {
        return dispatcher_.handle(packet, context(), out_);
    }
    RequestDispatcher dispatcher_{make_config()};
    std::array<std::uint8_t, 1024> out_{};
};

TEST_F(DispatcherTest, BindingRequestGetsMappedAddressSoftwareAndFingerprint) {
    const auto req = build({Method::binding, MessageClass::request}, tid(1),
                           [](MessageBuilder& b) { b.add_fingerprint(); });
    const auto reply = handle(req);
    MessageView msg;
    ASSERT_EQ(MessageView::parse(reply, msg), protocol::ParseError::ok);
    EXPECT_EQ(msg.method(), Method::binding);
    EXPECT_EQ(msg.message_class(), MessageClass::success_response);
    EXPECT_EQ(msg.transaction_id(), tid(1));
    EXPECT_EQ(msg.xor_mapped_address(), context().source);
    EXPECT_EQ(msg.software(), "tern-test");
    EXPECT_EQ(protocol::verify_fingerprint(msg), protocol::IntegrityResult::ok);
    // The fingerprint is the last attribute (RFC 8489 §14.7).
    EXPECT_EQ(msg.attribute(msg.attribute_count() - 1).type, protocol::attr::fingerprint);
    EXPECT_EQ(dispatcher_.counters().success_responses, 1u);
}

TEST_F(DispatcherTest, Ipv6SourceIsReportedAsIpv6) {
    const auto req = build({Method::binding, MessageClass::request}, tid(2), [](auto&) {});
    PacketContext ctx = context();
    std::array<std::uint8_t, 16> v6{0x20, 0x01, 0x0d, 0xb8};
    v6[15] = 9;
    ctx.source = protocol::TransportAddress::v6(v6, 5555);
    MessageView msg;
    ASSERT_EQ(MessageView::parse(dispatcher_.handle(req, ctx, out_), msg),
              protocol::ParseError::ok);
    EXPECT_EQ(msg.xor_mapped_address(), ctx.source);
}

TEST_F(DispatcherTest, EmptySoftwareOmitsTheAttribute) {
    dispatcher_.set_config(make_config(""));
    const auto req = build({Method::binding, MessageClass::request}, tid(3), [](auto&) {});
    MessageView msg;
    ASSERT_EQ(MessageView::parse(handle(req), msg), protocol::ParseError::ok);
    EXPECT_FALSE(msg.software());
}

TEST_F(DispatcherTest, SilentCases) {
    const auto indication =
        build({Method::binding, MessageClass::indication}, tid(4), [](auto&) {});
    const auto response =
        build({Method::binding, MessageClass::success_response}, tid(5), [](auto&) {});
    auto bad_fingerprint = build({Method::binding, MessageClass::request}, tid(6),
                                 [](MessageBuilder& b) { b.add_fingerprint(); });
    bad_fingerprint.back() ^= 0x80;
    Bytes truncated = build({Method::binding, MessageClass::request}, tid(7), [](auto&) {});
    truncated.pop_back();
    const Bytes channel_data{0x40, 0x00, 0x00, 0x04, 1, 2, 3, 4};
    const Bytes junk{0xFF, 0xFF, 0xFF};

    EXPECT_TRUE(handle(indication).empty());
    EXPECT_TRUE(handle(response).empty());
    EXPECT_TRUE(handle(bad_fingerprint).empty());
    EXPECT_TRUE(handle(truncated).empty());
    EXPECT_TRUE(handle(channel_data).empty());
    EXPECT_TRUE(handle(junk).empty());
    EXPECT_TRUE(handle(Bytes{}).empty());
    const auto& c = dispatcher_.counters();
    EXPECT_EQ(c.indications, 1u);
    EXPECT_EQ(c.dropped_malformed, 2u);  // bad fingerprint, truncated
    EXPECT_EQ(c.dropped_other, 4u);      // response, ChannelData, junk, empty
    EXPECT_EQ(c.requests, 0u);
}

TEST_F(DispatcherTest, UnknownComprehensionRequiredGets420ListingOnlyThose) {
    const auto req = build({Method::binding, MessageClass::request}, tid(8), [](MessageBuilder& b) {
        const std::uint8_t v[4]{};
        b.add_bytes(0x7001, v);
        b.add_bytes(0xC001, v);  // optional: ignored
        b.add_bytes(0x7002, v);
    });
    MessageView msg;
    ASSERT_EQ(MessageView::parse(handle(req), msg), protocol::ParseError::ok);
    EXPECT_EQ(msg.message_class(), MessageClass::error_response);
    ASSERT_TRUE(msg.error_code());
    EXPECT_EQ(msg.error_code()->code, 420);
    std::array<std::uint16_t, 4> listed{};
    ASSERT_EQ(msg.unknown_attributes(listed), 2u);
    EXPECT_EQ(listed[0], 0x7001);
    EXPECT_EQ(listed[1], 0x7002);
}

TEST_F(DispatcherTest, ManyUnknownAttributesKeepTheErrorSmall) {
    const auto req = build({Method::binding, MessageClass::request}, tid(9), [](MessageBuilder& b) {
        for (std::uint16_t t = 0x7100; t < 0x7100 + 40; ++t) b.add_flag(t);
    });
    const auto reply = handle(req);
    MessageView msg;
    ASSERT_EQ(MessageView::parse(reply, msg), protocol::ParseError::ok);
    std::array<std::uint16_t, 64> listed{};
    EXPECT_EQ(msg.unknown_attributes(listed), 8u);
    EXPECT_LT(reply.size(), req.size());  // no amplification towards an unauthenticated sender
}

TEST_F(DispatcherTest, Rfc5780AttributesWeDoNotServeGet420) {
    for (const std::uint16_t type :
         {protocol::attr::response_port, protocol::attr::padding, protocol::attr::change_request}) {
        const auto req =
            build({Method::binding, MessageClass::request}, tid(10), [&](MessageBuilder& b) {
                if (type == protocol::attr::padding) {
                    const std::uint8_t pad[8]{};
                    b.add_bytes(type, pad);
                } else {
                    b.add_u32(type, type == protocol::attr::change_request ? 0x4 : 0x12340000);
                }
            });
        MessageView msg;
        ASSERT_EQ(MessageView::parse(handle(req), msg), protocol::ParseError::ok) << type;
        ASSERT_TRUE(msg.error_code()) << type;
        EXPECT_EQ(msg.error_code()->code, 420);
        std::array<std::uint16_t, 4> listed{};
        ASSERT_EQ(msg.unknown_attributes(listed), 1u);
        EXPECT_EQ(listed[0], type);
    }
}

TEST_F(DispatcherTest, IceAttributesAreUnderstood) {
    // A Binding carrying ICE attributes (RFC 8445) is a normal request, not a 420.
    const auto req =
        build({Method::binding, MessageClass::request}, tid(11), [](MessageBuilder& b) {
            b.add_u32(protocol::attr::priority, 0x6E0001FF);
            b.add_flag(protocol::attr::use_candidate);
        });
    MessageView msg;
    ASSERT_EQ(MessageView::parse(handle(req), msg), protocol::ParseError::ok);
    EXPECT_EQ(msg.message_class(), MessageClass::success_response);
}

TEST_F(DispatcherTest, OtherMethodsGet400ForNow) {
    const auto req = build({Method::allocate, MessageClass::request}, tid(12),
                           [](MessageBuilder& b) { b.add_requested_transport(17); });
    MessageView msg;
    ASSERT_EQ(MessageView::parse(handle(req), msg), protocol::ParseError::ok);
    EXPECT_EQ(msg.method(), Method::allocate);
    ASSERT_TRUE(msg.error_code());
    EXPECT_EQ(msg.error_code()->code, 400);
}

TEST_F(DispatcherTest, TooSmallOutputBufferGivesNoReplyRatherThanAPartialOne) {
    const auto req = build({Method::binding, MessageClass::request}, tid(13), [](auto&) {});
    std::array<std::uint8_t, 24> tiny{};
    EXPECT_TRUE(dispatcher_.handle(req, context(), tiny).empty());
}

TEST(SocketAddress, MappedIpv6SourceBecomesIpv4) {
    sockaddr_in6 in6{};
    in6.sin6_family = AF_INET6;
    in6.sin6_port = htons(1234);
    const std::uint8_t mapped[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 198, 51, 100, 7};
    std::memcpy(&in6.sin6_addr, mapped, 16);
    const auto a = from_sockaddr(reinterpret_cast<const sockaddr*>(&in6));
    EXPECT_EQ(a, protocol::TransportAddress::v4({198, 51, 100, 7}, 1234));
}

TEST(SocketAddress, RoundTripsThroughSockaddrAndAsio) {
    std::array<std::uint8_t, 16> v6{0x20, 0x01, 0x0d, 0xb8};
    v6[15] = 0x42;
    for (const auto& a : {protocol::TransportAddress::v4({203, 0, 113, 9}, 65535),
                          protocol::TransportAddress::v6(v6, 1)}) {
        sockaddr_storage ss{};
        to_sockaddr(a, ss);
        EXPECT_EQ(from_sockaddr(reinterpret_cast<const sockaddr*>(&ss)), a);
        EXPECT_EQ(from_endpoint(to_udp_endpoint(a)), a);
        EXPECT_EQ(from_endpoint(to_tcp_endpoint(a)), a);
    }
}

TEST(DispatcherRateLimit, BindingFloodFromOneSourceIsCutToItsBurstOthersAreServed) {
    config::Config c;
    c.limits.unauthenticated_rate = 5;
    c.limits.unauthenticated_burst = 10;
    RequestDispatcher d(std::make_shared<const config::Config>(c));
    std::array<std::uint8_t, 1024> out{};
    const Bytes request =
        build({Method::binding, MessageClass::request}, tid(1), [](MessageBuilder&) {});
    PacketContext flooder = context();
    int answered = 0;
    for (int i = 0; i < 50; ++i) answered += d.handle(request, flooder, out).empty() ? 0 : 1;
    EXPECT_EQ(answered, 10);
    EXPECT_EQ(d.counters().rate_limited, 40u);
    PacketContext other = context();
    other.source = protocol::TransportAddress::v4({192, 0, 2, 99}, 40000);
    EXPECT_FALSE(d.handle(request, other, out).empty());
    flooder.now += std::chrono::seconds(1);  // five more tokens a second later
    answered = 0;
    for (int i = 0; i < 50; ++i) answered += d.handle(request, flooder, out).empty() ? 0 : 1;
    EXPECT_EQ(answered, 5);
}

}  // namespace
}  // namespace tern::server
