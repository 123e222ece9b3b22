// What /metrics reports: every worker's tallies summed at scrape time, and their rendering in
// the Prometheus text format. Never labelled by user name (REST names would grow without bound).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "tern/allocation/allocation_manager.hpp"
#include "tern/server/io/stream_listener.hpp"
#include "tern/server/request/request_dispatcher.hpp"

namespace tern::server {

struct MetricsSnapshot {
    template <std::size_t N>
    using Counts = std::array<std::uint64_t, N>;
    using ByKind = std::array<Counts<allocation::RelayCounters::families>,
                              allocation::RelayCounters::transports>;

    std::string version;
    bool draining = false;
    double uptime_seconds = 0;

    ByKind allocations_created{};
    ByKind allocations_removed{};
    std::uint64_t permissions_active = 0;
    std::uint64_t channels_active = 0;
    Counts<2> connections_opened{};  // TCP, TLS
    Counts<2> connections_closed{};
    std::uint64_t packets_to_peer = 0;
    std::uint64_t bytes_to_peer = 0;
    std::uint64_t packets_to_client = 0;
    std::uint64_t bytes_to_client = 0;
    // no_allocation, no_permission, no_channel, send_failed, bandwidth
    Counts<5> relay_dropped{};
    std::array<Counts<counted_codes.size() + 1>, counted_methods.size()> responses{};
    Counts<7> auth_outcomes{};  // by auth::AuthOutcome; [0] (ok) stays 0
    std::uint64_t stun_dropped_malformed = 0;
    std::uint64_t stun_dropped_other = 0;
    // rate_limit, allocation_quota, user_allocation_quota, connection_limit,
    // connection_limit_per_ip
    Counts<5> rejections{};
    std::uint64_t tls_handshakes_failed = 0;
    std::vector<double> worker_lag_seconds;  // by worker index

    void add(const allocation::RelayCounters& c);
    void add(const DispatchCounters& c);
    void add(const StreamCounters& c);

    // The Prometheus text exposition format (version 0.0.4).
    std::string to_prometheus() const;
};

}  // namespace tern::server
