// The operator's view of allocations (issue 18): ids, the live list, the per-allocation usage
// counted on the relay path, ending allocations by id or by user, and the usage record each
// removal hands to the UsageSink with the reason it ended.
#include "tern/allocation/allocation_record.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "fake_egress.hpp"
#include "tern/allocation/allocation_manager.hpp"
#include "tern/protocol/attribute_type.hpp"
#include "tern/protocol/message.hpp"
#include "tern/protocol/message_builder.hpp"
#include "test_addresses.hpp"
#include "test_random.hpp"

namespace tern::allocation {
namespace {

using namespace std::chrono_literals;
using protocol::MessageClass;
using protocol::MessageView;
using protocol::Method;
using protocol::Transport;
using protocol::TransportAddress;
using testing::addr;
using testing::FakeEgress;

const TransportAddress server4 = addr("198.51.100.1:3478");
// Public-looking peers: the default peer policy refuses special-purpose ranges.
const TransportAddress peer_a = addr("8.8.8.8:5000");
const TransportAddress peer_b = addr("1.1.1.1:6000");
const TransportAddress peer_c = addr("9.9.9.9:7000");

FiveTuple tuple(std::uint16_t client_port, Transport transport = Transport::udp) {
    return FiveTuple{addr(("203.0.113.5:" + std::to_string(client_port)).c_str()), server4,
                     transport};
}

bool same_ip(const TransportAddress& a, const TransportAddress& b) {
    return a.family == b.family && a.bytes == b.bytes;
}

std::vector<std::uint8_t> channel_message(std::uint16_t channel, std::size_t payload_size) {
    std::vector<std::uint8_t> m(4 + payload_size, 0xAB);
    m[0] = static_cast<std::uint8_t>(channel >> 8);
    m[1] = static_cast<std::uint8_t>(channel);
    m[2] = static_cast<std::uint8_t>(payload_size >> 8);
    m[3] = static_cast<std::uint8_t>(payload_size);
    return m;
}

// What a recording sink saw of one ended allocation.
struct Ended {
    AllocationRecord record;
    EndReason reason;
};

class RecordingSink final : public UsageSink {
public:
    void allocation_ended(const AllocationRecord& record, EndReason reason) noexcept override {
        ended.push_back(Ended{record, reason});
    }
    std::vector<Ended> ended;
};

class AllocationRecordTest : public ::testing::Test {
protected:
    AllocationRecordTest() { key_.fill(0x11); }

    // Built on first use, so a test may change `settings` first.
    AllocationManager& manager() {
        if (!manager_) {
            manager_ = std::make_unique<AllocationManager>(
                settings,
                std::make_shared<const PeerPolicy>(std::vector<protocol::Cidr>{},
                                                   std::vector<protocol::Cidr>{},
                                                   std::vector<TransportAddress>{}),
                ports_, egress, 0x5EED);
            manager_->set_usage_sink(&sink);
        }
        return *manager_;
    }

    Requester who(std::string_view user) const {
        return Requester{user, key_, false, std::nullopt};
    }

    // Runs a request whose attributes `add` writes; the error code, 0 for success.
    template <class F>
    std::uint16_t request(Method method, const FiveTuple& t, const Requester& r, F&& add) {
        std::vector<std::uint8_t> buffer(1024);
        protocol::TransactionId id;
        id.bytes.fill(0x5A);
        const std::uint32_t serial = ++serial_;
        for (std::size_t i = 0; i < 4; ++i)
            id.bytes[i] = static_cast<std::uint8_t>(serial >> (8 * i));
        protocol::MessageBuilder b(buffer, protocol::MessageType{method, MessageClass::request},
                                   id);
        add(b);
        MessageView view;
        EXPECT_EQ(MessageView::parse(b.finish(), view), protocol::ParseError::ok);
        std::vector<std::uint8_t> out(2048);
        const auto answer =
            manager().handle_request(view, t, ClientRoute::connection(7), r, now, out);
        MessageView response;
        EXPECT_EQ(MessageView::parse(answer, response), protocol::ParseError::ok);
        if (response.message_class() == MessageClass::success_response) return 0;
        const auto error = response.error_code();
        return error ? error->code : 1;
    }
    std::uint16_t allocate(const FiveTuple& t, const Requester& r) {
        return request(Method::allocate, t, r,
                       [](protocol::MessageBuilder& b) { b.add_requested_transport(17); });
    }
    void must_allocate(const FiveTuple& t, std::string_view user) {
        ASSERT_EQ(allocate(t, who(user)), 0);
    }
    std::uint16_t permit(const FiveTuple& t, std::string_view user, const TransportAddress& peer) {
        return request(Method::create_permission, t, who(user), [&](protocol::MessageBuilder& b) {
            b.add_xor_address(protocol::attr::xor_peer_address, peer);
        });
    }
    std::uint16_t bind(const FiveTuple& t, std::string_view user, std::uint16_t channel,
                       const TransportAddress& peer) {
        return request(Method::channel_bind, t, who(user), [&](protocol::MessageBuilder& b) {
            b.add_channel_number(channel);
            b.add_xor_address(protocol::attr::xor_peer_address, peer);
        });
    }
    std::uint16_t refresh(const FiveTuple& t, const Requester& r, std::uint32_t lifetime) {
        return request(Method::refresh, t, r,
                       [&](protocol::MessageBuilder& b) { b.add_lifetime(lifetime); });
    }

    // The live allocation of `t`; a test without one stops there (GoogleTest reports the throw).
    const Allocation& live(const FiveTuple& t) {
        const Allocation* a = manager().find(t, now);
        if (a == nullptr) throw std::runtime_error("no live allocation");
        return *a;
    }
    std::optional<AllocationRecord> record_of(const FiveTuple& t) {
        for (auto& r : manager().records(now)) {
            if (r.tuple == t) return r;
        }
        return std::nullopt;
    }

    ManagerSettings settings;
    TimePoint now = testing::t0;
    // Declared before the manager so they outlive it.
    testing::SeededRandom random_{42};
    RelayPorts ports_{50000, 50099, random_};
    FakeEgress egress;
    RecordingSink sink;
    std::unique_ptr<AllocationManager> manager_;

private:
    std::array<std::uint8_t, 16> key_{};
    std::uint32_t serial_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Ids and the live list

TEST(AllocationIds, WorkerIsInTheHighBitsAndSerialsStartAtOne) {
    EXPECT_EQ(first_allocation_id(0), 1u);
    EXPECT_EQ(first_allocation_id(3), (std::uint64_t{3} << 40) + 1);
    EXPECT_EQ(worker_of_allocation(first_allocation_id(3)), 3u);
    EXPECT_EQ(worker_of_allocation(first_allocation_id(3) + 12345), 3u);
    EXPECT_EQ(worker_of_allocation(first_allocation_id(0)), 0u);
}

TEST(EndReasons, EveryReasonHasItsName) {
    EXPECT_EQ(name_of(EndReason::expired), "expired");
    EXPECT_EQ(name_of(EndReason::deleted), "deleted");
    EXPECT_EQ(name_of(EndReason::closed), "closed");
    EXPECT_EQ(name_of(EndReason::credential_expired), "credential_expired");
    EXPECT_EQ(name_of(EndReason::killed), "killed");
    EXPECT_EQ(name_of(EndReason::revoked), "revoked");
    EXPECT_EQ(name_of(EndReason::drained), "drained");
    EXPECT_EQ(name_of(EndReason::shutdown), "shutdown");
}

TEST_F(AllocationRecordTest, IdsStartAtTheBaseAndAreUnique) {
    manager().set_id_base(first_allocation_id(3));
    must_allocate(tuple(40000), "alice");
    must_allocate(tuple(40001), "bob");
    EXPECT_EQ(allocate(tuple(40001), who("bob")), 437);  // refused: takes no id
    must_allocate(tuple(40002), "carol");
    EXPECT_EQ(live(tuple(40000)).id, first_allocation_id(3));
    EXPECT_EQ(live(tuple(40001)).id, first_allocation_id(3) + 1);
    EXPECT_EQ(live(tuple(40002)).id, first_allocation_id(3) + 2);
    for (const auto& r : manager().records(now)) EXPECT_EQ(worker_of_allocation(r.id), 3u);

    // An id is never handed out again after its allocation ended.
    ASSERT_TRUE(manager().end_allocation(first_allocation_id(3), EndReason::killed));
    must_allocate(tuple(40000), "alice");
    EXPECT_EQ(live(tuple(40000)).id, first_allocation_id(3) + 3);
}

TEST_F(AllocationRecordTest, WithoutABaseIdsStartAtOne) {
    must_allocate(tuple(40000), "alice");
    EXPECT_EQ(live(tuple(40000)).id, 1u);
}

TEST_F(AllocationRecordTest, RecordsListLiveAllocationsWithWhoWhereAndWhat) {
    must_allocate(tuple(40000), "alice");
    now += 10s;
    must_allocate(tuple(40001, Transport::tcp), "bob");
    ASSERT_EQ(permit(tuple(40000), "alice", peer_a), 0);
    ASSERT_EQ(permit(tuple(40000), "alice", peer_b), 0);
    ASSERT_EQ(bind(tuple(40000), "alice", 0x4000, peer_c), 0);  // a third permission with it

    const auto records = manager().records(now);
    ASSERT_EQ(records.size(), 2u);
    const auto alice = record_of(tuple(40000));
    ASSERT_TRUE(alice);
    EXPECT_EQ(alice->username, "alice");
    EXPECT_EQ(alice->tuple, tuple(40000));
    EXPECT_EQ(alice->id, live(tuple(40000)).id);
    ASSERT_EQ(alice->relays.size(), 1u);
    EXPECT_EQ(alice->relays[0], live(tuple(40000)).relays[0]);
    EXPECT_EQ(alice->started, testing::t0);
    EXPECT_EQ(alice->expires, testing::t0 + 600s);
    EXPECT_EQ(alice->permissions, 3u);
    EXPECT_EQ(alice->channels, 1u);

    const auto bob = record_of(tuple(40001, Transport::tcp));
    ASSERT_TRUE(bob);
    EXPECT_EQ(bob->username, "bob");
    EXPECT_EQ(bob->tuple.transport, Transport::tcp);
    EXPECT_EQ(bob->started, testing::t0 + 10s);
    EXPECT_EQ(bob->permissions, 0u);
    EXPECT_EQ(bob->channels, 0u);
    EXPECT_NE(bob->id, alice->id);
}

TEST_F(AllocationRecordTest, RecordsLeaveOutLapsedAllocationsNotYetSwept) {
    must_allocate(tuple(40000), "alice");
    now += 300s;
    must_allocate(tuple(40001), "bob");
    now = testing::t0 + 600s;  // alice's lifetime is over; no expire() sweep ran
    const auto records = manager().records(now);
    ASSERT_EQ(records.size(), 1u);
    EXPECT_EQ(records[0].username, "bob");
}

TEST_F(AllocationRecordTest, RecordShowsTheAdvertisedExternalAddress) {
    const TransportAddress internal = TransportAddress::parse_ip("10.1.1.1").value();
    const TransportAddress external = TransportAddress::parse_ip("203.0.113.77").value();
    settings.relay_addresses = {internal};
    settings.external_addresses = {ExternalMapping{internal, external}};
    must_allocate(tuple(40000), "alice");
    ASSERT_EQ(egress.opens.size(), 1u);
    const auto r = record_of(tuple(40000));
    ASSERT_TRUE(r);
    ASSERT_EQ(r->relays.size(), 1u);
    // What XOR-RELAYED-ADDRESS told the client, not the bound internal address.
    EXPECT_TRUE(same_ip(r->relays[0], external)) << r->relays[0].to_string();
    EXPECT_EQ(r->relays[0].port, egress.opens[0].address.port);
}

TEST_F(AllocationRecordTest, RecordShowsTheExternalAddressOfAWildcardMapping) {
    // relay.external_address: the unspecified internal address maps the whole family, here
    // the server address the relay binds when no relay address is configured.
    const TransportAddress any = TransportAddress::parse_ip("0.0.0.0").value();
    const TransportAddress external = TransportAddress::parse_ip("203.0.113.77").value();
    settings.external_addresses = {ExternalMapping{any, external}};
    must_allocate(tuple(40000), "alice");
    ASSERT_EQ(egress.opens.size(), 1u);
    EXPECT_TRUE(same_ip(egress.opens[0].address, server4));
    const auto r = record_of(tuple(40000));
    ASSERT_TRUE(r);
    ASSERT_EQ(r->relays.size(), 1u);
    EXPECT_TRUE(same_ip(r->relays[0], external)) << r->relays[0].to_string();
}

// ---------------------------------------------------------------------------------------------
// Usage counted on the relay path

TEST_F(AllocationRecordTest, UsageCountsWhatWasRoutedEachWay) {
    const FiveTuple t = tuple(40000);
    must_allocate(t, "alice");
    must_allocate(tuple(40001), "bob");
    ASSERT_EQ(bind(t, "alice", 0x4000, peer_a), 0);
    const RelayId relay = live(t).relay_ids[0];

    // Client to peer: three ChannelData messages, 10 + 20 + 30 payload bytes.
    for (const std::size_t size : {10u, 20u, 30u}) {
        const auto m = channel_message(0x4000, size);
        const auto routed = manager().route_channel_data(m, t, now);
        ASSERT_TRUE(routed);
        EXPECT_EQ(routed->payload.size(), size);
    }
    // Peer to client: two datagrams of 100 and 7 bytes.
    ASSERT_TRUE(manager().route_peer_datagram(relay, peer_a, 100, now));
    ASSERT_TRUE(manager().route_peer_datagram(relay, peer_a, 7, now));

    const auto r = record_of(t);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->usage.packets_to_peer, 3u);
    EXPECT_EQ(r->usage.bytes_to_peer, 60u);
    EXPECT_EQ(r->usage.packets_to_client, 2u);
    EXPECT_EQ(r->usage.bytes_to_client, 107u);
    // Another allocation's traffic is its own.
    const auto other = record_of(tuple(40001));
    ASSERT_TRUE(other);
    EXPECT_EQ(other->usage.packets_to_peer, 0u);
    EXPECT_EQ(other->usage.packets_to_client, 0u);
}

TEST_F(AllocationRecordTest, UsageCountsSendIndicationsAndDataIndications) {
    const FiveTuple t = tuple(40000);
    must_allocate(t, "alice");
    ASSERT_EQ(permit(t, "alice", peer_a), 0);
    std::vector<std::uint8_t> buffer(256);
    protocol::MessageBuilder b(buffer,
                               protocol::MessageType{Method::send, MessageClass::indication},
                               protocol::TransactionId{});
    b.add_xor_address(protocol::attr::xor_peer_address, peer_a);
    const std::vector<std::uint8_t> payload(13, 0x42);
    b.add_bytes(protocol::attr::data, payload);
    MessageView indication;
    ASSERT_EQ(MessageView::parse(b.finish(), indication), protocol::ParseError::ok);
    ASSERT_TRUE(manager().route_send_indication(indication, t, now));
    // No channel: to the client as a Data indication, counted the same.
    ASSERT_TRUE(manager().route_peer_datagram(live(t).relay_ids[0], peer_a, 50, now));

    const auto r = record_of(t);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->usage.packets_to_peer, 1u);
    EXPECT_EQ(r->usage.bytes_to_peer, 13u);
    EXPECT_EQ(r->usage.packets_to_client, 1u);
    EXPECT_EQ(r->usage.bytes_to_client, 50u);
}

TEST_F(AllocationRecordTest, DroppedDatagramsAreNotCounted) {
    const FiveTuple t = tuple(40000);
    must_allocate(t, "alice");
    ASSERT_EQ(bind(t, "alice", 0x4000, peer_a), 0);
    const RelayId relay = live(t).relay_ids[0];

    // From a peer without a permission.
    EXPECT_FALSE(manager().route_peer_datagram(relay, peer_b, 100, now));
    // On a channel never bound.
    const auto unbound = channel_message(0x4001, 40);
    EXPECT_FALSE(manager().route_channel_data(unbound, t, now));
    // A Send indication to a peer without a permission.
    std::vector<std::uint8_t> buffer(256);
    protocol::MessageBuilder b(buffer,
                               protocol::MessageType{Method::send, MessageClass::indication},
                               protocol::TransactionId{});
    b.add_xor_address(protocol::attr::xor_peer_address, peer_b);
    const std::vector<std::uint8_t> payload(9, 0x42);
    b.add_bytes(protocol::attr::data, payload);
    MessageView indication;
    ASSERT_EQ(MessageView::parse(b.finish(), indication), protocol::ParseError::ok);
    EXPECT_FALSE(manager().route_send_indication(indication, t, now));
    // After the permission lapsed (300 s), the bound peer is dropped too.
    now += 301s;
    EXPECT_FALSE(manager().route_peer_datagram(relay, peer_a, 100, now));

    EXPECT_GE(manager().counters().dropped_no_permission, 3u);
    const auto r = record_of(t);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->usage.packets_to_peer, 0u);
    EXPECT_EQ(r->usage.bytes_to_peer, 0u);
    EXPECT_EQ(r->usage.packets_to_client, 0u);
    EXPECT_EQ(r->usage.bytes_to_client, 0u);
}

TEST_F(AllocationRecordTest, MostPermissionsAndChannelsAreTheMostHeldAtOnce) {
    const FiveTuple t = tuple(40000);
    must_allocate(t, "alice");
    ASSERT_EQ(permit(t, "alice", peer_a), 0);
    ASSERT_EQ(bind(t, "alice", 0x4000, peer_b), 0);
    ASSERT_EQ(bind(t, "alice", 0x4001, peer_c), 0);
    EXPECT_EQ(live(t).usage.most_permissions, 3u);
    EXPECT_EQ(live(t).usage.most_channels, 2u);

    // Everything lapses (permissions 300 s, channels 600 s), the allocation is refreshed and
    // holds a single permission: the most held stays 3 and 2.
    now += 299s;
    ASSERT_EQ(refresh(t, who("alice"), 3600), 0);
    now += 700s;
    manager().expire(now);
    ASSERT_EQ(permit(t, "alice", peer_a), 0);
    const auto r = record_of(t);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->permissions, 1u);  // the live list counts what holds now
    EXPECT_EQ(r->channels, 0u);
    EXPECT_EQ(r->usage.most_permissions, 3u);
    EXPECT_EQ(r->usage.most_channels, 2u);

    // The usage record of the ended allocation reports the most held at once.
    ASSERT_TRUE(manager().end_allocation(r->id, EndReason::killed));
    ASSERT_EQ(sink.ended.size(), 1u);
    EXPECT_EQ(sink.ended[0].record.permissions, 3u);
    EXPECT_EQ(sink.ended[0].record.channels, 2u);
}

// ---------------------------------------------------------------------------------------------
// Ending allocations

TEST_F(AllocationRecordTest, EndAllocationFreesTheRelayAndARefreshThenGets437) {
    const FiveTuple t = tuple(40000);
    must_allocate(t, "alice");
    must_allocate(tuple(40001), "alice");
    const std::uint64_t id = live(t).id;
    const RelayId relay = live(t).relay_ids[0];
    const std::uint16_t port = live(t).relays[0].port;
    ASSERT_TRUE(ports_.in_use(protocol::AddressFamily::ipv4, port));

    EXPECT_TRUE(manager().end_allocation(id, EndReason::killed));
    EXPECT_EQ(egress.closes, std::vector<RelayId>{relay});
    EXPECT_EQ(manager().allocation_count(), 1u);
    EXPECT_EQ(manager().find(t, now), nullptr);
    EXPECT_FALSE(record_of(t));
    EXPECT_EQ(manager().counters().allocations_removed, 1u);
    // The relay's datagrams no longer reach anyone.
    EXPECT_FALSE(manager().route_peer_datagram(relay, peer_a, 10, now));
    EXPECT_EQ(refresh(t, who("alice"), 600), 437);
    // The port went back to the pool.
    EXPECT_FALSE(ports_.in_use(protocol::AddressFamily::ipv4, port)) << port;
    EXPECT_TRUE(ports_.in_use(protocol::AddressFamily::ipv4, live(tuple(40001)).relays[0].port));
    EXPECT_FALSE(manager().end_allocation(id, EndReason::killed));  // already gone
    EXPECT_EQ(sink.ended.size(), 1u);
}

TEST_F(AllocationRecordTest, EndAllocationOfAnUnknownIdIsFalseAndChangesNothing) {
    must_allocate(tuple(40000), "alice");
    const std::uint64_t id = live(tuple(40000)).id;
    EXPECT_FALSE(manager().end_allocation(id + 1, EndReason::killed));
    EXPECT_FALSE(manager().end_allocation(0, EndReason::killed));
    EXPECT_EQ(manager().allocation_count(), 1u);
    EXPECT_TRUE(egress.closes.empty());
    EXPECT_TRUE(sink.ended.empty());
}

TEST_F(AllocationRecordTest, EndAllocationsOfEndsOnlyTheMatchingOnes) {
    must_allocate(tuple(40000), "alice");
    must_allocate(tuple(40001), "1700000000:alice");
    must_allocate(tuple(40002), "bob");
    must_allocate(tuple(40003), "alicex");
    const RelayId bob_relay = live(tuple(40002)).relay_ids[0];
    std::vector<std::string> asked;
    const std::size_t ended = manager().end_allocations_of(
        [&](std::string_view user) {
            asked.emplace_back(user);
            return user == "alice" || user == "1700000000:alice";
        },
        EndReason::revoked);
    EXPECT_EQ(ended, 2u);
    EXPECT_EQ(asked.size(), 4u);  // every allocation was asked about
    EXPECT_EQ(manager().allocation_count(), 2u);
    EXPECT_NE(manager().find(tuple(40002), now), nullptr);
    EXPECT_NE(manager().find(tuple(40003), now), nullptr);
    EXPECT_EQ(egress.closes.size(), 2u);
    EXPECT_EQ(std::count(egress.closes.begin(), egress.closes.end(), bob_relay), 0);
    ASSERT_EQ(sink.ended.size(), 2u);
    for (const auto& e : sink.ended) {
        EXPECT_EQ(e.reason, EndReason::revoked);
        EXPECT_NE(e.record.username.find("alice"), std::string::npos);
    }
    EXPECT_EQ(
        manager().end_allocations_of([](std::string_view) { return false; }, EndReason::revoked),
        0u);
}

// ---------------------------------------------------------------------------------------------
// The usage record and its reason, for every way an allocation ends

TEST_F(AllocationRecordTest, SinkGetsOneRecordWithUsageWhenAnAllocationEnds) {
    manager().set_id_base(first_allocation_id(2));
    const FiveTuple t = tuple(40000);
    must_allocate(t, "alice");
    ASSERT_EQ(bind(t, "alice", 0x4000, peer_a), 0);
    const auto m = channel_message(0x4000, 25);
    ASSERT_TRUE(manager().route_channel_data(m, t, now));
    ASSERT_TRUE(manager().route_peer_datagram(live(t).relay_ids[0], peer_a, 40, now));
    const auto relays = live(t).relays;
    EXPECT_TRUE(sink.ended.empty());

    now += 5s;
    ASSERT_TRUE(manager().end_allocation(first_allocation_id(2), EndReason::killed));
    ASSERT_EQ(sink.ended.size(), 1u);
    const Ended& e = sink.ended[0];
    EXPECT_EQ(e.reason, EndReason::killed);
    EXPECT_EQ(e.record.id, first_allocation_id(2));
    EXPECT_EQ(e.record.username, "alice");
    EXPECT_EQ(e.record.tuple, t);
    ASSERT_EQ(e.record.relays.size(), 1u);
    EXPECT_EQ(e.record.relays[0], relays[0]);
    EXPECT_EQ(e.record.started, testing::t0);
    EXPECT_EQ(e.record.usage.packets_to_peer, 1u);
    EXPECT_EQ(e.record.usage.bytes_to_peer, 25u);
    EXPECT_EQ(e.record.usage.packets_to_client, 1u);
    EXPECT_EQ(e.record.usage.bytes_to_client, 40u);
    EXPECT_EQ(e.record.permissions, 1u);
    EXPECT_EQ(e.record.channels, 1u);

    // Ending others later adds records; nothing is sent twice.
    manager().clear();
    EXPECT_EQ(sink.ended.size(), 1u);
}

TEST_F(AllocationRecordTest, LapsedLifetimeEndsAsExpired) {
    must_allocate(tuple(40000), "alice");
    manager().expire(testing::t0 + 599s);
    EXPECT_TRUE(sink.ended.empty());
    manager().expire(testing::t0 + 600s);
    ASSERT_EQ(sink.ended.size(), 1u);
    EXPECT_EQ(sink.ended[0].reason, EndReason::expired);
    EXPECT_EQ(sink.ended[0].record.username, "alice");
}

TEST_F(AllocationRecordTest, LapsedAllocationSweptByAnAllocateEndsAsExpired) {
    must_allocate(tuple(40000), "alice");
    now = testing::t0 + 601s;
    must_allocate(tuple(40001), "bob");  // sweeps the lapsed one first
    ASSERT_EQ(sink.ended.size(), 1u);
    EXPECT_EQ(sink.ended[0].reason, EndReason::expired);
    EXPECT_EQ(sink.ended[0].record.username, "alice");
}

TEST_F(AllocationRecordTest, CredentialCapEndsAsCredentialExpired) {
    Requester strict = who("1700000000:alice");
    strict.teardown_at = testing::t0 + 120s;
    ASSERT_EQ(allocate(tuple(40000), strict), 0);
    manager().expire(testing::t0 + 121s);
    ASSERT_EQ(sink.ended.size(), 1u);
    EXPECT_EQ(sink.ended[0].reason, EndReason::credential_expired);
}

TEST_F(AllocationRecordTest, CredentialLaterThanTheLifetimeEndsAsExpired) {
    // The credential outlives the allocation: it was the lifetime that lapsed.
    Requester strict = who("1700000000:alice");
    strict.teardown_at = testing::t0 + 3600s;
    ASSERT_EQ(allocate(tuple(40000), strict), 0);
    manager().expire(testing::t0 + 601s);
    ASSERT_EQ(sink.ended.size(), 1u);
    EXPECT_EQ(sink.ended[0].reason, EndReason::expired);
}

TEST_F(AllocationRecordTest, RefreshWithAFreshCredentialThenLapsingEndsAsExpired) {
    // Capped at first by a short credential, then refreshed with a new one that reaches past
    // the new lifetime: when the allocation lapses, no credential ended it.
    Requester first = who("1700000000:alice");
    first.teardown_at = testing::t0 + 120s;
    ASSERT_EQ(allocate(tuple(40000), first), 0);
    now += 60s;
    Requester renewed = who("1700000000:alice");
    renewed.teardown_at = testing::t0 + 7200s;
    ASSERT_EQ(refresh(tuple(40000), renewed, 600), 0);
    manager().expire(testing::t0 + 121s);
    EXPECT_TRUE(sink.ended.empty());
    manager().expire(testing::t0 + 661s);
    ASSERT_EQ(sink.ended.size(), 1u);
    EXPECT_EQ(sink.ended[0].reason, EndReason::expired);
}

TEST_F(AllocationRecordTest, RefreshWithLifetimeZeroEndsAsDeleted) {
    must_allocate(tuple(40000), "alice");
    ASSERT_EQ(refresh(tuple(40000), who("alice"), 0), 0);
    ASSERT_EQ(sink.ended.size(), 1u);
    EXPECT_EQ(sink.ended[0].reason, EndReason::deleted);
}

TEST_F(AllocationRecordTest, ClosedControlConnectionEndsAsClosed) {
    const FiveTuple t = tuple(40000, Transport::tcp);
    must_allocate(t, "alice");
    manager().on_client_closed(tuple(40001, Transport::tcp));  // no allocation: no record
    EXPECT_TRUE(sink.ended.empty());
    manager().on_client_closed(t);
    ASSERT_EQ(sink.ended.size(), 1u);
    EXPECT_EQ(sink.ended[0].reason, EndReason::closed);
    EXPECT_EQ(sink.ended[0].record.tuple, t);
}

TEST_F(AllocationRecordTest, KillAndRevokeEndWithTheReasonGiven) {
    must_allocate(tuple(40000), "alice");
    must_allocate(tuple(40001), "bob");
    ASSERT_TRUE(manager().end_allocation(live(tuple(40000)).id, EndReason::killed));
    ASSERT_EQ(manager().end_allocations_of([](std::string_view u) { return u == "bob"; },
                                           EndReason::revoked),
              1u);
    ASSERT_EQ(sink.ended.size(), 2u);
    EXPECT_EQ(sink.ended[0].reason, EndReason::killed);
    EXPECT_EQ(sink.ended[0].record.username, "alice");
    EXPECT_EQ(sink.ended[1].reason, EndReason::revoked);
    EXPECT_EQ(sink.ended[1].record.username, "bob");
}

TEST_F(AllocationRecordTest, ClearWhileDrainingEndsAsDrained) {
    must_allocate(tuple(40000), "alice");
    must_allocate(tuple(40001), "bob");
    manager().set_draining(true);
    manager().clear();
    ASSERT_EQ(sink.ended.size(), 2u);
    for (const auto& e : sink.ended) EXPECT_EQ(e.reason, EndReason::drained);
    EXPECT_EQ(egress.closes.size(), 2u);
}

TEST_F(AllocationRecordTest, ClearWithoutADrainEndsAsShutdown) {
    must_allocate(tuple(40000), "alice");
    must_allocate(tuple(40001), "bob");
    manager().clear();
    ASSERT_EQ(sink.ended.size(), 2u);
    for (const auto& e : sink.ended) EXPECT_EQ(e.reason, EndReason::shutdown);
}

TEST_F(AllocationRecordTest, ClearAlsoReportsLapsedAllocationsNotYetSwept) {
    must_allocate(tuple(40000), "alice");
    manager().clear();  // at shutdown, the sweep has not run: still one record
    ASSERT_EQ(sink.ended.size(), 1u);
    EXPECT_EQ(manager().allocation_count(), 0u);
}

TEST_F(AllocationRecordTest, WithoutASinkAllocationsStillEnd) {
    must_allocate(tuple(40000), "alice");
    manager().set_usage_sink(nullptr);
    ASSERT_TRUE(manager().end_allocation(live(tuple(40000)).id, EndReason::killed));
    EXPECT_EQ(manager().allocation_count(), 0u);
    EXPECT_EQ(egress.closes.size(), 1u);
    EXPECT_TRUE(sink.ended.empty());
}

}  // namespace
}  // namespace tern::allocation
