// The warning tier: each rule fires on the setting it is about, with that key and line, and a
// clean config gives none.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "tern/config/config.hpp"
#include "tern/config/config_warnings.hpp"

namespace tern::config {
namespace {

const std::string data_dir = TERN_TEST_DATA_DIR;

// Credentials and listeners that raise no warning of their own, for the rules to add to.
const std::string clean =
    "realm: example.org\n"                                    // 1
    "listen: [ \"udp://0.0.0.0:3478\" ]\n"                    // 2
    "auth:\n"                                                 // 3
    "  secrets: [ \"0123456789abcdef0123456789abcdef\" ]\n";  // 4

std::vector<ConfigWarning> warnings_of(const std::string& yaml) {
    const auto loaded = load_config_text(yaml, "test.yaml");
    for (const auto& e : loaded.errors) ADD_FAILURE() << e.to_string();
    if (!loaded.config) return {};
    return config_warnings(*loaded.config);
}

std::string all(const std::vector<ConfigWarning>& warnings) {
    std::string text;
    for (const auto& w : warnings) text += w.to_string("test.yaml") + "\n";
    return text;
}

// `yaml` must raise exactly one warning, at `key` and `line`, whose message holds `part`.
void expect_one_warning(const std::string& yaml, const std::string& key, int line,
                        const std::string& part) {
    const auto warnings = warnings_of(yaml);
    ASSERT_EQ(warnings.size(), 1u) << yaml << "\n" << all(warnings);
    EXPECT_EQ(warnings[0].key, key) << all(warnings);
    EXPECT_EQ(warnings[0].line, line) << all(warnings);
    EXPECT_NE(warnings[0].message.find(part), std::string::npos) << all(warnings);
}

TEST(ConfigWarnings, ACleanConfigHasNone) {
    EXPECT_TRUE(warnings_of(clean).empty()) << all(warnings_of(clean));
    const std::string with_tls =
        "listen: [ \"udp://0.0.0.0:3478\", \"tls://0.0.0.0:5349\" ]\n"
        "tls:\n  certificate: " +
        data_dir + "/tls/cert.pem\n  private_key: " + data_dir +
        "/tls/key.pem\n"
        "auth:\n  users: { alice: { password: correct-horse-battery } }\n"
        "relay:\n  addresses: [ 10.0.0.5 ]\n"
        "  external_addresses: { 10.0.0.5: 203.0.113.7 }\n"
        "  allow_peers: [ 198.51.100.0/24 ]\n";
    EXPECT_TRUE(warnings_of(with_tls).empty()) << all(warnings_of(with_tls));
}

TEST(ConfigWarnings, ToStringMarksAWarningInTheErrorFormat) {
    EXPECT_EQ((ConfigWarning{"relay.allow_peers[0]", 7, "x"}).to_string("tern.yaml"),
              "tern.yaml:7: relay.allow_peers[0]: warning: x");
    EXPECT_EQ((ConfigWarning{"auth", 0, "x"}).to_string("tern.yaml"),
              "tern.yaml: auth: warning: x");
}

TEST(ConfigWarnings, NoCredentialsMeansAGeneratedSecret) {
    const auto warnings = warnings_of("");
    ASSERT_EQ(warnings.size(), 1u) << all(warnings);
    EXPECT_EQ(warnings[0].key, "auth");
    EXPECT_EQ(warnings[0].line, 0);
    EXPECT_NE(warnings[0].message.find("generates a random secret at each start"),
              std::string::npos);
    // Where the (empty) auth section was written is named.
    expect_one_warning("realm: example.org\nauth:\n  users: {}\n", "auth", 2, "no auth.secrets");
}

TEST(ConfigWarnings, AllowPeersOpeningSpecialRanges) {
    const auto allow = [](const std::string& cidrs) {
        return clean + "relay:\n  allow_peers: [ " + cidrs + " ]\n";  // line 6
    };
    expect_one_warning(allow("127.0.0.1"), "relay.allow_peers[0]", 6, "loopback");
    expect_one_warning(allow("\"::1\""), "relay.allow_peers[0]", 6, "loopback (::1)");
    expect_one_warning(allow("10.1.0.0/16"), "relay.allow_peers[0]", 6,
                       "private addresses (10.0.0.0/8, RFC 1918)");
    expect_one_warning(allow("172.20.0.0/16"), "relay.allow_peers[0]", 6, "172.16.0.0/12");
    expect_one_warning(allow("192.168.1.0/24"), "relay.allow_peers[0]", 6, "192.168.0.0/16");
    expect_one_warning(allow("\"fd12::/16\""), "relay.allow_peers[0]", 6, "fc00::/7");
    // The metadata address is named even inside a wider range that covers it.
    expect_one_warning(allow("169.254.0.0/16"), "relay.allow_peers[0]", 6,
                       "cloud metadata address 169.254.169.254");
    expect_one_warning(allow("\"fd00:ec2::254\""), "relay.allow_peers[0]", 6,
                       "cloud metadata address fd00:ec2::254");
    expect_one_warning(allow("0.0.0.0/0"), "relay.allow_peers[0]", 6, "metadata");
    // One warning per entry, each at its own position.
    const auto two = warnings_of(allow("198.51.100.0/24, 10.0.0.0/8"));
    ASSERT_EQ(two.size(), 1u) << all(two);
    EXPECT_EQ(two[0].key, "relay.allow_peers[1]");
}

TEST(ConfigWarnings, ShortRestSecretsAndStaticPasswords) {
    expect_one_warning("auth:\n  secrets: [ \"0123456789abcdef0123\", short-secret ]\n",
                       "auth.secrets", 2, "1 secret is shorter than 16 bytes (the shortest 12)");
    expect_one_warning("auth:\n  users:\n    alice: { password: hunter2 }\n",
                       "auth.users.alice.password", 3, "short password: 7 characters");
    // A key is MD5(user:realm:password): nothing to measure.
    EXPECT_TRUE(warnings_of("auth:\n  users:\n    bob: { key: 0123456789abcdef0123456789abcdef }\n")
                    .empty());
    EXPECT_TRUE(warnings_of("auth:\n  users:\n    carol: { password: twelve-chars }\n").empty());
}

TEST(ConfigWarnings, TlsSectionWithoutATlsListener) {
    expect_one_warning(clean + "tls:\n  certificate: " + data_dir + "/tls/cert.pem\n" +
                           "  private_key: " + data_dir + "/tls/key.pem\n",
                       "tls", 5, "no tls:// listener serves these certificates");
}

TEST(ConfigWarnings, ListenerPortInsideTheRelayPorts) {
    expect_one_warning(
        "listen:\n  - \"udp://0.0.0.0:3478\"\n  - \"tcp://0.0.0.0:50000\"\n"
        "auth:\n  secrets: [ \"0123456789abcdef0123456789abcdef\" ]\n"
        "relay:\n  ports: 49152-65535\n",
        "listen[1]", 3, "port 50000 lies inside relay.ports 49152-65535");
}

TEST(ConfigWarnings, ExternalAddressesThatMisleadClients) {
    expect_one_warning(clean + "relay:\n  external_addresses: { 10.0.0.5: 192.168.1.7 }\n",
                       "relay.external_addresses.10.0.0.5", 6,
                       "advertises 192.168.1.7, one of private addresses");
    expect_one_warning(clean + "relay:\n  external_address: 10.9.9.9\n", "relay.external_address",
                       6, "advertises 10.9.9.9");
    expect_one_warning(clean +
                           "relay:\n  addresses: [ 10.0.0.6 ]\n"
                           "  external_addresses:\n    \"[2001:db8::5]\": \"2001:db8:1::5\"\n"
                           "    10.0.0.5: 203.0.113.7\n",
                       "relay.external_addresses.10.0.0.5", 9,
                       "maps 10.0.0.5, but IPv4 relay sockets bind on 10.0.0.6 (relay.addresses)");
}

TEST(ConfigWarnings, FastPathInterfacesWhileTheFastPathIsOff) {
    expect_one_warning(clean + "relay:\n  kernel_fast_path_interfaces: [ eth0 ]\n",
                       "relay.kernel_fast_path_interfaces", 6,
                       "has no effect while relay.kernel_fast_path is off");
    for (const char* mode : {"auto", "on"}) {
        const auto yaml = clean + "relay:\n  kernel_fast_path: " + mode +
                          "\n  kernel_fast_path_interfaces: [ eth0 ]\n";
        EXPECT_TRUE(warnings_of(yaml).empty()) << all(warnings_of(yaml));
    }
    // An empty list is the default, so there is nothing to warn about.
    const auto empty = clean + "relay:\n  kernel_fast_path_interfaces: [ ]\n";
    EXPECT_TRUE(warnings_of(empty).empty()) << all(warnings_of(empty));
}

TEST(ConfigWarnings, InFileOrder) {
    const auto warnings =
        warnings_of("listen: [ \"udp://0.0.0.0:50000\" ]\nrelay:\n  allow_peers: [ 10.0.0.0/8 ]\n");
    ASSERT_EQ(warnings.size(), 3u) << all(warnings);
    EXPECT_EQ(warnings[0].key, "listen[0]");
    EXPECT_EQ(warnings[1].key, "relay.allow_peers[0]");
    EXPECT_EQ(warnings[2].key, "auth");  // not in the file: last
}

// tests/data/warning-configs: ctest runs them through ternd --check-config (and --strict);
// this catches a drifting .expect without ternd.
TEST(ConfigWarnings, EveryWarningConfigWarnsWithItsExpectedText) {
    namespace fs = std::filesystem;
    int checked = 0;
    for (const auto& entry : fs::directory_iterator(data_dir + "/warning-configs")) {
        if (entry.path().extension() != ".yaml") continue;
        auto expect_file = entry.path();
        expect_file.replace_extension(".expect");
        std::ifstream expect(expect_file);
        std::string expected;
        ASSERT_TRUE(std::getline(expect, expected)) << expect_file;
        const auto loaded = load_config_file(entry.path().string());
        ASSERT_TRUE(loaded.config) << entry.path();
        std::string text;
        for (const auto& w : config_warnings(*loaded.config)) {
            text += w.to_string(entry.path().filename().string()) + "\n";
        }
        EXPECT_NE(text.find(expected), std::string::npos) << expected << "\ngot:\n" << text;
        ++checked;
    }
    EXPECT_GE(checked, 3);
}

}  // namespace
}  // namespace tern::config
