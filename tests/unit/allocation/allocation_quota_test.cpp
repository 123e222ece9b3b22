// The process-wide quotas: counted across every manager (worker) that shares them, given back
// when allocations end, and re-limited by a reload.
#include "tern/allocation/allocation_quota.hpp"

#include <gtest/gtest.h>

#include <array>
#include <memory>
#include <vector>

#include "tern/allocation/allocation_manager.hpp"
#include "tern/protocol/attribute_type.hpp"
#include "tern/protocol/message_builder.hpp"
#include "test_addresses.hpp"
#include "test_random.hpp"

namespace tern::allocation {
namespace {

using protocol::Transport;
using testing::addr;
using testing::t0;

TEST(AllocationQuota, CountsPerUserBeforeTotal) {
    AllocationQuota q(3, 2);
    EXPECT_EQ(q.acquire("alice"), CreateResult::created);
    EXPECT_EQ(q.acquire("alice"), CreateResult::created);
    EXPECT_EQ(q.acquire("alice"), CreateResult::user_quota);
    EXPECT_EQ(q.acquire("bob"), CreateResult::created);
    EXPECT_EQ(q.acquire("carol"), CreateResult::capacity);
    // Both full: the user's own limit is what alice hears.
    EXPECT_EQ(q.acquire("alice"), CreateResult::user_quota);
    EXPECT_EQ(q.total(), 3u);
    q.release("alice");
    EXPECT_EQ(q.count_for("alice"), 1u);
    EXPECT_EQ(q.acquire("carol"), CreateResult::created);
}

TEST(AllocationQuota, ReleasingAnUnknownUserChangesNothing) {
    AllocationQuota q(1, 1);
    q.release("nobody");
    EXPECT_EQ(q.total(), 0u);
    EXPECT_EQ(q.acquire("alice"), CreateResult::created);
    EXPECT_EQ(q.acquire("bob"), CreateResult::capacity);
}

TEST(AllocationQuota, NewLimitsApplyToLaterAdmissions) {
    AllocationQuota q(10, 1);
    EXPECT_EQ(q.acquire("alice"), CreateResult::created);
    EXPECT_EQ(q.acquire("alice"), CreateResult::user_quota);
    q.set_limits(10, 2);
    EXPECT_EQ(q.acquire("alice"), CreateResult::created);
}

class NullEgress final : public RelayEgress {
public:
    OpenRelayResult open_relay(const protocol::TransportAddress&, bool) override {
        return {OpenRelayStatus::opened, next_++};
    }
    void close_relay(RelayId) noexcept override { ++closed; }
    bool send_to_peer(RelayId, const protocol::TransportAddress&,
                      std::span<const std::uint8_t>) noexcept override {
        return true;
    }
    bool send_to_client(const FiveTuple&, ClientRoute,
                        std::span<const std::uint8_t>) noexcept override {
        return true;
    }
    int closed = 0;

private:
    RelayId next_ = 1;
};

// Two workers' managers sharing one quota and one port pool, as the server runs them.
class SharedQuota : public ::testing::Test {
protected:
    SharedQuota() {
        ManagerSettings s;
        s.limits.max_allocations = 100;
        s.limits.max_allocations_per_user = 1;
        auto peers = std::make_shared<const PeerPolicy>(
            std::span<const protocol::Cidr>{}, std::span<const protocol::Cidr>{},
            std::span<const protocol::TransportAddress>{});
        for (int i = 0; i < 2; ++i) {
            managers.push_back(
                std::make_unique<AllocationManager>(s, peers, ports, egress, 1 + i, &quota));
        }
    }

    std::uint16_t allocate(AllocationManager& m, const char* client, std::uint8_t id_seed) {
        std::array<std::uint8_t, 64> request{};
        protocol::TransactionId id;
        id.bytes.fill(id_seed);
        protocol::MessageBuilder b(
            request, {protocol::Method::allocate, protocol::MessageClass::request}, id);
        b.add_requested_transport(17);
        protocol::MessageView view;
        EXPECT_EQ(protocol::MessageView::parse(b.finish(), view), protocol::ParseError::ok);
        const std::array<std::uint8_t, 16> key{};
        Requester who{"alice", key, false, std::nullopt};
        const FiveTuple tuple{addr(client), addr("198.51.100.1:3478"), Transport::udp};
        std::array<std::uint8_t, 512> out{};
        const auto reply = m.handle_request(view, tuple, ClientRoute{}, who, t0, out);
        protocol::MessageView answer;
        EXPECT_EQ(protocol::MessageView::parse(reply, answer), protocol::ParseError::ok);
        const auto error = answer.error_code();
        return error ? error->code : 0;
    }

    testing::SeededRandom random{42};
    RelayPorts ports{50000, 50009, random};
    AllocationQuota quota{100, 1};
    NullEgress egress;
    std::vector<std::unique_ptr<AllocationManager>> managers;
};

TEST_F(SharedQuota, APerUserLimitHoldsAcrossWorkers) {
    EXPECT_EQ(allocate(*managers[0], "203.0.113.5:1000", 1), 0);
    // Alone, the second worker's table would admit alice; the shared quota says 486.
    EXPECT_EQ(allocate(*managers[1], "203.0.113.5:1001", 2), 486);
    EXPECT_EQ(quota.count_for("alice"), 1u);
}

TEST_F(SharedQuota, EndingAnAllocationGivesItsQuotaBack) {
    EXPECT_EQ(allocate(*managers[0], "203.0.113.5:1000", 1), 0);
    managers[0]->on_client_closed(
        {addr("203.0.113.5:1000"), addr("198.51.100.1:3478"), Transport::udp});
    EXPECT_EQ(quota.count_for("alice"), 0u);
    EXPECT_EQ(allocate(*managers[1], "203.0.113.5:1001", 2), 0);
}

TEST_F(SharedQuota, ARefusedAllocateTakesNoQuota) {
    ports.acquire(protocol::AddressFamily::ipv4);  // leave the pool empty: 10 ports, take all
    for (int i = 1; i < 10; ++i) ports.acquire(protocol::AddressFamily::ipv4);
    EXPECT_EQ(allocate(*managers[0], "203.0.113.5:1000", 1), 508);
    EXPECT_EQ(quota.total(), 0u);
}

}  // namespace
}  // namespace tern::allocation
