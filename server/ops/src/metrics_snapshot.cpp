#include "tern/server/ops/metrics_snapshot.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <iterator>
#include <string_view>

namespace tern::server {

namespace {

constexpr std::array<std::string_view, 3> transport_names = {"udp", "tcp", "tls"};
constexpr std::array<std::string_view, 2> family_names = {"ipv4", "ipv6"};
constexpr std::array<std::string_view, 5> drop_reasons = {"no_allocation", "no_permission",
                                                          "no_channel", "send_failed", "bandwidth"};
// Indexed by auth::AuthOutcome.
constexpr std::array<std::string_view, 7> auth_reasons = {
    "ok",          "missing_credentials", "bad_request", "unknown_user", "integrity_mismatch",
    "stale_nonce", "credential_expired"};
constexpr std::array<std::string_view, 5> rejection_reasons = {
    "rate_limit", "allocation_quota", "user_allocation_quota", "connection_limit",
    "connection_limit_per_ip"};

// Appends one metric family: HELP and TYPE once, then its samples.
class Writer {
public:
    explicit Writer(std::string& out) : out_(out) {}

    void family(std::string_view name, std::string_view type, std::string_view help) {
        fmt::format_to(std::back_inserter(out_), "# HELP {} {}\n# TYPE {} {}\n", name, help, name,
                       type);
    }
    template <typename T>
    void sample(std::string_view name, std::string_view labels, T value) {
        if (labels.empty()) {
            fmt::format_to(std::back_inserter(out_), "{} {}\n", name, value);
        } else {
            fmt::format_to(std::back_inserter(out_), "{}{{{}}} {}\n", name, labels, value);
        }
    }

private:
    std::string& out_;
};

std::string code_label(std::size_t slot) {
    return slot < counted_codes.size() ? std::to_string(counted_codes[slot]) : "other";
}

}  // namespace

void MetricsSnapshot::add(const allocation::RelayCounters& c) {
    for (std::size_t t = 0; t < allocations_created.size(); ++t) {
        for (std::size_t f = 0; f < allocations_created[t].size(); ++f) {
            allocations_created[t][f] += c.created_by_kind[t][f];
            allocations_removed[t][f] += c.removed_by_kind[t][f];
        }
    }
    permissions_active += c.permissions_active;
    channels_active += c.channels_active;
    packets_to_peer += c.packets_to_peer;
    bytes_to_peer += c.bytes_to_peer;
    packets_to_client += c.packets_to_client;
    bytes_to_client += c.bytes_to_client;
    relay_dropped[0] += c.dropped_no_allocation;
    relay_dropped[1] += c.dropped_no_permission;
    relay_dropped[2] += c.dropped_no_channel;
    relay_dropped[3] += c.dropped_send_failed;
    relay_dropped[4] += c.dropped_bandwidth;
    rejections[1] += c.rejected_allocation_quota;
    rejections[2] += c.rejected_user_quota;
}

void MetricsSnapshot::add(const DispatchCounters& c) {
    for (std::size_t m = 0; m < responses.size(); ++m) {
        for (std::size_t k = 0; k < responses[m].size(); ++k) responses[m][k] += c.responses[m][k];
    }
    for (std::size_t i = 0; i < auth_outcomes.size(); ++i) auth_outcomes[i] += c.auth_outcomes[i];
    stun_dropped_malformed += c.dropped_malformed;
    stun_dropped_other += c.dropped_other;
    rejections[0] += c.rate_limited;
}

void MetricsSnapshot::add(const StreamCounters& c) {
    for (std::size_t i = 0; i < connections_opened.size(); ++i) {
        connections_opened[i] += c.opened[i];
        connections_closed[i] += c.closed[i];
    }
    tls_handshakes_failed += c.tls_handshakes_failed;
    rejections[3] += c.rejected_total;
    rejections[4] += c.rejected_per_ip;
}

std::string MetricsSnapshot::to_prometheus() const {
    std::string out;
    out.reserve(16384);
    Writer w(out);
    w.family("tern_build_info", "gauge", "Version of the running ternd.");
    w.sample("tern_build_info", fmt::format("version=\"{}\"", version), 1);
    w.family("tern_draining", "gauge",
             "1 while draining (SIGTERM or ternctl drain): new allocations are refused.");
    w.sample("tern_draining", "", draining ? 1 : 0);
    w.family("tern_uptime_seconds", "gauge", "Seconds since ternd started serving.");
    w.sample("tern_uptime_seconds", "", uptime_seconds);

    const auto kind_labels = [](std::size_t t, std::size_t f) {
        return fmt::format("transport=\"{}\",family=\"{}\"", transport_names[t], family_names[f]);
    };
    w.family("tern_allocations_active", "gauge",
             "Live allocations by client transport and relayed address family.");
    for (std::size_t t = 0; t < allocations_created.size(); ++t) {
        for (std::size_t f = 0; f < allocations_created[t].size(); ++f) {
            // Each worker's removals never pass its creations, so the sum cannot go negative.
            w.sample("tern_allocations_active", kind_labels(t, f),
                     allocations_created[t][f] - allocations_removed[t][f]);
        }
    }
    w.family("tern_allocations_created_total", "counter",
             "Allocations created by client transport and relayed address family.");
    for (std::size_t t = 0; t < allocations_created.size(); ++t) {
        for (std::size_t f = 0; f < allocations_created[t].size(); ++f) {
            w.sample("tern_allocations_created_total", kind_labels(t, f),
                     allocations_created[t][f]);
        }
    }
    w.family("tern_permissions_active", "gauge",
             "Live permissions over all allocations (counted once a second).");
    w.sample("tern_permissions_active", "", permissions_active);
    w.family("tern_channels_active", "gauge",
             "Live channel bindings over all allocations (counted once a second).");
    w.sample("tern_channels_active", "", channels_active);
    w.family("tern_connections_active", "gauge", "Open TCP and TLS client connections.");
    for (std::size_t i = 0; i < connections_opened.size(); ++i) {
        w.sample("tern_connections_active", fmt::format("transport=\"{}\"", transport_names[i + 1]),
                 connections_opened[i] - connections_closed[i]);
    }

    w.family("tern_relayed_packets_total", "counter",
             "Packets relayed, towards peers and towards clients.");
    w.sample("tern_relayed_packets_total", "direction=\"to_peer\"", packets_to_peer);
    w.sample("tern_relayed_packets_total", "direction=\"to_client\"", packets_to_client);
    w.family("tern_relayed_bytes_total", "counter",
             "Payload bytes relayed, towards peers and towards clients.");
    w.sample("tern_relayed_bytes_total", "direction=\"to_peer\"", bytes_to_peer);
    w.sample("tern_relayed_bytes_total", "direction=\"to_client\"", bytes_to_client);
    w.family("tern_relay_dropped_packets_total", "counter", "Packets not relayed, by reason.");
    for (std::size_t i = 0; i < relay_dropped.size(); ++i) {
        w.sample("tern_relay_dropped_packets_total", fmt::format("reason=\"{}\"", drop_reasons[i]),
                 relay_dropped[i]);
    }

    w.family("tern_requests_total", "counter",
             "STUN/TURN requests answered, by method and response code (200 = success).");
    for (std::size_t m = 0; m < responses.size(); ++m) {
        for (std::size_t k = 0; k < responses[m].size(); ++k) {
            // Only codes seen, so the page stays short; a series appears on its first answer.
            if (responses[m][k] == 0) continue;
            w.sample("tern_requests_total",
                     fmt::format("method=\"{}\",code=\"{}\"", counted_methods[m], code_label(k)),
                     responses[m][k]);
        }
    }
    w.family("tern_auth_failures_total", "counter",
             "TURN requests that did not authenticate, by reason (missing_credentials is the "
             "normal first-request challenge).");
    for (std::size_t i = 1; i < auth_outcomes.size(); ++i) {
        w.sample("tern_auth_failures_total", fmt::format("reason=\"{}\"", auth_reasons[i]),
                 auth_outcomes[i]);
    }
    w.family("tern_rejections_total", "counter",
             "Requests and connections refused by a rate limit or quota, by reason.");
    for (std::size_t i = 0; i < rejections.size(); ++i) {
        w.sample("tern_rejections_total", fmt::format("reason=\"{}\"", rejection_reasons[i]),
                 rejections[i]);
    }
    w.family("tern_stun_dropped_total", "counter",
             "Datagrams and frames dropped before any answer: malformed STUN, or not STUN at all.");
    w.sample("tern_stun_dropped_total", "reason=\"malformed\"", stun_dropped_malformed);
    w.sample("tern_stun_dropped_total", "reason=\"other\"", stun_dropped_other);
    w.family("tern_tls_handshakes_failed_total", "counter",
             "TLS handshakes that failed or timed out.");
    w.sample("tern_tls_handshakes_failed_total", "", tls_handshakes_failed);
    w.family("tern_worker_loop_lag_seconds", "gauge",
             "How late each worker's once-a-second timer last ran; grows while a worker is stuck.");
    for (std::size_t i = 0; i < worker_lag_seconds.size(); ++i) {
        w.sample("tern_worker_loop_lag_seconds", fmt::format("worker=\"{}\"", i),
                 worker_lag_seconds[i]);
    }
    return out;
}

}  // namespace tern::server
