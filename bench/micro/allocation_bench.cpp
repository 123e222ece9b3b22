// Per-packet look-up benchmarks: allocation by client 5-tuple in tables of 1 to 100,000
// allocations, and channel and permission look-ups within one allocation.
#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include "tern/allocation/allocation_table.hpp"
#include "tern/allocation/channel_table.hpp"
#include "tern/allocation/permission_table.hpp"

namespace tern::bench {
namespace {

using namespace std::chrono_literals;
using allocation::AllocationTable;
using allocation::FiveTuple;
using allocation::TimePoint;
using protocol::TransportAddress;

const TimePoint t0 = TimePoint{} + 1000s;

// Client i behind a distinct public address and port, all reaching one listener.
FiveTuple client_tuple(std::uint32_t i) {
    const auto client = TransportAddress::v4(
        {static_cast<std::uint8_t>(100 + (i >> 24)), static_cast<std::uint8_t>(i >> 16),
         static_cast<std::uint8_t>(i >> 8), static_cast<std::uint8_t>(i)},
        static_cast<std::uint16_t>(1024 + i % 60000));
    return {client, TransportAddress::v4({192, 0, 2, 10}, 3478), protocol::Transport::udp};
}

// A filled table and its keys in shuffled order, so successive look-ups hit unrelated buckets
// the way packets from many clients do (in order they would walk memory sequentially).
struct TableFixture {
    explicit TableFixture(std::size_t n) : table(limits(), 0x9e3779b97f4a7c15ull) {
        keys.reserve(n);
        for (std::uint32_t i = 0; i < n; ++i) {
            const FiveTuple tuple = client_tuple(i);
            const auto outcome =
                table.create(tuple, "user" + std::to_string(i % 1000), {}, std::nullopt, t0);
            if (outcome.result != allocation::CreateResult::created) {
                throw std::runtime_error("table set-up failed");
            }
            keys.push_back(tuple);
        }
        std::shuffle(keys.begin(), keys.end(), std::mt19937_64(1));
    }
    static allocation::AllocationLimits limits() {
        allocation::AllocationLimits l;
        l.max_allocations = SIZE_MAX;
        l.max_allocations_per_user = SIZE_MAX;
        return l;
    }
    AllocationTable table;
    std::vector<FiveTuple> keys;
};

// Built once per size: 100,000 allocations take a noticeable moment, and the runner calls a
// benchmark function several times while it calibrates the iteration count.
TableFixture& table_of(std::size_t n) {
    static std::map<std::size_t, std::unique_ptr<TableFixture>> fixtures;
    auto& f = fixtures[n];
    if (!f) f = std::make_unique<TableFixture>(n);
    return *f;
}

void BM_AllocationTable_FindHit(benchmark::State& state) {
    auto& f = table_of(static_cast<std::size_t>(state.range(0)));
    std::size_t i = 0;
    std::int64_t found = 0;
    for (auto _ : state) {
        const auto* a = f.table.find(f.keys[i], t0 + 1s);
        found += a != nullptr ? 1 : 0;
        benchmark::DoNotOptimize(a);
        if (++i == f.keys.size()) i = 0;
    }
    if (found != state.iterations()) state.SkipWithError("look-up missed");
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_AllocationTable_FindHit)->Arg(1)->Arg(1000)->Arg(100000);

// Packets from 5-tuples with no allocation (stray or spoofed traffic) must be cheap to drop.
void BM_AllocationTable_FindMiss(benchmark::State& state) {
    const auto n = static_cast<std::size_t>(state.range(0));
    auto& f = table_of(n);
    std::vector<FiveTuple> strangers;
    for (std::uint32_t i = 0; i < 4096; ++i) {
        strangers.push_back(client_tuple(static_cast<std::uint32_t>(n) + 1 + i * 7919));
    }
    std::size_t i = 0;
    for (auto _ : state) {
        const auto* a = f.table.find(strangers[i], t0 + 1s);
        benchmark::DoNotOptimize(a);
        i = (i + 1) % strangers.size();
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_AllocationTable_FindMiss)->Arg(1000)->Arg(100000);

// The hash alone, isolated from the table, since every relayed client packet pays it once.
void BM_FiveTuple_Hash(benchmark::State& state, bool ipv6) {
    FiveTuple tuple = client_tuple(12345);
    if (ipv6) {
        std::array<std::uint8_t, 16> client{0x26, 0x07, 0xf8, 0xb0, 0x40, 0x05, 0x08, 0x0a};
        client[15] = 0x42;
        std::array<std::uint8_t, 16> server{0x20, 0x01, 0x0d, 0xb8};
        server[15] = 0x10;
        tuple.client = TransportAddress::v6(client, 51000);
        tuple.server = TransportAddress::v6(server, 3478);
    }
    for (auto _ : state) {
        benchmark::DoNotOptimize(&tuple);
        const auto h = allocation::hash_value(tuple, 0x9e3779b97f4a7c15ull);
        benchmark::DoNotOptimize(h);
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK_CAPTURE(BM_FiveTuple_Hash, v4, false);
BENCHMARK_CAPTURE(BM_FiveTuple_Hash, v6, true);

// Public peers, spread over several /16s so the sorted tables do not degenerate to one prefix.
TransportAddress peer_address(std::uint32_t i) {
    return TransportAddress::v4(
        {static_cast<std::uint8_t>(20 + i % 7), static_cast<std::uint8_t>(i * 37),
         static_cast<std::uint8_t>(i * 11), static_cast<std::uint8_t>(i + 1)},
        static_cast<std::uint16_t>(50000 + i));
}

void BM_ChannelTable_PeerForChannel(benchmark::State& state) {
    const auto n = static_cast<std::uint16_t>(state.range(0));
    allocation::ChannelTable channels(n);
    for (std::uint16_t i = 0; i < n; ++i) {
        if (channels.bind(static_cast<std::uint16_t>(0x4000 + i), peer_address(i), t0) !=
            allocation::ChannelBindResult::bound) {
            state.SkipWithError("channel set-up failed");
            return;
        }
    }
    std::uint16_t i = 0;
    for (auto _ : state) {
        auto peer = channels.peer_for(static_cast<std::uint16_t>(0x4000 + i), t0 + 1s);
        benchmark::DoNotOptimize(peer);
        if (++i == n) i = 0;
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ChannelTable_PeerForChannel)->Arg(1)->Arg(64);

void BM_ChannelTable_ChannelForPeer(benchmark::State& state) {
    const auto n = static_cast<std::uint16_t>(state.range(0));
    allocation::ChannelTable channels(n);
    std::vector<TransportAddress> peers;
    for (std::uint16_t i = 0; i < n; ++i) {
        peers.push_back(peer_address(i));
        if (channels.bind(static_cast<std::uint16_t>(0x4000 + i), peers.back(), t0) !=
            allocation::ChannelBindResult::bound) {
            state.SkipWithError("channel set-up failed");
            return;
        }
    }
    std::size_t i = 0;
    for (auto _ : state) {
        auto channel = channels.channel_for(peers[i], t0 + 1s);
        benchmark::DoNotOptimize(channel);
        if (++i == peers.size()) i = 0;
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ChannelTable_ChannelForPeer)->Arg(1)->Arg(64);

void BM_PermissionTable_Allowed(benchmark::State& state) {
    const auto n = static_cast<std::size_t>(state.range(0));
    allocation::PermissionTable permissions(n);
    std::vector<TransportAddress> peers;
    for (std::uint32_t i = 0; i < n; ++i) {
        peers.push_back(peer_address(i));
        permissions.install(peers.back(), t0);
    }
    std::size_t i = 0;
    std::int64_t allowed = 0;
    for (auto _ : state) {
        const bool ok = permissions.allowed(peers[i], t0 + 1s);
        allowed += ok ? 1 : 0;
        benchmark::DoNotOptimize(ok);
        if (++i == peers.size()) i = 0;
    }
    if (allowed != state.iterations()) state.SkipWithError("permission missing");
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_PermissionTable_Allowed)->Arg(1)->Arg(64);

}  // namespace
}  // namespace tern::bench
