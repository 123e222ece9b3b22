#include "tern/server/ops/metrics_snapshot.hpp"

#include <fmt/format.h>

#include <iterator>
#include <string_view>
#include <utility>

#include "tern/protocol/transport.hpp"

namespace tern::server {

using metrics::Metric;

namespace {

constexpr std::array<std::string_view, 2> family_names = {"ipv4", "ipv6"};
// Indexed like MetricsSnapshot::admin_requests (AdminOutcome in admin_api.hpp).
constexpr std::array<std::string_view, 6> admin_outcome_names = {
    "ok", "bad_request", "unauthorized", "rate_limited", "not_found", "failed"};
// Indexed by auth::AuthOutcome.
constexpr std::array<std::string_view, 8> auth_reasons = {
    "ok",          "missing_credentials", "bad_request", "unknown_user", "integrity_mismatch",
    "stale_nonce", "credential_expired",  "revoked"};

std::string label(std::string_view key, std::string_view value) {
    return fmt::format("{}=\"{}\"", key, value);
}

// RelayCounters and StreamCounters index transports as protocol::Transport does.
const char* transport_name(std::size_t index) {
    return protocol::to_string(static_cast<protocol::Transport>(index));
}

std::string kind_label(std::size_t transport, std::size_t family) {
    return fmt::format("transport=\"{}\",family=\"{}\"", transport_name(transport),
                       family_names[family]);
}

std::string code_label(std::size_t slot) {
    return slot < counted_codes.size() ? std::to_string(counted_codes[slot]) : "other";
}

}  // namespace

MetricsSnapshot::MetricsSnapshot() {
    add(allocation::RelayCounters{});
    add(DispatchCounters{});
    add(StreamCounters{});
    add(KernelFastPathStats{});
}

void MetricsSnapshot::count(Metric m, std::string labels, std::uint64_t value) {
    auto& samples = samples_[static_cast<std::size_t>(m)];
    for (auto& s : samples) {
        if (s.labels == labels) {
            s.count += value;
            return;
        }
    }
    samples.push_back(Sample{std::move(labels), value});
}

void MetricsSnapshot::add(const allocation::RelayCounters& c) {
    for (std::size_t t = 0; t < c.created_by_kind.size(); ++t) {
        for (std::size_t f = 0; f < c.created_by_kind[t].size(); ++f) {
            // A worker's removals never pass its creations, so no sum goes negative.
            count(Metric::allocations_active, kind_label(t, f),
                  c.created_by_kind[t][f] - c.removed_by_kind[t][f]);
        }
    }
    for (std::size_t t = 0; t < c.created_by_kind.size(); ++t) {
        for (std::size_t f = 0; f < c.created_by_kind[t].size(); ++f) {
            count(Metric::allocations_created, kind_label(t, f), c.created_by_kind[t][f]);
        }
    }
    count(Metric::permissions_active, "", c.permissions_active);
    count(Metric::channels_active, "", c.channels_active);
    count(Metric::relayed_packets, label("direction", "to_peer"), c.packets_to_peer);
    count(Metric::relayed_packets, label("direction", "to_client"), c.packets_to_client);
    count(Metric::relayed_bytes, label("direction", "to_peer"), c.bytes_to_peer);
    count(Metric::relayed_bytes, label("direction", "to_client"), c.bytes_to_client);
    count(Metric::relay_dropped_packets, label("reason", "no_allocation"), c.dropped_no_allocation);
    count(Metric::relay_dropped_packets, label("reason", "no_permission"), c.dropped_no_permission);
    count(Metric::relay_dropped_packets, label("reason", "no_channel"), c.dropped_no_channel);
    count(Metric::relay_dropped_packets, label("reason", "send_failed"), c.dropped_send_failed);
    count(Metric::relay_dropped_packets, label("reason", "bandwidth"), c.dropped_bandwidth);
    count(Metric::rejections, label("reason", "allocation_quota"), c.rejected_allocation_quota);
    count(Metric::rejections, label("reason", "user_allocation_quota"), c.rejected_user_quota);
    count(Metric::kernel_fast_path_channels, "", c.kernel_channels);
}

void MetricsSnapshot::add(const KernelFastPathStats& k) {
    // Live from the program: the workers' sweeps put these into sessions, not into tallies.
    count(Metric::relayed_packets, label("direction", "to_peer"), k.to_peer);
    count(Metric::relayed_packets, label("direction", "to_client"), k.to_client);
    count(Metric::relayed_bytes, label("direction", "to_peer"), k.bytes_to_peer);
    count(Metric::relayed_bytes, label("direction", "to_client"), k.bytes_to_client);
    count(Metric::kernel_fast_path_packets, label("direction", "to_peer"), k.to_peer);
    count(Metric::kernel_fast_path_packets, label("direction", "to_client"), k.to_client);
    count(Metric::kernel_fast_path_passed, label("reason", "no_entry"), k.passed_no_entry);
    count(Metric::kernel_fast_path_passed, label("reason", "no_neighbor"), k.passed_no_neighbor);
    count(Metric::kernel_fast_path_passed, label("reason", "other"), k.passed_other);
    // Over a cap in the kernel is the same drop as in user space.
    count(Metric::relay_dropped_packets, label("reason", "bandwidth"), k.dropped_bandwidth);
}

void MetricsSnapshot::add(const DispatchCounters& c) {
    for (std::size_t m = 0; m < c.responses.size(); ++m) {
        for (std::size_t k = 0; k < c.responses[m].size(); ++k) {
            count(Metric::requests,
                  fmt::format("method=\"{}\",code=\"{}\"", counted_methods[m], code_label(k)),
                  c.responses[m][k]);
        }
    }
    // [0] is a success, not a failure.
    for (std::size_t i = 1; i < c.auth_outcomes.size(); ++i) {
        count(Metric::auth_failures, label("reason", auth_reasons[i]), c.auth_outcomes[i]);
    }
    count(Metric::rejections, label("reason", "rate_limit"), c.rate_limited);
    count(Metric::stun_dropped, label("reason", "malformed"), c.dropped_malformed);
    count(Metric::stun_dropped, label("reason", "other"), c.dropped_other);
}

void MetricsSnapshot::add(const StreamCounters& c) {
    for (std::size_t i = 0; i < c.opened.size(); ++i) {
        count(Metric::connections_active, label("transport", transport_name(i + 1)),
              c.opened[i] - c.closed[i]);
    }
    count(Metric::tls_handshakes_failed, "", c.tls_handshakes_failed);
    count(Metric::rejections, label("reason", "connection_limit"), c.rejected_total);
    count(Metric::rejections, label("reason", "connection_limit_per_ip"), c.rejected_per_ip);
    // Indexed by SortedRoute, SortRefusal, FallbackFailure and ProxyRefusal.
    constexpr std::array<std::string_view, 3> routes = {"turn_tls", "turn_tcp", "fallback"};
    constexpr std::array<std::string_view, 4> sort_refusals = {"malformed", "too_large", "timeout",
                                                               "unrecognized"};
    constexpr std::array<std::string_view, 3> fallback_refusals = {"connect", "max_connections",
                                                                   "max_connections_per_ip"};
    constexpr std::array<std::string_view, 5> proxy_refusals = {"untrusted", "missing", "malformed",
                                                                "too_large", "timeout"};
    for (std::size_t i = 0; i < routes.size(); ++i) {
        count(Metric::edge_connections, label("route", routes[i]), c.sorted[i]);
    }
    for (std::size_t i = 0; i < sort_refusals.size(); ++i) {
        count(Metric::edge_refused, label("reason", sort_refusals[i]), c.sort_refused[i]);
    }
    count(Metric::edge_fallback_active, "", c.fallback_opened - c.fallback_closed);
    count(Metric::edge_fallback_bytes, label("direction", "to_upstream"), c.fallback_bytes[0]);
    count(Metric::edge_fallback_bytes, label("direction", "to_client"), c.fallback_bytes[1]);
    for (std::size_t i = 0; i < fallback_refusals.size(); ++i) {
        count(Metric::edge_fallback_refused, label("reason", fallback_refusals[i]),
              c.fallback_failed[i]);
    }
    for (std::size_t i = 0; i < proxy_refusals.size(); ++i) {
        count(Metric::proxy_header_refused, label("reason", proxy_refusals[i]), c.proxy_refused[i]);
    }
}

std::string MetricsSnapshot::to_prometheus() const {
    // The process's own figures join the workers' sums here, so a snapshot can be rendered twice.
    auto samples = samples_;
    const auto put = [&](Metric m, std::string labels, double real) {
        samples[static_cast<std::size_t>(m)].push_back(Sample{std::move(labels), 0, real, true});
    };
    samples[static_cast<std::size_t>(Metric::build_info)].push_back(
        Sample{label("version", version), 1});
    samples[static_cast<std::size_t>(Metric::draining)].push_back(Sample{"", draining ? 1U : 0U});
    put(Metric::uptime_seconds, "", uptime_seconds);
    for (std::size_t i = 0; i < worker_lag_seconds.size(); ++i) {
        put(Metric::worker_loop_lag_seconds, label("worker", std::to_string(i)),
            worker_lag_seconds[i]);
    }
    const auto set = [&](Metric m, std::string labels, std::uint64_t value) {
        samples[static_cast<std::size_t>(m)].push_back(Sample{std::move(labels), value});
    };
    if (open_fds) set(Metric::open_fds, "", *open_fds);
    if (max_fds) set(Metric::max_fds, "", *max_fds);
    for (std::size_t f = 0; f < relay_ports_free.size(); ++f) {
        set(Metric::relay_ports_free, label("family", family_names[f]), relay_ports_free[f]);
    }
    set(Metric::revoked_users, "", revoked_users);
    for (std::size_t i = 0; i < admin_requests.size(); ++i) {
        set(Metric::admin_requests, label("outcome", admin_outcome_names[i]), admin_requests[i]);
    }
    set(Metric::usage_records, label("outcome", "written"), usage_records_written);
    set(Metric::usage_records, label("outcome", "failed"), usage_records_failed);
    if (fleet) {
        set(Metric::fleet_store_up, "", fleet_store_up ? 1 : 0);
        set(Metric::fleet_store_failures, "", fleet_store_failures);
        static constexpr std::array<std::string_view, 4> lease_outcomes = {"granted", "quota_full",
                                                                           "timeout", "store_down"};
        for (std::size_t i = 0; i < lease_outcomes.size(); ++i) {
            set(Metric::fleet_lease_requests, label("outcome", lease_outcomes[i]), fleet_leases[i]);
        }
        set(Metric::fleet_redirects, "", fleet_redirects);
        set(Metric::fleet_nodes, "", fleet_nodes);
    }
    set(Metric::kernel_fast_path_interfaces, "", kernel_fast_path_interfaces);

    std::string out;
    out.reserve(16384);
    auto to = std::back_inserter(out);
    for (const auto& family : metrics::metric_families) {
        fmt::format_to(to, "# HELP {} {}\n# TYPE {} {}\n", family.name, family.help, family.name,
                       metrics::to_string(family.type));
        for (const auto& s : samples[static_cast<std::size_t>(family.id)]) {
            if (family.samples == metrics::Samples::seen && !s.is_real && s.count == 0) continue;
            const auto braced = s.labels.empty() ? std::string() : "{" + s.labels + "}";
            if (s.is_real) {
                fmt::format_to(to, "{}{} {}\n", family.name, braced, s.real);
            } else {
                fmt::format_to(to, "{}{} {}\n", family.name, braced, s.count);
            }
        }
    }
    return out;
}

}  // namespace tern::server
