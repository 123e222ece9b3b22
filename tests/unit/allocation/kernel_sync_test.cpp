// The kernel fast path as a cache of the manager's rules (kernel_sync.cpp): a real
// AllocationManager driven through handle_request on a manual time line, its sweep run once a
// second like the worker's timer, against a recording KernelRoutes. Each test checks what was
// installed, withdrawn, opened and closed, and when, and what the manager then reports; every
// test ends with the manager gone and the kernel left empty, each budget closed as often as it
// was opened.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "fake_kernel_routes.hpp"
#include "manager_requests.hpp"
#include "tern/allocation/allocation_manager.hpp"
#include "tern/allocation/allocation_record.hpp"
#include "tern/allocation/kernel_routes.hpp"
#include "tern/protocol/cidr.hpp"
#include "tern/protocol/transport_address.hpp"

namespace tern::allocation {
namespace {

using namespace std::chrono_literals;
using protocol::AddressFamily;
using protocol::Cidr;
using protocol::Method;
using protocol::Transport;
using protocol::TransportAddress;
using testing::FakeKernelRoutes;
using testing::family_v6;
using testing::ip;
using testing::peer_a;
using testing::peer_b;
using testing::peer_v6;
using testing::policy;
using testing::relay_v4;
using testing::relay_v6;
using testing::Request;
using testing::server4;
using testing::server6;
using testing::t0;
using testing::ta;
using testing::tuple;
using Op = FakeKernelRoutes::Op;

constexpr std::uint16_t chan = 0x4000;
constexpr std::uint16_t chan2 = 0x4001;

// What ended allocations left in their usage records, and how many routes the kernel still
// held for anyone at that moment (the record is written after the withdraw).
class EndedAllocations final : public UsageSink {
public:
    explicit EndedAllocations(const FakeKernelRoutes& kernel) : kernel_(kernel) {}
    void allocation_ended(const AllocationRecord& record, EndReason reason) noexcept override {
        usage.push_back(record.usage);
        reasons.push_back(reason);
        routes_held.push_back(kernel_.installed.size());
    }
    std::vector<AllocationUsage> usage;
    std::vector<EndReason> reasons;
    std::vector<std::size_t> routes_held;

private:
    const FakeKernelRoutes& kernel_;
};

KernelRouteCounts relayed(std::uint64_t packets_to_peer, std::uint64_t bytes_to_peer,
                          std::uint64_t packets_to_client, std::uint64_t bytes_to_client) {
    return {packets_to_peer, bytes_to_peer, packets_to_client, bytes_to_client};
}

void expect_usage(const AllocationUsage& u, const KernelRouteCounts& c) {
    EXPECT_EQ(u.packets_to_peer, c.packets_to_peer);
    EXPECT_EQ(u.bytes_to_peer, c.bytes_to_peer);
    EXPECT_EQ(u.packets_to_client, c.packets_to_client);
    EXPECT_EQ(u.bytes_to_client, c.bytes_to_client);
}

class KernelSyncTest : public testing::ManagerFixture {
protected:
    // The manager's last clear() withdraws through the fake, so it goes first (without a test's
    // hook, whose captures are gone by now); then nothing may be left in the kernel.
    void TearDown() override {
        kernel.on_withdraw = nullptr;
        manager_.reset();
        EXPECT_TRUE(kernel.installed.empty());
        EXPECT_EQ(kernel.open_budgets(), 0);
        expect_consistent_calls();
    }

    void built(AllocationManager& m) override {
        m.set_kernel_routes(&kernel);
        m.set_usage_sink(&ended);
    }

    // One run of the worker's once-a-second timer at `now`.
    void sweep() { manager().expire(now); }
    // The timer running each second until `until` (its last run at `until`).
    void sweep_until(TimePoint until) {
        while (now < until) {
            now += 1s;
            manager().expire(now);
        }
    }

    // The live allocation of `t`; a test without one fails (GoogleTest reports the throw).
    const Allocation& allocation(const FiveTuple& t) {
        const Allocation* a = manager().find(t, now);
        if (a == nullptr)
            throw std::runtime_error("no live allocation for " + t.client.to_string());
        return *a;
    }
    // The route the manager should hand the kernel for `channel` of `t`'s allocation: plain
    // client and server addresses, the relay socket of the peer's family as bound, and the
    // allocation's budgets.
    KernelRoute route(const FiveTuple& t, std::uint16_t channel, const TransportAddress& peer) {
        const Allocation& a = allocation(t);
        TransportAddress relay;
        for (const auto& r : a.relays) {
            if (r.family == peer.family) relay = r;
        }
        return KernelRoute{t.client.unmapped(), t.server.unmapped(), channel, relay, peer,
                           a.kernel_budgets[0], a.kernel_budgets[1]};
    }
    bool held(const FiveTuple& t, std::uint16_t channel) const {
        return kernel.holds(t.client.unmapped(), channel);
    }
    // The kernel relayed `more` on that installed route.
    void relay(const FiveTuple& t, std::uint16_t channel, const KernelRouteCounts& more) {
        EXPECT_TRUE(kernel.relay(t.client.unmapped(), channel, more))
            << "no route for channel " << channel;
    }
    // An allocation of `who` with one channel bound to `peer`: installed at once.
    void allocate_and_bind(const FiveTuple& t, std::uint16_t channel = chan,
                           const TransportAddress& peer = peer_a, bool as_bob = false) {
        const Requester who = as_bob ? bob() : alice();
        must_allocate(t, who);
        ASSERT_TRUE(bind(t, who, channel, peer).success());
    }
    AllocationUsage usage(const FiveTuple& t) {
        for (const auto& r : manager().records(now)) {
            if (r.tuple == t) return r.usage;
        }
        ADD_FAILURE() << "no live allocation for " << t.client.to_string();
        return {};
    }
    void expect_consistent_calls() const {
        EXPECT_EQ(kernel.duplicate_installs, 0u);
        EXPECT_EQ(kernel.unknown_withdraws, 0u);
        EXPECT_EQ(kernel.unknown_reads, 0u);
        EXPECT_EQ(kernel.unknown_closes, 0u);
        EXPECT_EQ(kernel.closed_budget_routes, 0u);
    }
    std::vector<KernelRoute> withdrawn() const {
        std::vector<KernelRoute> out;
        for (const auto& c : kernel.calls) {
            if (c.op == Op::withdraw) out.push_back(c.route);
        }
        return out;
    }
    std::string allocation_budget_name(const FiveTuple& t) {
        return "a:" + std::to_string(allocation(t).id);
    }

    FakeKernelRoutes kernel;
    EndedAllocations ended{kernel};
};

// ---------------------------------------------------------------------------------------------
// 1. ChannelBind installs, for UDP clients only, the route the program needs.

TEST_F(KernelSyncTest, ChannelBindInstallsOneRouteWithTheBoundRelayAddress) {
    // The relay socket binds an internal address and advertises another: the kernel writes the
    // one the socket has, never what XOR-RELAYED-ADDRESS told the client.
    const TransportAddress external = ip("192.0.2.99");
    settings.relay_addresses = {relay_v4};
    settings.external_addresses = {ExternalMapping{relay_v4, external}};
    const FiveTuple t = tuple(40000);
    const TransportAddress advertised = must_allocate(t, alice());
    ASSERT_EQ(egress.opens.size(), 1u);
    const TransportAddress bound = egress.opens[0].address;
    ASSERT_TRUE(testing::same_ip(advertised, external)) << advertised.to_string();
    EXPECT_TRUE(kernel.calls.empty());  // nothing before a channel is bound

    ASSERT_TRUE(bind(t, alice(), chan, peer_a).success());
    ASSERT_EQ(kernel.calls.size(), 1u);  // no budget either: no cap configured
    EXPECT_EQ(kernel.calls[0].op, Op::install);
    const KernelRoute& r = kernel.calls[0].route;
    EXPECT_EQ(r.client, t.client);
    EXPECT_EQ(r.server, server4);
    EXPECT_EQ(r.channel, chan);
    EXPECT_EQ(r.relay, bound) << r.relay.to_string();
    EXPECT_EQ(r.peer, peer_a);
    EXPECT_EQ(r.allocation_budget, no_kernel_budget);
    EXPECT_EQ(r.user_budget, no_kernel_budget);
    ASSERT_EQ(allocation(t).kernel.size(), 1u);
    EXPECT_EQ(allocation(t).kernel[0].route, r);
}

TEST_F(KernelSyncTest, RebindingARouteThatIsInstalledDoesNotInstallItAgain) {
    const FiveTuple t = tuple(40000);
    allocate_and_bind(t);
    for (int i = 0; i < 3; ++i) {
        sweep_until(now + 100s);
        ASSERT_TRUE(bind(t, alice(), chan, peer_a).success());  // the client's refresh
    }
    EXPECT_EQ(kernel.installs(), 1u);
    EXPECT_EQ(kernel.withdraws(), 0u);
    EXPECT_EQ(kernel.installed.size(), 1u);
    // A second channel installs only itself.
    ASSERT_TRUE(bind(t, alice(), chan2, peer_b).success());
    EXPECT_EQ(kernel.installs(), 2u);
    EXPECT_EQ(kernel.calls.back().route, route(t, chan2, peer_b));
}

TEST_F(KernelSyncTest, ATcpClientsChannelIsNeverInstalled) {
    const FiveTuple t = tuple(40000, Transport::tcp);
    allocate_and_bind(t);
    sweep_until(now + 3s);
    EXPECT_TRUE(kernel.calls.empty());
    EXPECT_EQ(manager().counters().kernel_channels, 0u);
    EXPECT_EQ(manager().counters().channels_active, 1u);  // user space relays it
}

TEST_F(KernelSyncTest, ARelaySocketOnAWildcardAddressIsNeverInstalled) {
    settings.relay_addresses = {ip("0.0.0.0")};  // relay.address 0.0.0.0: no source to write
    const FiveTuple t = tuple(40000);
    allocate_and_bind(t);
    ASSERT_TRUE(testing::same_ip(egress.opens[0].address, ip("0.0.0.0")));
    sweep_until(now + 3s);
    EXPECT_TRUE(kernel.calls.empty());
    EXPECT_TRUE(allocation(t).channels.peer_for(chan, now).has_value());
}

TEST_F(KernelSyncTest, AnIpv4MappedClientAndPeerAreInstalledPlain) {
    // A client reaching a dual-stack IPv6 socket over IPv4, binding a mapped peer.
    settings.relay_addresses = {relay_v4};
    const FiveTuple t{ta("[::ffff:203.0.113.5]:40000"), ta("[::ffff:198.51.100.1]:3478"),
                      Transport::udp};
    must_allocate(t, alice());
    ASSERT_TRUE(bind(t, alice(), chan, ta("[::ffff:8.8.8.8]:5000")).success());
    ASSERT_EQ(kernel.installs(), 1u);
    const KernelRoute& r = kernel.calls[0].route;
    EXPECT_EQ(r.client, ta("203.0.113.5:40000"));
    EXPECT_EQ(r.server, server4);
    EXPECT_EQ(r.peer, peer_a);
    EXPECT_EQ(r.relay.family, AddressFamily::ipv4);
    EXPECT_TRUE(testing::same_ip(r.relay, relay_v4));
}

TEST_F(KernelSyncTest, ADualAllocationInstallsOnlySameFamilyRoutesFromTheRightRelay) {
    settings.relay_addresses = {relay_v4, relay_v6};
    const FiveTuple t = tuple(40000, Transport::udp, server6);  // an IPv6 client
    Request a(Method::allocate, next_serial());
    a.transport().additional_family(family_v6);
    ASSERT_TRUE(send(a, t, alice()).success());
    ASSERT_EQ(allocation(t).relays.size(), 2u);
    // IPv6 client, IPv6 peer: from the IPv6 relay.
    ASSERT_TRUE(bind(t, alice(), chan, peer_v6).success());
    ASSERT_EQ(kernel.installs(), 1u);
    EXPECT_EQ(kernel.calls[0].route, route(t, chan, peer_v6));
    EXPECT_TRUE(testing::same_ip(kernel.calls[0].route.relay, relay_v6));
    // IPv6 client, IPv4 peer: the program translates no family; user space relays it.
    ASSERT_TRUE(bind(t, alice(), chan2, peer_a).success());
    sweep_until(now + 2s);
    EXPECT_EQ(kernel.installs(), 1u);
    EXPECT_FALSE(held(t, chan2));
}

// ---------------------------------------------------------------------------------------------
// 2. A permission that lapses takes its channel out of the kernel (RFC 8656 §9: 300 s).

TEST_F(KernelSyncTest, APermissionLapseWithdrawsAtTheNextSweep) {
    const FiveTuple t = tuple(40000);
    allocate_and_bind(t);  // permission to t0 + 300 s, channel to t0 + 600 s
    const KernelRoute r = route(t, chan, peer_a);
    sweep_until(t0 + 299s);
    EXPECT_EQ(kernel.withdraws(), 0u);
    sweep_until(t0 + 300s);
    EXPECT_EQ(withdrawn(), std::vector<KernelRoute>{r});
    EXPECT_TRUE(kernel.installed.empty());
    EXPECT_TRUE(allocation(t).kernel.empty());
    // The binding lives on, the permission does not: nothing goes back in...
    sweep_until(t0 + 320s);
    EXPECT_EQ(kernel.installs(), 1u);
    // ...until the client installs the permission again.
    ASSERT_TRUE(permit(t, alice(), {peer_a}).success());
    sweep_until(now + 1s);
    EXPECT_EQ(kernel.installs(), 2u);
    EXPECT_TRUE(held(t, chan));
}

TEST_F(KernelSyncTest, CreatePermissionKeepsTheRouteAcrossTheLapse) {
    const FiveTuple t = tuple(40000);
    allocate_and_bind(t);
    sweep_until(t0 + 200s);
    ASSERT_TRUE(permit(t, alice(), {peer_a}).success());  // to t0 + 500 s
    sweep_until(t0 + 499s);
    EXPECT_EQ(kernel.withdraws(), 0u);
    EXPECT_TRUE(held(t, chan));
    sweep_until(t0 + 500s);
    EXPECT_EQ(kernel.withdraws(), 1u);
}

// ---------------------------------------------------------------------------------------------
// 3. A binding that expires takes its route out (RFC 8656 §12: 600 s).

TEST_F(KernelSyncTest, AChannelExpiryWithdrawsAtTheNextSweep) {
    const FiveTuple t = tuple(40000);
    allocate_and_bind(t);
    ASSERT_TRUE(refresh(t, alice(), 3600).success());  // the allocation outlives the binding
    const KernelRoute r = route(t, chan, peer_a);
    // The permission kept alive on its own, so only the binding lapses.
    for (const auto at : {t0 + 250s, t0 + 500s}) {
        sweep_until(at);
        ASSERT_TRUE(permit(t, alice(), {peer_a}).success());
    }
    sweep_until(t0 + 599s);
    EXPECT_EQ(kernel.withdraws(), 0u);
    sweep_until(t0 + 600s);
    EXPECT_EQ(withdrawn(), std::vector<KernelRoute>{r});
    EXPECT_TRUE(allocation(t).permissions.allowed(peer_a, now));
    // Quarantined, not live: never reinstalled.
    sweep_until(t0 + 700s);
    EXPECT_EQ(kernel.installs(), 1u);
}

TEST_F(KernelSyncTest, ARefreshedBindingKeepsItsRoute) {
    const FiveTuple t = tuple(40000);
    allocate_and_bind(t);
    ASSERT_TRUE(refresh(t, alice(), 3600).success());
    sweep_until(t0 + 290s);
    ASSERT_TRUE(bind(t, alice(), chan, peer_a).success());  // channel to t0 + 890 s
    sweep_until(t0 + 580s);
    ASSERT_TRUE(bind(t, alice(), chan, peer_a).success());  // to t0 + 1180 s, permission 880 s
    sweep_until(t0 + 879s);
    EXPECT_EQ(kernel.installs(), 1u);
    EXPECT_EQ(kernel.withdraws(), 0u);
    EXPECT_TRUE(held(t, chan));
}

// ---------------------------------------------------------------------------------------------
// 4. Refresh with LIFETIME 0 withdraws within the request, before the relay port is freed.

TEST_F(KernelSyncTest, RefreshZeroWithdrawsBeforeTheRelaySocketAndPortGo) {
    const FiveTuple t = tuple(40000);
    allocate_and_bind(t);
    const TransportAddress relay = allocation(t).relays[0];
    const RelayId id = relay_id(t);
    // What had happened to the relay socket and its port when the kernel let go.
    std::vector<std::string> sequence;
    kernel.on_withdraw = [&](const KernelRoute&) {
        sequence.push_back("withdraw");
        if (!egress.closes.empty()) sequence.push_back("socket already closed");
        if (!ports().in_use(relay.family, relay.port)) sequence.push_back("port already free");
    };
    ASSERT_TRUE(refresh(t, alice(), 0).success());  // no sweep in between
    EXPECT_EQ(sequence, std::vector<std::string>{"withdraw"});
    ASSERT_EQ(kernel.withdraws(), 1u);
    EXPECT_EQ(kernel.calls.back().route.relay, relay);
    EXPECT_TRUE(kernel.installed.empty());
    // And afterwards both did go.
    EXPECT_EQ(egress.closes, std::vector<RelayId>{id});
    EXPECT_FALSE(ports().in_use(relay.family, relay.port));
    ASSERT_EQ(ended.reasons, std::vector<EndReason>{EndReason::deleted});
    EXPECT_EQ(ended.routes_held[0], 0u);
}

// ---------------------------------------------------------------------------------------------
// 5. The operator's ends, a lapse and the drain's end withdraw every route of the allocation.

TEST_F(KernelSyncTest, KillingAnAllocationWithdrawsItsRoutesOnly) {
    const FiveTuple t1 = tuple(40001);
    const FiveTuple t2 = tuple(40002);
    allocate_and_bind(t1);
    ASSERT_TRUE(bind(t1, alice(), chan2, peer_b).success());
    allocate_and_bind(t2);
    ASSERT_EQ(kernel.installed.size(), 3u);
    const KernelRoute r1a = route(t1, chan, peer_a);
    const KernelRoute r1b = route(t1, chan2, peer_b);
    ASSERT_TRUE(manager().end_allocation(allocation(t1).id, EndReason::killed));
    EXPECT_EQ(withdrawn(), (std::vector<KernelRoute>{r1a, r1b}));
    ASSERT_EQ(kernel.installed.size(), 1u);
    EXPECT_EQ(kernel.installed[0].route, route(t2, chan, peer_a));
    ASSERT_EQ(ended.reasons, std::vector<EndReason>{EndReason::killed});
    EXPECT_EQ(ended.routes_held[0], 1u);  // t2's
}

TEST_F(KernelSyncTest, RevokingAUserWithdrawsTheRoutesOfEachOfItsAllocations) {
    const FiveTuple t1 = tuple(40001);
    const FiveTuple t2 = tuple(40002);
    const FiveTuple t3 = tuple(40003);
    allocate_and_bind(t1);
    allocate_and_bind(t2);
    allocate_and_bind(t3, chan, peer_a, /*as_bob=*/true);
    ASSERT_EQ(kernel.installed.size(), 3u);
    const std::size_t n = manager().end_allocations_of(
        [](std::string_view user) { return user == "alice"; }, EndReason::revoked);
    EXPECT_EQ(n, 2u);
    EXPECT_EQ(kernel.withdraws(), 2u);
    ASSERT_EQ(kernel.installed.size(), 1u);
    EXPECT_TRUE(held(t3, chan));
    EXPECT_EQ(ended.reasons, std::vector<EndReason>(2, EndReason::revoked));
}

TEST_F(KernelSyncTest, TheDrainsEndWithdrawsEverything) {
    allocate_and_bind(tuple(40001));
    allocate_and_bind(tuple(40002));
    ASSERT_TRUE(bind(tuple(40002), alice(), chan2, peer_b).success());
    ASSERT_EQ(kernel.installed.size(), 3u);
    manager().set_draining(true);
    sweep_until(now + 5s);  // a drain keeps live allocations in the kernel
    EXPECT_EQ(kernel.withdraws(), 0u);
    manager().clear();
    EXPECT_EQ(kernel.withdraws(), 3u);
    EXPECT_TRUE(kernel.installed.empty());
    EXPECT_EQ(ended.reasons, std::vector<EndReason>(2, EndReason::drained));
}

TEST_F(KernelSyncTest, AnAllocationThatLapsesIsWithdrawnBeforeItsPortIsFree) {
    const FiveTuple t = tuple(40000);
    allocate_and_bind(t);
    const TransportAddress relay = allocation(t).relays[0];
    bool port_held_at_withdraw = false;
    kernel.on_withdraw = [&](const KernelRoute&) {
        port_held_at_withdraw = ports().in_use(relay.family, relay.port);
    };
    // Bound again so the binding and its permission outlive the allocation's 600 s; no Refresh.
    for (const auto at : {t0 + 290s, t0 + 500s}) {
        sweep_until(at);
        ASSERT_TRUE(bind(t, alice(), chan, peer_a).success());
    }
    sweep_until(t0 + 599s);
    EXPECT_EQ(kernel.withdraws(), 0u);
    sweep_until(t0 + 600s);
    EXPECT_EQ(kernel.withdraws(), 1u);
    EXPECT_TRUE(port_held_at_withdraw);
    EXPECT_EQ(manager().allocation_count(), 0u);
    EXPECT_EQ(ended.reasons, std::vector<EndReason>{EndReason::expired});
}

// ---------------------------------------------------------------------------------------------
// 6. A reload whose peer policy refuses a peer takes its routes out by the next sweep.

TEST_F(KernelSyncTest, AReloadRefusingThePeerWithdrawsByTheNextSweepAndInstallsNothingAfter) {
    const FiveTuple t = tuple(40000);
    allocate_and_bind(t);
    ASSERT_TRUE(bind(t, alice(), chan2, peer_b).success());
    ASSERT_EQ(kernel.installed.size(), 2u);
    const KernelRoute refused = route(t, chan, peer_a);
    manager().reconfigure(settings, policy({}, {Cidr::covering(ip("8.8.8.0"), 24)}));
    sweep();
    const std::vector<KernelRoute> out = withdrawn();
    EXPECT_NE(std::find(out.begin(), out.end(), refused), out.end());
    EXPECT_FALSE(held(t, chan));
    EXPECT_TRUE(held(t, chan2));  // peer_b is still permitted (taken out for the reload or not)
    // The binding and the permission live on in the tables; the kernel never gets them back.
    EXPECT_EQ(bind(t, alice(), chan, peer_a).error(), 403);
    const std::size_t installs = kernel.installs();
    sweep_until(now + 30s);
    EXPECT_EQ(kernel.installs(), installs);
    EXPECT_FALSE(held(t, chan));
    // A reload that permits the peer again lets the next sweep put it back.
    manager().reconfigure(settings, policy());
    sweep_until(now + 1s);
    EXPECT_TRUE(held(t, chan));
    EXPECT_TRUE(held(t, chan2));
}

// ---------------------------------------------------------------------------------------------
// 7. What the kernel relayed reaches the allocation's usage, once, and not the manager's
// relay tallies (the server counts the program's own totals).

TEST_F(KernelSyncTest, KernelCountsReachTheUsageOnceEach) {
    const FiveTuple t = tuple(40000);
    allocate_and_bind(t);
    relay(t, chan, relayed(3, 300, 5, 500));
    // The session list reads the kernel itself: no sweep needed, and none counts it again.
    expect_usage(usage(t), relayed(3, 300, 5, 500));
    expect_usage(usage(t), relayed(3, 300, 5, 500));
    sweep_until(now + 5s);
    expect_usage(usage(t), relayed(3, 300, 5, 500));
    // More, read partly by a ChannelBind refresh (it syncs too), partly by sweeps.
    relay(t, chan, relayed(1, 100, 2, 200));
    ASSERT_TRUE(bind(t, alice(), chan, peer_a).success());
    relay(t, chan, relayed(1, 10, 0, 0));
    sweep_until(now + 2s);
    expect_usage(usage(t), relayed(5, 410, 7, 700));
    const RelayCounters& c = manager().counters();
    EXPECT_EQ(c.packets_to_peer, 0u);
    EXPECT_EQ(c.bytes_to_peer, 0u);
    EXPECT_EQ(c.packets_to_client, 0u);
    EXPECT_EQ(c.bytes_to_client, 0u);
    // User space's own relaying adds to both.
    const std::vector<std::uint8_t> payload(40, 0x42);
    manager().on_peer_datagram(relay_id(t), peer_a, payload, now);
    EXPECT_EQ(c.packets_to_client, 1u);
    EXPECT_EQ(c.bytes_to_client, 40u);
    expect_usage(usage(t), relayed(5, 410, 8, 740));
}

TEST_F(KernelSyncTest, WhatTheKernelRelayedSinceTheLastReadCountsAtTheWithdraw) {
    const FiveTuple t = tuple(40000);
    allocate_and_bind(t);
    relay(t, chan, relayed(2, 200, 2, 200));
    sweep_until(now + 1s);
    relay(t, chan, relayed(1, 50, 4, 400));  // not read yet
    ASSERT_TRUE(refresh(t, alice(), 0).success());
    ASSERT_EQ(ended.usage.size(), 1u);
    expect_usage(ended.usage[0], relayed(3, 250, 6, 600));
}

TEST_F(KernelSyncTest, ARouteWithdrawnBySweepCountsItsTailAndARouteInstalledAgainStartsAtZero) {
    const FiveTuple t = tuple(40000);
    allocate_and_bind(t);
    sweep_until(t0 + 299s);
    relay(t, chan, relayed(10, 1000, 0, 0));
    // What the kernel relays between the sweep's read and its withdraw counts too.
    kernel.on_withdraw = [&](const KernelRoute& r) {
        kernel.relay(r.client, r.channel, relayed(1, 7, 1, 9));
    };
    sweep_until(t0 + 300s);  // read and withdrawn in the same sweep: the permission lapsed
    kernel.on_withdraw = nullptr;
    ASSERT_EQ(kernel.withdraws(), 1u);
    expect_usage(usage(t), relayed(11, 1007, 1, 9));
    ASSERT_TRUE(permit(t, alice(), {peer_a}).success());
    sweep_until(now + 1s);
    ASSERT_TRUE(held(t, chan));
    relay(t, chan, relayed(1, 100, 0, 0));
    sweep_until(now + 1s);
    expect_usage(usage(t), relayed(12, 1107, 1, 9));
}

TEST_F(KernelSyncTest, KernelCountsSurviveAReloadThatTakesTheRoutesOut) {
    const FiveTuple t = tuple(40000);
    allocate_and_bind(t);
    relay(t, chan, relayed(4, 400, 4, 400));
    manager().reconfigure(settings, peers);
    sweep_until(now + 1s);
    ASSERT_TRUE(held(t, chan));
    relay(t, chan, relayed(1, 1, 1, 1));
    expect_usage(usage(t), relayed(5, 401, 5, 401));
}

// ---------------------------------------------------------------------------------------------
// 8. Bandwidth caps go along as named kernel budgets, opened before an allocation's first route
// and closed after its last.

TEST_F(KernelSyncTest, WithoutACapNoBudgetIsOpened) {
    const FiveTuple t = tuple(40000);
    allocate_and_bind(t);
    sweep_until(now + 2s);
    EXPECT_EQ(kernel.count(Op::open_budget), 0u);
    EXPECT_EQ(kernel.installed[0].route.allocation_budget, no_kernel_budget);
    EXPECT_EQ(kernel.installed[0].route.user_budget, no_kernel_budget);
}

TEST_F(KernelSyncTest, TheAllocationCapIsOneBudgetForItsRoutes) {
    settings.limits.allocation_bandwidth = 100000;  // bytes a second, each direction
    const FiveTuple t = tuple(40000);
    allocate_and_bind(t);
    ASSERT_EQ(kernel.calls.size(), 2u);
    EXPECT_EQ(kernel.calls[0].op, Op::open_budget);  // before the route that names it
    EXPECT_EQ(kernel.calls[0].name, allocation_budget_name(t));
    EXPECT_EQ(kernel.calls[0].rate.bytes_per_second, 100000u);
    EXPECT_EQ(kernel.calls[0].rate.burst, 100000u);
    const KernelBudget budget = kernel.calls[0].budget;
    ASSERT_NE(budget, no_kernel_budget);
    EXPECT_EQ(kernel.calls[1].op, Op::install);
    EXPECT_EQ(kernel.calls[1].route.allocation_budget, budget);
    EXPECT_EQ(kernel.calls[1].route.user_budget, no_kernel_budget);
    // A second channel draws from the same budget; nothing more is opened.
    ASSERT_TRUE(bind(t, alice(), chan2, peer_b).success());
    sweep_until(now + 3s);
    EXPECT_EQ(kernel.count(Op::open_budget), 1u);
    EXPECT_EQ(kernel.route_of(t.client, chan2)->route.allocation_budget, budget);
    // Both permissions lapse: both routes go, then the budget.
    sweep_until(t0 + 300s);
    ASSERT_EQ(kernel.calls.size(), 6u);
    EXPECT_EQ(kernel.calls[3].op, Op::withdraw);
    EXPECT_EQ(kernel.calls[4].op, Op::withdraw);
    EXPECT_EQ(kernel.calls[5].op, Op::close_budget);
    EXPECT_EQ(kernel.calls[5].budget, budget);
    EXPECT_EQ(kernel.open_budgets(), 0);
    EXPECT_EQ(allocation(t).kernel_budgets[0], no_kernel_budget);
}

TEST_F(KernelSyncTest, TheUserCapIsOneBudgetForAllOfTheUsersAllocations) {
    settings.limits.user_bandwidth = 100000;
    const FiveTuple t1 = tuple(40001);
    const FiveTuple t2 = tuple(40002);
    const FiveTuple t3 = tuple(40003);
    allocate_and_bind(t1);
    allocate_and_bind(t2);
    allocate_and_bind(t3, chan, peer_a, /*as_bob=*/true);
    const FakeKernelRoutes::Budget* alices = kernel.budget("u:alice");
    const FakeKernelRoutes::Budget* bobs = kernel.budget("u:bob");
    ASSERT_NE(alices, nullptr);
    ASSERT_NE(bobs, nullptr);
    EXPECT_EQ(alices->opens, 2);  // one open per allocation that uses it
    EXPECT_EQ(bobs->opens, 1);
    EXPECT_EQ(kernel.route_of(t1.client, chan)->route.user_budget, alices->id);
    EXPECT_EQ(kernel.route_of(t2.client, chan)->route.user_budget, alices->id);
    EXPECT_EQ(kernel.route_of(t3.client, chan)->route.user_budget, bobs->id);
    EXPECT_EQ(kernel.route_of(t1.client, chan)->route.allocation_budget, no_kernel_budget);
    // One of alice's allocations ends: the budget stays open for the other's route.
    ASSERT_TRUE(refresh(t1, alice(), 0).success());
    EXPECT_EQ(alices->opens, 1);
    EXPECT_TRUE(held(t2, chan));
}

TEST_F(KernelSyncTest, BothCapsGoAlongTogether) {
    settings.limits.allocation_bandwidth = 200000;
    settings.limits.user_bandwidth = 100000;
    const FiveTuple t = tuple(40000);
    allocate_and_bind(t);
    const KernelRoute& r = kernel.installed.at(0).route;
    const auto* own = kernel.budget(allocation_budget_name(t));
    const auto* user = kernel.budget("u:alice");
    ASSERT_NE(own, nullptr);
    ASSERT_NE(user, nullptr);
    EXPECT_EQ(r.allocation_budget, own->id);
    EXPECT_EQ(r.user_budget, user->id);
    EXPECT_EQ(own->rate.bytes_per_second, 200000u);
    EXPECT_EQ(user->rate.bytes_per_second, 100000u);
}

TEST_F(KernelSyncTest, ABudgetTheKernelHasNoRoomForLeavesTheChannelToUserSpace) {
    settings.limits.allocation_bandwidth = 200000;
    const FiveTuple t = tuple(40000);
    must_allocate(t, alice());
    kernel.refuse_budgets(1);
    ASSERT_TRUE(bind(t, alice(), chan, peer_a).success());  // the client sees no difference
    EXPECT_EQ(kernel.installs(), 0u);
    EXPECT_TRUE(allocation(t).kernel.empty());
    // The next sweep tries again.
    sweep_until(now + 1s);
    EXPECT_TRUE(held(t, chan));
    EXPECT_EQ(kernel.open_budgets(), 1);
}

TEST_F(KernelSyncTest, WhenOnlyTheUsersBudgetHasNoRoomTheAllocationsIsClosedAgain) {
    settings.limits.allocation_bandwidth = 200000;
    settings.limits.user_bandwidth = 100000;
    const FiveTuple t = tuple(40000);
    must_allocate(t, alice());
    kernel.refuse_budget("u:alice");
    ASSERT_TRUE(bind(t, alice(), chan, peer_a).success());
    ASSERT_NE(kernel.budget(allocation_budget_name(t)), nullptr);  // it was opened...
    EXPECT_EQ(kernel.open_budgets(), 0);                           // ...and closed again
    EXPECT_EQ(kernel.installs(), 0u);
    EXPECT_EQ(allocation(t).kernel_budgets[0], no_kernel_budget);
    sweep_until(now + 1s);
    EXPECT_TRUE(held(t, chan));
    EXPECT_EQ(kernel.open_budgets(), 2);
}

TEST_F(KernelSyncTest, AFullChannelMapClosesTheBudgetsItOpened) {
    settings.limits.allocation_bandwidth = 100000;
    const FiveTuple t = tuple(40000);
    must_allocate(t, alice());
    kernel.refuse_installs(1);
    ASSERT_TRUE(bind(t, alice(), chan, peer_a).success());
    EXPECT_EQ(kernel.count(Op::refused), 1u);
    EXPECT_EQ(kernel.open_budgets(), 0);
    EXPECT_EQ(allocation(t).kernel_budgets[0], no_kernel_budget);
    sweep_until(now + 1s);
    EXPECT_TRUE(held(t, chan));
    EXPECT_EQ(kernel.open_budgets(), 1);
}

TEST_F(KernelSyncTest, AReloadThatChangesTheCapRemakesTheBudgetsAtTheNewRate) {
    settings.limits.allocation_bandwidth = 100000;
    const FiveTuple t = tuple(40000);
    allocate_and_bind(t);
    ManagerSettings faster = settings;
    faster.limits.allocation_bandwidth = 300000;
    manager().reconfigure(faster, peers);
    sweep_until(now + 1s);
    ASSERT_TRUE(held(t, chan));
    const auto* b = kernel.budget(allocation_budget_name(t));
    ASSERT_NE(b, nullptr);
    EXPECT_EQ(b->rate.bytes_per_second, 300000u);
    EXPECT_EQ(kernel.route_of(t.client, chan)->route.allocation_budget, b->id);
    // Lifted: the routes go on without any budget.
    ManagerSettings lifted = settings;
    lifted.limits.allocation_bandwidth = 0;
    manager().reconfigure(lifted, peers);
    sweep_until(now + 1s);
    ASSERT_TRUE(held(t, chan));
    EXPECT_EQ(kernel.route_of(t.client, chan)->route.allocation_budget, no_kernel_budget);
    EXPECT_EQ(kernel.open_budgets(), 0);
}

// ---------------------------------------------------------------------------------------------
// 9. A full map leaves the channel to user space, and the next sweep tries again.

TEST_F(KernelSyncTest, AFullMapLeavesTheChannelToUserSpaceUntilTheNextSweep) {
    const FiveTuple t = tuple(40000);
    must_allocate(t, alice());
    kernel.refuse_installs();
    ASSERT_TRUE(bind(t, alice(), chan, peer_a).success());  // the client sees no difference
    ASSERT_EQ(kernel.calls.size(), 1u);
    EXPECT_EQ(kernel.calls[0].op, Op::refused);
    EXPECT_TRUE(allocation(t).kernel.empty());
    // User space relays it meanwhile.
    const std::vector<std::uint8_t> m{0x40, 0x00, 0x00, 0x02, 7, 7};
    manager().on_channel_data(m, t, now);
    EXPECT_EQ(egress.to_peer.size(), 1u);
    sweep_until(now + 1s);
    ASSERT_EQ(kernel.calls.size(), 2u);
    EXPECT_EQ(kernel.calls[1].op, Op::install);
    EXPECT_EQ(kernel.calls[1].route, route(t, chan, peer_a));
    EXPECT_EQ(manager().counters().kernel_channels, 1u);
}

TEST_F(KernelSyncTest, AChannelTheMapHasNoRoomForIsRetriedEachSweepUntilThereIs) {
    kernel.capacity = 1;
    const FiveTuple t = tuple(40000);
    allocate_and_bind(t);
    ASSERT_TRUE(bind(t, alice(), chan2, peer_b).success());
    EXPECT_TRUE(held(t, chan));
    EXPECT_FALSE(held(t, chan2));
    sweep_until(now + 3s);
    EXPECT_EQ(kernel.count(Op::refused), 4u);  // at ChannelBind, then once a sweep
    EXPECT_EQ(manager().counters().kernel_channels, 1u);
    kernel.capacity.reset();
    sweep_until(now + 1s);
    EXPECT_TRUE(held(t, chan2));
    EXPECT_EQ(manager().counters().kernel_channels, 2u);
}

// ---------------------------------------------------------------------------------------------
// 10. The kernel_channels gauge, as the sweep counts it.

TEST_F(KernelSyncTest, TheKernelChannelsGaugeFollowsTheSweep) {
    const FiveTuple t1 = tuple(40001);
    const FiveTuple t2 = tuple(40002);
    const FiveTuple tcp = tuple(40003, Transport::tcp);
    allocate_and_bind(t1);
    ASSERT_TRUE(bind(t1, alice(), chan2, peer_b).success());
    allocate_and_bind(t2);
    allocate_and_bind(tcp);
    EXPECT_EQ(manager().counters().kernel_channels, 0u);  // set by the sweep, not by ChannelBind
    sweep();
    EXPECT_EQ(manager().counters().kernel_channels, 3u);
    EXPECT_EQ(manager().counters().channels_active, 4u);
    // t1's peer_b permission kept alive, the rest lapse at t0 + 300 s.
    sweep_until(t0 + 200s);
    ASSERT_TRUE(permit(t1, alice(), {peer_b}).success());
    sweep_until(t0 + 300s);
    EXPECT_EQ(manager().counters().kernel_channels, 1u);
    ASSERT_TRUE(manager().end_allocation(allocation(t1).id, EndReason::killed));
    sweep();
    EXPECT_EQ(manager().counters().kernel_channels, 0u);
    EXPECT_TRUE(kernel.installed.empty());
}

// User space drops every datagram a relay socket gets from one of tern's own listener addresses
// (route_peer_datagram), so no kernel route may relay them either, even when relay.allow_peers
// covers the own address and ChannelBind accepts it.
TEST_F(KernelSyncTest, AChannelToAnOwnListenerIsNotInstalled) {
    const TransportAddress own_relay = ip("198.51.99.20");
    settings.relay_addresses = {own_relay};
    peers = std::make_shared<const PeerPolicy>(
        std::vector<Cidr>{Cidr::covering(own_relay, 32)}, std::vector<Cidr>{},
        std::vector<TransportAddress>{own_relay},
        OwnPeerPorts{testing::first_port, testing::last_port, {3478}});
    const FiveTuple t = tuple(40000);
    must_allocate(t, alice());
    TransportAddress listener = own_relay;
    listener.port = 3478;
    ASSERT_TRUE(bind(t, alice(), chan, listener).success());
    // User space: the listener's datagram to the relay socket is dropped...
    const std::vector<std::uint8_t> payload{1, 2, 3};
    manager().on_peer_datagram(relay_id(t), listener, payload, now);
    EXPECT_TRUE(egress.to_client.empty());
    EXPECT_EQ(manager().counters().dropped_no_permission, 1u);
    // ...so the kernel must not be handed a route that would deliver it.
    sweep();
    EXPECT_EQ(kernel.installs(), 0u)
        << "route to own listener " << listener.to_string() << " installed";
}

}  // namespace
}  // namespace tern::allocation
