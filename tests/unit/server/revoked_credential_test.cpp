// The dispatcher's side of a revocation: a credential that verifies, of a user the operator
// revoked, is refused with 401 like a wrong one and counted as `revoked`; lifting the
// revocation (or dropping the list) lets the same credential in again.
#include <gtest/gtest.h>

#include <array>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "tern/allocation/allocation_manager.hpp"
#include "tern/allocation/random_source.hpp"
#include "tern/allocation/relay_ports.hpp"
#include "tern/auth/credential_store.hpp"
#include "tern/auth/long_term_authenticator.hpp"
#include "tern/auth/rest_credential.hpp"
#include "tern/auth/revocation_list.hpp"
#include "tern/protocol/attribute_type.hpp"
#include "tern/protocol/message.hpp"
#include "tern/protocol/message_builder.hpp"
#include "tern/server/request/relay_settings.hpp"
#include "tern/server/request/request_dispatcher.hpp"

namespace tern::server {
namespace {

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

struct NullEgress final : allocation::RelayEgress {
    allocation::OpenRelayResult open_relay(const TransportAddress&, bool) override {
        return {allocation::OpenRelayStatus::opened, next_id++};
    }
    void close_relay(allocation::RelayId) noexcept override {}
    bool send_to_peer(allocation::RelayId, const TransportAddress&,
                      std::span<const std::uint8_t>) noexcept override {
        return true;
    }
    bool send_to_client(const allocation::FiveTuple&, allocation::ClientRoute,
                        std::span<const std::uint8_t>) noexcept override {
        return true;
    }
    allocation::RelayId next_id = 1;
};

std::shared_ptr<const auth::RevocationList> revoked(std::string user,
                                                    std::int64_t until = start_unix + 3600) {
    auto list = std::make_shared<auth::RevocationList>();
    list->revoke(std::move(user), until);
    return list;
}

class RevokedCredential : public ::testing::Test {
protected:
    RevokedCredential() {
        config::Config c;
        c.realm = realm;
        c.auth.secrets = {secret};
        c.auth.users = {{"alice", "wonderland", std::nullopt}};
        c.auth.nonce_secret = "a fixed nonce key for the tests";
        auto shared = std::make_shared<const config::Config>(std::move(c));
        manager_ = std::make_unique<allocation::AllocationManager>(
            manager_settings(*shared), make_peer_policy(*shared, {}), ports_, egress_, 1);
        dispatcher_ = std::make_unique<RequestDispatcher>(shared, manager_.get());
    }

    PacketContext context() const {
        PacketContext ctx;
        ctx.source = TransportAddress::v4({198, 51, 100, 7}, source_port_);
        ctx.local = TransportAddress::v4({198, 51, 99, 1}, 3478);
        ctx.now = allocation::TimePoint{} + std::chrono::seconds(1);
        ctx.unix_now = start_unix;
        return ctx;
    }

    // The answer's error code (0 for a success), or -1 when nothing parseable came back.
    int send(const Bytes& packet) {
        std::array<std::uint8_t, 1024> out{};
        const auto reply = dispatcher_->handle(packet, context(), out);
        MessageView view;
        if (reply.empty() || MessageView::parse(reply, view) != protocol::ParseError::ok) return -1;
        if (view.message_class() == MessageClass::success_response) return 0;
        return view.error_code() ? view.error_code()->code : -1;
    }

    std::string nonce() {
        Bytes buf(64);
        MessageBuilder b(buf, MessageType{Method::allocate, MessageClass::request},
                         protocol::TransactionId{});
        b.add_requested_transport(17);
        const auto out = b.finish();
        std::array<std::uint8_t, 1024> reply_buffer{};
        const auto reply =
            dispatcher_->handle(Bytes(out.begin(), out.end()), context(), reply_buffer);
        MessageView view;
        EXPECT_EQ(MessageView::parse(reply, view), protocol::ParseError::ok);
        return view.nonce() ? std::string(*view.nonce()) : std::string();
    }

    // An Allocate signed for `user`/`password` from a client port of its own, so each call
    // is a new 5-tuple.
    int allocate_as(const std::string& user, const std::string& password) {
        ++source_port_;
        const std::string n = nonce();
        Bytes buf(512);
        protocol::TransactionId id;
        id.bytes.fill(static_cast<std::uint8_t>(source_port_));
        MessageBuilder b(buf, MessageType{Method::allocate, MessageClass::request}, id);
        b.add_requested_transport(17);
        b.add_text(protocol::attr::username, user);
        b.add_text(protocol::attr::realm, realm);
        b.add_text(protocol::attr::nonce, n);
        b.add_message_integrity(auth::md5_key(user, realm, password).bytes());
        b.add_fingerprint();
        const auto out = b.finish();
        return send(Bytes(out.begin(), out.end()));
    }

    std::uint64_t revoked_count() const {
        return dispatcher_->counters()
            .auth_outcomes[static_cast<std::size_t>(auth::AuthOutcome::revoked)];
    }

    CountingRandom random_;
    allocation::RelayPorts ports_{50000, 50099, random_};
    NullEgress egress_;
    std::unique_ptr<allocation::AllocationManager> manager_;
    std::unique_ptr<RequestDispatcher> dispatcher_;
    std::uint16_t source_port_ = 40000;
};

TEST_F(RevokedCredential, StaticUserIsRefusedWith401AndCountedAsRevoked) {
    dispatcher_->set_revocations(revoked("alice"));
    const std::uint64_t failures = dispatcher_->counters().auth_failures;
    EXPECT_EQ(allocate_as("alice", "wonderland"), 401);
    EXPECT_EQ(manager_->allocation_count(), 0u);
    EXPECT_EQ(revoked_count(), 1u);
    EXPECT_EQ(dispatcher_->counters().auth_failures, failures + 1);
    // A wrong password is no revocation: counted as what it is.
    EXPECT_EQ(allocate_as("alice", "looking-glass"), 401);
    EXPECT_EQ(revoked_count(), 1u);
}

TEST_F(RevokedCredential, RestCredentialOfTheUserIsRefusedToo) {
    dispatcher_->set_revocations(revoked("bob"));
    const auto bob = auth::make_rest_credential(secret, "bob", start_unix, 3600);
    EXPECT_EQ(allocate_as(bob.username, bob.password), 401);
    EXPECT_EQ(revoked_count(), 1u);
    // Another user's credential from the same secret still works.
    const auto carol = auth::make_rest_credential(secret, "carol", start_unix, 3600);
    EXPECT_EQ(allocate_as(carol.username, carol.password), 0);
    EXPECT_EQ(manager_->allocation_count(), 1u);
    EXPECT_EQ(revoked_count(), 1u);
}

TEST_F(RevokedCredential, LapsedRevocationRefusesNothing) {
    dispatcher_->set_revocations(revoked("alice", start_unix));
    EXPECT_EQ(allocate_as("alice", "wonderland"), 0);
    EXPECT_EQ(revoked_count(), 0u);
}

TEST_F(RevokedCredential, WithoutAListTheCredentialIsAcceptedAgain) {
    dispatcher_->set_revocations(revoked("alice"));
    EXPECT_EQ(allocate_as("alice", "wonderland"), 401);
    dispatcher_->set_revocations(nullptr);
    EXPECT_EQ(allocate_as("alice", "wonderland"), 0);
    EXPECT_EQ(manager_->allocation_count(), 1u);
    EXPECT_EQ(revoked_count(), 1u);
}

TEST_F(RevokedCredential, AListWithoutTheUserAcceptsIt) {
    const auto bob = auth::make_rest_credential(secret, "bob", start_unix, 3600);
    dispatcher_->set_revocations(revoked("bob"));
    EXPECT_EQ(allocate_as(bob.username, bob.password), 401);
    // The revocation lifted: a new list in which bob is not.
    auto lifted = std::make_shared<auth::RevocationList>(*revoked("bob"));
    ASSERT_TRUE(lifted->lift("bob"));
    lifted->revoke("alice", start_unix + 3600);
    dispatcher_->set_revocations(lifted);
    EXPECT_EQ(allocate_as(bob.username, bob.password), 0);
    EXPECT_EQ(allocate_as("alice", "wonderland"), 401);
    EXPECT_EQ(revoked_count(), 2u);
}

}  // namespace
}  // namespace tern::server
