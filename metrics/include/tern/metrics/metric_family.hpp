// What /metrics exports: every metric family, declared once. The server renders its samples
// from this list (server/ops/metrics_snapshot), ternctl status names families through it, and
// a test checks the Grafana dashboard against it. Adding a counter: one row here, one line
// where the snapshot reads it from its owner, and its increments.
#pragma once

#include <array>
#include <cstddef>
#include <optional>
#include <string_view>

namespace tern::metrics {

enum class MetricType { counter, gauge };
// Every sample of a family, or only those whose value is not zero (so a page of method × code
// pairs stays short; a series appears on its first count).
enum class Samples { all, seen };

// F(id, type, samples, exported name, help)
#define TERN_METRIC_FAMILIES(F)                                                                   \
    F(build_info, gauge, all, "tern_build_info", "Version of the running ternd.")                 \
    F(draining, gauge, all, "tern_draining",                                                      \
      "1 while draining (SIGTERM or ternctl drain): new allocations are refused.")                \
    F(uptime_seconds, gauge, all, "tern_uptime_seconds", "Seconds since ternd started serving.")  \
    F(allocations_active, gauge, all, "tern_allocations_active",                                  \
      "Live allocations by client transport and relayed address family.")                         \
    F(allocations_created, counter, all, "tern_allocations_created_total",                        \
      "Allocations created by client transport and relayed address family.")                      \
    F(permissions_active, gauge, all, "tern_permissions_active",                                  \
      "Live permissions over all allocations (counted once a second).")                           \
    F(channels_active, gauge, all, "tern_channels_active",                                        \
      "Live channel bindings over all allocations (counted once a second).")                      \
    F(connections_active, gauge, all, "tern_connections_active",                                  \
      "Open TCP and TLS client connections.")                                                     \
    F(relayed_packets, counter, all, "tern_relayed_packets_total",                                \
      "Packets relayed, towards peers and towards clients.")                                      \
    F(relayed_bytes, counter, all, "tern_relayed_bytes_total",                                    \
      "Payload bytes relayed, towards peers and towards clients.")                                \
    F(relay_dropped_packets, counter, all, "tern_relay_dropped_packets_total",                    \
      "Packets not relayed, by reason.")                                                          \
    F(requests, counter, seen, "tern_requests_total",                                             \
      "STUN/TURN requests answered, by method and response code (200 = success).")                \
    F(auth_failures, counter, all, "tern_auth_failures_total",                                    \
      "TURN requests that did not authenticate, by reason (missing_credentials is the normal "    \
      "first-request challenge).")                                                                \
    F(rejections, counter, all, "tern_rejections_total",                                          \
      "Requests and connections refused by a rate limit or quota, by reason.")                    \
    F(stun_dropped, counter, all, "tern_stun_dropped_total",                                      \
      "Datagrams and frames dropped before any answer: malformed STUN, or not STUN at all.")      \
    F(tls_handshakes_failed, counter, all, "tern_tls_handshakes_failed_total",                    \
      "TLS handshakes that failed or timed out.")                                                 \
    F(edge_connections, counter, all, "tern_edge_connections_total",                              \
      "Connections on a shared port (edge.fallback), by where their first bytes sent them.")      \
    F(edge_refused, counter, all, "tern_edge_refused_total",                                      \
      "Connections on a shared port closed before any route, by reason.")                         \
    F(edge_fallback_active, gauge, all, "tern_edge_fallback_active",                              \
      "Connections being passed to edge.fallback.")                                               \
    F(edge_fallback_bytes, counter, all, "tern_edge_fallback_bytes_total",                        \
      "Bytes passed between clients and edge.fallback, by direction.")                            \
    F(edge_fallback_refused, counter, all, "tern_edge_fallback_refused_total",                    \
      "Connections for edge.fallback closed instead: not reachable, or over a limit.")            \
    F(proxy_header_refused, counter, all, "tern_proxy_header_refused_total",                      \
      "Connections closed for their PROXY header (proxy_protocol.trusted), by reason.")           \
    F(worker_loop_lag_seconds, gauge, all, "tern_worker_loop_lag_seconds",                        \
      "How late each worker's once-a-second timer last ran; grows while a worker is stuck.")      \
    F(open_fds, gauge, all, "tern_open_fds",                                                      \
      "File descriptors ternd has open (sockets, relay sockets, files).")                         \
    F(max_fds, gauge, all, "tern_max_fds",                                                        \
      "The descriptor limit (RLIMIT_NOFILE); at it, new allocations and connections fail.")       \
    F(relay_ports_free, gauge, all, "tern_relay_ports_free",                                      \
      "Relay ports of relay.ports not in use, by address family.")                                \
    F(revoked_users, gauge, all, "tern_revoked_users",                                            \
      "Users whose credentials are refused (POST /v1/users/{user}/revoke).")                      \
    F(admin_requests, counter, all, "tern_admin_requests_total",                                  \
      "Admin API requests (/v1/), by outcome.")                                                   \
    F(usage_records, counter, all, "tern_usage_records_total",                                    \
      "Usage records of ended allocations, by outcome (failed: the file could not be written).")  \
    F(fleet_store_up, gauge, all, "tern_fleet_store_up",                                          \
      "1 while the fleet's Redis (fleet.redis) answers, else 0.")                                 \
    F(fleet_store_failures, counter, all, "tern_fleet_store_failures_total",                      \
      "Episodes of the fleet's Redis not answering (each logged once).")                          \
    F(fleet_lease_requests, counter, all, "tern_fleet_lease_requests_total",                      \
      "Allocates' fleet quota leases, by outcome (timeout: fleet.allocate_wait_ms passed).")      \
    F(fleet_redirects, counter, all, "tern_fleet_redirects_total",                                \
      "Allocates answered 300 Try Alternate with another node of the fleet.")                     \
    F(fleet_nodes, gauge, all, "tern_fleet_nodes",                                                \
      "Nodes of the fleet taking new allocations, as this node last read the registry.")          \
    F(kernel_fast_path_interfaces, gauge, all, "tern_kernel_fast_path_interfaces",                \
      "Interfaces the kernel fast path's XDP program is attached to (0: user space relays all).") \
    F(kernel_fast_path_channels, gauge, all, "tern_kernel_fast_path_channels",                    \
      "Bound channels the kernel fast path relays now, as of each worker's last sweep.")          \
    F(kernel_fast_path_packets, counter, all, "tern_kernel_fast_path_packets_total",              \
      "Packets relayed in the kernel, by direction (also in tern_relayed_packets_total).")        \
    F(kernel_fast_path_passed, counter, all, "tern_kernel_fast_path_passed_total",                \
      "UDP datagrams the XDP program left to user space, by reason.")

enum class Metric : std::size_t {
#define TERN_METRIC_ID(id, type, samples, name, help) id,
    TERN_METRIC_FAMILIES(TERN_METRIC_ID)
#undef TERN_METRIC_ID
};

struct MetricFamily {
    Metric id;
    MetricType type;
    Samples samples;
    std::string_view name;
    std::string_view help;
};

// In exposition order, indexed by Metric.
inline constexpr std::array metric_families = {
#define TERN_METRIC_ROW(id, type, samples, name, help) \
    MetricFamily{Metric::id, MetricType::type, Samples::samples, name, help},
    TERN_METRIC_FAMILIES(TERN_METRIC_ROW)
#undef TERN_METRIC_ROW
};
inline constexpr std::size_t metric_count = metric_families.size();

constexpr const MetricFamily& family(Metric m) noexcept {
    return metric_families[static_cast<std::size_t>(m)];
}
// The exported name of `m`, as ternctl and the tests ask for it.
constexpr std::string_view name(Metric m) noexcept {
    return family(m).name;
}

// The family exported as `name`, if any.
std::optional<Metric> find_metric(std::string_view name) noexcept;

std::string_view to_string(MetricType t) noexcept;

}  // namespace tern::metrics
