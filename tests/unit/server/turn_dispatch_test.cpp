// The TURN request path through the dispatcher with a real AllocationManager and a recording
// egress: authentication comes first, the expiry policy decides about expired REST credentials,
// and data reaches the manager. No sockets, no clock: time is in the PacketContext.
#include <gtest/gtest.h>

#include <array>
#include <chrono>
#include <string>
#include <vector>

#include "tern/allocation/allocation_manager.hpp"
#include "tern/allocation/random_source.hpp"
#include "tern/allocation/relay_ports.hpp"
#include "tern/auth/credential_store.hpp"
#include "tern/auth/rest_credential.hpp"
#include "tern/protocol/attribute_type.hpp"
#include "tern/protocol/integrity.hpp"
#include "tern/protocol/message.hpp"
#include "tern/protocol/message_builder.hpp"
#include "tern/server/request/relay_settings.hpp"
#include "tern/server/request/request_dispatcher.hpp"

namespace tern::server {
namespace {

using namespace std::chrono_literals;
using protocol::MessageBuilder;
using protocol::MessageClass;
using protocol::MessageType;
using protocol::MessageView;
using protocol::Method;
using protocol::TransportAddress;
using Bytes = std::vector<std::uint8_t>;

constexpr std::int64_t start_unix = 1'800'000'000;
const char* const realm = "tern.test";
const char* const secret = "s3cret";

class CountingRandom final : public allocation::RandomSource {
public:
    std::uint64_t next() noexcept override { return state_ += 0x9E3779B97F4A7C15ull; }

private:
    std::uint64_t state_ = 7;
};

struct RecordingEgress final : allocation::RelayEgress {
    allocation::OpenRelayResult open_relay(const TransportAddress&, bool) override {
        return {allocation::OpenRelayStatus::opened, next_id++};
    }
    void close_relay(allocation::RelayId id) noexcept override { closed.push_back(id); }
    bool send_to_peer(allocation::RelayId, const TransportAddress& peer,
                      std::span<const std::uint8_t> payload) noexcept override {
        to_peer.emplace_back(peer, Bytes(payload.begin(), payload.end()));
        return true;
    }
    bool send_to_client(const allocation::FiveTuple&, allocation::ClientRoute,
                        std::span<const std::uint8_t>) noexcept override {
        ++to_client;
        return true;
    }
    allocation::RelayId next_id = 1;
    int to_client = 0;
    std::vector<allocation::RelayId> closed;
    std::vector<std::pair<TransportAddress, Bytes>> to_peer;
};

config::Config make_config(config::CredentialExpiry expiry) {
    config::Config c;
    c.realm = realm;
    c.auth.secrets = {secret};
    c.auth.users = {{"alice", "wonderland", std::nullopt}};
    c.auth.expiry = expiry;
    c.auth.nonce_secret = "a fixed nonce key for the tests";
    c.relay.allow_peers = {protocol::Cidr::covering(TransportAddress::v4({203, 0, 113, 0}, 0), 24)};
    return c;
}

struct Response {
    Bytes bytes;
    MessageView view;
    bool parsed = false;
    std::uint16_t code() const { return view.error_code() ? view.error_code()->code : 0; }
};

class TurnDispatch : public ::testing::Test {
protected:
    // `bound`: the listeners tern's own addresses come from (none: no own addresses).
    void start(config::CredentialExpiry expiry, std::span<const config::Listener> bound = {}) {
        auto c = std::make_shared<const config::Config>(make_config(expiry));
        manager_ = std::make_unique<allocation::AllocationManager>(
            manager_settings(*c), make_peer_policy(*c, bound), ports_, egress_, 1);
        dispatcher_ = std::make_unique<RequestDispatcher>(c, manager_.get());
    }

    PacketContext context(std::chrono::seconds elapsed = 0s) const {
        PacketContext ctx;
        ctx.source = TransportAddress::v4({198, 51, 100, 7}, 40000);
        ctx.local = TransportAddress::v4({198, 51, 99, 1}, 3478);
        ctx.now = allocation::TimePoint{} + elapsed;
        ctx.unix_now = start_unix + elapsed.count();
        return ctx;
    }

    Response send(const Bytes& packet, std::chrono::seconds elapsed = 0s) {
        return send_from(packet, context(elapsed).source, elapsed);
    }
    Response send_from(const Bytes& packet, const TransportAddress& source,
                       std::chrono::seconds elapsed = 0s) {
        Response r;
        std::array<std::uint8_t, 1024> out{};
        PacketContext ctx = context(elapsed);
        ctx.source = source;
        const auto reply = dispatcher_->handle(packet, ctx, out);
        r.bytes.assign(reply.begin(), reply.end());
        r.parsed =
            !r.bytes.empty() && MessageView::parse(r.bytes, r.view) == protocol::ParseError::ok;
        return r;
    }

    // A request signed for `user`/`password`; `add` puts the method's own attributes first.
    template <class F>
    Bytes signed_request(Method method, const std::string& user, const std::string& password,
                         const std::string& nonce, F&& add, std::uint8_t id_seed) {
        Bytes buf(512);
        protocol::TransactionId id;
        for (std::size_t i = 0; i < id.bytes.size(); ++i) {
            id.bytes[i] = static_cast<std::uint8_t>(id_seed * 13 + i);
        }
        MessageBuilder b(buf, MessageType{method, MessageClass::request}, id);
        add(b);
        b.add_text(protocol::attr::username, user);
        b.add_text(protocol::attr::realm, realm);
        b.add_text(protocol::attr::nonce, nonce);
        const auto key = auth::md5_key(user, realm, password);
        b.add_message_integrity(key.bytes());
        b.add_fingerprint();
        const auto out = b.finish();
        return Bytes(out.begin(), out.end());
    }

    static void allocate_attributes(MessageBuilder& b) { b.add_requested_transport(17); }

    // alice allocates (transaction `seed`), then asks for a permission for `peer` (`seed` + 1):
    // the CreatePermission's result code, or -1 when the Allocate already failed.
    int allocate_and_permit(const TransportAddress& peer, std::uint8_t seed) {
        const std::string n = nonce();
        if (send(signed_request(Method::allocate, "alice", "wonderland", n, allocate_attributes,
                                seed))
                .code() != 0) {
            return -1;
        }
        const auto r = send(signed_request(
            Method::create_permission, "alice", "wonderland", n,
            [&](MessageBuilder& b) { b.add_xor_address(protocol::attr::xor_peer_address, peer); },
            static_cast<std::uint8_t>(seed + 1)));
        return r.parsed ? r.code() : -1;
    }

    std::string nonce(std::chrono::seconds elapsed = 0s) {
        Bytes buf(64);
        MessageBuilder b(buf, MessageType{Method::allocate, MessageClass::request},
                         protocol::TransactionId{});
        b.add_requested_transport(17);
        const auto out = b.finish();
        const auto r = send(Bytes(out.begin(), out.end()), elapsed);
        EXPECT_TRUE(r.parsed);
        return r.parsed && r.view.nonce() ? std::string(*r.view.nonce()) : std::string();
    }

    CountingRandom random_;
    allocation::RelayPorts ports_{50000, 50099, random_};
    RecordingEgress egress_;
    std::unique_ptr<allocation::AllocationManager> manager_;
    std::unique_ptr<RequestDispatcher> dispatcher_;
};

TEST_F(TurnDispatch, AllocateWithoutCredentialsIsChallengedAndOpensNothing) {
    start(config::CredentialExpiry::allocate);
    Bytes buf(64);
    MessageBuilder b(buf, MessageType{Method::allocate, MessageClass::request},
                     protocol::TransactionId{});
    b.add_requested_transport(17);
    const auto out = b.finish();
    const auto r = send(Bytes(out.begin(), out.end()));
    ASSERT_TRUE(r.parsed);
    EXPECT_EQ(r.view.message_class(), MessageClass::error_response);
    EXPECT_EQ(r.code(), 401);
    EXPECT_EQ(r.view.realm(), std::optional<std::string_view>(realm));
    EXPECT_TRUE(r.view.nonce());
    EXPECT_FALSE(r.view.has(protocol::attr::message_integrity));  // nothing to sign with
    // No SOFTWARE to a sender nobody has authenticated (amplification, docs/security.md §6):
    // header 20 + ERROR-CODE 24 + REALM "tern.test" 16 + NONCE 52 + PASSWORD-ALGORITHMS 12 +
    // FINGERPRINT 8.
    EXPECT_FALSE(r.view.has(protocol::attr::software));
    EXPECT_EQ(r.bytes.size(), 132u);
    EXPECT_EQ(egress_.next_id, 1u);
    EXPECT_EQ(manager_->allocation_count(), 0u);
}

TEST_F(TurnDispatch, StaticUserAllocatesAndTheResponseIsSignedWithTheirKey) {
    start(config::CredentialExpiry::allocate);
    const auto r = send(
        signed_request(Method::allocate, "alice", "wonderland", nonce(), allocate_attributes, 1));
    ASSERT_TRUE(r.parsed);
    ASSERT_EQ(r.view.message_class(), MessageClass::success_response) << r.code();
    const auto relayed = r.view.xor_relayed_address();
    ASSERT_TRUE(relayed);
    EXPECT_GE(relayed->port, 50000);
    EXPECT_LE(relayed->port, 50099);
    EXPECT_EQ(protocol::verify_message_integrity(
                  r.view, auth::md5_key("alice", realm, "wonderland").bytes()),
              protocol::IntegrityResult::ok);
    EXPECT_EQ(manager_->allocation_count(), 1u);
}

TEST_F(TurnDispatch, WrongPasswordGets401AndNoAllocation) {
    start(config::CredentialExpiry::allocate);
    const auto r = send(signed_request(Method::allocate, "alice", "looking-glass", nonce(),
                                       allocate_attributes, 2));
    ASSERT_TRUE(r.parsed);
    EXPECT_EQ(r.code(), 401);
    EXPECT_FALSE(r.view.has(protocol::attr::software));
    EXPECT_TRUE(r.view.nonce());  // a fresh challenge to retry with
    EXPECT_EQ(manager_->allocation_count(), 0u);
}

TEST_F(TurnDispatch, TamperedMessageGets401) {
    start(config::CredentialExpiry::allocate);
    Bytes request = signed_request(
        Method::allocate, "alice", "wonderland", nonce(),
        [](MessageBuilder& b) {
            b.add_requested_transport(17);
            b.add_lifetime(600);
        },
        3);
    // LIFETIME's value starts 8 + 4 bytes into the body (after REQUESTED-TRANSPORT); change it
    // after signing. FINGERPRINT would now catch it first, so drop FINGERPRINT (8 bytes) too.
    request[20 + 8 + 4 + 3] ^= 0x01;
    request.resize(request.size() - 8);
    const std::uint16_t length = static_cast<std::uint16_t>(request.size() - 20);
    request[2] = static_cast<std::uint8_t>(length >> 8);
    request[3] = static_cast<std::uint8_t>(length & 0xFF);
    const auto r = send(request);
    ASSERT_TRUE(r.parsed);
    EXPECT_EQ(r.code(), 401);
    EXPECT_EQ(manager_->allocation_count(), 0u);
}

TEST_F(TurnDispatch, StaleNonceGets438WithAFreshOne) {
    start(config::CredentialExpiry::allocate);
    const std::string old = nonce();
    const auto later = std::chrono::seconds(make_config({}).auth.nonce_lifetime + 1);
    const auto r =
        send(signed_request(Method::allocate, "alice", "wonderland", old, allocate_attributes, 4),
             later);
    ASSERT_TRUE(r.parsed);
    EXPECT_EQ(r.code(), 438);
    ASSERT_TRUE(r.view.nonce());
    EXPECT_NE(std::string(*r.view.nonce()), old);
}

TEST_F(TurnDispatch, ExpiredRestUsernameIsRefusedUnderEveryPolicy) {
    for (const auto policy : {config::CredentialExpiry::allocate, config::CredentialExpiry::request,
                              config::CredentialExpiry::strict}) {
        start(policy);
        const auto c = auth::make_rest_credential(secret, "bob", start_unix - 3600, 60);
        const auto r = send(signed_request(Method::allocate, c.username, c.password, nonce(),
                                           allocate_attributes, 5));
        ASSERT_TRUE(r.parsed);
        EXPECT_EQ(r.code(), 401) << config::to_string(policy);
        EXPECT_EQ(manager_->allocation_count(), 0u);
    }
}

// A REST credential valid for 100 s; the allocation asks for 600 s.
class RestExpiry : public TurnDispatch {
protected:
    void allocate_then_refresh_after_expiry(config::CredentialExpiry policy, Response& allocated,
                                            Response& refreshed) {
        start(policy);
        const auto c = auth::make_rest_credential(secret, "bob", start_unix, 100);
        allocated = send(signed_request(Method::allocate, c.username, c.password, nonce(),
                                        allocate_attributes, 6));
        const auto t = 150s;
        refreshed = send(signed_request(
                             Method::refresh, c.username, c.password, nonce(t),
                             [](MessageBuilder& b) { b.add_lifetime(600); }, 7),
                         t);
    }
};

TEST_F(RestExpiry, AllocatePolicyLetsTheRunningAllocationRefresh) {
    Response allocated, refreshed;
    allocate_then_refresh_after_expiry(config::CredentialExpiry::allocate, allocated, refreshed);
    ASSERT_TRUE(allocated.parsed && refreshed.parsed);
    EXPECT_EQ(allocated.view.message_class(), MessageClass::success_response);
    EXPECT_EQ(allocated.view.lifetime(), std::optional<std::uint32_t>(600));
    EXPECT_EQ(refreshed.view.message_class(), MessageClass::success_response) << refreshed.code();
}

TEST_F(RestExpiry, RequestPolicyRefusesTheRefresh) {
    Response allocated, refreshed;
    allocate_then_refresh_after_expiry(config::CredentialExpiry::request, allocated, refreshed);
    ASSERT_TRUE(allocated.parsed && refreshed.parsed);
    EXPECT_EQ(allocated.view.message_class(), MessageClass::success_response);
    EXPECT_EQ(refreshed.code(), 401);
}

TEST_F(RestExpiry, StrictPolicyEndsTheAllocationWhenTheCredentialExpires) {
    start(config::CredentialExpiry::strict);
    const auto c = auth::make_rest_credential(secret, "bob", start_unix, 100);
    const auto allocated = send(
        signed_request(Method::allocate, c.username, c.password, nonce(), allocate_attributes, 8));
    ASSERT_TRUE(allocated.parsed);
    ASSERT_EQ(allocated.view.message_class(), MessageClass::success_response);
    // The client is told the truth: the allocation lasts until the credential expires.
    EXPECT_EQ(allocated.view.lifetime(), std::optional<std::uint32_t>(100));
    manager_->expire(allocation::TimePoint{} + 99s);
    EXPECT_EQ(manager_->allocation_count(), 1u);
    EXPECT_TRUE(egress_.closed.empty());
    manager_->expire(allocation::TimePoint{} + 100s);
    EXPECT_EQ(manager_->allocation_count(), 0u);
    EXPECT_EQ(egress_.closed.size(), 1u);
}

TEST_F(TurnDispatch, ChannelDataAndSendIndicationsReachThePeerThroughTheDispatcher) {
    start(config::CredentialExpiry::allocate);
    const auto peer = TransportAddress::v4({203, 0, 113, 9}, 7000);
    const std::string n = nonce();
    ASSERT_EQ(
        send(signed_request(Method::allocate, "alice", "wonderland", n, allocate_attributes, 9))
            .view.message_class(),
        MessageClass::success_response);
    const auto bound = send(signed_request(
        Method::channel_bind, "alice", "wonderland", n,
        [&](MessageBuilder& b) {
            b.add_channel_number(0x4001);
            b.add_xor_address(protocol::attr::xor_peer_address, peer);
        },
        10));
    ASSERT_TRUE(bound.parsed);
    ASSERT_EQ(bound.view.message_class(), MessageClass::success_response) << bound.code();

    EXPECT_TRUE(send(Bytes{0x40, 0x01, 0x00, 0x03, 'a', 'b', 'c'}).bytes.empty());
    Bytes buf(128);
    MessageBuilder b(buf, MessageType{Method::send, MessageClass::indication},
                     protocol::TransactionId{});
    b.add_xor_address(protocol::attr::xor_peer_address, peer);
    const std::array<std::uint8_t, 2> payload{'h', 'i'};
    b.add_bytes(protocol::attr::data, payload);
    const auto indication = b.finish();
    EXPECT_TRUE(send(Bytes(indication.begin(), indication.end())).bytes.empty());

    ASSERT_EQ(egress_.to_peer.size(), 2u);
    EXPECT_EQ(egress_.to_peer[0].first, peer);
    EXPECT_EQ(egress_.to_peer[0].second, (Bytes{'a', 'b', 'c'}));
    EXPECT_EQ(egress_.to_peer[1].second, (Bytes{'h', 'i'}));
}

TEST_F(TurnDispatch, LoopbackPeerIsRefusedWithTheDefaultPolicy) {
    start(config::CredentialExpiry::allocate);
    EXPECT_EQ(allocate_and_permit(TransportAddress::v4({127, 0, 0, 1}, 9), 11), 403);
}

TEST_F(TurnDispatch, ChallengesToOneSourceStopAtItsBurst) {
    start(config::CredentialExpiry::allocate);
    const auto burst = make_config({}).limits.unauthenticated_burst;
    Bytes buf(64);
    MessageBuilder b(buf, MessageType{Method::allocate, MessageClass::request},
                     protocol::TransactionId{});
    b.add_requested_transport(17);
    const auto out = b.finish();
    const Bytes request(out.begin(), out.end());
    std::uint32_t answered = 0;
    for (std::uint32_t i = 0; i < burst + 50; ++i) answered += send(request).bytes.empty() ? 0 : 1;
    EXPECT_EQ(answered, burst);
    EXPECT_EQ(dispatcher_->counters().rate_limited, 50u);
}

// RFC 8489 §6.3: authentication first, unknown attributes after. A sender without credentials
// gets 401 whatever else its request carries, for every TURN method.
constexpr std::uint16_t unknown_required = 0x7777;

TEST_F(TurnDispatch, UnknownAttributeWithoutCredentialsGets401ForEveryTurnMethod) {
    start(config::CredentialExpiry::allocate);
    for (const Method method :
         {Method::allocate, Method::refresh, Method::create_permission, Method::channel_bind}) {
        Bytes buf(64);
        MessageBuilder b(buf, MessageType{method, MessageClass::request},
                         protocol::TransactionId{});
        const std::array<std::uint8_t, 4> value{1, 2, 3, 4};
        b.add_bytes(unknown_required, value);
        const auto out = b.finish();
        const auto r = send(Bytes(out.begin(), out.end()));
        ASSERT_TRUE(r.parsed);
        EXPECT_EQ(r.code(), 401) << static_cast<int>(method);
        EXPECT_FALSE(r.view.has(protocol::attr::unknown_attributes));
    }
}

TEST_F(TurnDispatch, UnknownAttributeInAnAuthenticatedRequestGets420SignedWithTheirKey) {
    start(config::CredentialExpiry::allocate);
    const auto r = send(signed_request(
        Method::allocate, "alice", "wonderland", nonce(),
        [](MessageBuilder& b) {
            b.add_requested_transport(17);
            const std::array<std::uint8_t, 4> value{1, 2, 3, 4};
            b.add_bytes(unknown_required, value);
        },
        20));
    ASSERT_TRUE(r.parsed);
    EXPECT_EQ(r.code(), 420);
    std::array<std::uint16_t, 4> listed{};
    const auto unknown = r.view.unknown_attributes(listed);
    ASSERT_EQ(unknown, 1u);
    EXPECT_EQ(listed[0], unknown_required);
    EXPECT_EQ(protocol::verify_message_integrity(
                  r.view, auth::md5_key("alice", realm, "wonderland").bytes()),
              protocol::IntegrityResult::ok);
    EXPECT_EQ(manager_->allocation_count(), 0u);
}

// RFC 8489 §6.3.2: an indication with an unknown comprehension-required attribute is discarded.
TEST_F(TurnDispatch, SendIndicationWithAnUnknownRequiredAttributeIsNotRelayed) {
    start(config::CredentialExpiry::allocate);
    const auto peer = TransportAddress::v4({203, 0, 113, 9}, 7000);
    ASSERT_EQ(allocate_and_permit(peer, 21), 0);
    for (const bool with_unknown : {true, false}) {
        Bytes buf(128);
        MessageBuilder b(buf, MessageType{Method::send, MessageClass::indication},
                         protocol::TransactionId{});
        b.add_xor_address(protocol::attr::xor_peer_address, peer);
        const std::array<std::uint8_t, 2> payload{'h', 'i'};
        b.add_bytes(protocol::attr::data, payload);
        if (with_unknown) b.add_bytes(unknown_required, payload);
        const auto indication = b.finish();
        EXPECT_TRUE(send(Bytes(indication.begin(), indication.end())).bytes.empty());
    }
    ASSERT_EQ(egress_.to_peer.size(), 1u);  // only the one without the unknown attribute
}

// tern listens on 198.51.99.1:3478 (not special-purpose); its relayed addresses are that IP on
// relay.ports.
class OwnAddresses : public TurnDispatch {
protected:
    void SetUp() override {
        listeners_ = {{protocol::Transport::udp, TransportAddress::v4({198, 51, 99, 1}, 3478)}};
        start(config::CredentialExpiry::allocate, listeners_);
    }
    static Bytes binding() {
        Bytes buf(64);
        MessageBuilder b(buf, MessageType{Method::binding, MessageClass::request},
                         protocol::TransactionId{});
        const auto out = b.finish();
        return Bytes(out.begin(), out.end());
    }
    std::vector<config::Listener> listeners_;
};

// A request spoofed from a relayed address would make the listener send into that client's
// relay session; it gets no answer, while everyone else's requests do, local clients on tern's
// own IP included (their ports may well lie in relay.ports).
TEST_F(OwnAddresses, RequestsFromTernsRelayedAddressesGetNoAnswer) {
    const auto allocated = send(
        signed_request(Method::allocate, "alice", "wonderland", nonce(), allocate_attributes, 25));
    ASSERT_EQ(allocated.code(), 0);
    const auto relayed = allocated.view.xor_relayed_address();
    ASSERT_TRUE(relayed);
    ASSERT_EQ(relayed->ip_string(), "198.51.99.1");
    EXPECT_TRUE(send_from(binding(), *relayed).bytes.empty());
    Bytes allocate(64);
    MessageBuilder b(allocate, MessageType{Method::allocate, MessageClass::request},
                     protocol::TransactionId{});
    b.add_requested_transport(17);
    const auto out = b.finish();
    EXPECT_TRUE(send_from(Bytes(out.begin(), out.end()), *relayed).bytes.empty());

    // A TCP client on tern's IP whose port number happens to be a relay's UDP port is not it.
    PacketContext tcp = context();
    tcp.source = *relayed;
    tcp.transport = protocol::Transport::tcp;
    std::array<std::uint8_t, 1024> reply{};
    EXPECT_FALSE(dispatcher_->handle(binding(), tcp, reply).empty());

    auto local_client = *relayed;
    local_client.port = static_cast<std::uint16_t>(relayed->port == 50099 ? 50098 : 50099);
    const auto local = send_from(binding(), local_client);
    ASSERT_TRUE(local.parsed);
    EXPECT_EQ(local.view.message_class(), MessageClass::success_response);
    EXPECT_TRUE(
        send_from(binding(), TransportAddress::v4({198, 51, 100, 7}, relayed->port)).parsed);
}

// The other half: a datagram from tern's listener reaching a relay socket (the answer to such a
// spoofed request) is never delivered, though the client holds a permission for tern's IP
// because it relays to another client of the same server.
TEST_F(OwnAddresses, RelaySocketsDropDatagramsFromTernsListeners) {
    const auto other_client_relay = TransportAddress::v4({198, 51, 99, 1}, 50050);
    ASSERT_EQ(allocate_and_permit(other_client_relay, 23), 0);
    const allocation::RelayId relay = egress_.next_id - 1;
    const std::array<std::uint8_t, 3> payload{'x', 'y', 'z'};
    manager_->on_peer_datagram(relay, TransportAddress::v4({198, 51, 99, 1}, 3478), payload,
                               allocation::TimePoint{});
    EXPECT_EQ(egress_.to_client, 0);
    manager_->on_peer_datagram(relay, other_client_relay, payload, allocation::TimePoint{});
    EXPECT_EQ(egress_.to_client, 1);
}

}  // namespace
}  // namespace tern::server
