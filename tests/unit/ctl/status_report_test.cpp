#include "tern/ctl/status_report.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include "tern/ctl/endpoint_client.hpp"
#include "tern/metrics/metric_family.hpp"
#include "tern/server/ops/metrics_snapshot.hpp"

namespace tern::ctl {
namespace {

TEST(ParsePrometheus, ReadsNamesLabelsAndValuesAndSkipsCommentsAndJunk) {
    const auto samples = parse_prometheus(
        "# HELP x y\n# TYPE x counter\nplain 3\r\nwith{a=\"1\",b=\"q\\\"uote\"} 2.5e3\n"
        "broken{a=\"1\" 4\nnovalue\nbad_number x12\n\n");
    ASSERT_EQ(samples.size(), 2u);
    EXPECT_EQ(samples[0].name, "plain");
    EXPECT_TRUE(samples[0].labels.empty());
    EXPECT_EQ(samples[0].value, 3);
    EXPECT_EQ(samples[1].name, "with");
    EXPECT_EQ(samples[1].labels.at("a"), "1");
    EXPECT_EQ(samples[1].labels.at("b"), "q\"uote");
    EXPECT_EQ(samples[1].value, 2500);
}

TEST(SampleValue, TheLabelsMustMatchExactly) {
    const auto samples = parse_prometheus(
        "tern_up 1\n"
        "tern_x_total{outcome=\"granted\"} 3\n"
        "tern_x_total{outcome=\"granted\",node=\"b\"} 4\n");
    EXPECT_EQ(sample_value(samples, "tern_up", {}), 1.0);
    EXPECT_EQ(sample_value(samples, "tern_x_total", {{"outcome", "granted"}}), 3.0);
    EXPECT_EQ(sample_value(samples, "tern_x_total", {{"node", "b"}, {"outcome", "granted"}}), 4.0);
    EXPECT_FALSE(sample_value(samples, "tern_x_total", {}).has_value());
    EXPECT_FALSE(sample_value(samples, "tern_x_total", {{"outcome", "timeout"}}).has_value());
    EXPECT_FALSE(sample_value(samples, "tern_down", {}).has_value());
}

TEST(FormatStatus, SummarisesWhatTheServerRenders) {
    allocation::RelayCounters relay;
    relay.created_by_kind[0][0] += 5;  // udp ipv4
    relay.removed_by_kind[0][0] += 2;
    relay.created_by_kind[2][1] += 1;  // tls ipv6
    relay.permissions_active.set(4);
    relay.channels_active.set(3);
    relay.packets_to_peer += 1200;
    relay.bytes_to_peer += 1500000;
    relay.dropped_no_permission += 7;
    server::DispatchCounters dispatch;
    dispatch.responses[1][server::code_slot(200)] += 6;
    dispatch.responses[1][server::code_slot(401)] += 9;
    dispatch.auth_outcomes[1] += 6;  // challenges
    dispatch.auth_outcomes[4] += 3;  // integrity mismatches
    dispatch.rate_limited += 2;
    server::StreamCounters streams;
    streams.opened[1] += 3;
    streams.closed[1] += 2;
    streams.tls_handshakes_failed += 1;
    server::MetricsSnapshot s;
    s.version = "9.9.9";
    s.uptime_seconds = 3725;
    s.add(relay);
    s.add(dispatch);
    s.add(streams);
    s.worker_lag_seconds = {0.0002, 0.0125};

    const auto text = format_status(parse_prometheus(s.to_prometheus()), "127.0.0.1:9641", true);
    EXPECT_NE(text.find("ternd 9.9.9 at 127.0.0.1:9641: serving, up 1h 2m"), std::string::npos)
        << text;
    EXPECT_NE(text.find("4 active (udp/ipv4 3, tls/ipv6 1), 6 created"), std::string::npos) << text;
    EXPECT_NE(text.find("permissions    4, channels 3"), std::string::npos) << text;
    EXPECT_NE(text.find("0 TCP, 1 TLS"), std::string::npos) << text;
    EXPECT_NE(text.find("to peers 1200 packets (1.5 MB)"), std::string::npos) << text;
    EXPECT_NE(text.find("not relayed    7 (no_permission 7)"), std::string::npos) << text;
    EXPECT_NE(text.find("requests       15 (allocate/401 9, allocate/200 6)"), std::string::npos)
        << text;
    EXPECT_NE(text.find("auth failures  3 (integrity_mismatch 3; 6 first-request challenges)"),
              std::string::npos)
        << text;
    EXPECT_NE(text.find("rejections     2 (rate_limit 2)"), std::string::npos) << text;
    EXPECT_NE(text.find("TLS handshakes 1 failed"), std::string::npos) << text;
    EXPECT_NE(text.find("workers        2, largest loop lag 12.5 ms"), std::string::npos) << text;

    s.draining = true;
    const auto draining = format_status(parse_prometheus(s.to_prometheus()), "x", true);
    EXPECT_NE(draining.find("DRAINING"), std::string::npos) << draining;
    const auto unhealthy = format_status(parse_prometheus(""), "x", false);
    EXPECT_NE(unhealthy.find("DRAINING"), std::string::npos) << unhealthy;
}

// docs/grafana-dashboard.json may only query what /metrics exports.
TEST(GrafanaDashboard, QueriesOnlyExportedMetrics) {
    std::ifstream in(TERN_DASHBOARD);
    ASSERT_TRUE(in) << TERN_DASHBOARD;
    std::stringstream text;
    text << in.rdbuf();
    const std::string json = text.str();
    const std::regex metric(R"(tern_[a-z_]+)");
    std::set<std::string> queried;
    for (std::sregex_iterator it(json.begin(), json.end(), metric), end; it != end; ++it) {
        queried.insert(it->str());
    }
    EXPECT_GE(queried.size(), 10u) << "the dashboard should chart most families";
    for (const auto& name : queried) {
        EXPECT_TRUE(metrics::find_metric(name))
            << TERN_DASHBOARD << " queries " << name << ", which /metrics does not export";
    }
}

TEST(ParseEndpoint, AcceptsHostPortAndBracketedIpv6Only) {
    const auto v4 = parse_endpoint("127.0.0.1:9641");
    ASSERT_TRUE(v4);
    EXPECT_EQ(v4->host, "127.0.0.1");
    EXPECT_EQ(v4->port, "9641");
    EXPECT_EQ(v4->to_string(), "127.0.0.1:9641");
    const auto v6 = parse_endpoint("[::1]:80");
    ASSERT_TRUE(v6);
    EXPECT_EQ(v6->host, "::1");
    EXPECT_EQ(v6->to_string(), "[::1]:80");
    for (const char* bad : {"", "127.0.0.1", ":80", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:65536",
                            "127.0.0.1:80x", "::1:80", "[::1]80", "[::1]:"}) {
        EXPECT_FALSE(parse_endpoint(bad)) << bad;
    }
}

}  // namespace
}  // namespace tern::ctl
