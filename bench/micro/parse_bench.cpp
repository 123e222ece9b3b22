// STUN parser benchmarks: MessageView::parse over the requests a TURN server sees most (Binding,
// authenticated Allocate, ChannelBind), plus how fast it throws garbage away.
#include <array>
#include <cstdint>
#include <random>
#include <vector>

#include <benchmark/benchmark.h>

#include "bench_messages.hpp"
#include "tern/protocol/channel_data.hpp"
#include "tern/protocol/message.hpp"

namespace tern::bench {
namespace {

using protocol::MessageView;
using protocol::ParseError;

void run_parse(benchmark::State& state, std::span<const std::uint8_t> bytes) {
    MessageView view;
    if (MessageView::parse(bytes, view) != ParseError::ok) {
        state.SkipWithError("benchmark message does not parse");
        return;
    }
    for (auto _ : state) {
        benchmark::DoNotOptimize(bytes.data());
        const ParseError e = MessageView::parse(bytes, view);
        benchmark::DoNotOptimize(e);
        benchmark::DoNotOptimize(view);
    }
    state.SetItemsProcessed(state.iterations());
    state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(bytes.size()));
    state.counters["msg_bytes"] = static_cast<double>(bytes.size());
}

void BM_Parse_Binding(benchmark::State& state) {
    const Built m = binding_request();
    run_parse(state, m.bytes());
}
BENCHMARK(BM_Parse_Binding);

void BM_Parse_Allocate(benchmark::State& state) {
    const auto key = rest_key(auth::PasswordAlgorithm::md5);
    const Built m = allocate_request(sample_nonce, key.bytes());
    run_parse(state, m.bytes());
}
BENCHMARK(BM_Parse_Allocate);

void BM_Parse_ChannelBind(benchmark::State& state) {
    const auto key = rest_key(auth::PasswordAlgorithm::md5);
    const Built m = channel_bind_request(sample_nonce, key.bytes());
    run_parse(state, m.bytes());
}
BENCHMARK(BM_Parse_ChannelBind);

// Parse, then read every field the Allocate handler needs: what the request path really pays.
void BM_Parse_AllocateAndRead(benchmark::State& state) {
    const auto key = rest_key(auth::PasswordAlgorithm::md5);
    const Built m = allocate_request(sample_nonce, key.bytes());
    const auto bytes = m.bytes();
    std::array<std::uint16_t, 4> unknown{};
    for (auto _ : state) {
        benchmark::DoNotOptimize(bytes.data());
        MessageView view;
        if (MessageView::parse(bytes, view) != ParseError::ok) {
            state.SkipWithError("parse failed");
            break;
        }
        benchmark::DoNotOptimize(view.unknown_comprehension_required(unknown));
        benchmark::DoNotOptimize(view.username());
        benchmark::DoNotOptimize(view.realm());
        benchmark::DoNotOptimize(view.nonce());
        benchmark::DoNotOptimize(view.requested_transport());
        benchmark::DoNotOptimize(view.lifetime());
        benchmark::DoNotOptimize(view.fingerprint());
    }
    state.SetItemsProcessed(state.iterations());
    state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(bytes.size()));
}
BENCHMARK(BM_Parse_AllocateAndRead);

// Many distinct inputs, cycled, so the branch predictor cannot learn one rejection path.
constexpr std::size_t garbage_count = 256;
constexpr std::size_t garbage_size = 100;

std::vector<std::array<std::uint8_t, garbage_size>> random_datagrams(bool stun_header) {
    std::mt19937_64 rng(0x7e57);
    std::vector<std::array<std::uint8_t, garbage_size>> out(garbage_count);
    for (auto& d : out) {
        for (auto& b : d) b = static_cast<std::uint8_t>(rng());
        if (stun_header) {
            // A well-formed header (type, length, cookie) over random attributes: gets past
            // the cheap checks, so it measures the attribute walk's rejection.
            d[0] = 0x00;
            d[1] = 0x01;
            d[2] = 0x00;
            d[3] = garbage_size - protocol::header_size;
            d[4] = 0x21;
            d[5] = 0x12;
            d[6] = 0xA4;
            d[7] = 0x42;
        }
    }
    return out;
}

void run_garbage(benchmark::State& state, bool stun_header) {
    const auto datagrams = random_datagrams(stun_header);
    std::size_t i = 0;
    std::int64_t rejected = 0;
    MessageView view;
    for (auto _ : state) {
        const auto& d = datagrams[i];
        i = (i + 1) % garbage_count;
        benchmark::DoNotOptimize(d.data());
        const ParseError e = MessageView::parse(d, view);
        rejected += e != ParseError::ok ? 1 : 0;
        benchmark::DoNotOptimize(e);
    }
    state.SetItemsProcessed(state.iterations());
    state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(garbage_size));
    state.counters["rejected_ratio"] =
        static_cast<double>(rejected) / static_cast<double>(state.iterations());
}

void BM_Parse_RejectGarbage_Random(benchmark::State& state) {
    run_garbage(state, false);
}
BENCHMARK(BM_Parse_RejectGarbage_Random);

void BM_Parse_RejectGarbage_StunHeader(benchmark::State& state) {
    run_garbage(state, true);
}
BENCHMARK(BM_Parse_RejectGarbage_StunHeader);

// The ChannelData header check every relayed client packet goes through first. It reads only
// the header, so one payload size is enough.
void BM_Parse_ChannelData(benchmark::State& state) {
    const auto payload = static_cast<std::size_t>(state.range(0));
    std::vector<std::uint8_t> message(protocol::channel_data_header_size + payload, 0xAB);
    protocol::write_channel_data_header(
        std::span<std::uint8_t, protocol::channel_data_header_size>(message.data(), 4), 0x4001,
        static_cast<std::uint16_t>(payload));
    protocol::ChannelDataView view;
    for (auto _ : state) {
        benchmark::DoNotOptimize(message.data());
        const ParseError e = protocol::parse_channel_data(message, view);
        benchmark::DoNotOptimize(e);
        benchmark::DoNotOptimize(view);
    }
    state.SetItemsProcessed(state.iterations());
    state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(message.size()));
}
BENCHMARK(BM_Parse_ChannelData)->Arg(100);

}  // namespace
}  // namespace tern::bench
