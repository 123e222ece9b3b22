// What /metrics reports: every worker's tallies summed at scrape time, and their rendering in
// the Prometheus text format. The families, their order, types and help come from
// metrics::metric_families; this file only says where each sample's value is read. Never
// labelled by user name (REST names would grow without bound).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "tern/allocation/allocation_manager.hpp"
#include "tern/metrics/metric_family.hpp"
#include "tern/server/io/kernel_fast_path.hpp"
#include "tern/server/io/stream_listener.hpp"
#include "tern/server/request/request_dispatcher.hpp"

namespace tern::server {

class MetricsSnapshot {
public:
    // Every family's samples at zero, in a fixed order, before any worker is added.
    MetricsSnapshot();

    std::string version;
    bool draining = false;
    double uptime_seconds = 0;
    std::vector<double> worker_lag_seconds;  // by worker index
    // The process: descriptors open and their limit (left out when unknown), free relay ports
    // by family (ipv4, ipv6).
    std::optional<std::uint64_t> open_fds;
    std::optional<std::uint64_t> max_fds;
    std::array<std::uint64_t, 2> relay_ports_free{};
    // The operator's side: revoked users, admin requests by admin_outcomes, usage records
    // written and failed.
    std::uint64_t revoked_users = 0;
    std::array<std::uint64_t, 6> admin_requests{};
    std::uint64_t usage_records_written = 0;
    std::uint64_t usage_records_failed = 0;
    // fleet.redis set: the store's state and the leases asked of it.
    bool fleet = false;
    bool fleet_store_up = false;
    std::uint64_t fleet_store_failures = 0;
    std::array<std::uint64_t, 4> fleet_leases{};  // granted, quota_full, timeout, store_down
    std::uint64_t fleet_redirects = 0;
    std::uint64_t fleet_nodes = 0;
    std::uint64_t kernel_fast_path_interfaces = 0;  // relay.kernel_fast_path attached to

    // One worker's tallies, added to those of the workers before it.
    void add(const allocation::RelayCounters& c);
    void add(const DispatchCounters& c);
    void add(const StreamCounters& c);
    // The XDP program's own tallies (relay.kernel_fast_path).
    void add(const KernelFastPathStats& k);

    // The Prometheus text exposition format (version 0.0.4).
    std::string to_prometheus() const;

private:
    struct Sample {
        std::string labels;  // name="value",... as exported
        std::uint64_t count = 0;
        double real = 0;  // worker_lag_seconds and uptime_seconds
        bool is_real = false;
    };
    // Adds `value` to the sample of `m` with `labels`, first seen first rendered.
    void count(metrics::Metric m, std::string labels, std::uint64_t value);

    std::array<std::vector<Sample>, metrics::metric_count> samples_;
};

}  // namespace tern::server
