// describe_changes: what a reload logs, key by key, without secrets.
#include <gtest/gtest.h>

#include <string>

#include "tern/config/config.hpp"
#include "tern/config/config_changes.hpp"

namespace tern::config {
namespace {

Config load(const std::string& yaml) {
    auto loaded = load_config_text(yaml, "test.yaml");
    for (const auto& e : loaded.errors) ADD_FAILURE() << e.to_string();
    return loaded.config.value_or(Config{});
}

std::string joined(const Config& before, const Config& after) {
    std::string text;
    for (const auto& c : describe_changes(before, after)) text += (text.empty() ? "" : ", ") + c;
    return text;
}

TEST(DescribeChanges, NothingChangedIsEmpty) {
    const std::string yaml = "realm: a\nlimits: { max_allocations: 100 }\n";
    EXPECT_TRUE(describe_changes(load(yaml), load(yaml)).empty());
    // Moving a key to another line changes nothing the server does.
    EXPECT_TRUE(describe_changes(load(yaml), load("\n\n" + yaml)).empty());
}

TEST(DescribeChanges, NumbersAndWordsWithBothValues) {
    EXPECT_EQ(joined(load("limits: { max_allocations: 100 }\n"),
                     load("limits: { max_allocations: 50 }\n")),
              "limits.max_allocations 100 -> 50");
    EXPECT_EQ(
        joined(load("realm: a\nlog: { level: info }\n"), load("realm: b\nlog: { level: debug }\n")),
        "realm a -> b, log.level info -> debug");
    EXPECT_EQ(joined(load(""), load("relay: { ports: 50000-50100, default_family: client }\n")),
              "relay.ports 49152-65535 -> 50000-50100, relay.default_family ipv4 -> client");
}

TEST(DescribeChanges, ListsByKeyAndSecretsOnlyCounted) {
    const auto before = load("auth: { secrets: [ \"0123456789abcdef-one\" ] }\n");
    const auto after = load(
        "auth: { secrets: [ \"0123456789abcdef-two\", \"0123456789abcdef-three\" ] }\n"
        "relay: { allow_peers: [ 198.51.100.0/24 ] }\n");
    const auto text = joined(before, after);
    EXPECT_EQ(text, "auth.secrets (1 -> 2), relay.allow_peers");
    EXPECT_EQ(text.find("0123456789abcdef"), std::string::npos);
}

// Like relay.ports these need a restart; the reload line names them all the same.
TEST(DescribeChanges, KernelFastPathKeys) {
    EXPECT_EQ(joined(load(""), load("relay:\n  kernel_fast_path: auto\n"
                                    "  kernel_fast_path_interfaces: [ eth0 ]\n"
                                    "  kernel_fast_path_max_channels: 1024\n")),
              "relay.kernel_fast_path off -> auto, relay.kernel_fast_path_interfaces, "
              "relay.kernel_fast_path_max_channels 65536 -> 1024");
    EXPECT_EQ(joined(load("relay: { kernel_fast_path: on, kernel_fast_path_interfaces: [ a ] }"),
                     load("relay: { kernel_fast_path: on, kernel_fast_path_interfaces: [ b ] }")),
              "relay.kernel_fast_path_interfaces");
}

TEST(DescribeChanges, TlsFilesByTheSectionName) {
    const std::string data = TERN_TEST_DATA_DIR;
    const auto pair = [&](const std::string& name) {
        return "tls:\n  certificate: " + data + "/tls/" + name + ".pem\n  private_key: " + data +
               "/tls/" + name + ".key\n";
    };
    EXPECT_EQ(joined(load(pair("turn-b")), load(pair("turn-b-renewed"))), "tls");
}

}  // namespace
}  // namespace tern::config
