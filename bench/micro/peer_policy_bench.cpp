// Peer policy benchmarks: the allow/deny verdict for IPv4 and IPv6 peers against the built-in
// special-purpose list alone and with 100 operator deny ranges on top.
#include <array>
#include <cstdint>
#include <random>
#include <stdexcept>
#include <string_view>
#include <vector>

#include <benchmark/benchmark.h>

#include "tern/allocation/peer_policy.hpp"
#include "tern/protocol/cidr.hpp"

namespace tern::bench {
namespace {

using allocation::PeerPolicy;
using allocation::PeerVerdict;
using protocol::Cidr;
using protocol::TransportAddress;

TransportAddress ip(std::string_view text) {
    auto a = TransportAddress::parse_ip(text);
    if (!a) throw std::invalid_argument("bad address in benchmark set-up");
    return *a;
}

// 100 operator ranges of the shapes a deny list really holds: 60 IPv4 (/16 to /28, e.g.
// abuse sources and cloud metadata neighbours) and 40 IPv6 (/32 to /64), at random positions.
std::vector<Cidr> operator_deny_ranges() {
    std::mt19937 rng(2024);
    std::vector<Cidr> out;
    for (int i = 0; i < 60; ++i) {
        const auto bits = rng();
        const auto a = TransportAddress::v4(
            {static_cast<std::uint8_t>(1 + bits % 223), static_cast<std::uint8_t>(bits >> 8),
             static_cast<std::uint8_t>(bits >> 16), static_cast<std::uint8_t>(bits >> 24)},
            0);
        out.push_back(Cidr::covering(a, 16 + rng() % 13));
    }
    for (int i = 0; i < 40; ++i) {
        std::array<std::uint8_t, 16> b{};
        b[0] = 0x2a;  // inside 2000::/3, where real deny entries live
        for (std::size_t k = 1; k < b.size(); ++k) b[k] = static_cast<std::uint8_t>(rng());
        out.push_back(Cidr::covering(TransportAddress::v6(b, 0), 32 + (rng() % 5) * 8));
    }
    return out;
}

const PeerPolicy& default_policy() {
    static const PeerPolicy policy({}, {}, {});
    return policy;
}

const PeerPolicy& operator_policy() {
    static const std::vector<Cidr> deny = operator_deny_ranges();
    static const std::vector<Cidr> allow{Cidr::covering(ip("10.20.0.0"), 16)};
    static const std::vector<TransportAddress> own{ip("192.0.2.10"), ip("2001:db8::10")};
    static const PeerPolicy policy(allow, deny, own);
    return policy;
}

// One peer checked over and over: the cost of one trie walk of that shape.
void BM_PeerPolicy_Check(benchmark::State& state, bool with_operator_rules, const char* peer,
                         PeerVerdict expected) {
    const PeerPolicy& policy = with_operator_rules ? operator_policy() : default_policy();
    const TransportAddress address = ip(peer);
    if (policy.check(address) != expected) {
        state.SkipWithError("unexpected verdict for the benchmark peer");
        return;
    }
    for (auto _ : state) {
        benchmark::DoNotOptimize(&address);
        const PeerVerdict v = policy.check(address);
        benchmark::DoNotOptimize(v);
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK_CAPTURE(BM_PeerPolicy_Check, v4_public_default, false, "93.184.216.34",
                  PeerVerdict::allowed);
BENCHMARK_CAPTURE(BM_PeerPolicy_Check, v4_private_default, false, "10.1.2.3",
                  PeerVerdict::special_purpose);
BENCHMARK_CAPTURE(BM_PeerPolicy_Check, v6_public_default, false, "2606:2800:220:1::1",
                  PeerVerdict::allowed);
BENCHMARK_CAPTURE(BM_PeerPolicy_Check, v4_public_100rules, true, "93.184.216.34",
                  PeerVerdict::allowed);
BENCHMARK_CAPTURE(BM_PeerPolicy_Check, v4_allowlisted_100rules, true, "10.20.1.2",
                  PeerVerdict::allowed);
BENCHMARK_CAPTURE(BM_PeerPolicy_Check, v6_public_100rules, true, "2606:2800:220:1::1",
                  PeerVerdict::allowed);
BENCHMARK_CAPTURE(BM_PeerPolicy_Check, v4_mapped_private_100rules, true, "::ffff:10.1.2.3",
                  PeerVerdict::special_purpose);

// Many random peers, half IPv4 and half IPv6, so the walk leaves the cache-warm path of a
// single address; also reports how many the mixed set denied.
void BM_PeerPolicy_CheckMixed(benchmark::State& state, bool with_operator_rules) {
    const PeerPolicy& policy = with_operator_rules ? operator_policy() : default_policy();
    std::mt19937_64 rng(7);
    std::vector<TransportAddress> peers;
    for (int i = 0; i < 1024; ++i) {
        if (i % 2 == 0) {
            const auto bits = rng();
            peers.push_back(TransportAddress::v4(
                {static_cast<std::uint8_t>(bits), static_cast<std::uint8_t>(bits >> 8),
                 static_cast<std::uint8_t>(bits >> 16), static_cast<std::uint8_t>(bits >> 24)},
                443));
        } else {
            std::array<std::uint8_t, 16> b{};
            for (auto& x : b) x = static_cast<std::uint8_t>(rng());
            b[0] = static_cast<std::uint8_t>(0x20 | (b[0] & 0x0F));  // global unicast 2000::/4
            peers.push_back(TransportAddress::v6(b, 443));
        }
    }
    std::size_t i = 0;
    std::int64_t denied = 0;
    for (auto _ : state) {
        const PeerVerdict v = policy.check(peers[i]);
        denied += v != PeerVerdict::allowed ? 1 : 0;
        benchmark::DoNotOptimize(v);
        i = (i + 1) % peers.size();
    }
    state.SetItemsProcessed(state.iterations());
    state.counters["denied_ratio"] =
        static_cast<double>(denied) / static_cast<double>(state.iterations());
}
BENCHMARK_CAPTURE(BM_PeerPolicy_CheckMixed, default, false);
BENCHMARK_CAPTURE(BM_PeerPolicy_CheckMixed, with_100rules, true);

}  // namespace
}  // namespace tern::bench
