// import-coturn: each option that maps lands on the right tern key, each that does not is named
// with a reason, and the output is a config tern's own loader accepts.
#include "tern/ctl/coturn_import.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include "tern/config/config.hpp"

namespace tern::ctl {
namespace {

const std::string data = TERN_TEST_DATA_DIR;

config::Config loaded(const std::string& yaml) {
    auto result = config::load_config_text(yaml, "/tmp/imported/tern.yaml");
    std::string errors;
    for (const auto& e : result.errors) errors += e.to_string() + "\n";
    EXPECT_TRUE(result.config) << errors << "\n" << yaml;
    return result.config.value_or(config::Config{});
}

bool noted(const CoturnImport& r, const std::string& option, int line) {
    for (const auto& n : r.notes) {
        if (n.option == option && n.line == line && !n.reason.empty()) return true;
    }
    return false;
}

std::vector<std::string> cidrs(const std::vector<config::Cidr>& list) {
    std::vector<std::string> out;
    for (const auto& c : list) out.push_back(c.to_string());
    return out;
}

TEST(CoturnImport, MapsListenersTlsRelayAuthLimitsAndMetrics) {
    const auto r = import_coturn(
        "# a comment\n"
        "listening-port=3479\r\n"
        "tls-listening-port=5350\n"
        "listening-ip=127.0.0.1\n"
        "listening-ip=::1\n"
        "relay-ip=127.0.0.1\n"
        "external-ip=203.0.113.7\n"
        "min-port=40000\n"
        "max-port=40999\n"
        "realm=example.org\n"
        "use-auth-secret\n"
        "static-auth-secret=first-secret-0123456789\n"
        "static-auth-secret=second-secret-0123456789\n"
        "lt-cred-mech\n"
        "user=alice:wonderland\n"
        "user=bob:0xb70615a74a524becc6960f540634bb00\n"
        "cert=" +
        data +
        "/tls/cert.pem\n"
        "pkey=" +
        data +
        "/tls/key.pem\n"
        "user-quota=12\n"
        "total-quota=3000\n"
        "max-bps=64000\n"
        "max-allocate-lifetime=1800\n"
        "stale-nonce=300\n"
        "prometheus\n"
        "verbose\n");
    const auto c = loaded(r.yaml);
    ASSERT_EQ(c.listen.size(), 6u) << r.yaml;
    EXPECT_EQ(c.listen[0].to_url(), "udp://127.0.0.1:3479");
    EXPECT_EQ(c.listen[1].to_url(), "tcp://127.0.0.1:3479");
    EXPECT_EQ(c.listen[2].to_url(), "tls://127.0.0.1:5350");
    EXPECT_EQ(c.listen[5].to_url(), "tls://[::1]:5350");
    ASSERT_TRUE(c.tls);
    EXPECT_EQ(c.realm, "example.org");
    EXPECT_EQ(c.auth.secrets,
              (std::vector<std::string>{"first-secret-0123456789", "second-secret-0123456789"}));
    ASSERT_EQ(c.auth.users.size(), 2u);
    EXPECT_EQ(c.auth.users[0].name, "alice");
    EXPECT_EQ(c.auth.users[0].password, "wonderland");
    EXPECT_EQ(c.auth.users[1].name, "bob");
    ASSERT_TRUE(c.auth.users[1].key);
    EXPECT_EQ((*c.auth.users[1].key)[0], 0xb7);
    EXPECT_EQ(c.auth.nonce_lifetime, 300u);
    ASSERT_EQ(c.relay.addresses.size(), 1u);
    ASSERT_EQ(c.relay.external_addresses.size(), 1u);
    EXPECT_EQ(c.relay.external_addresses[0].internal.ip_string(), "127.0.0.1");
    EXPECT_EQ(c.relay.external_addresses[0].external.ip_string(), "203.0.113.7");
    EXPECT_EQ(c.relay.ports.first, 40000);
    EXPECT_EQ(c.relay.ports.last, 40999);
    EXPECT_EQ(c.limits.max_allocations_per_user, 12u);
    EXPECT_EQ(c.limits.max_allocations, 3000u);
    EXPECT_EQ(c.limits.allocation_bandwidth, 64000u);
    EXPECT_EQ(c.limits.max_lifetime, 1800u);
    ASSERT_TRUE(c.metrics.listen);
    EXPECT_EQ(c.metrics.listen->to_string(), "127.0.0.1:9641");
    EXPECT_EQ(c.log.level, config::LogLevel::debug);
    // Carried with a change the operator must know: the metrics endpoint stays on loopback.
    EXPECT_TRUE(noted(r, "prometheus", 24));
    EXPECT_EQ(r.notes.size(), 1u) << r.notes.front().to_string("t");
}

TEST(CoturnImport, WithoutListeningIpListensOnEveryAddressAndHonoursNoUdpNoTcpNoTls) {
    auto c = loaded(import_coturn("no-tcp\n").yaml);
    ASSERT_EQ(c.listen.size(), 2u);
    EXPECT_EQ(c.listen[0].to_url(), "udp://0.0.0.0:3478");
    EXPECT_EQ(c.listen[1].to_url(), "udp://[::]:3478");
    c = loaded(import_coturn("no-udp=1\nlistening-ip=192.0.2.1\n").yaml);
    ASSERT_EQ(c.listen.size(), 1u);
    EXPECT_EQ(c.listen[0].to_url(), "tcp://192.0.2.1:3478");
    // Off by value: "no-udp=off" keeps UDP.
    c = loaded(import_coturn("no-udp=off\nno-tcp\nlistening-ip=192.0.2.1\n").yaml);
    ASSERT_EQ(c.listen.size(), 1u);
    EXPECT_EQ(c.listen[0].to_url(), "udp://192.0.2.1:3478");
}

TEST(CoturnImport, PeerRangesBecomeCidrsAndAllowedPeersAreCutOutOfDeniedRanges) {
    const auto r = import_coturn(
        "denied-peer-ip=83.166.64.0-83.166.95.255\n"
        "allowed-peer-ip=83.166.68.45\n"
        "denied-peer-ip=2001:db8::-2001:db8::ff\n"
        "denied-peer-ip=198.51.100.7\n"
        "allow-loopback-peers\n"
        "denied-peer-ip=10.0.0.9-10.0.0.1\n");
    const auto c = loaded(r.yaml);
    EXPECT_EQ(cidrs(c.relay.allow_peers),
              (std::vector<std::string>{"83.166.68.45/32", "127.0.0.0/8", "::1/128"}));
    // 83.166.64.0/19 without .68.45, then the v6 /120 and the single address.
    EXPECT_EQ(cidrs(c.relay.deny_peers),
              (std::vector<std::string>{"83.166.64.0/22", "83.166.68.0/27", "83.166.68.32/29",
                                        "83.166.68.40/30", "83.166.68.44/32", "83.166.68.46/31",
                                        "83.166.68.48/28", "83.166.68.64/26", "83.166.68.128/25",
                                        "83.166.69.0/24", "83.166.70.0/23", "83.166.72.0/21",
                                        "83.166.80.0/20", "2001:db8::/120", "198.51.100.7/32"}));
    EXPECT_TRUE(noted(r, "denied-peer-ip", 1));
    EXPECT_TRUE(noted(r, "denied-peer-ip", 6));  // first after last
}

TEST(CoturnImport, EveryOptionNotCarriedOverIsNamedWithItsLine) {
    const auto r = import_coturn(
        "cli-port=5766\n"
        "bps-capacity=100000\n"
        "no-auth\n"
        "totally-made-up=1\n"
        "static-auth-secret=no-use-auth-secret-here\n"
        "user=broken\n"
        "user=carol:0x1234\n"
        "user-quota=0\n"
        "max-allocate-lifetime=100\n"
        "external-ip=203.0.113.9\n"
        "listening-ip=not-an-ip\n"
        "no-udp=maybe\n");
    for (int line = 1; line <= 12; ++line) {
        bool found = false;
        for (const auto& n : r.notes) found = found || n.line == line;
        EXPECT_TRUE(found) << "line " << line << " has no note:\n" << r.yaml;
    }
    const auto c = loaded(r.yaml);
    EXPECT_TRUE(c.auth.secrets.empty());  // REST was off in coturn: not turned on in tern
    EXPECT_EQ(c.limits.max_allocations_per_user, 100u);
    EXPECT_EQ(c.limits.max_lifetime, 600u);
    EXPECT_TRUE(noted(r, "no-auth", 3));
}

TEST(CoturnImport, TlsNeedsBothFilesAndRelativePathsAreNamed) {
    auto r = import_coturn("cert=/etc/cert.pem\n");
    EXPECT_TRUE(noted(r, "tls-listening-port", 1));
    EXPECT_EQ(r.yaml.find("tls"), r.yaml.find("tls-"));  // no tls section, no tls:// listener
    r = import_coturn("cert=cert.pem\npkey=key.pem\n");
    EXPECT_TRUE(noted(r, "cert", 1));
    EXPECT_TRUE(noted(r, "pkey", 2));
}

TEST(CoturnImport, SecretsAndPasswordsAreQuotedWhateverTheyHold) {
    const auto r = import_coturn(
        "use-auth-secret\nstatic-auth-secret=a\"b\\c: #d, [e] {f} 0123456789\n"
        "user=dave:p@ss: #word\n");
    const auto c = loaded(r.yaml);
    ASSERT_EQ(c.auth.secrets.size(), 1u);
    EXPECT_EQ(c.auth.secrets[0], "a\"b\\c: #d, [e] {f} 0123456789");
    ASSERT_EQ(c.auth.users.size(), 1u);
    EXPECT_EQ(c.auth.users[0].password, "p@ss: #word");
}

// coturn's own example configuration, as the Debian package installs it: as shipped (four
// options active), and with every commented-out option line switched on, which exercises
// nearly every option coturn documents. Either way each active option is carried over or named.
TEST(CoturnImport, CoturnsExampleConfigurationImports) {
    const std::string example = "/usr/share/doc/coturn/examples/etc/turnserver.conf";
    std::ifstream file(example);
    if (!file) GTEST_SKIP() << example << " missing: install coturn (make test-deps)";
    std::stringstream text;
    text << file.rdbuf();
    const std::regex commented_option(R"(^# ?([A-Za-z][A-Za-z0-9_-]*(=\S*)?)$)");
    std::string shipped = text.str(), everything;
    std::istringstream lines(shipped);
    for (std::string line; std::getline(lines, line);) {
        std::string on = std::regex_replace(line, commented_option, "$1");
        // The example's own certificate paths do not exist here.
        if (on.starts_with("cert=")) on = "cert=" + data + "/tls/cert.pem";
        if (on.starts_with("pkey=")) on = "pkey=" + data + "/tls/key.pem";
        everything += on + "\n";
    }
    for (const auto* conf : {&shipped, &everything}) {
        const auto r = import_coturn(*conf);
        loaded(r.yaml);
        std::set<std::string> named;
        for (const auto& n : r.notes) named.insert(n.option);
        std::istringstream in(*conf);
        for (std::string line; std::getline(in, line);) {
            if (line.empty() || line[0] == '#') continue;
            const std::string option = line.substr(0, line.find('='));
            static const std::set<std::string> mapped = {"listening-port",
                                                         "tls-listening-port",
                                                         "listening-ip",
                                                         "relay-ip",
                                                         "external-ip",
                                                         "min-port",
                                                         "max-port",
                                                         "realm",
                                                         "use-auth-secret",
                                                         "static-auth-secret",
                                                         "lt-cred-mech",
                                                         "user",
                                                         "cert",
                                                         "pkey",
                                                         "denied-peer-ip",
                                                         "allowed-peer-ip",
                                                         "no-udp",
                                                         "no-tcp",
                                                         "no-tls",
                                                         "user-quota",
                                                         "total-quota",
                                                         "max-bps",
                                                         "max-allocate-lifetime",
                                                         "stale-nonce",
                                                         "prometheus",
                                                         "verbose",
                                                         "Verbose",
                                                         "allow-loopback-peers",
                                                         "no-loopback-peers",
                                                         "no-multicast-peers",
                                                         "no-software-attribute",
                                                         "allocation-default-address-family",
                                                         "no-auth",
                                                         "rest-api-separator"};
            EXPECT_TRUE(mapped.count(option) != 0 || named.count(option) != 0)
                << option << " is neither carried over nor named";
        }
        for (const auto& n : r.notes) {
            EXPECT_EQ(n.reason.find("not an option import-coturn knows"), std::string::npos)
                << n.to_string(example);
        }
    }
}

}  // namespace
}  // namespace tern::ctl
