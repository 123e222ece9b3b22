// Binding service end to end: a real ternd on UDP, TCP and TLS over IPv4 and IPv6, queried by
// our own socket clients and by coturn's turnutils_stunclient.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <random>
#include <regex>
#include <thread>

#include "support.hpp"
#include "tern/protocol/integrity.hpp"
#include "tern/protocol/message.hpp"
#include "tern/protocol/message_builder.hpp"

namespace tern::test {
namespace {

using protocol::MessageClass;
using protocol::MessageView;

std::string server_yaml(std::uint16_t port, std::uint16_t tls_port) {
    const std::string p = std::to_string(port), t = std::to_string(tls_port);
    return "realm: it.example\n"
           "threads: 2\n"
           "listen: [ \"udp://127.0.0.1:" +
           p + "\", \"tcp://127.0.0.1:" + p + "\", \"tls://127.0.0.1:" + t +
           "\", \"udp://[::1]:" + p + "\", \"tcp://[::1]:" + p + "\", \"tls://[::1]:" + t +
           "\" ]\n"
           "tls: { certificate: " +
           data_dir() + "/tls/cert.pem, private_key: " + data_dir() +
           "/tls/key.pem }\n"
           "auth: { secrets: [ \"integration-test-secret\" ] }\n"
           "log: { level: debug }\n";
}

// Asserts `bytes` is a Binding success for `id` whose XOR-MAPPED-ADDRESS is `expected`.
void expect_binding_success(const Bytes& bytes, const protocol::TransactionId& id,
                            const TransportAddress& expected) {
    MessageView msg;
    ASSERT_EQ(MessageView::parse(bytes, msg), protocol::ParseError::ok);
    EXPECT_EQ(msg.method(), protocol::Method::binding);
    EXPECT_EQ(msg.message_class(), MessageClass::success_response);
    EXPECT_EQ(msg.transaction_id(), id);
    ASSERT_TRUE(msg.xor_mapped_address());
    EXPECT_EQ(*msg.xor_mapped_address(), expected)
        << msg.xor_mapped_address()->to_string() << " vs " << expected.to_string();
    EXPECT_EQ(msg.software(), "tern");
    EXPECT_EQ(protocol::verify_fingerprint(msg), protocol::IntegrityResult::ok);
}

// One Binding over an open stream; the mapped address must be the client's own end.
void expect_stream_binding(StreamClient& c, const TransportAddress& server) {
    protocol::TransactionId id;
    ASSERT_TRUE(c.send(binding_request(&id))) << server.to_string();
    const auto reply = c.receive_message();
    ASSERT_TRUE(reply) << server.to_string();
    expect_binding_success(*reply, id, c.local_address());
}

std::optional<Bytes> wait_udp_answer(const TransportAddress& server, const Bytes& request,
                                     std::chrono::milliseconds total) {
    const auto deadline = std::chrono::steady_clock::now() + total;
    TransportAddress local;
    while (std::chrono::steady_clock::now() < deadline) {
        auto r = udp_exchange(server, request, loopback4(0), local, 200ms);
        if (r) return r;
    }
    return std::nullopt;
}

class BindingTest : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        port_ = free_port();
        tls_port_ = free_port();
        server_ = std::make_unique<TerndProcess>(server_yaml(port_, tls_port_));
        ASSERT_TRUE(wait_udp_answer(loopback4(port_), binding_request(), 10s))
            << "ternd did not come up:\n"
            << server_->output();
    }
    static void TearDownTestSuite() {
        EXPECT_EQ(server_->stop(), 0) << server_->output();
        server_.reset();
    }
    void TearDown() override {
        ASSERT_TRUE(server_->running()) << "ternd died:\n" << server_->output();
    }

    static inline std::unique_ptr<TerndProcess> server_;
    static inline std::uint16_t port_ = 0;
    static inline std::uint16_t tls_port_ = 0;
};

TEST_F(BindingTest, UdpIpv4MappedAddressIsTheSourceAddress) {
    // A random 127/8 source address proves the answer is not a constant.
    std::mt19937 r{std::random_device{}()};
    const auto host = static_cast<std::uint8_t>(2 + r() % 250);
    protocol::TransactionId id;
    TransportAddress local;
    const auto reply = udp_exchange(loopback4(port_), binding_request(&id),
                                    TransportAddress::v4({127, 0, 0, host}, 0), local);
    ASSERT_TRUE(reply);
    EXPECT_EQ(local.bytes[3], host);
    expect_binding_success(*reply, id, local);
}

TEST_F(BindingTest, UdpIpv6) {
    protocol::TransactionId id;
    TransportAddress local;
    const auto reply = udp_exchange(loopback6(port_), binding_request(&id), loopback6(0), local);
    ASSERT_TRUE(reply);
    EXPECT_EQ(local.family, protocol::AddressFamily::ipv6);
    expect_binding_success(*reply, id, local);
}

TEST_F(BindingTest, RequestWithoutFingerprintIsAnswered) {
    protocol::TransactionId id;
    TransportAddress local;
    const auto reply =
        udp_exchange(loopback4(port_), binding_request(&id, false), loopback4(0), local);
    ASSERT_TRUE(reply);
    expect_binding_success(*reply, id, local);
}

TEST_F(BindingTest, TcpIpv4AndIpv6) {
    for (const auto& server : {loopback4(port_), loopback6(port_)}) {
        auto c = StreamClient::connect_tcp(server);
        ASSERT_TRUE(c) << server.to_string();
        expect_stream_binding(*c, server);
    }
}

TEST_F(BindingTest, TlsIpv4AndIpv6WithCertificateVerification) {
    for (const auto& server : {loopback4(tls_port_), loopback6(tls_port_)}) {
        auto c = StreamClient::connect_tls(server, data_dir() + "/tls/cert.pem", "localhost");
        ASSERT_TRUE(c) << "TLS handshake to " << server.to_string() << " failed";
        expect_stream_binding(*c, server);
    }
}

TEST_F(BindingTest, TlsWrongHostNameIsRejectedByTheClient) {
    // The certificate names localhost only; a verifying client must refuse another name, which
    // shows the handshake above really checked it.
    EXPECT_FALSE(StreamClient::connect_tls(loopback4(tls_port_), data_dir() + "/tls/cert.pem",
                                           "not-localhost.example"));
}

TEST_F(BindingTest, TcpPipelinedAndSplitRequests) {
    auto c = StreamClient::connect_tcp(loopback4(port_));
    ASSERT_TRUE(c);
    protocol::TransactionId a, b;
    Bytes both = binding_request(&a);
    const Bytes second = binding_request(&b);
    both.insert(both.end(), second.begin(), second.end());
    ASSERT_TRUE(c->send(both));
    auto ra = c->receive_message();
    auto rb = c->receive_message();
    ASSERT_TRUE(ra && rb);
    expect_binding_success(*ra, a, c->local_address());
    expect_binding_success(*rb, b, c->local_address());

    // One byte per write: the framer must reassemble.
    protocol::TransactionId d;
    const Bytes third = binding_request(&d);
    for (const auto byte : third) {
        ASSERT_TRUE(c->send(Bytes{byte}));
        std::this_thread::sleep_for(1ms);
    }
    auto rd = c->receive_message();
    ASSERT_TRUE(rd);
    expect_binding_success(*rd, d, c->local_address());
}

TEST_F(BindingTest, TcpJunkClosesTheConnection) {
    auto c = StreamClient::connect_tcp(loopback4(port_));
    ASSERT_TRUE(c);
    const std::string junk = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    ASSERT_TRUE(c->send(Bytes(junk.begin(), junk.end())));
    EXPECT_TRUE(c->wait_closed(3s));
}

TEST_F(BindingTest, TcpOversizedFrameClosesTheConnection) {
    auto c = StreamClient::connect_tcp(loopback4(port_));
    ASSERT_TRUE(c);
    // A STUN header that declares 65532 bytes of attributes: larger than the stream cap.
    Bytes header = binding_request(nullptr, false);
    header[2] = 0xFF;
    header[3] = 0xFC;
    ASSERT_TRUE(c->send(header));
    EXPECT_TRUE(c->wait_closed(3s));
}

TEST_F(BindingTest, UnknownComprehensionRequiredAttributeGets420) {
    protocol::TransactionId id{};
    id.bytes[0] = 0x42;
    Bytes buf(256);
    protocol::MessageBuilder b(buf, {protocol::Method::binding, MessageClass::request}, id);
    const std::uint8_t v[4] = {1, 2, 3, 4};
    b.add_bytes(0x7F01, v);  // unknown, comprehension-required
    b.add_bytes(0xBF01, v);  // unknown, comprehension-optional: must not be listed
    b.add_fingerprint();
    const auto req = b.finish();
    TransportAddress local;
    const auto reply =
        udp_exchange(loopback4(port_), Bytes(req.begin(), req.end()), loopback4(0), local);
    ASSERT_TRUE(reply);
    MessageView msg;
    ASSERT_EQ(MessageView::parse(*reply, msg), protocol::ParseError::ok);
    EXPECT_EQ(msg.message_class(), MessageClass::error_response);
    EXPECT_EQ(msg.transaction_id(), id);
    ASSERT_TRUE(msg.error_code());
    EXPECT_EQ(msg.error_code()->code, 420);
    std::array<std::uint16_t, 8> listed{};
    ASSERT_EQ(msg.unknown_attributes(listed), 1u);
    EXPECT_EQ(listed[0], 0x7F01);
    EXPECT_EQ(protocol::verify_fingerprint(msg), protocol::IntegrityResult::ok);
}

TEST_F(BindingTest, ChangeRequestGets420ButEmptyChangeRequestIsServed) {
    for (const std::uint32_t flags : {0x6u, 0x0u}) {
        protocol::TransactionId id{};
        id.bytes[1] = static_cast<std::uint8_t>(flags);
        Bytes buf(128);
        protocol::MessageBuilder b(buf, {protocol::Method::binding, MessageClass::request}, id);
        b.add_u32(protocol::attr::change_request, flags);
        const auto req = b.finish();
        TransportAddress local;
        const auto reply =
            udp_exchange(loopback4(port_), Bytes(req.begin(), req.end()), loopback4(0), local);
        ASSERT_TRUE(reply);
        if (flags == 0) {
            expect_binding_success(*reply, id, local);
            continue;
        }
        MessageView msg;
        ASSERT_EQ(MessageView::parse(*reply, msg), protocol::ParseError::ok);
        ASSERT_TRUE(msg.error_code());
        EXPECT_EQ(msg.error_code()->code, 420);
        std::array<std::uint16_t, 8> listed{};
        ASSERT_EQ(msg.unknown_attributes(listed), 1u);
        EXPECT_EQ(listed[0], protocol::attr::change_request);
    }
}

TEST_F(BindingTest, UnknownMethodGets400) {
    protocol::TransactionId id{};
    id.bytes[2] = 7;
    Bytes buf(64);
    protocol::MessageBuilder b(buf, {static_cast<protocol::Method>(0x0FF), MessageClass::request},
                               id);
    const auto req = b.finish();
    TransportAddress local;
    const auto reply =
        udp_exchange(loopback4(port_), Bytes(req.begin(), req.end()), loopback4(0), local);
    ASSERT_TRUE(reply);
    MessageView msg;
    ASSERT_EQ(MessageView::parse(*reply, msg), protocol::ParseError::ok);
    ASSERT_TRUE(msg.error_code());
    EXPECT_EQ(msg.error_code()->code, 400);
}

TEST_F(BindingTest, IndicationsResponsesAndBadFingerprintsGetNoReply) {
    std::vector<Bytes> silent;
    {
        Bytes buf(64);
        protocol::MessageBuilder b(buf, {protocol::Method::binding, MessageClass::indication}, {});
        b.add_fingerprint();
        silent.emplace_back(b.finish().begin(), b.finish().end());
    }
    {
        Bytes buf(64);
        protocol::MessageBuilder b(buf, {protocol::Method::binding, MessageClass::success_response},
                                   {});
        silent.emplace_back(b.finish().begin(), b.finish().end());
    }
    {
        Bytes req = binding_request();
        req.back() ^= 0x01;  // corrupt the FINGERPRINT value
        silent.push_back(req);
    }
    for (const auto& packet : silent) {
        TransportAddress local;
        EXPECT_FALSE(udp_exchange(loopback4(port_), packet, loopback4(0), local, 300ms));
    }
}

TEST_F(BindingTest, TenThousandMalformedDatagramsThenAnswersNormally) {
    std::mt19937 r{12345};
    const Bytes good = binding_request();
    std::vector<Bytes> kinds;
    kinds.push_back(Bytes(good.begin(), good.begin() + 19));  // truncated header
    Bytes bad_cookie = good;
    bad_cookie[4] ^= 0xFF;
    kinds.push_back(bad_cookie);
    Bytes bad_len = good;
    bad_len[3] = 0x0A;  // not a multiple of 4, and not the real length
    kinds.push_back(bad_len);
    Bytes overrun = good;
    overrun[3] = 0x10;
    overrun.resize(36);
    overrun[22] = 0x00;
    overrun[23] = 0xFF;  // first attribute claims 255 bytes
    kinds.push_back(overrun);
    kinds.push_back(Bytes{0x40, 0x00, 0x00, 0x08, 1, 2});  // ChannelData, truncated
    kinds.push_back(Bytes{});                              // empty datagram

    const int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
    ASSERT_GE(fd, 0);
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(port_);
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int sent = 0;
    for (int i = 0; i < 10000; ++i) {
        Bytes packet;
        if (i % 3 == 0) {
            packet.resize(1 + r() % 600);
            for (auto& byte : packet) byte = static_cast<std::uint8_t>(r());
        } else {
            packet = kinds[static_cast<std::size_t>(i) % kinds.size()];
        }
        if (::sendto(fd, packet.data(), packet.size(), 0, reinterpret_cast<sockaddr*>(&to),
                     sizeof to) >= 0) {
            ++sent;
        }
        if (i % 500 == 0) std::this_thread::sleep_for(1ms);  // stay below the socket buffer
    }
    ::close(fd);
    EXPECT_EQ(sent, 10000);
    ASSERT_TRUE(server_->running()) << server_->output();

    protocol::TransactionId id;
    const auto reply = wait_udp_answer(loopback4(port_), binding_request(&id), 5s);
    ASSERT_TRUE(reply) << "no answer after the malformed burst";
    MessageView msg;
    ASSERT_EQ(MessageView::parse(*reply, msg), protocol::ParseError::ok);
    EXPECT_EQ(msg.message_class(), MessageClass::success_response);
}

TEST_F(BindingTest, CoturnStunclientSeesItsRealSourceAddress) {
    // coturn's client is an independent judge; strace shows the port its socket really got.
    std::mt19937 r{std::random_device{}()};
    const std::string host = "127.0.0." + std::to_string(2 + r() % 250);
    const std::string trace = server_->dir() + "/stunclient.strace";
    std::string out;
    const int rc =
        run_command("strace -f -e trace=getsockname -o " + trace + " turnutils_stunclient -p " +
                        std::to_string(port_) + " -L " + host + " 127.0.0.1",
                    out);
    ASSERT_EQ(rc, 0) << out;
    std::smatch m;
    ASSERT_TRUE(std::regex_search(out, m, std::regex(R"(UDP reflexive addr: ([0-9.]+):([0-9]+))")))
        << out;
    EXPECT_EQ(m[1].str(), host);
    const std::string reported_port = m[2].str();

    std::string strace_out;
    run_command("cat " + trace, strace_out);
    std::smatch s;
    ASSERT_TRUE(std::regex_search(strace_out, s, std::regex(R"(sin_port=htons\(([0-9]+)\))")))
        << strace_out;
    EXPECT_EQ(s[1].str(), reported_port) << "strace: " << strace_out << "\nclient: " << out;
}

}  // namespace
}  // namespace tern::test

namespace tern::test {
namespace {

TEST(WildcardListener, RepliesComeFromTheAddressTheClientAsked) {
    // On a wildcard socket the kernel would answer from its preferred source (127.0.0.1 on lo);
    // packet info makes the answer leave from the address the request was sent to.
    const auto port = free_port();
    const std::string p = std::to_string(port);
    TerndProcess server("listen: [ \"udp://0.0.0.0:" + p + "\", \"udp://[::]:" + p +
                        "\" ]\nauth: { secrets: [ \"wildcard-secret\" ] }\n");
    const auto asked = TransportAddress::v4({127, 0, 0, 5}, port);
    std::optional<Bytes> reply;
    TransportAddress local, from;
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    protocol::TransactionId id;
    while (!reply && std::chrono::steady_clock::now() < deadline) {
        reply = udp_exchange(asked, binding_request(&id), loopback4(0), local, 200ms, &from);
    }
    ASSERT_TRUE(reply) << server.output();
    EXPECT_EQ(from, asked);
    expect_binding_success(*reply, id, local);

    const auto reply6 =
        udp_exchange(loopback6(port), binding_request(&id), loopback6(0), local, 2s, &from);
    ASSERT_TRUE(reply6);
    EXPECT_EQ(from, loopback6(port));
    expect_binding_success(*reply6, id, local);
    EXPECT_EQ(server.stop(), 0);
}

}  // namespace
}  // namespace tern::test
