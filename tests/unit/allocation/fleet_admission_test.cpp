// The manager's side of the fleet contract (fleet_admission.hpp): when it asks, what it does with
// each verdict (admit, 486, 508, wait: no answer and nothing cached), that every admission is
// followed by exactly one admitted() or withdrawn(), that ended() follows every allocation, and
// the 300 Try Alternate it signs (RFC 8489 §10, §14.15, §14.16).
#include <gtest/gtest.h>

#include <array>
#include <deque>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "fake_egress.hpp"
#include "tern/allocation/allocation_manager.hpp"
#include "tern/allocation/fleet_admission.hpp"
#include "tern/protocol/attribute_type.hpp"
#include "tern/protocol/integrity.hpp"
#include "tern/protocol/message.hpp"
#include "tern/protocol/message_builder.hpp"
#include "test_addresses.hpp"
#include "test_random.hpp"

namespace tern::allocation {
namespace {

using protocol::MessageClass;
using protocol::MessageView;
using protocol::Method;
using protocol::Transport;
using protocol::TransportAddress;
namespace attr = protocol::attr;

// Records every call and answers with the verdicts queued (admit when none).
class ScriptedFleet final : public FleetAdmission {
public:
    FleetVerdict admit(const TransactionKey& key, std::string_view username, TimePoint) override {
        asked.push_back(std::string(username));
        last_key = key;
        if (verdicts.empty()) return FleetVerdict::admit;
        const FleetVerdict v = verdicts.front();
        verdicts.pop_front();
        return v;
    }
    void admitted(const TransactionKey& key, std::uint64_t id) override {
        EXPECT_EQ(key, last_key);
        admitted_ids.push_back(id);
    }
    void withdrawn(const TransactionKey& key) override {
        EXPECT_EQ(key, last_key);
        ++withdrawals;
    }
    void ended(std::uint64_t id) override { ended_ids.push_back(id); }
    std::optional<Alternate> redirect(protocol::AddressFamily family, Transport transport,
                                      bool draining) override {
        redirect_asked_draining = draining;
        asked_family = family;
        asked_transport = transport;
        return alternate;
    }

    std::deque<FleetVerdict> verdicts;
    std::vector<std::string> asked;
    TransactionKey last_key;
    std::vector<std::uint64_t> admitted_ids;
    std::vector<std::uint64_t> ended_ids;
    int withdrawals = 0;
    std::optional<Alternate> alternate;
    std::optional<bool> redirect_asked_draining;
    protocol::AddressFamily asked_family = protocol::AddressFamily::ipv4;
    Transport asked_transport = Transport::udp;
};

const TransportAddress server = testing::addr("198.51.100.1:3478");

class FleetAdmissionTest : public ::testing::Test {
protected:
    FleetAdmissionTest() { key.fill(0x33); }

    AllocationManager& manager() {
        if (!manager_) {
            ports_ = std::make_unique<RelayPorts>(first_port, last_port, random_);
            settings.limits.max_allocations_per_user = local_limit;
            manager_ = std::make_unique<AllocationManager>(
                settings,
                std::make_shared<const PeerPolicy>(std::vector<protocol::Cidr>{},
                                                   std::vector<protocol::Cidr>{},
                                                   std::vector<TransportAddress>{}),
                *ports_, egress, 7);
            manager_->set_fleet(&fleet);
        }
        return *manager_;
    }

    static FiveTuple tuple(std::uint16_t port, Transport transport = Transport::udp) {
        return FiveTuple{testing::addr(("203.0.113.5:" + std::to_string(port)).c_str()), server,
                         transport};
    }

    // Sends a request (Allocate with REQUESTED-TRANSPORT, or a Refresh) with transaction `serial`
    // and returns the answer's bytes; empty = no answer.
    std::vector<std::uint8_t> send(Method method, std::uint8_t serial, const FiveTuple& t,
                                   std::optional<std::uint32_t> lifetime = std::nullopt) {
        std::vector<std::uint8_t> buffer(1024);
        protocol::TransactionId id;
        id.bytes.fill(serial);
        protocol::MessageBuilder b(buffer, {method, MessageClass::request}, id);
        if (method == Method::allocate) b.add_requested_transport(17);
        if (lifetime) b.add_lifetime(*lifetime);
        b.add_message_integrity(key);
        b.add_fingerprint();
        MessageView request;
        EXPECT_EQ(MessageView::parse(b.finish(), request), protocol::ParseError::ok);
        std::vector<std::uint8_t> out(2048);
        const Requester alice{"alice", key, false, std::nullopt};
        const auto answer =
            manager().handle_request(request, t, ClientRoute::listener(0), alice, testing::t0, out);
        return {answer.begin(), answer.end()};
    }

    // The answer's error code (0 = success), with its integrity checked as every answer's.
    std::uint16_t code_of(const std::vector<std::uint8_t>& bytes, MessageView& view) const {
        EXPECT_EQ(MessageView::parse(bytes, view), protocol::ParseError::ok);
        EXPECT_EQ(protocol::verify_message_integrity(view, key), protocol::IntegrityResult::ok);
        if (view.message_class() == MessageClass::success_response) return 0;
        const auto e = view.error_code();
        return e ? e->code : 1;
    }
    std::uint16_t code_of(const std::vector<std::uint8_t>& bytes) const {
        MessageView view;
        return code_of(bytes, view);
    }

    std::array<std::uint8_t, 16> key{};
    ManagerSettings settings;
    std::size_t local_limit = 5;
    std::uint16_t first_port = 50000;
    std::uint16_t last_port = 50009;
    ScriptedFleet fleet;
    testing::SeededRandom random_{1};
    testing::FakeEgress egress;
    std::unique_ptr<RelayPorts> ports_;
    std::unique_ptr<AllocationManager> manager_;
};

TEST_F(FleetAdmissionTest, AdmittedAllocationsAreReportedAndTheirEndToo) {
    EXPECT_EQ(code_of(send(Method::allocate, 1, tuple(1000))), 0);
    ASSERT_EQ(fleet.asked, std::vector<std::string>{"alice"});
    ASSERT_EQ(fleet.admitted_ids.size(), 1U);
    EXPECT_EQ(fleet.withdrawals, 0);
    // The lease goes with the allocation: Refresh with LIFETIME 0 deletes it.
    EXPECT_EQ(code_of(send(Method::refresh, 2, tuple(1000), 0)), 0);
    EXPECT_EQ(fleet.ended_ids, fleet.admitted_ids);
}

TEST_F(FleetAdmissionTest, AFullFleetQuotaIs486AndGivesTheLocalCountBack) {
    local_limit = 1;
    fleet.verdicts = {FleetVerdict::quota_full};
    EXPECT_EQ(code_of(send(Method::allocate, 1, tuple(1000))), 486);
    EXPECT_TRUE(fleet.admitted_ids.empty());
    EXPECT_EQ(manager().counters().rejected_user_quota.value(), 1U);
    // The node's own quota (1) was not spent by the refused request.
    EXPECT_EQ(code_of(send(Method::allocate, 2, tuple(1001))), 0);
}

TEST_F(FleetAdmissionTest, RefuseIs508) {
    fleet.verdicts = {FleetVerdict::refuse};
    EXPECT_EQ(code_of(send(Method::allocate, 1, tuple(1000))), 508);
    EXPECT_TRUE(fleet.admitted_ids.empty());
}

TEST_F(FleetAdmissionTest, WaitAnswersNothingCachesNothingAndIsReportedOnce) {
    fleet.verdicts = {FleetVerdict::wait, FleetVerdict::wait};
    EXPECT_TRUE(send(Method::allocate, 1, tuple(1000)).empty());
    EXPECT_TRUE(manager().take_deferred());
    EXPECT_FALSE(manager().take_deferred());
    EXPECT_EQ(manager().allocation_count(), 0U);
    // A retransmission meanwhile: still no answer (the transaction cache holds nothing).
    EXPECT_TRUE(send(Method::allocate, 1, tuple(1000)).empty());
    EXPECT_TRUE(manager().take_deferred());
    // The fleet has answered: the same request handed in again is allocated, and its answer
    // is what a later retransmission gets, without asking the fleet again.
    const auto answer = send(Method::allocate, 1, tuple(1000));
    EXPECT_EQ(code_of(answer), 0);
    EXPECT_FALSE(manager().take_deferred());
    EXPECT_EQ(fleet.asked.size(), 3U);
    EXPECT_EQ(send(Method::allocate, 1, tuple(1000)), answer);
    EXPECT_EQ(fleet.asked.size(), 3U);
}

TEST_F(FleetAdmissionTest, AnAdmissionWithoutARelayPortIsWithdrawn) {
    first_port = last_port = 50000;
    EXPECT_EQ(code_of(send(Method::allocate, 1, tuple(1000))), 0);
    EXPECT_EQ(code_of(send(Method::allocate, 2, tuple(1001))), 508);
    EXPECT_EQ(fleet.admitted_ids.size(), 1U);
    EXPECT_EQ(fleet.withdrawals, 1);
}

TEST_F(FleetAdmissionTest, ARedirectIsASigned300NamingTheAlternate) {
    fleet.alternate = Alternate{testing::addr("192.0.2.7:3478"), ""};
    MessageView view;
    const auto answer = send(Method::allocate, 1, tuple(1000));
    EXPECT_EQ(code_of(answer, view), 300);
    EXPECT_EQ(view.plain_address(attr::alternate_server), testing::addr("192.0.2.7:3478"));
    EXPECT_FALSE(view.text(attr::alternate_domain).has_value());
    EXPECT_EQ(fleet.redirect_asked_draining, false);
    EXPECT_TRUE(fleet.asked.empty());  // no lease asked for a request sent elsewhere
    EXPECT_EQ(manager().allocation_count(), 0U);
}

TEST_F(FleetAdmissionTest, ATlsRedirectNamesTheDomain) {
    fleet.alternate = Alternate{testing::addr("192.0.2.7:5349"), "turn-b.example.com"};
    MessageView view;
    const auto answer = send(Method::allocate, 1, tuple(1000, Transport::tls));
    EXPECT_EQ(code_of(answer, view), 300);
    EXPECT_EQ(fleet.asked_transport, Transport::tls);
    EXPECT_EQ(view.text(attr::alternate_domain), "turn-b.example.com");
}

TEST_F(FleetAdmissionTest, DrainingAsksForARedirectAnd508WithoutOne) {
    manager().set_draining(true);
    EXPECT_EQ(code_of(send(Method::allocate, 1, tuple(1000))), 508);
    EXPECT_EQ(fleet.redirect_asked_draining, true);
    fleet.alternate = Alternate{testing::addr("192.0.2.7:3478"), ""};
    EXPECT_EQ(code_of(send(Method::allocate, 2, tuple(1001))), 300);
}

TEST_F(FleetAdmissionTest, OnlyAllocatesAreRedirected) {
    EXPECT_EQ(code_of(send(Method::allocate, 1, tuple(1000))), 0);
    fleet.alternate = Alternate{testing::addr("192.0.2.7:3478"), ""};
    EXPECT_EQ(code_of(send(Method::refresh, 2, tuple(1000), 600)), 0);
}

}  // namespace
}  // namespace tern::allocation
