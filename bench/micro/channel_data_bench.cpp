// Relay-path benchmarks through AllocationManager: ChannelData and Send indications from the
// client to a peer, peer datagrams back as ChannelData or Data indications, heap use per packet.
#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <vector>

#include <benchmark/benchmark.h>

#include "alloc_counter.hpp"
#include "bench_messages.hpp"
#include "tern/allocation/allocation_manager.hpp"
#include "tern/allocation/peer_policy.hpp"
#include "tern/allocation/random_source.hpp"
#include "tern/allocation/relay_egress.hpp"
#include "tern/allocation/relay_ports.hpp"
#include "tern/protocol/channel_data.hpp"
#include "tern/protocol/message.hpp"
#include "tern/protocol/message_builder.hpp"

namespace tern::bench {
namespace {

using namespace std::chrono_literals;
using allocation::AllocationManager;
using allocation::ClientRoute;
using allocation::FiveTuple;
using allocation::RelayId;
using allocation::TimePoint;
using protocol::MessageBuilder;
using protocol::MessageClass;
using protocol::MessageView;
using protocol::Method;
using protocol::TransportAddress;

// Counts what leaves and keeps nothing, so the egress itself adds no heap or copy cost.
class CountingEgress final : public allocation::RelayEgress {
public:
    allocation::OpenRelayResult open_relay(const TransportAddress&, bool) override {
        return {allocation::OpenRelayStatus::opened, next_id_++};
    }
    void close_relay(RelayId) noexcept override {}
    bool send_to_peer(RelayId, const TransportAddress&,
                      std::span<const std::uint8_t> payload) noexcept override {
        ++packets;
        bytes += payload.size();
        return true;
    }
    bool send_to_client(const FiveTuple&, ClientRoute,
                        std::span<const std::uint8_t> message) noexcept override {
        ++packets;
        bytes += message.size();
        return true;
    }
    std::uint64_t packets = 0;
    std::uint64_t bytes = 0;

private:
    RelayId next_id_ = 1;
};

// SplitMix64: relay port choice only needs to be reproducible here, not unpredictable.
class FixedSeedRandom final : public allocation::RandomSource {
public:
    std::uint64_t next() noexcept override {
        std::uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    }

private:
    std::uint64_t state_ = 42;
};

// One UDP allocation for "alice" with a channel bound to one peer and a bare permission for
// another, set up through handle_request exactly as a client would.
class RelayFixture {
public:
    static constexpr std::uint16_t channel = 0x4000;
    // Far above any rate reached here: the caps are on so their bookkeeping is measured, but
    // never short, so no packet is dropped.
    static constexpr std::uint32_t generous_cap = 4'000'000'000u;

    explicit RelayFixture(bool bandwidth_caps)
        : ports_(49152, 49252, random_),
          manager_(settings(bandwidth_caps), policy(), ports_, egress, 0x5eed) {
        request(Method::allocate, [](MessageBuilder& b) { b.add_requested_transport(17); });
        request(Method::channel_bind, [&](MessageBuilder& b) {
            b.add_channel_number(channel);
            b.add_xor_address(protocol::attr::xor_peer_address, channel_peer);
        });
        request(Method::create_permission, [&](MessageBuilder& b) {
            b.add_xor_address(protocol::attr::xor_peer_address, indication_peer);
        });
        const auto* a = manager_.find(tuple, now);
        if (a == nullptr) throw std::runtime_error("allocation missing");
        relay = a->relay_ids[0];
        egress.packets = 0;
        egress.bytes = 0;
    }

    AllocationManager& manager() noexcept { return manager_; }
    const allocation::RelayCounters& counters() const noexcept { return manager_.counters(); }

    const FiveTuple tuple{must_parse("198.51.100.20:50000"), must_parse("192.0.2.10:3478"),
                          protocol::Transport::udp};
    const TransportAddress channel_peer = must_parse("93.184.216.34:61000");
    const TransportAddress indication_peer = must_parse("151.101.1.69:62000");
    CountingEgress egress;
    TimePoint now = TimePoint{} + 1000s;
    RelayId relay = 0;

private:
    static allocation::ManagerSettings settings(bool bandwidth_caps) {
        allocation::ManagerSettings s;
        if (bandwidth_caps) {
            s.limits.allocation_bandwidth = generous_cap;
            s.limits.user_bandwidth = generous_cap;
        }
        return s;
    }
    static std::shared_ptr<const allocation::PeerPolicy> policy() {
        const std::vector<protocol::Cidr> none;
        const std::vector<TransportAddress> own{must_parse("192.0.2.10:3478")};
        // As ternd has them: the relay range and a UDP/TCP and a TLS listener port.
        const allocation::OwnPeerPorts ports{49152, 65535, {3478, 5349}};
        return std::make_shared<const allocation::PeerPolicy>(none, none, own, ports);
    }

    template <class Add>
    void request(Method method, Add&& add) {
        std::array<std::uint8_t, 256> buffer{};
        MessageBuilder b(buffer, {method, MessageClass::request},
                         transaction_id(static_cast<std::uint8_t>(method)));
        add(b);
        MessageView view;
        if (MessageView::parse(b.finish(), view) != protocol::ParseError::ok) {
            throw std::runtime_error("set-up request does not parse");
        }
        const std::array<std::uint8_t, 16> key{};
        const allocation::Requester alice{"alice", key, false, std::nullopt};
        std::array<std::uint8_t, 1024> out{};
        MessageView reply;
        if (MessageView::parse(
                manager_.handle_request(view, tuple, ClientRoute::listener(1), alice, now, out),
                reply) != protocol::ParseError::ok ||
            reply.error_code()) {
            throw std::runtime_error("set-up request refused");
        }
    }

    FixedSeedRandom random_;
    allocation::RelayPorts ports_;
    AllocationManager manager_;
};

std::vector<std::uint8_t> payload_of(std::size_t size) {
    std::vector<std::uint8_t> p(size);
    for (std::size_t i = 0; i < size; ++i) p[i] = static_cast<std::uint8_t>(i * 13 + 5);
    return p;
}

// Shared tail of every relay benchmark: throughput, heap use, and a check that every packet
// really went out (a silently dropped packet would make the numbers meaningless).
void report(benchmark::State& state, const RelayFixture& f, const AllocationMeter& meter,
            std::size_t payload) {
    meter.finish(state);
    state.SetItemsProcessed(state.iterations());
    state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(payload));
    if (f.egress.packets != static_cast<std::uint64_t>(state.iterations())) {
        state.SkipWithError("packets were dropped");
    }
}

// Each packet moves the clock 1 us, so the token buckets refill as they would on a live relay.
constexpr auto packet_gap = 1us;

void run_channel_data_to_peer(benchmark::State& state, bool caps) {
    RelayFixture f(caps);
    const auto payload = payload_of(static_cast<std::size_t>(state.range(0)));
    std::vector<std::uint8_t> message(protocol::channel_data_header_size);
    protocol::write_channel_data_header(
        std::span<std::uint8_t, protocol::channel_data_header_size>(message.data(), 4),
        RelayFixture::channel, static_cast<std::uint16_t>(payload.size()));
    message.insert(message.end(), payload.begin(), payload.end());
    const AllocationMeter meter;
    for (auto _ : state) {
        f.now += packet_gap;
        f.manager().on_channel_data(message, f.tuple, f.now);
    }
    report(state, f, meter, payload.size());
}

void BM_Relay_ChannelDataToPeer(benchmark::State& state) {
    run_channel_data_to_peer(state, false);
}
BENCHMARK(BM_Relay_ChannelDataToPeer)->Arg(100)->Arg(1200);

void BM_Relay_ChannelDataToPeer_Capped(benchmark::State& state) {
    run_channel_data_to_peer(state, true);
}
BENCHMARK(BM_Relay_ChannelDataToPeer_Capped)->Arg(1200);

// Includes MessageView::parse, as the server must parse a Send indication before dispatching it;
// the ChannelData benchmark likewise includes parse_channel_data inside on_channel_data.
void BM_Relay_SendIndicationToPeer(benchmark::State& state) {
    RelayFixture f(false);
    const auto payload = payload_of(static_cast<std::size_t>(state.range(0)));
    std::vector<std::uint8_t> buffer(protocol::header_size + 64 + payload.size());
    MessageBuilder b(buffer, {Method::send, MessageClass::indication}, transaction_id(9));
    b.add_xor_address(protocol::attr::xor_peer_address, f.indication_peer);
    b.add_bytes(protocol::attr::data, payload);
    const auto message = b.finish();
    if (message.empty()) {
        state.SkipWithError("Send indication did not fit");
        return;
    }
    const AllocationMeter meter;
    for (auto _ : state) {
        f.now += packet_gap;
        MessageView view;
        if (MessageView::parse(message, view) != protocol::ParseError::ok) break;
        f.manager().on_send_indication(view, f.tuple, f.now);
    }
    report(state, f, meter, payload.size());
}
BENCHMARK(BM_Relay_SendIndicationToPeer)->Arg(100)->Arg(1200);

void run_peer_to_client(benchmark::State& state, bool caps, bool channel) {
    RelayFixture f(caps);
    const auto payload = payload_of(static_cast<std::size_t>(state.range(0)));
    const TransportAddress& peer = channel ? f.channel_peer : f.indication_peer;
    const AllocationMeter meter;
    for (auto _ : state) {
        f.now += packet_gap;
        f.manager().on_peer_datagram(f.relay, peer, payload, f.now);
    }
    report(state, f, meter, payload.size());
    // What the client receives per packet: 4 bytes of ChannelData vs 36 of Data indication.
    if (state.iterations() > 0) {
        state.counters["wire_bytes"] =
            static_cast<double>(f.egress.bytes) / static_cast<double>(state.iterations());
    }
}

void BM_Relay_PeerToClientChannelData(benchmark::State& state) {
    run_peer_to_client(state, false, true);
}
BENCHMARK(BM_Relay_PeerToClientChannelData)->Arg(100)->Arg(1200);

void BM_Relay_PeerToClientChannelData_Capped(benchmark::State& state) {
    run_peer_to_client(state, true, true);
}
BENCHMARK(BM_Relay_PeerToClientChannelData_Capped)->Arg(1200);

void BM_Relay_PeerToClientDataIndication(benchmark::State& state) {
    run_peer_to_client(state, false, false);
}
BENCHMARK(BM_Relay_PeerToClientDataIndication)->Arg(100)->Arg(1200);

}  // namespace
}  // namespace tern::bench
