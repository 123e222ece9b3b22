#include "tern/server/ops/metrics_snapshot.hpp"

#include <gtest/gtest.h>

#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "tern/server/ops/metrics_endpoint.hpp"

namespace tern::server {
namespace {

bool has_line(const std::string& text, const std::string& line) {
    std::istringstream in(text);
    for (std::string l; std::getline(in, l);) {
        if (l == line) return true;
    }
    return false;
}

TEST(MetricsSnapshot, SumsWorkersAndRendersEveryFamily) {
    allocation::RelayCounters w1;
    allocation::RelayCounters w2;
    w1.created_by_kind[0][0] += 3;
    w1.removed_by_kind[0][0] += 1;
    w2.created_by_kind[0][0] += 2;
    w2.created_by_kind[1][1] += 4;  // tcp, ipv6
    w2.removed_by_kind[1][1] += 4;
    w1.packets_to_peer += 10;
    w2.packets_to_peer += 5;
    w1.bytes_to_client += 1000;
    w2.dropped_bandwidth += 2;
    w1.rejected_user_quota += 1;
    w2.rejected_allocation_quota += 6;
    w1.permissions_active.set(7);
    w2.channels_active.set(2);
    DispatchCounters d;
    d.responses[method_slot(protocol::Method::channel_bind)][code_slot(400)] += 3;
    d.responses[method_slot(protocol::Method::connect)][code_slot(599)] += 1;
    d.auth_outcomes[5] += 2;  // stale nonce
    StreamCounters st;
    st.opened[0] += 5;
    st.closed[0] += 3;
    st.rejected_per_ip += 4;
    st.tls_handshakes_failed += 9;

    MetricsSnapshot s;
    s.version = "1.2.3";
    s.add(w1);
    s.add(w2);
    s.add(d);
    s.add(st);
    s.worker_lag_seconds = {0.5, 0};
    const std::string text = s.to_prometheus();

    for (const char* line : {
             "tern_build_info{version=\"1.2.3\"} 1",
             "tern_draining 0",
             "tern_allocations_active{transport=\"udp\",family=\"ipv4\"} 4",
             "tern_allocations_active{transport=\"tcp\",family=\"ipv6\"} 0",
             "tern_allocations_created_total{transport=\"udp\",family=\"ipv4\"} 5",
             "tern_allocations_created_total{transport=\"tcp\",family=\"ipv6\"} 4",
             "tern_permissions_active 7",
             "tern_channels_active 2",
             "tern_connections_active{transport=\"tcp\"} 2",
             "tern_connections_active{transport=\"tls\"} 0",
             "tern_relayed_packets_total{direction=\"to_peer\"} 15",
             "tern_relayed_bytes_total{direction=\"to_client\"} 1000",
             "tern_relay_dropped_packets_total{reason=\"bandwidth\"} 2",
             "tern_requests_total{method=\"channel_bind\",code=\"400\"} 3",
             "tern_requests_total{method=\"other\",code=\"other\"} 1",
             "tern_auth_failures_total{reason=\"stale_nonce\"} 2",
             "tern_rejections_total{reason=\"user_allocation_quota\"} 1",
             "tern_rejections_total{reason=\"allocation_quota\"} 6",
             "tern_rejections_total{reason=\"connection_limit_per_ip\"} 4",
             "tern_tls_handshakes_failed_total 9",
             "tern_worker_loop_lag_seconds{worker=\"0\"} 0.5",
             "tern_worker_loop_lag_seconds{worker=\"1\"} 0",
         }) {
        EXPECT_TRUE(has_line(text, line)) << "missing: " << line << "\n" << text;
    }
    // Codes never answered are left out rather than listed as zero.
    EXPECT_EQ(text.find("method=\"allocate\""), std::string::npos);
}

TEST(MetricsSnapshot, IsValidPrometheusTextWithHelpAndTypeBeforeEachFamily) {
    MetricsSnapshot s;
    s.version = "0";
    s.worker_lag_seconds = {0.001};
    DispatchCounters d;
    d.responses[0][0] += 1;
    s.add(d);
    const std::regex sample(
        R"(^([a-z_]+)(\{[a-z_]+="[^"\\]*"(,[a-z_]+="[^"\\]*")*\})? -?[0-9.]+(e[-+]?[0-9]+)?$)");
    const std::regex type(R"(^# TYPE ([a-z_]+) (counter|gauge)$)");
    std::set<std::string> typed;
    std::istringstream in(s.to_prometheus());
    int samples = 0;
    for (std::string line; std::getline(in, line);) {
        std::smatch m;
        if (line.rfind("# HELP ", 0) == 0) continue;
        if (std::regex_match(line, m, type)) {
            EXPECT_TRUE(typed.insert(m[1]).second) << "TYPE twice: " << line;
            continue;
        }
        ASSERT_TRUE(std::regex_match(line, m, sample)) << "not a sample line: " << line;
        EXPECT_EQ(typed.count(m[1]), 1u) << "sample before its TYPE: " << line;
        const std::string name = m[1];
        if (name.size() > 6 && name.compare(name.size() - 6, 6, "_total") == 0) {
            EXPECT_TRUE(line.find('-') == std::string::npos) << "negative counter: " << line;
        }
        ++samples;
    }
    EXPECT_GT(samples, 30);
}

// The page is derived from metrics::metric_families: every family, in order, with its type.
TEST(MetricsSnapshot, RendersEveryFamilyOfTheListInOrder) {
    MetricsSnapshot s;
    s.worker_lag_seconds = {0};
    s.open_fds = 12;  // left out when /proc or the limit cannot be read
    s.max_fds = 1024;
    s.fleet = true;  // the tern_fleet_* samples come with fleet.redis only
    DispatchCounters d;
    d.responses[0][0] += 1;  // `requests` lists only codes seen
    s.add(d);
    std::istringstream in(s.to_prometheus());
    std::vector<std::string> typed;
    std::set<std::string> sampled;
    for (std::string line; std::getline(in, line);) {
        if (line.rfind("# TYPE ", 0) == 0) {
            typed.push_back(line.substr(7));
        } else if (!line.empty() && line[0] != '#') {
            sampled.insert(line.substr(0, line.find_first_of("{ ")));
        }
    }
    ASSERT_EQ(typed.size(), metrics::metric_count);
    for (std::size_t i = 0; i < metrics::metric_count; ++i) {
        const auto& f = metrics::metric_families[i];
        EXPECT_EQ(typed[i], std::string(f.name) + " " + std::string(metrics::to_string(f.type)));
        EXPECT_EQ(sampled.count(std::string(f.name)), 1u) << f.name << " has no sample";
    }
}

TEST(MetricsSnapshot, FleetSamplesOnlyWithAFleet) {
    MetricsSnapshot s;
    EXPECT_EQ(s.to_prometheus().find("\ntern_fleet_store_up "), std::string::npos);
    s.fleet = true;
    s.fleet_leases = {3, 1, 0, 2};
    const std::string page = s.to_prometheus();
    EXPECT_NE(page.find("\ntern_fleet_store_up 0\n"), std::string::npos);
    EXPECT_NE(page.find("\ntern_fleet_lease_requests_total{outcome=\"store_down\"} 2\n"),
              std::string::npos);
}

struct Calls {
    int metrics = 0;
    int drains = 0;
    bool draining = false;
};

EndpointHandlers handlers(Calls& c) {
    return {[&c] {
                ++c.metrics;
                return std::string("page\n");
            },
            [&c] { return c.draining; },
            [&c] {
                ++c.drains;
                c.draining = true;
            },
            nullptr};
}

TEST(MetricsEndpointRoute, ServesMetricsAndHealthAndDrainsOnlyFromLoopback) {
    Calls c;
    const auto h = handlers(c);
    auto a = route_request("GET", "/metrics", false, h);
    EXPECT_EQ(a.status, 200u);
    EXPECT_EQ(a.body, "page\n");
    EXPECT_NE(a.content_type.find("version=0.0.4"), std::string::npos);
    EXPECT_EQ(route_request("GET", "/metrics?name[]=x", false, h).status, 200u);
    EXPECT_EQ(route_request("HEAD", "/metrics", false, h).status, 200u);
    EXPECT_EQ(route_request("POST", "/metrics", true, h).status, 405u);
    EXPECT_EQ(route_request("GET", "/healthz", false, h).status, 200u);
    EXPECT_EQ(route_request("GET", "/healthz", false, h).body, "ok\n");
    EXPECT_EQ(route_request("GET", "/", false, h).status, 404u);
    EXPECT_EQ(route_request("GET", "/metricsx", false, h).status, 404u);

    EXPECT_EQ(route_request("GET", "/drain", true, h).status, 405u);
    EXPECT_EQ(route_request("POST", "/drain", false, h).status, 403u);
    EXPECT_EQ(c.drains, 0);
    a = route_request("POST", "/drain", true, h);
    EXPECT_EQ(a.status, 202u);
    EXPECT_EQ(c.drains, 1);
    a = route_request("POST", "/drain", true, h);
    EXPECT_EQ(a.status, 202u);
    EXPECT_EQ(a.body, "already draining\n");
    EXPECT_EQ(c.drains, 1);
    a = route_request("GET", "/healthz", false, h);
    EXPECT_EQ(a.status, 503u);
    EXPECT_EQ(a.body, "draining\n");
}

}  // namespace
}  // namespace tern::server
