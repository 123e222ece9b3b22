// AllocationManager against RFC 8656: every request answered in full (signed and fingerprinted),
// the Allocate/Refresh/CreatePermission/ChannelBind rules and error codes, lifetimes on a manual
// time line, and data relayed both ways through a recording RelayEgress.
#include "tern/allocation/allocation_manager.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "fake_egress.hpp"
#include "manager_requests.hpp"
#include "tern/protocol/attribute_type.hpp"
#include "tern/protocol/channel_data.hpp"
#include "tern/protocol/cidr.hpp"
#include "tern/protocol/message.hpp"
#include "tern/protocol/message_builder.hpp"
#include "tern/protocol/message_type.hpp"
#include "test_addresses.hpp"
#include "test_random.hpp"

namespace tern::allocation {
namespace {

using namespace std::chrono_literals;
using protocol::AddressFamily;
using protocol::Cidr;
using protocol::MessageClass;
using protocol::MessageView;
using protocol::Method;
using protocol::ParseError;
using protocol::Transport;
using protocol::TransportAddress;
using testing::FakeEgress;
using testing::family_v4;
using testing::family_v6;
using testing::first_port;
using testing::ip;
using testing::last_port;
using testing::peer_a;
using testing::peer_b;
using testing::peer_v6;
using testing::policy;
using testing::relay_v4;
using testing::relay_v6;
using testing::Request;
using testing::Response;
using testing::same_ip;
using testing::server4;
using testing::server6;
using testing::ta;
using testing::tcp_protocol;
using testing::tuple;
namespace attr = protocol::attr;

std::vector<std::uint8_t> bytes(std::initializer_list<std::uint8_t> list) {
    return std::vector<std::uint8_t>(list);
}

// The shared fixture (manager_requests.hpp) and the relay path driven from the client's side.
class AllocationManagerTest : public testing::ManagerFixture {
protected:
    void send_indication(const FiveTuple& t, const TransportAddress& peer,
                         std::span<const std::uint8_t> payload) {
        Request r(Method::send, next_serial(), MessageClass::indication);
        r.peer(peer).data(payload);
        manager().on_send_indication(r.view(), t, now);
    }
    void channel_data(const FiveTuple& t, std::uint16_t channel,
                      std::span<const std::uint8_t> payload, bool pad = false) {
        std::vector<std::uint8_t> m{static_cast<std::uint8_t>(channel >> 8),
                                    static_cast<std::uint8_t>(channel),
                                    static_cast<std::uint8_t>(payload.size() >> 8),
                                    static_cast<std::uint8_t>(payload.size())};
        m.insert(m.end(), payload.begin(), payload.end());
        while (pad && m.size() % 4 != 0) m.push_back(0);
        manager().on_channel_data(m, t, now);
    }
};

// ---------------------------------------------------------------------------------------------
// Allocate (RFC 8656 §7.2)

TEST_F(AllocationManagerTest, AllocateSucceedsWithRelayedMappedAndDefaultLifetime) {
    const FiveTuple t = tuple(40000);
    const Response r = allocate(t, alice());
    ASSERT_TRUE(r.success()) << r.error();
    // No relay address configured: the relay is on the server address the client reached.
    const TransportAddress relayed = r.relayed();
    EXPECT_TRUE(same_ip(relayed, server4)) << relayed.to_string();
    EXPECT_GE(relayed.port, first_port);
    EXPECT_LE(relayed.port, last_port);
    EXPECT_EQ(r.lifetime(), 600u);
    EXPECT_EQ(r.view.xor_mapped_address(), t.client);
    // The socket the I/O layer opened is the one advertised.
    ASSERT_EQ(egress.opens.size(), 1u);
    EXPECT_EQ(egress.opens[0].address, relayed);
    EXPECT_FALSE(egress.opens[0].dont_fragment);
    EXPECT_EQ(manager().allocation_count(), 1u);
    const Allocation* a = manager().find(t, now);
    ASSERT_NE(a, nullptr);
    EXPECT_EQ(a->username, "alice");
    EXPECT_EQ(a->relay_ids[0], egress.opens[0].id);
    EXPECT_EQ(manager().counters().allocations_created, 1u);
}

TEST_F(AllocationManagerTest, ResponsesAreSignedWithSha256WhenTheRequesterUsedIt) {
    Requester who = alice();
    who.sha256 = true;
    const Response r = allocate(tuple(40000), who);  // send() verifies MI-SHA256 + FINGERPRINT
    ASSERT_TRUE(r.success());
    // "instead of": no SHA-1 MESSAGE-INTEGRITY alongside.
    EXPECT_FALSE(r.view.has(attr::message_integrity));
    EXPECT_TRUE(r.view.has(attr::message_integrity_sha256));
}

TEST_F(AllocationManagerTest, ErrorResponsesAreSignedToo) {
    Requester who = alice();
    Request r(Method::allocate, next_serial());  // no REQUESTED-TRANSPORT
    const Response resp = send(r, tuple(40000), who);
    EXPECT_EQ(resp.error(), 400);
    EXPECT_TRUE(resp.view.has(attr::message_integrity));
    EXPECT_TRUE(resp.view.has(attr::fingerprint));

    who.sha256 = true;
    Request r2(Method::allocate, next_serial());
    const Response resp2 = send(r2, tuple(40001), who);
    EXPECT_EQ(resp2.error(), 400);
    EXPECT_TRUE(resp2.view.has(attr::message_integrity_sha256));
}

TEST_F(AllocationManagerTest, SoftwareAppearsOnlyWhenConfigured) {
    const Response plain = allocate(tuple(40000), alice());
    ASSERT_TRUE(plain.success());
    EXPECT_FALSE(plain.view.software().has_value());

    manager_.reset();
    ports_.reset();
    settings.software = "tern-test 1.0";
    const Response named = allocate(tuple(40001), alice());
    ASSERT_TRUE(named.success());
    EXPECT_EQ(named.view.software(), "tern-test 1.0");
    Request bad(Method::allocate, next_serial());
    const Response error = send(bad, tuple(40002), alice());
    EXPECT_EQ(error.error(), 400);
    EXPECT_EQ(error.view.software(), "tern-test 1.0");
}

TEST_F(AllocationManagerTest, MissingRequestedTransportIs400) {
    Request r(Method::allocate, next_serial());
    EXPECT_EQ(send(r, tuple(40000), alice()).error(), 400);
    EXPECT_TRUE(egress.opens.empty());
    EXPECT_EQ(manager().allocation_count(), 0u);
}

TEST_F(AllocationManagerTest, NonUdpRequestedTransportIs442) {
    Request r(Method::allocate, next_serial());
    r.transport(tcp_protocol);
    EXPECT_EQ(send(r, tuple(40000), alice()).error(), 442);
    EXPECT_TRUE(egress.opens.empty());
}

TEST_F(AllocationManagerTest, SecondAllocateOnTheSameFiveTupleIs437) {
    const FiveTuple t = tuple(40000);
    must_allocate(t, alice());
    EXPECT_EQ(allocate(t, alice()).error(), 437);
    EXPECT_EQ(egress.opened_count(), 1u);
    EXPECT_EQ(manager().allocation_count(), 1u);
}

TEST_F(AllocationManagerTest, RetransmittedAllocateGetsIdenticalBytesWithoutASecondRelay) {
    const FiveTuple t = tuple(40000);
    const std::uint32_t serial = next_serial();
    Request first(Method::allocate, serial);
    first.transport();
    const Response a = send(first, t, alice());
    ASSERT_TRUE(a.success());
    now += 5s;
    Request again(Method::allocate, serial);
    again.transport();
    const Response b = send(again, t, alice());
    // RFC 8656 §7.2: the same answer, not 437, and nothing allocated twice.
    EXPECT_EQ(a.bytes, b.bytes);
    EXPECT_EQ(egress.opens.size(), 1u);
    EXPECT_EQ(manager().allocation_count(), 1u);
}

TEST_F(AllocationManagerTest, RetransmissionAfterFortySecondsIsProcessedAgain) {
    const FiveTuple t = tuple(40000);
    const std::uint32_t serial = next_serial();
    Request first(Method::allocate, serial);
    first.transport();
    ASSERT_TRUE(send(first, t, alice()).success());
    now += 41s;
    Request late(Method::allocate, serial);
    late.transport();
    // The cached answer is gone; the 5-tuple still holds an allocation.
    EXPECT_EQ(send(late, t, alice()).error(), 437);
    EXPECT_EQ(egress.opens.size(), 1u);
}

TEST_F(AllocationManagerTest, SameTransactionIdFromAnotherFiveTupleIsNotARetransmission) {
    const std::uint32_t serial = next_serial();
    Request first(Method::allocate, serial);
    first.transport();
    const Response a = send(first, tuple(40000), alice());
    Request other(Method::allocate, serial);
    other.transport();
    const Response b = send(other, tuple(40001), alice());
    ASSERT_TRUE(a.success());
    ASSERT_TRUE(b.success());
    EXPECT_NE(a.relayed(), b.relayed());
    EXPECT_EQ(manager().allocation_count(), 2u);
}

TEST_F(AllocationManagerTest, RequestedAndAdditionalFamilyTogetherIs400) {
    settings.relay_addresses = {relay_v4, relay_v6};
    Request r(Method::allocate, next_serial());
    r.transport().family(family_v4).additional_family(family_v6);
    EXPECT_EQ(send(r, tuple(40000), alice()).error(), 400);
    EXPECT_TRUE(egress.opens.empty());
}

TEST_F(AllocationManagerTest, ReservationTokenWithEvenPortIs400) {
    Request r(Method::allocate, next_serial());
    r.transport().token(0x0102030405060708ull).even_port(false);
    EXPECT_EQ(send(r, tuple(40000), alice()).error(), 400);
    EXPECT_TRUE(egress.opens.empty());
}

TEST_F(AllocationManagerTest, ReservationTokenWithRequestedFamilyIs400) {
    Request r(Method::allocate, next_serial());
    r.transport().token(0x0102030405060708ull).family(family_v4);
    EXPECT_EQ(send(r, tuple(40000), alice()).error(), 400);
    EXPECT_TRUE(egress.opens.empty());
}

TEST_F(AllocationManagerTest, AdditionalFamilyIpv4Is400) {
    // RFC 8656 §7.2: ADDITIONAL-ADDRESS-FAMILY may only ask for IPv6.
    settings.relay_addresses = {relay_v4, relay_v6};
    Request r(Method::allocate, next_serial());
    r.transport().additional_family(family_v4);
    EXPECT_EQ(send(r, tuple(40000), alice()).error(), 400);
    EXPECT_TRUE(egress.opens.empty());
}

TEST_F(AllocationManagerTest, RequestedFamilyWithoutARelayAddressIs440) {
    // No relay address configured and the client reached us on IPv4: no IPv6 to relay from.
    Request r(Method::allocate, next_serial());
    r.transport().family(family_v6);
    EXPECT_EQ(send(r, tuple(40000), alice()).error(), 440);
    EXPECT_TRUE(egress.opens.empty());
    EXPECT_EQ(manager().allocation_count(), 0u);
}

TEST_F(AllocationManagerTest, RequestedFamilyIpv6UsesTheIpv6RelayAddress) {
    settings.relay_addresses = {relay_v4, relay_v6};
    Request r(Method::allocate, next_serial());
    r.transport().family(family_v6);
    const Response resp = send(r, tuple(40000), alice());
    ASSERT_TRUE(resp.success()) << resp.error();
    EXPECT_TRUE(same_ip(resp.relayed(), relay_v6)) << resp.relayed().to_string();
    EXPECT_EQ(resp.all_relayed().size(), 1u);
    ASSERT_EQ(egress.opens.size(), 1u);
    EXPECT_EQ(egress.opens[0].address, resp.relayed());
}

TEST_F(AllocationManagerTest, ConfiguredRelayAddressIsUsedInsteadOfTheServerAddress) {
    settings.relay_addresses = {relay_v4, relay_v6};
    const TransportAddress relayed = must_allocate(tuple(40000), alice());
    EXPECT_TRUE(same_ip(relayed, relay_v4)) << relayed.to_string();
}

TEST_F(AllocationManagerTest, PerUserQuotaIs486) {
    settings.limits.max_allocations_per_user = 1;
    must_allocate(tuple(40000), alice());
    EXPECT_EQ(allocate(tuple(40001), alice()).error(), 486);
    // Another user is not affected by alice's quota.
    must_allocate(tuple(40002), bob());
    EXPECT_EQ(manager().allocation_count(), 2u);
    EXPECT_EQ(egress.opened_count(), 2u);
}

TEST_F(AllocationManagerTest, TotalCapacityIs508) {
    settings.limits.max_allocations = 1;
    must_allocate(tuple(40000), alice());
    EXPECT_EQ(allocate(tuple(40001), bob()).error(), 508);
    EXPECT_EQ(egress.opened_count(), 1u);
}

TEST_F(AllocationManagerTest, ExhaustedPortPoolIs508) {
    port_first = 50000;
    port_last = 50001;
    const TransportAddress a = must_allocate(tuple(40000), alice());
    const TransportAddress b = must_allocate(tuple(40001), alice());
    EXPECT_NE(a.port, b.port);
    EXPECT_EQ(allocate(tuple(40002), alice()).error(), 508);
    EXPECT_EQ(manager().allocation_count(), 2u);
}

TEST_F(AllocationManagerTest, RequestedLifetimeIsCappedAndNeverBelowTheDefault) {
    settings.limits.max_lifetime = 3600s;
    const auto lifetime_for = [&](std::uint16_t port, std::uint32_t asked) {
        Request r(Method::allocate, next_serial());
        r.transport().lifetime(asked);
        const Response resp = send(r, tuple(port), alice());
        EXPECT_TRUE(resp.success()) << resp.error();
        return resp.lifetime();
    };
    EXPECT_EQ(lifetime_for(40000, 7200), 3600u);
    EXPECT_EQ(lifetime_for(40001, 60), 600u);
    EXPECT_EQ(lifetime_for(40002, 1200), 1200u);
    // The granted lifetime is the one enforced.
    EXPECT_NE(manager().find(tuple(40002), now + 1199s), nullptr);
    EXPECT_EQ(manager().find(tuple(40002), now + 1200s), nullptr);
}

TEST_F(AllocationManagerTest, ExternalMappingAdvertisesTheExternalAddress) {
    const TransportAddress internal = ip("10.1.1.1");
    const TransportAddress external = ip("203.0.113.77");
    settings.relay_addresses = {internal};
    settings.external_addresses = {ExternalMapping{internal, external}};
    const TransportAddress relayed = must_allocate(tuple(40000), alice());
    ASSERT_EQ(egress.opens.size(), 1u);
    // The socket binds the internal address; the client learns the external one, same port.
    EXPECT_TRUE(same_ip(egress.opens[0].address, internal));
    EXPECT_TRUE(same_ip(relayed, external)) << relayed.to_string();
    EXPECT_EQ(relayed.port, egress.opens[0].address.port);
}

// relay.external_address: a mapping from the unspecified address covers every relay address of
// its family, and no other family.
TEST_F(AllocationManagerTest, ExternalMappingFromTheUnspecifiedAddressCoversItsFamily) {
    const TransportAddress internal = ip("10.1.1.1");
    const TransportAddress external = ip("203.0.113.77");
    TransportAddress any_v6;
    any_v6.family = AddressFamily::ipv6;
    settings.relay_addresses = {internal};
    // The IPv6 mapping comes first and must not be taken for an IPv4 relay address.
    settings.external_addresses = {ExternalMapping{any_v6, ip("2001:db8::77")},
                                   ExternalMapping{TransportAddress{}, external}};
    const TransportAddress relayed = must_allocate(tuple(40000), alice());
    ASSERT_EQ(egress.opens.size(), 1u);
    EXPECT_TRUE(same_ip(egress.opens[0].address, internal));
    EXPECT_TRUE(same_ip(relayed, external)) << relayed.to_string();
    EXPECT_EQ(relayed.port, egress.opens[0].address.port);
}

TEST_F(AllocationManagerTest, AddressInUseRetriesAnotherPort) {
    egress.fail_next_opens(OpenRelayStatus::address_in_use);
    const TransportAddress relayed = must_allocate(tuple(40000), alice());
    ASSERT_EQ(egress.opens.size(), 2u);
    EXPECT_EQ(egress.opens[0].status, OpenRelayStatus::address_in_use);
    EXPECT_NE(egress.opens[1].address.port, egress.opens[0].address.port);
    EXPECT_EQ(relayed, egress.opens[1].address);
}

TEST_F(AllocationManagerTest, AddressInUseEverywhereEndsIn508WithoutLooping) {
    port_first = 50000;
    port_last = 50009;
    egress.fail_next_opens(OpenRelayStatus::address_in_use, 1000);
    EXPECT_EQ(allocate(tuple(40000), alice()).error(), 508);
    // Each port of the range is tried at most once.
    EXPECT_LE(egress.opens.size(), 10u);
    EXPECT_EQ(manager().allocation_count(), 0u);
}

TEST_F(AllocationManagerTest, OpenFailureIs508AndReturnsThePort) {
    egress.fail_next_opens(OpenRelayStatus::failed);
    EXPECT_EQ(allocate(tuple(40000), alice()).error(), 508);
    EXPECT_EQ(manager().allocation_count(), 0u);
    // A failure not tied to the port (fd limit) must not leak the port.
    EXPECT_EQ(ports().available(AddressFamily::ipv4), std::size_t{last_port - first_port + 1});
    // The next attempt works.
    must_allocate(tuple(40000), alice());
}

TEST_F(AllocationManagerTest, DontFragmentIsPassedToTheRelaySocket) {
    Request r(Method::allocate, next_serial());
    r.transport().dont_fragment();
    ASSERT_TRUE(send(r, tuple(40000), alice()).success());
    ASSERT_EQ(egress.opens.size(), 1u);
    EXPECT_TRUE(egress.opens[0].dont_fragment);
}

TEST_F(AllocationManagerTest, EvenPortGivesAnEvenPortWithoutToken) {
    for (std::uint16_t i = 0; i < 8; ++i) {
        Request r(Method::allocate, next_serial());
        r.transport().even_port(false);
        const Response resp = send(r, tuple(static_cast<std::uint16_t>(40000 + i)), alice());
        ASSERT_TRUE(resp.success()) << resp.error();
        EXPECT_EQ(resp.relayed().port % 2, 0) << resp.relayed().port;
        EXPECT_FALSE(resp.view.reservation_token().has_value());
    }
}

TEST_F(AllocationManagerTest, EvenPortReserveGivesATokenThatClaimsTheNextPort) {
    Request r(Method::allocate, next_serial());
    r.transport().even_port(true);
    const Response first = send(r, tuple(40000), alice());
    ASSERT_TRUE(first.success()) << first.error();
    EXPECT_EQ(first.relayed().port % 2, 0);
    const auto token = first.view.reservation_token();
    ASSERT_TRUE(token.has_value());

    Request claim(Method::allocate, next_serial());
    claim.transport().token(*token);
    const Response second = send(claim, tuple(40001), alice());
    ASSERT_TRUE(second.success()) << second.error();
    EXPECT_EQ(second.relayed().port, first.relayed().port + 1);
    EXPECT_TRUE(same_ip(second.relayed(), first.relayed()));
}

TEST_F(AllocationManagerTest, UnknownReservationTokenIs508) {
    Request r(Method::allocate, next_serial());
    r.transport().token(0xDEADBEEFCAFEF00Dull);
    EXPECT_EQ(send(r, tuple(40000), alice()).error(), 508);
    EXPECT_TRUE(egress.opens.empty());
}

TEST_F(AllocationManagerTest, AdditionalFamilyIpv6GivesTwoRelayedAddressesV4First) {
    settings.relay_addresses = {relay_v6, relay_v4};  // configuration order must not matter
    Request r(Method::allocate, next_serial());
    r.transport().additional_family(family_v6);
    const Response resp = send(r, tuple(40000), alice());
    ASSERT_TRUE(resp.success()) << resp.error();
    const auto relayed = resp.all_relayed();
    ASSERT_EQ(relayed.size(), 2u);
    EXPECT_TRUE(same_ip(relayed[0], relay_v4)) << relayed[0].to_string();
    EXPECT_TRUE(same_ip(relayed[1], relay_v6)) << relayed[1].to_string();
    EXPECT_FALSE(resp.view.address_error_code().has_value());
    EXPECT_EQ(egress.opened_count(), 2u);
    const Allocation* a = manager().find(tuple(40000), now);
    ASSERT_NE(a, nullptr);
    EXPECT_EQ(a->relays.size(), 2u);
}

TEST_F(AllocationManagerTest, AdditionalFamilyWithoutIpv6RelayGivesAddressErrorCode) {
    // Client on IPv4, nothing configured: IPv4 relay works, IPv6 is reported as 440.
    Request r(Method::allocate, next_serial());
    r.transport().additional_family(family_v6);
    const Response resp = send(r, tuple(40000), alice());
    ASSERT_TRUE(resp.success()) << resp.error();
    const auto relayed = resp.all_relayed();
    ASSERT_EQ(relayed.size(), 1u);
    EXPECT_EQ(relayed[0].family, AddressFamily::ipv4);
    const auto aec = resp.view.address_error_code();
    ASSERT_TRUE(aec.has_value());
    EXPECT_EQ(aec->family, AddressFamily::ipv6);
    EXPECT_EQ(aec->code, 440);
    EXPECT_EQ(egress.opened_count(), 1u);
}

TEST_F(AllocationManagerTest, DefaultFamilyIpv4GivesIpv4ToAClientOnIpv6) {
    settings.relay_addresses = {relay_v4, relay_v6};
    settings.default_family = DefaultFamily::ipv4;
    const TransportAddress relayed = must_allocate(tuple(40000, Transport::udp, server6), alice());
    EXPECT_TRUE(same_ip(relayed, relay_v4)) << relayed.to_string();
}

TEST_F(AllocationManagerTest, DefaultFamilyClientFollowsTheServerAddressReached) {
    settings.relay_addresses = {relay_v4, relay_v6};
    settings.default_family = DefaultFamily::client;
    const TransportAddress v6 = must_allocate(tuple(40000, Transport::udp, server6), alice());
    EXPECT_TRUE(same_ip(v6, relay_v6)) << v6.to_string();
    const TransportAddress v4 = must_allocate(tuple(40001, Transport::udp, server4), alice());
    EXPECT_TRUE(same_ip(v4, relay_v4)) << v4.to_string();
}

TEST_F(AllocationManagerTest, DefaultIpv4WithNoIpv4AvailableIs440) {
    // A client on IPv6 with nothing configured: the default family IPv4 has no address.
    settings.default_family = DefaultFamily::ipv4;
    EXPECT_EQ(allocate(tuple(40000, Transport::udp, server6), alice()).error(), 440);
    EXPECT_TRUE(egress.opens.empty());
}

TEST_F(AllocationManagerTest, OtherMethodsGetNoAnswer) {
    Request r(Method::binding, next_serial());
    std::vector<std::uint8_t> out(2048);
    EXPECT_TRUE(
        manager()
            .handle_request(r.view(), tuple(40000), ClientRoute::connection(77), alice(), now, out)
            .empty());
}

// ---------------------------------------------------------------------------------------------
// Refresh (RFC 8656 §7.3) and lifetimes

TEST_F(AllocationManagerTest, RefreshWithoutAllocationIs437) {
    EXPECT_EQ(refresh(tuple(40000), alice(), 600).error(), 437);
}

TEST_F(AllocationManagerTest, RefreshByAnotherUserIs441) {
    const FiveTuple t = tuple(40000);
    must_allocate(t, alice());
    EXPECT_EQ(refresh(t, bob(), 0).error(), 441);
    // bob could not delete alice's allocation.
    EXPECT_NE(manager().find(t, now), nullptr);
    EXPECT_TRUE(egress.closes.empty());
}

TEST_F(AllocationManagerTest, RefreshGrantsAndEnforcesTheNewLifetime) {
    const FiveTuple t = tuple(40000);
    must_allocate(t, alice());
    now += 500s;
    const Response r = refresh(t, alice(), 900);
    ASSERT_TRUE(r.success()) << r.error();
    EXPECT_EQ(r.lifetime(), 900u);
    const RelayId id = relay_id(t);
    // Past the original 600 s it lives on, until 500 + 900 s.
    manager().expire(testing::t0 + 1000s);
    EXPECT_TRUE(egress.closes.empty());
    EXPECT_NE(manager().find(t, testing::t0 + 1399s), nullptr);
    manager().expire(testing::t0 + 1401s);
    EXPECT_EQ(egress.closes, std::vector<RelayId>{id});
}

TEST_F(AllocationManagerTest, RefreshWithoutLifetimeGrantsTheDefault) {
    const FiveTuple t = tuple(40000);
    must_allocate(t, alice());
    const Response r = refresh(t, alice(), std::nullopt);
    ASSERT_TRUE(r.success()) << r.error();
    EXPECT_EQ(r.lifetime(), 600u);
}

TEST_F(AllocationManagerTest, RefreshLifetimeZeroDeletesAndFreesThePort) {
    port_first = 50000;
    port_last = 50000;  // one port: reusing it proves it was freed
    const FiveTuple t = tuple(40000);
    must_allocate(t, alice());
    const RelayId id = relay_id(t);
    const Response r = refresh(t, alice(), 0);
    ASSERT_TRUE(r.success()) << r.error();
    EXPECT_EQ(r.lifetime(), 0u);
    EXPECT_EQ(egress.closes, std::vector<RelayId>{id});
    EXPECT_EQ(manager().allocation_count(), 0u);
    EXPECT_EQ(manager().find(t, now), nullptr);
    EXPECT_EQ(manager().counters().allocations_removed, 1u);
    EXPECT_EQ(refresh(t, alice(), 600).error(), 437);
    // The port is back in the pool.
    const TransportAddress again = must_allocate(tuple(40001), alice());
    EXPECT_EQ(again.port, 50000);
}

TEST_F(AllocationManagerTest, RefreshOfAFamilyTheAllocationLacksIs443) {
    settings.relay_addresses = {relay_v4, relay_v6};
    const FiveTuple t = tuple(40000);
    must_allocate(t, alice());  // IPv4 only
    Request r(Method::refresh, next_serial());
    r.lifetime(600).family(family_v6);
    EXPECT_EQ(send(r, t, alice()).error(), 443);
    Request ok(Method::refresh, next_serial());
    ok.lifetime(600).family(family_v4);
    EXPECT_TRUE(send(ok, t, alice()).success());
}

TEST_F(AllocationManagerTest, ExpiryClosesTheRelayAndFreesThePort) {
    port_first = 50000;
    port_last = 50000;
    const FiveTuple t = tuple(40000);
    must_allocate(t, alice());
    const RelayId id = relay_id(t);
    manager().expire(testing::t0 + 599s);
    EXPECT_TRUE(egress.closes.empty());
    EXPECT_EQ(manager().allocation_count(), 1u);
    now = testing::t0 + 600s;
    manager().expire(now);
    EXPECT_EQ(egress.closes, std::vector<RelayId>{id});
    EXPECT_EQ(manager().allocation_count(), 0u);
    EXPECT_EQ(manager().counters().allocations_removed, 1u);
    EXPECT_EQ(refresh(t, alice(), 600).error(), 437);
    EXPECT_EQ(must_allocate(tuple(40001), alice()).port, 50000);
}

TEST_F(AllocationManagerTest, StrictTeardownLimitsLifetimeAndEndsTheAllocation) {
    Requester who = alice();
    who.teardown_at = testing::t0 + 120s;
    const FiveTuple t = tuple(40000);
    Request r(Method::allocate, next_serial());
    r.transport().lifetime(3600);
    const Response resp = send(r, t, who);
    ASSERT_TRUE(resp.success()) << resp.error();
    // The client must not be told it has longer than its credential allows.
    EXPECT_GT(resp.lifetime(), 0u);
    EXPECT_LE(resp.lifetime(), 120u);
    const RelayId id = relay_id(t);
    manager().expire(testing::t0 + 119s);
    EXPECT_TRUE(egress.closes.empty());
    manager().expire(testing::t0 + 121s);
    EXPECT_EQ(egress.closes, std::vector<RelayId>{id});
    EXPECT_EQ(manager().allocation_count(), 0u);
}

TEST_F(AllocationManagerTest, StrictTeardownAlsoCapsRefresh) {
    const FiveTuple t = tuple(40000);
    must_allocate(t, alice());
    Requester who = alice();
    who.teardown_at = testing::t0 + 200s;
    now += 50s;
    const Response r = refresh(t, who, 3600);
    ASSERT_TRUE(r.success()) << r.error();
    EXPECT_LE(r.lifetime(), 150u);
    manager().expire(testing::t0 + 201s);
    EXPECT_EQ(manager().allocation_count(), 0u);
    EXPECT_EQ(egress.closes.size(), 1u);
}

TEST_F(AllocationManagerTest, ClientClosedRemovesTheAllocation) {
    const FiveTuple t = tuple(40000, Transport::tcp);
    must_allocate(t, alice());
    const RelayId id = relay_id(t);
    manager().on_client_closed(t);
    EXPECT_EQ(egress.closes, std::vector<RelayId>{id});
    EXPECT_EQ(manager().allocation_count(), 0u);
    EXPECT_EQ(manager().find(t, now), nullptr);
    // Closing an unknown connection is harmless.
    manager().on_client_closed(tuple(40001, Transport::tcp));
    EXPECT_EQ(egress.closes.size(), 1u);
}

TEST_F(AllocationManagerTest, ClearClosesEveryRelay) {
    settings.relay_addresses = {relay_v4, relay_v6};
    must_allocate(tuple(40000), alice());
    Request dual(Method::allocate, next_serial());
    dual.transport().additional_family(family_v6);
    ASSERT_TRUE(send(dual, tuple(40001), bob()).success());
    ASSERT_EQ(egress.open_ids.size(), 3u);
    manager().clear();
    EXPECT_EQ(manager().allocation_count(), 0u);
    EXPECT_TRUE(egress.open_ids.empty()) << egress.open_ids.size() << " relays left open";
}

// ---------------------------------------------------------------------------------------------
// CreatePermission (RFC 8656 §9)

TEST_F(AllocationManagerTest, CreatePermissionWithoutPeerIs400) {
    const FiveTuple t = tuple(40000);
    must_allocate(t, alice());
    Request r(Method::create_permission, next_serial());
    EXPECT_EQ(send(r, t, alice()).error(), 400);
}

TEST_F(AllocationManagerTest, CreatePermissionInstallsEveryPeer) {
    const FiveTuple t = tuple(40000);
    must_allocate(t, alice());
    ASSERT_TRUE(permit(t, alice(), {peer_a, peer_b}).success());
    const Allocation* a = manager().find(t, now);
    ASSERT_NE(a, nullptr);
    EXPECT_TRUE(a->permissions.allowed(peer_a, now));
    EXPECT_TRUE(a->permissions.allowed(peer_b, now));
    const std::vector<std::uint8_t> payload = bytes({1, 2, 3});
    manager().on_peer_datagram(relay_id(t), peer_a, payload, now);
    manager().on_peer_datagram(relay_id(t), peer_b, payload, now);
    EXPECT_EQ(egress.to_client.size(), 2u);
}

TEST_F(AllocationManagerTest, CreatePermissionWithoutAllocationIs437) {
    EXPECT_EQ(permit(tuple(40000), alice(), {peer_a}).error(), 437);
}

TEST_F(AllocationManagerTest, CreatePermissionByAnotherUserIs441) {
    const FiveTuple t = tuple(40000);
    must_allocate(t, alice());
    EXPECT_EQ(permit(t, bob(), {peer_a}).error(), 441);
    EXPECT_FALSE(manager().find(t, now)->permissions.allowed(peer_a, now));
}

TEST_F(AllocationManagerTest, CreatePermissionForAnotherFamilyIs443) {
    settings.relay_addresses = {relay_v4, relay_v6};
    const FiveTuple t4 = tuple(40000);
    must_allocate(t4, alice());
    EXPECT_EQ(permit(t4, alice(), {peer_v6}).error(), 443);

    const FiveTuple t6 = tuple(40001);
    Request r(Method::allocate, next_serial());
    r.transport().family(family_v6);
    ASSERT_TRUE(send(r, t6, alice()).success());
    EXPECT_EQ(permit(t6, alice(), {peer_a}).error(), 443);
    EXPECT_TRUE(permit(t6, alice(), {peer_v6}).success());
}

TEST_F(AllocationManagerTest, CreatePermissionWithARefusedPeerIs403AndInstallsNothing) {
    const FiveTuple t = tuple(40000);
    must_allocate(t, alice());
    // One bad address spoils the whole request (RFC 8656 §9.2: all or nothing).
    EXPECT_EQ(permit(t, alice(), {peer_a, ta("127.0.0.1:5000")}).error(), 403);
    EXPECT_EQ(permit(t, alice(), {ta("10.0.0.1:5000"), peer_b}).error(), 403);
    const Allocation* a = manager().find(t, now);
    ASSERT_NE(a, nullptr);
    EXPECT_FALSE(a->permissions.allowed(peer_a, now));
    EXPECT_FALSE(a->permissions.allowed(peer_b, now));
    manager().on_peer_datagram(relay_id(t), peer_a, bytes({1}), now);
    EXPECT_TRUE(egress.to_client.empty());
}

TEST_F(AllocationManagerTest, CreatePermissionRefusesIpv4MappedLoopback) {
    // A dual-stack allocation, so the family check cannot be what refuses it.
    settings.relay_addresses = {relay_v4, relay_v6};
    const FiveTuple t = tuple(40000);
    Request r(Method::allocate, next_serial());
    r.transport().additional_family(family_v6);
    ASSERT_TRUE(send(r, t, alice()).success());
    EXPECT_EQ(permit(t, alice(), {ta("[::ffff:127.0.0.1]:5000")}).error(), 403);
    const Allocation* a = manager().find(t, now);
    ASSERT_NE(a, nullptr);
    EXPECT_FALSE(a->permissions.allowed(ta("127.0.0.1:5000"), now));
    EXPECT_FALSE(a->permissions.allowed(ta("[::ffff:127.0.0.1]:5000"), now));
}

TEST_F(AllocationManagerTest, AllowListPermitsASpecialPurposePeer) {
    peers = policy({Cidr::covering(ip("10.0.0.0"), 8)});
    const FiveTuple t = tuple(40000);
    must_allocate(t, alice());
    EXPECT_TRUE(permit(t, alice(), {ta("10.0.0.1:5000")}).success());
    EXPECT_EQ(permit(t, alice(), {ta("127.0.0.1:5000")}).error(), 403);
}

TEST_F(AllocationManagerTest, DenyListRefusesAPublicPeer) {
    peers = policy({}, {Cidr::covering(ip("8.8.8.0"), 24)});
    const FiveTuple t = tuple(40000);
    must_allocate(t, alice());
    EXPECT_EQ(permit(t, alice(), {peer_a}).error(), 403);
    EXPECT_TRUE(permit(t, alice(), {peer_b}).success());
}

// ---------------------------------------------------------------------------------------------
// ChannelBind (RFC 8656 §12.2)

TEST_F(AllocationManagerTest, ChannelBindWithInvalidOrMissingChannelIs400) {
    const FiveTuple t = tuple(40000);
    must_allocate(t, alice());
    for (const std::uint16_t channel :
         std::initializer_list<std::uint16_t>{0x0000, 0x3FFF, 0x5000, 0x7FFF, 0xFFFF}) {
        EXPECT_EQ(bind(t, alice(), channel, peer_a).error(), 400) << std::hex << channel;
    }
    Request r(Method::channel_bind, next_serial());
    r.peer(peer_a);
    EXPECT_EQ(send(r, t, alice()).error(), 400);
    // The edges of the range are fine.
    EXPECT_TRUE(bind(t, alice(), 0x4000, peer_a).success());
    EXPECT_TRUE(bind(t, alice(), 0x4FFF, peer_b).success());
}

TEST_F(AllocationManagerTest, ChannelBindWithoutPeerIs400) {
    const FiveTuple t = tuple(40000);
    must_allocate(t, alice());
    Request r(Method::channel_bind, next_serial());
    r.channel(0x4000);
    EXPECT_EQ(send(r, t, alice()).error(), 400);
}

TEST_F(AllocationManagerTest, ChannelBindConflictsAre400AndRebindingSucceeds) {
    const FiveTuple t = tuple(40000);
    must_allocate(t, alice());
    ASSERT_TRUE(bind(t, alice(), 0x4001, peer_a).success());
    EXPECT_EQ(bind(t, alice(), 0x4001, peer_b).error(), 400);  // channel taken
    EXPECT_EQ(bind(t, alice(), 0x4002, peer_a).error(), 400);  // peer taken
    // Another port on the same IP is another transport address: a separate binding.
    EXPECT_TRUE(bind(t, alice(), 0x4003, ta("8.8.8.8:5001")).success());
    now += 500s;
    EXPECT_TRUE(bind(t, alice(), 0x4001, peer_a).success());  // refresh
    // Refreshed at +500 s: still live at +1000 s, beyond the first 600 s.
    const Allocation* a = manager().find(t, now);
    ASSERT_NE(a, nullptr);
    EXPECT_EQ(a->channels.peer_for(0x4001, testing::t0 + 1000s), peer_a);
}

TEST_F(AllocationManagerTest, ChannelBindRefusedPeerIs403) {
    const FiveTuple t = tuple(40000);
    must_allocate(t, alice());
    EXPECT_EQ(bind(t, alice(), 0x4000, ta("10.0.0.1:5000")).error(), 403);
    EXPECT_EQ(bind(t, alice(), 0x4000, ta("127.0.0.1:5000")).error(), 403);
    const Allocation* a = manager().find(t, now);
    ASSERT_NE(a, nullptr);
    EXPECT_FALSE(a->channels.peer_for(0x4000, now).has_value());
}

TEST_F(AllocationManagerTest, ChannelBindForAnotherFamilyIs443) {
    const FiveTuple t = tuple(40000);
    must_allocate(t, alice());
    EXPECT_EQ(bind(t, alice(), 0x4000, peer_v6).error(), 443);
}

TEST_F(AllocationManagerTest, ChannelBindWithoutAllocationIs437AndOtherUserIs441) {
    const FiveTuple t = tuple(40000);
    EXPECT_EQ(bind(t, alice(), 0x4000, peer_a).error(), 437);
    must_allocate(t, alice());
    EXPECT_EQ(bind(t, bob(), 0x4000, peer_a).error(), 441);
    EXPECT_FALSE(manager().find(t, now)->channels.peer_for(0x4000, now).has_value());
}

TEST_F(AllocationManagerTest, ChannelBindAlsoInstallsThePermission) {
    const FiveTuple t = tuple(40000);
    must_allocate(t, alice());
    ASSERT_TRUE(bind(t, alice(), 0x4000, peer_a).success());
    EXPECT_TRUE(manager().find(t, now)->permissions.allowed(peer_a, now));
    const std::vector<std::uint8_t> payload = bytes({9, 8, 7, 6});
    manager().on_peer_datagram(relay_id(t), peer_a, payload, now);
    ASSERT_EQ(egress.to_client.size(), 1u);
    EXPECT_EQ(egress.to_client[0].message, bytes({0x40, 0x00, 0x00, 0x04, 9, 8, 7, 6}));
}

// ---------------------------------------------------------------------------------------------
// Data path (RFC 8656 §11 Send/Data indications, §12.4-12.6 ChannelData)

TEST_F(AllocationManagerTest, SendIndicationWithPermissionReachesThePeer) {
    const FiveTuple t = tuple(40000);
    must_allocate(t, alice());
    ASSERT_TRUE(permit(t, alice(), {peer_a}).success());
    const std::vector<std::uint8_t> payload = bytes({'h', 'e', 'l', 'l', 'o'});
    send_indication(t, peer_a, payload);
    ASSERT_EQ(egress.to_peer.size(), 1u);
    EXPECT_EQ(egress.to_peer[0].relay, relay_id(t));
    EXPECT_EQ(egress.to_peer[0].peer, peer_a);
    EXPECT_EQ(egress.to_peer[0].payload, payload);
    EXPECT_EQ(manager().counters().packets_to_peer, 1u);
    EXPECT_EQ(manager().counters().bytes_to_peer, payload.size());
}

TEST_F(AllocationManagerTest, PermissionsIgnoreThePeerPort) {
    const FiveTuple t = tuple(40000);
    must_allocate(t, alice());
    ASSERT_TRUE(permit(t, alice(), {peer_a}).success());
    const TransportAddress other_port = ta("8.8.8.8:9999");
    send_indication(t, other_port, bytes({1}));
    ASSERT_EQ(egress.to_peer.size(), 1u);
    EXPECT_EQ(egress.to_peer[0].peer, other_port);
}

TEST_F(AllocationManagerTest, SendIndicationWithoutPermissionIsDropped) {
    const FiveTuple t = tuple(40000);
    must_allocate(t, alice());
    ASSERT_TRUE(permit(t, alice(), {peer_b}).success());
    send_indication(t, peer_a, bytes({1, 2}));
    EXPECT_TRUE(egress.to_peer.empty());
    EXPECT_EQ(manager().counters().dropped_no_permission, 1u);
}

TEST_F(AllocationManagerTest, SendIndicationFromUnknownFiveTupleIsDropped) {
    must_allocate(tuple(40000), alice());
    send_indication(tuple(40001), peer_a, bytes({1, 2}));
    EXPECT_TRUE(egress.to_peer.empty());
    EXPECT_EQ(manager().counters().dropped_no_allocation, 1u);
}

TEST_F(AllocationManagerTest, SendIndicationMissingPeerOrDataIsDropped) {
    const FiveTuple t = tuple(40000);
    must_allocate(t, alice());
    ASSERT_TRUE(permit(t, alice(), {peer_a}).success());
    Request no_data(Method::send, next_serial(), MessageClass::indication);
    no_data.peer(peer_a);
    manager().on_send_indication(no_data.view(), t, now);
    Request no_peer(Method::send, next_serial(), MessageClass::indication);
    no_peer.data(bytes({1}));
    manager().on_send_indication(no_peer.view(), t, now);
    EXPECT_TRUE(egress.to_peer.empty());
}

TEST_F(AllocationManagerTest, ChannelDataOnABoundChannelReachesThePeerExactly) {
    const FiveTuple t = tuple(40000);
    must_allocate(t, alice());
    ASSERT_TRUE(bind(t, alice(), 0x4123, peer_a).success());
    const std::vector<std::uint8_t> payload = bytes({1, 2, 3, 4, 5});
    channel_data(t, 0x4123, payload);
    ASSERT_EQ(egress.to_peer.size(), 1u);
    EXPECT_EQ(egress.to_peer[0].relay, relay_id(t));
    EXPECT_EQ(egress.to_peer[0].peer, peer_a);
    EXPECT_EQ(egress.to_peer[0].payload, payload);
}

TEST_F(AllocationManagerTest, PaddedChannelDataOverTcpSendsOnlyThePayload) {
    const FiveTuple t = tuple(40000, Transport::tcp);
    must_allocate(t, alice());
    ASSERT_TRUE(bind(t, alice(), 0x4000, peer_a).success());
    const std::vector<std::uint8_t> payload = bytes({1, 2, 3, 4, 5});
    channel_data(t, 0x4000, payload, /*pad=*/true);
    ASSERT_EQ(egress.to_peer.size(), 1u);
    EXPECT_EQ(egress.to_peer[0].payload, payload);  // the padding is not relayed
}

TEST_F(AllocationManagerTest, ChannelDataOnAnUnboundChannelIsDropped) {
    const FiveTuple t = tuple(40000);
    must_allocate(t, alice());
    ASSERT_TRUE(bind(t, alice(), 0x4000, peer_a).success());
    channel_data(t, 0x4001, bytes({1, 2, 3}));
    EXPECT_TRUE(egress.to_peer.empty());
    EXPECT_EQ(manager().counters().dropped_no_channel, 1u);
}

TEST_F(AllocationManagerTest, ChannelDataFromUnknownFiveTupleIsDropped) {
    channel_data(tuple(40000), 0x4000, bytes({1, 2, 3}));
    EXPECT_TRUE(egress.to_peer.empty());
    EXPECT_EQ(manager().counters().dropped_no_allocation, 1u);
}

TEST_F(AllocationManagerTest, PeerDatagramOnAChannelIsUnpaddedChannelDataOverUdp) {
    const FiveTuple t = tuple(40000);
    Request r(Method::allocate, next_serial());
    r.transport();
    ASSERT_TRUE(send(r, t, alice(), ClientRoute::listener(1234)).success());
    ASSERT_TRUE(bind(t, alice(), 0x4abc, peer_a).success());
    manager().on_peer_datagram(relay_id(t), peer_a, bytes({1, 2, 3, 4, 5}), now);
    ASSERT_EQ(egress.to_client.size(), 1u);
    EXPECT_EQ(egress.to_client[0].tuple, t);
    EXPECT_EQ(egress.to_client[0].client, ClientRoute::listener(1234));
    EXPECT_EQ(egress.to_client[0].message, bytes({0x4a, 0xbc, 0x00, 0x05, 1, 2, 3, 4, 5}));
    EXPECT_EQ(manager().counters().packets_to_client, 1u);
}

TEST_F(AllocationManagerTest, PeerDatagramOnAChannelIsPaddedOverStreams) {
    for (const Transport transport : {Transport::tcp, Transport::tls}) {
        const FiveTuple t = tuple(
            static_cast<std::uint16_t>(transport == Transport::tcp ? 40000 : 40001), transport);
        must_allocate(t, alice());
        ASSERT_TRUE(bind(t, alice(), 0x4000, peer_a).success());
        egress.to_client.clear();
        manager().on_peer_datagram(relay_id(t), peer_a, bytes({1, 2, 3, 4, 5}), now);
        ASSERT_EQ(egress.to_client.size(), 1u);
        const auto& m = egress.to_client[0].message;
        // RFC 8656 §12.5: over TCP/TLS the message is padded to a multiple of 4; the length
        // field still says 5.
        ASSERT_EQ(m.size(), protocol::channel_data_stream_size(5));
        EXPECT_EQ(std::vector<std::uint8_t>(m.begin(), m.begin() + 9),
                  bytes({0x40, 0x00, 0x00, 0x05, 1, 2, 3, 4, 5}));
    }
}

TEST_F(AllocationManagerTest, PeerDatagramWithOnlyAPermissionIsADataIndication) {
    const FiveTuple t = tuple(40000);
    Request r(Method::allocate, next_serial());
    r.transport();
    ASSERT_TRUE(send(r, t, alice(), ClientRoute::connection(99)).success());
    ASSERT_TRUE(permit(t, alice(), {peer_a}).success());
    const std::vector<std::uint8_t> payload = bytes({0xde, 0xad, 0xbe, 0xef, 0x01});
    manager().on_peer_datagram(relay_id(t), peer_a, payload, now);
    ASSERT_EQ(egress.to_client.size(), 1u);
    EXPECT_EQ(egress.to_client[0].tuple, t);
    EXPECT_EQ(egress.to_client[0].client, ClientRoute::connection(99));
    MessageView m;
    ASSERT_EQ(MessageView::parse(egress.to_client[0].message, m), ParseError::ok);
    EXPECT_EQ(m.method(), Method::data);
    EXPECT_EQ(m.message_class(), MessageClass::indication);
    EXPECT_EQ(m.xor_peer_address(), peer_a);
    ASSERT_TRUE(m.data().has_value());
    EXPECT_EQ(std::vector<std::uint8_t>(m.data()->begin(), m.data()->end()), payload);
    EXPECT_EQ(manager().counters().packets_to_client, 1u);
}

TEST_F(AllocationManagerTest, PeerDatagramFromAnotherPortOfABoundPeerIsADataIndication) {
    // The channel is bound to 8.8.8.8:5000; the permission covers the IP, so 8.8.8.8:5001
    // still gets through but not on the channel.
    const FiveTuple t = tuple(40000);
    must_allocate(t, alice());
    ASSERT_TRUE(bind(t, alice(), 0x4000, peer_a).success());
    const TransportAddress other = ta("8.8.8.8:5001");
    manager().on_peer_datagram(relay_id(t), other, bytes({7}), now);
    ASSERT_EQ(egress.to_client.size(), 1u);
    MessageView m;
    ASSERT_EQ(MessageView::parse(egress.to_client[0].message, m), ParseError::ok);
    EXPECT_EQ(m.method(), Method::data);
    EXPECT_EQ(m.xor_peer_address(), other);
}

TEST_F(AllocationManagerTest, PeerDatagramWithoutPermissionIsDropped) {
    const FiveTuple t = tuple(40000);
    must_allocate(t, alice());
    ASSERT_TRUE(permit(t, alice(), {peer_b}).success());
    manager().on_peer_datagram(relay_id(t), peer_a, bytes({1, 2, 3}), now);
    EXPECT_TRUE(egress.to_client.empty());
    EXPECT_EQ(manager().counters().dropped_no_permission, 1u);
}

TEST_F(AllocationManagerTest, PeerDatagramOnAnUnknownRelayIsDropped) {
    const FiveTuple t = tuple(40000);
    must_allocate(t, alice());
    ASSERT_TRUE(permit(t, alice(), {peer_a}).success());
    manager().on_peer_datagram(relay_id(t) + 1000, peer_a, bytes({1}), now);
    EXPECT_TRUE(egress.to_client.empty());
}

TEST_F(AllocationManagerTest, PermissionLapsesAfter300SecondsUnlessRefreshed) {
    const FiveTuple t = tuple(40000);
    must_allocate(t, alice());
    ASSERT_TRUE(permit(t, alice(), {peer_a, peer_b}).success());
    now += 200s;
    ASSERT_TRUE(permit(t, alice(), {peer_b}).success());  // only b is refreshed
    now = testing::t0 + 301s;
    const RelayId id = relay_id(t);
    manager().on_peer_datagram(id, peer_a, bytes({1}), now);
    EXPECT_TRUE(egress.to_client.empty()) << "peer_a's permission should have lapsed";
    send_indication(t, peer_a, bytes({1}));
    EXPECT_TRUE(egress.to_peer.empty());
    manager().on_peer_datagram(id, peer_b, bytes({2}), now);
    EXPECT_EQ(egress.to_client.size(), 1u);
    send_indication(t, peer_b, bytes({2}));
    EXPECT_EQ(egress.to_peer.size(), 1u);
}

TEST_F(AllocationManagerTest, DataIsNotRelayedAfterTheAllocationIsDeleted) {
    const FiveTuple t = tuple(40000);
    must_allocate(t, alice());
    ASSERT_TRUE(bind(t, alice(), 0x4000, peer_a).success());
    const RelayId id = relay_id(t);
    ASSERT_TRUE(refresh(t, alice(), 0).success());
    manager().on_peer_datagram(id, peer_a, bytes({1}), now);
    channel_data(t, 0x4000, bytes({1}));
    send_indication(t, peer_a, bytes({1}));
    EXPECT_TRUE(egress.to_client.empty());
    EXPECT_TRUE(egress.to_peer.empty());
}

TEST_F(AllocationManagerTest, DualStackAllocationRelaysEachFamilyOnItsOwnSocket) {
    settings.relay_addresses = {relay_v4, relay_v6};
    const FiveTuple t = tuple(40000);
    Request r(Method::allocate, next_serial());
    r.transport().additional_family(family_v6);
    ASSERT_TRUE(send(r, t, alice()).success());
    ASSERT_TRUE(permit(t, alice(), {peer_a, peer_v6}).success());
    const Allocation* a = manager().find(t, now);
    ASSERT_NE(a, nullptr);
    send_indication(t, peer_a, bytes({4}));
    send_indication(t, peer_v6, bytes({6}));
    ASSERT_EQ(egress.to_peer.size(), 2u);
    const auto id_of = [&](AddressFamily f) {
        for (std::size_t i = 0; i < a->relays.size(); ++i) {
            if (a->relays[i].family == f) return a->relay_ids[i];
        }
        return RelayId{0};
    };
    EXPECT_EQ(egress.to_peer[0].relay, id_of(AddressFamily::ipv4));
    EXPECT_EQ(egress.to_peer[1].relay, id_of(AddressFamily::ipv6));
    // And a datagram from the IPv6 peer on the IPv6 socket comes back.
    manager().on_peer_datagram(id_of(AddressFamily::ipv6), peer_v6, bytes({6}), now);
    EXPECT_EQ(egress.to_client.size(), 1u);
}

// ---------------------------------------------------------------------------------------------
// Quotas, retransmissions and edge cases

TEST_F(AllocationManagerTest, UnknownRequestedAddressFamilyIs440) {
    // RFC 8656 §7.2: a family the server does not support is 440, not a parse failure.
    Request r(Method::allocate, next_serial());
    r.transport().family(0x03);
    EXPECT_EQ(send(r, tuple(40000), alice()).error(), 440);
    EXPECT_TRUE(egress.opens.empty());
}

TEST_F(AllocationManagerTest, ExplicitRequestedFamilyOverridesTheDefault) {
    settings.relay_addresses = {relay_v4, relay_v6};
    settings.default_family = DefaultFamily::client;
    Request r(Method::allocate, next_serial());
    r.transport().family(family_v4);
    const Response resp = send(r, tuple(40000, Transport::udp, server6), alice());
    ASSERT_TRUE(resp.success()) << resp.error();
    EXPECT_TRUE(same_ip(resp.relayed(), relay_v4)) << resp.relayed().to_string();
    EXPECT_EQ(resp.view.xor_mapped_address(), tuple(40000, Transport::udp, server6).client);
}

TEST_F(AllocationManagerTest, ReservationTokenWorksOnlyOnce) {
    Request r(Method::allocate, next_serial());
    r.transport().even_port(true);
    const Response first = send(r, tuple(40000), alice());
    ASSERT_TRUE(first.success());
    const auto token = first.view.reservation_token();
    ASSERT_TRUE(token.has_value());
    Request claim(Method::allocate, next_serial());
    claim.transport().token(*token);
    ASSERT_TRUE(send(claim, tuple(40001), alice()).success());
    Request again(Method::allocate, next_serial());
    again.transport().token(*token);
    EXPECT_EQ(send(again, tuple(40002), alice()).error(), 508);
}

TEST_F(AllocationManagerTest, UnclaimedReservationIsFreedByExpire) {
    port_first = 50000;
    port_last = 50001;
    Request r(Method::allocate, next_serial());
    r.transport().even_port(true);
    const Response first = send(r, tuple(40000), alice());
    ASSERT_TRUE(first.success()) << first.error();
    EXPECT_EQ(first.relayed().port, 50000);
    // 50001 is held for the token holder ...
    EXPECT_EQ(allocate(tuple(40001), alice()).error(), 508);
    // ... for about 30 s only (RFC 8656 §7.2).
    now += 31s;
    manager().expire(now);
    EXPECT_EQ(must_allocate(tuple(40002), alice()).port, 50001);
}

TEST_F(AllocationManagerTest, UserQuotaIsFreedWhenAnAllocationGoes) {
    settings.limits.max_allocations_per_user = 1;
    must_allocate(tuple(40000), alice());
    EXPECT_EQ(allocate(tuple(40001), alice()).error(), 486);
    ASSERT_TRUE(refresh(tuple(40000), alice(), 0).success());
    must_allocate(tuple(40001), alice());
}

TEST_F(AllocationManagerTest, LapsedAllocationOnTheSameFiveTupleIsReplacedAndItsRelayClosed) {
    const FiveTuple t = tuple(40000);
    must_allocate(t, alice());
    ASSERT_TRUE(permit(t, alice(), {peer_a}).success());
    const RelayId old_id = relay_id(t);
    now += 700s;  // lapsed, but expire() has not run
    ASSERT_TRUE(allocate(t, alice()).success());
    manager().expire(now);
    const RelayId new_id = relay_id(t);
    EXPECT_NE(new_id, old_id);
    EXPECT_EQ(egress.closes, std::vector<RelayId>{old_id});
    EXPECT_EQ(egress.open_ids, std::vector<RelayId>{new_id});
    // The old socket no longer feeds anyone.
    manager().on_peer_datagram(old_id, peer_a, bytes({1}), now);
    EXPECT_TRUE(egress.to_client.empty());
}

TEST_F(AllocationManagerTest, RefreshOfALapsedAllocationIs437) {
    const FiveTuple t = tuple(40000);
    must_allocate(t, alice());
    now += 600s;
    EXPECT_EQ(refresh(t, alice(), 600).error(), 437);
}

TEST_F(AllocationManagerTest, RetransmittedDeleteIsAnsweredAgainButClosesOnce) {
    const FiveTuple t = tuple(40000);
    must_allocate(t, alice());
    const std::uint32_t serial = next_serial();
    Request first(Method::refresh, serial);
    first.lifetime(0);
    const Response a = send(first, t, alice());
    ASSERT_TRUE(a.success());
    Request again(Method::refresh, serial);
    again.lifetime(0);
    const Response b = send(again, t, alice());
    // Not 437: the client just did not hear the first answer.
    EXPECT_EQ(a.bytes, b.bytes);
    EXPECT_EQ(egress.closes.size(), 1u);
    EXPECT_EQ(manager().counters().allocations_removed, 1u);
}

TEST_F(AllocationManagerTest, DeletingADualStackAllocationClosesBothRelays) {
    settings.relay_addresses = {relay_v4, relay_v6};
    const FiveTuple t = tuple(40000);
    Request r(Method::allocate, next_serial());
    r.transport().additional_family(family_v6);
    ASSERT_TRUE(send(r, t, alice()).success());
    ASSERT_EQ(egress.open_ids.size(), 2u);
    ASSERT_TRUE(refresh(t, alice(), 0).success());
    EXPECT_TRUE(egress.open_ids.empty());
    EXPECT_EQ(egress.closes.size(), 2u);
    EXPECT_EQ(ports().available(AddressFamily::ipv4), std::size_t{last_port - first_port + 1});
    EXPECT_EQ(ports().available(AddressFamily::ipv6), std::size_t{last_port - first_port + 1});
}

TEST_F(AllocationManagerTest, PermissionQuotaIs508AndInstallsNothing) {
    settings.limits.max_permissions_per_allocation = 2;
    const FiveTuple t = tuple(40000);
    must_allocate(t, alice());
    ASSERT_TRUE(permit(t, alice(), {peer_a}).success());
    EXPECT_EQ(permit(t, alice(), {peer_b, ta("9.9.9.9:53")}).error(), 508);
    const Allocation* a = manager().find(t, now);
    ASSERT_NE(a, nullptr);
    EXPECT_FALSE(a->permissions.allowed(peer_b, now));
    // Refreshing an existing one needs no room.
    EXPECT_TRUE(permit(t, alice(), {peer_a}).success());
}

TEST_F(AllocationManagerTest, ChannelQuotaIs508) {
    settings.limits.max_channels_per_allocation = 1;
    const FiveTuple t = tuple(40000);
    must_allocate(t, alice());
    ASSERT_TRUE(bind(t, alice(), 0x4000, peer_a).success());
    EXPECT_EQ(bind(t, alice(), 0x4001, peer_b).error(), 508);
    EXPECT_FALSE(manager().find(t, now)->channels.peer_for(0x4001, now).has_value());
}

TEST_F(AllocationManagerTest, ChannelBindWithoutRoomForItsPermissionIs508AndBindsNothing) {
    settings.limits.max_permissions_per_allocation = 1;
    const FiveTuple t = tuple(40000);
    must_allocate(t, alice());
    ASSERT_TRUE(permit(t, alice(), {peer_a}).success());
    EXPECT_EQ(bind(t, alice(), 0x4000, peer_b).error(), 508);
    const Allocation* a = manager().find(t, now);
    ASSERT_NE(a, nullptr);
    EXPECT_FALSE(a->channels.peer_for(0x4000, now).has_value());
    EXPECT_FALSE(a->permissions.allowed(peer_b, now));
}

TEST_F(AllocationManagerTest, ExpireSweepsLapsedPermissions) {
    const FiveTuple t = tuple(40000);
    must_allocate(t, alice());
    ASSERT_TRUE(permit(t, alice(), {peer_a, peer_b}).success());
    now += 301s;
    manager().expire(now);
    const Allocation* a = manager().find(t, now);
    ASSERT_NE(a, nullptr);
    EXPECT_EQ(a->permissions.count(), 0u);
}

TEST_F(AllocationManagerTest, FailedSendsAreCounted) {
    const FiveTuple t = tuple(40000);
    must_allocate(t, alice());
    ASSERT_TRUE(bind(t, alice(), 0x4000, peer_a).success());
    egress.send_result = false;
    channel_data(t, 0x4000, bytes({1}));
    manager().on_peer_datagram(relay_id(t), peer_a, bytes({2}), now);
    EXPECT_EQ(manager().counters().dropped_send_failed, 2u);
    EXPECT_EQ(manager().counters().packets_to_peer, 0u);
    EXPECT_EQ(manager().counters().packets_to_client, 0u);
}

TEST_F(AllocationManagerTest, PaddedChannelDataOverUdpSendsOnlyThePayload) {
    // RFC 8656 §12.4: padding on UDP is allowed and ignored; the length field rules.
    const FiveTuple t = tuple(40000);
    must_allocate(t, alice());
    ASSERT_TRUE(bind(t, alice(), 0x4000, peer_a).success());
    channel_data(t, 0x4000, bytes({1, 2, 3}), /*pad=*/true);
    ASSERT_EQ(egress.to_peer.size(), 1u);
    EXPECT_EQ(egress.to_peer[0].payload, bytes({1, 2, 3}));
}

TEST_F(AllocationManagerTest, TruncatedChannelDataIsDropped) {
    const FiveTuple t = tuple(40000);
    must_allocate(t, alice());
    ASSERT_TRUE(bind(t, alice(), 0x4000, peer_a).success());
    const std::vector<std::uint8_t> claims_ten = bytes({0x40, 0x00, 0x00, 0x0A, 1, 2, 3});
    manager().on_channel_data(claims_ten, t, now);
    manager().on_channel_data(bytes({0x40, 0x00}), t, now);
    EXPECT_TRUE(egress.to_peer.empty());
}

TEST_F(AllocationManagerTest, Ipv6PeerDatagramBecomesADataIndicationWithTheIpv6Peer) {
    settings.relay_addresses = {relay_v4, relay_v6};
    const FiveTuple t = tuple(40000);
    Request r(Method::allocate, next_serial());
    r.transport().family(family_v6);
    ASSERT_TRUE(send(r, t, alice()).success());
    ASSERT_TRUE(permit(t, alice(), {peer_v6}).success());
    manager().on_peer_datagram(relay_id(t), peer_v6, bytes({1, 2, 3}), now);
    ASSERT_EQ(egress.to_client.size(), 1u);
    MessageView m;
    ASSERT_EQ(MessageView::parse(egress.to_client[0].message, m), ParseError::ok);
    EXPECT_EQ(m.xor_peer_address(), peer_v6);
    ASSERT_TRUE(m.data().has_value());
    EXPECT_EQ(std::vector<std::uint8_t>(m.data()->begin(), m.data()->end()), bytes({1, 2, 3}));
}

TEST_F(AllocationManagerTest, LargePeerDatagramsAreRelayedWhole) {
    const FiveTuple udp = tuple(40000);
    const FiveTuple tcp = tuple(40001, Transport::tcp);
    must_allocate(udp, alice());
    must_allocate(tcp, alice());
    ASSERT_TRUE(permit(udp, alice(), {peer_a}).success());
    ASSERT_TRUE(bind(tcp, alice(), 0x4000, peer_a).success());
    std::vector<std::uint8_t> payload(60001);
    for (std::size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<std::uint8_t>(i);

    manager().on_peer_datagram(relay_id(udp), peer_a, payload, now);
    ASSERT_EQ(egress.to_client.size(), 1u);
    MessageView m;
    ASSERT_EQ(MessageView::parse(egress.to_client[0].message, m), ParseError::ok);
    ASSERT_TRUE(m.data().has_value());
    EXPECT_TRUE(std::equal(m.data()->begin(), m.data()->end(), payload.begin(), payload.end()));

    manager().on_peer_datagram(relay_id(tcp), peer_a, payload, now);
    ASSERT_EQ(egress.to_client.size(), 2u);
    const auto& cd = egress.to_client[1].message;
    ASSERT_EQ(cd.size(), protocol::channel_data_stream_size(payload.size()));
    protocol::ChannelDataView view;
    ASSERT_EQ(protocol::parse_channel_data(cd, view), ParseError::ok);
    EXPECT_EQ(view.channel, 0x4000);
    EXPECT_TRUE(
        std::equal(view.payload.begin(), view.payload.end(), payload.begin(), payload.end()));
}

TEST_F(AllocationManagerTest, MaximumChannelDataPayloadFitsOverStreams) {
    const FiveTuple t = tuple(40000, Transport::tls);
    must_allocate(t, alice());
    ASSERT_TRUE(bind(t, alice(), 0x4000, peer_a).success());
    const std::vector<std::uint8_t> payload(65535, 0xAB);
    manager().on_peer_datagram(relay_id(t), peer_a, payload, now);
    ASSERT_EQ(egress.to_client.size(), 1u);
    EXPECT_EQ(egress.to_client[0].message.size(), 4u + 65536u);
}

TEST_F(AllocationManagerTest, EmptyPeerDatagramIsRelayed) {
    const FiveTuple t = tuple(40000);
    must_allocate(t, alice());
    ASSERT_TRUE(bind(t, alice(), 0x4000, peer_a).success());
    ASSERT_TRUE(permit(t, alice(), {peer_b}).success());
    manager().on_peer_datagram(relay_id(t), peer_a, {}, now);
    manager().on_peer_datagram(relay_id(t), peer_b, {}, now);
    ASSERT_EQ(egress.to_client.size(), 2u);
    EXPECT_EQ(egress.to_client[0].message, bytes({0x40, 0x00, 0x00, 0x00}));
    MessageView m;
    ASSERT_EQ(MessageView::parse(egress.to_client[1].message, m), ParseError::ok);
    ASSERT_TRUE(m.data().has_value());
    EXPECT_TRUE(m.data()->empty());
}

TEST_F(AllocationManagerTest, EvenPortWithReserveAndAdditionalFamilyIs400) {
    // RFC 8656 §7.2: a reserved pair is defined for one address only.
    settings.relay_addresses = {relay_v4, relay_v6};
    Request r(Method::allocate, next_serial());
    r.transport().even_port(true).additional_family(family_v6);
    EXPECT_EQ(send(r, tuple(40000), alice()).error(), 400);
    EXPECT_TRUE(egress.opens.empty());
    // Without the R bit the combination is fine.
    Request plain(Method::allocate, next_serial());
    plain.transport().even_port(false).additional_family(family_v6);
    const Response resp = send(plain, tuple(40001), alice());
    ASSERT_TRUE(resp.success()) << resp.error();
    EXPECT_EQ(resp.all_relayed().size(), 2u);
}

TEST_F(AllocationManagerTest, ReservationTokenWithAdditionalFamilyIs400) {
    settings.relay_addresses = {relay_v4, relay_v6};
    Request r(Method::allocate, next_serial());
    r.transport().token(0x0102030405060708ull).additional_family(family_v6);
    EXPECT_EQ(send(r, tuple(40000), alice()).error(), 400);
    EXPECT_TRUE(egress.opens.empty());
}

TEST_F(AllocationManagerTest, EvenPortRetriesAnotherEvenPortWhenThePortIsInUse) {
    // RelayEgress: address_in_use means "taken by someone else: try another". Plenty of even
    // ports are free, so EVEN-PORT must not fail because the first pick was busy.
    egress.fail_next_opens(OpenRelayStatus::address_in_use);
    Request r(Method::allocate, next_serial());
    r.transport().even_port(true);
    const Response resp = send(r, tuple(40000), alice());
    ASSERT_TRUE(resp.success()) << resp.error();
    EXPECT_EQ(resp.relayed().port % 2, 0);
    EXPECT_TRUE(resp.view.reservation_token().has_value());
    ASSERT_EQ(egress.opens.size(), 2u);
    EXPECT_NE(egress.opens[1].address.port, egress.opens[0].address.port);
}

TEST_F(AllocationManagerTest, LargestIpv4UdpPayloadFitsInADataIndication) {
    // 65507 bytes is the most an IPv4 peer can send in one UDP datagram.
    const FiveTuple t = tuple(40000);
    must_allocate(t, alice());
    ASSERT_TRUE(permit(t, alice(), {peer_a}).success());
    const std::vector<std::uint8_t> payload(65507, 0x5A);
    manager().on_peer_datagram(relay_id(t), peer_a, payload, now);
    ASSERT_EQ(egress.to_client.size(), 1u);
    MessageView m;
    ASSERT_EQ(MessageView::parse(egress.to_client[0].message, m), ParseError::ok);
    ASSERT_TRUE(m.data().has_value());
    EXPECT_EQ(m.data()->size(), payload.size());
}

// ---------------------------------------------------------------------------------------------
// Reload

TEST_F(AllocationManagerTest, ReconfigureKeepsLiveAllocationsRelayingAndAppliesNewSettings) {
    const FiveTuple t = tuple(40000);
    must_allocate(t, alice());
    ASSERT_TRUE(bind(t, alice(), 0x4000, peer_a).success());
    ASSERT_TRUE(permit(t, alice(), {peer_b}).success());
    const RelayId id = relay_id(t);

    ManagerSettings next = settings;
    next.software = "tern-reloaded";
    next.limits.max_allocations_per_user = 1;
    manager().reconfigure(next, policy());

    EXPECT_EQ(manager().allocation_count(), 1u);
    EXPECT_TRUE(egress.closes.empty());
    channel_data(t, 0x4000, bytes({1, 2}));
    send_indication(t, peer_b, bytes({3}));
    EXPECT_EQ(egress.to_peer.size(), 2u);
    manager().on_peer_datagram(id, peer_a, bytes({4}), now);
    manager().on_peer_datagram(id, peer_b, bytes({5}), now);
    EXPECT_EQ(egress.to_client.size(), 2u);
    // New requests see the new settings.
    const Response r = refresh(t, alice(), 600);
    ASSERT_TRUE(r.success());
    EXPECT_EQ(r.view.software(), "tern-reloaded");
    EXPECT_EQ(allocate(tuple(40001), alice()).error(), 486);
}

TEST_F(AllocationManagerTest, ReconfigureAppliesTheNewPeerPolicyToNewRequests) {
    const FiveTuple t = tuple(40000);
    must_allocate(t, alice());
    manager().reconfigure(settings, policy({}, {Cidr::covering(ip("8.8.8.0"), 24)}));
    EXPECT_EQ(permit(t, alice(), {peer_a}).error(), 403);
}

// limits.allocation_bandwidth and user_bandwidth (token buckets on payload bytes, per
// direction): packets beyond the budget are dropped and counted, the budget refills at the rate.

TEST_F(AllocationManagerTest, AllocationBandwidthCapsClientToPeer) {
    settings.limits.allocation_bandwidth = 100000;  // depth 100000 bytes
    const FiveTuple t = tuple(40000);
    must_allocate(t, alice());
    ASSERT_TRUE(bind(t, alice(), 0x4000, peer_a).success());
    const std::vector<std::uint8_t> payload(1000, 0x42);
    for (int i = 0; i < 150; ++i) channel_data(t, 0x4000, payload);
    EXPECT_EQ(egress.to_peer.size(), 100u);
    EXPECT_EQ(manager().counters().dropped_bandwidth, 50u);
    now += std::chrono::milliseconds(100);  // earns 10000 bytes
    for (int i = 0; i < 20; ++i) send_indication(t, peer_a, payload);
    EXPECT_EQ(egress.to_peer.size(), 110u);
    EXPECT_EQ(manager().counters().dropped_bandwidth, 60u);
}

TEST_F(AllocationManagerTest, AllocationBandwidthCapsPeerToClientSeparately) {
    settings.limits.allocation_bandwidth = 100000;
    const FiveTuple t = tuple(40000);
    must_allocate(t, alice());
    ASSERT_TRUE(bind(t, alice(), 0x4000, peer_a).success());
    const std::vector<std::uint8_t> payload(1000, 0x42);
    for (int i = 0; i < 100; ++i) channel_data(t, 0x4000, payload);  // spends the to-peer budget
    for (int i = 0; i < 150; ++i) manager().on_peer_datagram(relay_id(t), peer_a, payload, now);
    EXPECT_EQ(egress.to_client.size(), 100u);
    EXPECT_EQ(manager().counters().dropped_bandwidth, 50u);
    EXPECT_EQ(manager().counters().bytes_to_client, 100000u);
}

TEST_F(AllocationManagerTest, NoBandwidthCapByDefaultInTheLibrary) {
    const FiveTuple t = tuple(40000);
    must_allocate(t, alice());
    ASSERT_TRUE(bind(t, alice(), 0x4000, peer_a).success());
    const std::vector<std::uint8_t> payload(60000, 0x42);
    for (int i = 0; i < 100; ++i) channel_data(t, 0x4000, payload);
    EXPECT_EQ(egress.to_peer.size(), 100u);
    EXPECT_EQ(manager().counters().dropped_bandwidth, 0u);
}

TEST_F(AllocationManagerTest, UserBandwidthIsSharedByTheUsersAllocations) {
    settings.limits.user_bandwidth = 100000;
    const FiveTuple t1 = tuple(40001);
    const FiveTuple t2 = tuple(40002);
    const FiveTuple t3 = tuple(40003);
    must_allocate(t1, alice());
    must_allocate(t2, alice());
    must_allocate(t3, bob());
    for (const auto& [t, who] : {std::pair{t1, alice()}, {t2, alice()}, {t3, bob()}}) {
        ASSERT_TRUE(bind(t, who, 0x4000, peer_a).success());
    }
    const std::vector<std::uint8_t> payload(1000, 0x42);
    for (int i = 0; i < 60; ++i) channel_data(t1, 0x4000, payload);
    for (int i = 0; i < 60; ++i) channel_data(t2, 0x4000, payload);
    EXPECT_EQ(egress.to_peer.size(), 100u);  // alice's two allocations share 100000 bytes
    for (int i = 0; i < 60; ++i) channel_data(t3, 0x4000, payload);
    EXPECT_EQ(egress.to_peer.size(), 160u);  // bob has his own
    EXPECT_EQ(manager().counters().dropped_bandwidth, 20u);
}

TEST_F(AllocationManagerTest, APacketTheUserBudgetRefusesCostsTheAllocationNothing) {
    settings.limits.allocation_bandwidth = 200000;
    settings.limits.user_bandwidth = 100000;
    const FiveTuple t1 = tuple(40001);
    const FiveTuple t2 = tuple(40002);
    must_allocate(t1, alice());
    must_allocate(t2, alice());
    ASSERT_TRUE(bind(t1, alice(), 0x4000, peer_a).success());
    ASSERT_TRUE(bind(t2, alice(), 0x4000, peer_a).success());
    const std::vector<std::uint8_t> payload(1000, 0x42);
    for (int i = 0; i < 100; ++i) channel_data(t2, 0x4000, payload);  // alice's budget is spent
    for (int i = 0; i < 10; ++i) channel_data(t1, 0x4000, payload);   // refused by it
    EXPECT_EQ(egress.to_peer.size(), 100u);
    // Lift the user cap: t1's own 200000-byte budget must be untouched by the 10 refusals.
    ManagerSettings lifted = settings;
    lifted.limits.user_bandwidth = 0;
    manager().reconfigure(lifted, peers);
    for (int i = 0; i < 201; ++i) channel_data(t1, 0x4000, payload);
    EXPECT_EQ(egress.to_peer.size(), 300u);
}

TEST_F(AllocationManagerTest, UserBandwidthHoldsAcrossWorkersSharingIt) {
    settings.limits.user_bandwidth = 100000;
    UserBandwidth shared;
    ports_ = std::make_unique<RelayPorts>(port_first, port_last, random_);
    FakeEgress egress2;
    AllocationManager w1(settings, peers, *ports_, egress, 1, nullptr, &shared);
    AllocationManager w2(settings, peers, *ports_, egress2, 2, nullptr, &shared);
    const std::vector<std::uint8_t> payload(1000, 0x42);
    std::array<std::uint8_t, 2048> out{};
    for (auto* w : {&w1, &w2}) {
        const FiveTuple t = tuple(w == &w1 ? 40001 : 40002);
        Request a(Method::allocate, next_serial());
        a.transport();
        ASSERT_FALSE(
            w->handle_request(a.view(), t, ClientRoute::listener(1), alice(), now, out).empty());
        Request b(Method::channel_bind, next_serial());
        b.channel(0x4000).peer(peer_a);
        ASSERT_FALSE(
            w->handle_request(b.view(), t, ClientRoute::listener(1), alice(), now, out).empty());
        const Allocation* alloc = w->find(t, now);
        ASSERT_NE(alloc, nullptr);
        for (int i = 0; i < 60; ++i) w->on_peer_datagram(alloc->relay_ids[0], peer_a, payload, now);
    }
    EXPECT_EQ(egress.to_client.size() + egress2.to_client.size(), 100u);
    EXPECT_EQ(w1.counters().dropped_bandwidth + w2.counters().dropped_bandwidth, 20u);
}

TEST_F(AllocationManagerTest, ReloadTurningTheUserCapOnCoversLiveAllocationsOfThatUser) {
    // Without a cap no allocation holds user buckets (they cost memory per user)...
    const FiveTuple t1 = tuple(40001);
    const FiveTuple t2 = tuple(40002);
    must_allocate(t1, alice());
    must_allocate(t2, alice());
    ASSERT_TRUE(bind(t1, alice(), 0x4000, peer_a).success());
    ASSERT_TRUE(bind(t2, alice(), 0x4000, peer_a).success());
    EXPECT_EQ(manager().find(t1, now)->user_budget, nullptr);
    // ...and a reload that sets one gives both of alice's allocations one shared budget.
    ManagerSettings capped = settings;
    capped.limits.user_bandwidth = 100000;
    manager().reconfigure(capped, peers);
    ASSERT_NE(manager().find(t1, now)->user_budget, nullptr);
    EXPECT_EQ(manager().find(t1, now)->user_budget, manager().find(t2, now)->user_budget);
    const std::vector<std::uint8_t> payload(1000, 0x42);
    for (int i = 0; i < 60; ++i) channel_data(t1, 0x4000, payload);
    for (int i = 0; i < 60; ++i) channel_data(t2, 0x4000, payload);
    EXPECT_EQ(egress.to_peer.size(), 100u);
    // Lifting it again lets the same traffic through and drops the buckets.
    manager().reconfigure(settings, peers);
    EXPECT_EQ(manager().find(t1, now)->user_budget, nullptr);
    for (int i = 0; i < 60; ++i) channel_data(t1, 0x4000, payload);
    EXPECT_EQ(egress.to_peer.size(), 160u);
}

TEST_F(AllocationManagerTest, ReloadAppliesANewBandwidthCapToLiveAllocations) {
    const FiveTuple t = tuple(40000);
    must_allocate(t, alice());
    ASSERT_TRUE(bind(t, alice(), 0x4000, peer_a).success());
    const std::vector<std::uint8_t> payload(1000, 0x42);
    for (int i = 0; i < 300; ++i) channel_data(t, 0x4000, payload);
    ASSERT_EQ(egress.to_peer.size(), 300u);
    ManagerSettings capped = settings;
    capped.limits.allocation_bandwidth = 100000;
    manager().reconfigure(capped, peers);
    for (int i = 0; i < 150; ++i) channel_data(t, 0x4000, payload);
    EXPECT_EQ(egress.to_peer.size(), 400u);
    // The relay itself went on: the permission and channel survived the reload.
    EXPECT_TRUE(manager().find(t, now)->channels.peer_for(0x4000, now).has_value());
}

TEST_F(AllocationManagerTest, ReloadAppliesNewPermissionAndChannelQuotasToLiveAllocations) {
    settings.limits.max_permissions_per_allocation = 1;
    settings.limits.max_channels_per_allocation = 1;
    const FiveTuple t = tuple(40000);
    must_allocate(t, alice());
    ASSERT_TRUE(bind(t, alice(), 0x4000, peer_a).success());
    EXPECT_EQ(permit(t, alice(), {peer_b}).error(), 508);
    ManagerSettings raised = settings;
    raised.limits.max_permissions_per_allocation = 2;
    raised.limits.max_channels_per_allocation = 2;
    manager().reconfigure(raised, peers);
    EXPECT_TRUE(bind(t, alice(), 0x4001, peer_b).success());
    EXPECT_EQ(permit(t, alice(), {ta("9.9.9.9:53")}).error(), 508);
    // Lowered below what is installed: what exists stays and refreshes, nothing new fits.
    ManagerSettings lowered = settings;
    manager().reconfigure(lowered, peers);
    EXPECT_TRUE(bind(t, alice(), 0x4001, peer_b).success());
    EXPECT_TRUE(permit(t, alice(), {peer_a}).success());
    EXPECT_EQ(bind(t, alice(), 0x4002, ta("9.9.9.9:53")).error(), 508);
}

// ---------------------------------------------------------------------------------------------
// Two clients of one server relaying to each other (both behind restrictive NATs, or both with
// iceTransportPolicy 'relay'): each peer is the other's relayed address, one of tern's own.

class RelayToRelayTest : public AllocationManagerTest {
protected:
    RelayToRelayTest() {
        settings.relay_addresses = {own_relay};
        const std::vector<TransportAddress> own = {own_relay, server4};
        peers = std::make_shared<const PeerPolicy>(std::vector<Cidr>{}, std::vector<Cidr>{}, own,
                                                   OwnPeerPorts{first_port, last_port, {3478}});
    }

    // Not special-purpose (unlike the TEST-NETs), so only the own-address rule can refuse it.
    const TransportAddress own_relay = ip("198.51.99.20");
    const FiveTuple alice_tuple = tuple(40000);
    const FiveTuple bob_tuple = tuple(40001);
};

TEST_F(RelayToRelayTest, EachClientPermitsAndBindsTheOthersRelayedAddress) {
    const TransportAddress a = must_allocate(alice_tuple, alice());
    const TransportAddress b = must_allocate(bob_tuple, bob());
    ASSERT_TRUE(same_ip(a, own_relay)) << a.to_string();
    ASSERT_TRUE(same_ip(b, own_relay)) << b.to_string();
    EXPECT_TRUE(permit(alice_tuple, alice(), {b}).success());
    EXPECT_TRUE(permit(bob_tuple, bob(), {a}).success());
    ASSERT_TRUE(bind(alice_tuple, alice(), 0x4000, b).success());
    ASSERT_TRUE(bind(bob_tuple, bob(), 0x4001, a).success());

    // Alice's ChannelData leaves her relay for Bob's; Bob's relay delivers it on his channel.
    channel_data(alice_tuple, 0x4000, bytes({1, 2, 3}));
    ASSERT_EQ(egress.to_peer.size(), 1u);
    EXPECT_EQ(egress.to_peer[0].relay, relay_id(alice_tuple));
    EXPECT_EQ(egress.to_peer[0].peer, b);
    manager().on_peer_datagram(relay_id(bob_tuple), a, bytes({1, 2, 3}), now);
    ASSERT_EQ(egress.to_client.size(), 1u);
    EXPECT_EQ(egress.to_client[0].tuple, bob_tuple);
    EXPECT_EQ(egress.to_client[0].message, bytes({0x40, 0x01, 0x00, 0x03, 1, 2, 3}));

    // And back, by Send indication this time.
    send_indication(bob_tuple, a, bytes({4, 5}));
    ASSERT_EQ(egress.to_peer.size(), 2u);
    EXPECT_EQ(egress.to_peer[1].relay, relay_id(bob_tuple));
    EXPECT_EQ(egress.to_peer[1].peer, a);
    manager().on_peer_datagram(relay_id(alice_tuple), b, bytes({4, 5}), now);
    ASSERT_EQ(egress.to_client.size(), 2u);
    EXPECT_EQ(egress.to_client[1].tuple, alice_tuple);
    EXPECT_EQ(manager().counters().dropped_no_permission, 0u);
}

TEST_F(RelayToRelayTest, AnOwnAddressOutsideTheRelayPortsIs403) {
    must_allocate(alice_tuple, alice());
    for (const std::uint16_t port : {std::uint16_t{3478}, std::uint16_t{first_port - 1},
                                     std::uint16_t{last_port + 1}, std::uint16_t{22}}) {
        TransportAddress p = own_relay;
        p.port = port;
        EXPECT_EQ(permit(alice_tuple, alice(), {p}).error(), 403) << port;
        EXPECT_EQ(bind(alice_tuple, alice(), 0x4000, p).error(), 403) << port;
    }
    // All or nothing: a good peer next to a refused one installs neither.
    TransportAddress listener = own_relay;
    listener.port = 3478;
    EXPECT_EQ(permit(alice_tuple, alice(), {peer_a, listener}).error(), 403);
    EXPECT_FALSE(manager().find(alice_tuple, now)->permissions.allowed(peer_a, now));
    EXPECT_FALSE(manager().find(alice_tuple, now)->permissions.allowed(own_relay, now));
}

TEST_F(RelayToRelayTest, SendIndicationToAnOwnListenerPortIsDroppedDespiteThePermission) {
    must_allocate(alice_tuple, alice());
    const TransportAddress b = must_allocate(bob_tuple, bob());
    ASSERT_TRUE(permit(alice_tuple, alice(), {b}).success());
    // The permission is for Bob's IP, which is also where tern listens.
    TransportAddress listener = own_relay;
    listener.port = 3478;
    ASSERT_TRUE(manager().find(alice_tuple, now)->permissions.allowed(listener, now));
    send_indication(alice_tuple, listener, bytes({0, 1, 0, 0}));
    TransportAddress below = own_relay;
    below.port = first_port - 1;
    send_indication(alice_tuple, below, bytes({1}));
    send_indication(alice_tuple, ta("[::ffff:198.51.99.20]:3478"), bytes({2}));
    EXPECT_TRUE(egress.to_peer.empty());
    EXPECT_EQ(manager().counters().dropped_no_permission, 3u);
    EXPECT_EQ(manager().counters().packets_to_peer, 0u);
    // Other relay ports of that IP are other clients' relayed addresses: allowed.
    TransportAddress other_relay = own_relay;
    other_relay.port = last_port;
    send_indication(alice_tuple, other_relay, bytes({3}));
    ASSERT_EQ(egress.to_peer.size(), 1u);
    EXPECT_EQ(egress.to_peer[0].peer, other_relay);
}

TEST_F(RelayToRelayTest, AnAllowListedOwnAddressTakesSendIndicationsOnAnyPort) {
    peers = std::make_shared<const PeerPolicy>(
        std::vector<Cidr>{Cidr::covering(own_relay, 32)}, std::vector<Cidr>{},
        std::vector<TransportAddress>{own_relay}, OwnPeerPorts{first_port, last_port, {3478}});
    must_allocate(alice_tuple, alice());
    TransportAddress listener = own_relay;
    listener.port = 3478;
    ASSERT_TRUE(permit(alice_tuple, alice(), {listener}).success());
    send_indication(alice_tuple, listener, bytes({1}));
    EXPECT_EQ(egress.to_peer.size(), 1u);
}

}  // namespace
}  // namespace tern::allocation
