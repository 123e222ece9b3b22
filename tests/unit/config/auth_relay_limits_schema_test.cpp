// The keys of the auth, relay and limits sections (auth_schema.cpp, relay_schema.cpp,
// limits_schema.cpp): defaults, accepted values and ranges, and errors naming key and line.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tern/config/config.hpp"

namespace tern::config {
namespace {

LoadResult load(const std::string& yaml) {
    return load_config_text(yaml, "test.yaml");
}

Config load_ok(const std::string& yaml) {
    const auto result = load(yaml);
    for (const auto& error : result.errors) ADD_FAILURE() << error.to_string();
    EXPECT_TRUE(result.config) << yaml;
    return result.config.value_or(Config{});
}

void expect_one_error(const std::string& yaml, const std::string& key, int line,
                      const std::string& message) {
    const auto result = load(yaml);
    EXPECT_FALSE(result.config) << yaml;
    ASSERT_EQ(result.errors.size(), 1u) << yaml;
    const auto& error = result.errors.front();
    EXPECT_EQ(error.key, key) << error.to_string();
    EXPECT_EQ(error.line, line) << error.to_string();
    EXPECT_EQ(error.message, message) << error.to_string();
}

TEST(AuthRelayLimitsSchema, Defaults) {
    const Config c = load_ok("");
    EXPECT_EQ(c.auth.expiry, CredentialExpiry::allocate);
    EXPECT_FALSE(c.auth.nonce_secret);
    EXPECT_EQ(c.auth.nonce_lifetime, 600u);
    EXPECT_EQ(c.relay.default_family, RelayFamily::ipv4);
    EXPECT_EQ(c.limits.max_allocations, 100000u);
    EXPECT_EQ(c.limits.max_allocations_per_user, 100u);
    // The struct initialisers are the only place defaults live.
    EXPECT_EQ(c.auth, Auth{});
    EXPECT_EQ(c.limits, Limits{});
}

TEST(AuthRelayLimitsSchema, ExpiryPolicies) {
    EXPECT_EQ(load_ok("auth: { expiry: allocate }").auth.expiry, CredentialExpiry::allocate);
    EXPECT_EQ(load_ok("auth: { expiry: request }").auth.expiry, CredentialExpiry::request);
    EXPECT_EQ(load_ok("auth: { expiry: strict }").auth.expiry, CredentialExpiry::strict);
    EXPECT_STREQ(to_string(CredentialExpiry::strict), "strict");
    expect_one_error("auth:\n  expiry: never\n", "auth.expiry", 2,
                     "unknown policy 'never' (expected allocate, request or strict)");
    expect_one_error("auth: { expiry: [ strict ] }", "auth.expiry", 1,
                     "expected a string, got a list");
}

TEST(AuthRelayLimitsSchema, NonceSecret) {
    const std::string secret = "0123456789abcdef";  // exactly 16 bytes
    EXPECT_EQ(load_ok("auth: { nonce_secret: " + secret + " }").auth.nonce_secret, secret);
    expect_one_error("auth:\n  nonce_secret: hunter2-short\n", "auth.nonce_secret", 2,
                     "too short: 13 bytes, at least 16 are needed");
    expect_one_error("auth: { nonce_secret: { a: b } }", "auth.nonce_secret", 1,
                     "expected a string, got a map");
}

TEST(AuthRelayLimitsSchema, NonceSecretIsNeverEchoed) {
    const std::string secret = "Sup3rS3cr3t!";
    const auto result = load("auth: { nonce_secret: \"" + secret + "\" }");
    ASSERT_EQ(result.errors.size(), 1u);
    EXPECT_EQ(result.errors.front().to_string().find(secret), std::string::npos)
        << result.errors.front().to_string();
}

TEST(AuthRelayLimitsSchema, NonceLifetimeRange) {
    EXPECT_EQ(load_ok("auth: { nonce_lifetime: 30 }").auth.nonce_lifetime, 30u);
    EXPECT_EQ(load_ok("auth: { nonce_lifetime: 3600 }").auth.nonce_lifetime, 3600u);
    const std::string expected = "expected a whole number of seconds from 30 to 3600, got ";
    expect_one_error("auth: { nonce_lifetime: 29 }", "auth.nonce_lifetime", 1, expected + "'29'");
    expect_one_error("auth: { nonce_lifetime: 3601 }", "auth.nonce_lifetime", 1,
                     expected + "'3601'");
    expect_one_error("auth: { nonce_lifetime: 10m }", "auth.nonce_lifetime", 1, expected + "'10m'");
}

TEST(AuthRelayLimitsSchema, RelayDefaultFamily) {
    EXPECT_EQ(load_ok("relay: { default_family: ipv4 }").relay.default_family, RelayFamily::ipv4);
    EXPECT_EQ(load_ok("relay: { default_family: client }").relay.default_family,
              RelayFamily::client);
    EXPECT_STREQ(to_string(RelayFamily::client), "client");
    expect_one_error("relay:\n\n  default_family: ipv6\n", "relay.default_family", 3,
                     "unknown family 'ipv6' (expected ipv4 or client)");
}

TEST(AuthRelayLimitsSchema, ConnectionLimits) {
    const auto d = load_ok("realm: x");
    EXPECT_EQ(d.limits.max_connections, 10000u);
    EXPECT_EQ(d.limits.max_connections_per_ip, 100u);
    EXPECT_EQ(d.limits.connection_idle_timeout, 600u);
    const auto c = load_ok(
        "limits: { max_connections: 5, max_connections_per_ip: 1, connection_idle_timeout: 30 }");
    EXPECT_EQ(c.limits.max_connections, 5u);
    EXPECT_EQ(c.limits.max_connections_per_ip, 1u);
    EXPECT_EQ(c.limits.connection_idle_timeout, 30u);
    expect_one_error("limits: { max_connections: 0 }", "limits.max_connections", 1,
                     "expected a whole number from 1 to 4294967295, got '0'");
    expect_one_error("limits:\n  max_connections_per_ip: many\n", "limits.max_connections_per_ip",
                     2, "expected a whole number from 1 to 4294967295, got 'many'");
    expect_one_error("limits: { connection_idle_timeout: 4 }", "limits.connection_idle_timeout", 1,
                     "expected a whole number of seconds from 5 to 86400, got '4'");
}

TEST(AuthRelayLimitsSchema, HandshakeTimeoutAndPendingOutput) {
    const auto d = load_ok("realm: x");
    EXPECT_EQ(d.limits.handshake_timeout, 10u);
    EXPECT_EQ(d.limits.max_pending_output, 262144u);
    const auto c = load_ok("limits: { handshake_timeout: 1, max_pending_output: 65664 }");
    EXPECT_EQ(c.limits.handshake_timeout, 1u);
    EXPECT_EQ(c.limits.max_pending_output, 65664u);
    expect_one_error("limits: { handshake_timeout: 0 }", "limits.handshake_timeout", 1,
                     "expected a whole number of seconds from 1 to 300, got '0'");
    expect_one_error("limits: { max_pending_output: 65663 }", "limits.max_pending_output", 1,
                     "expected a whole number from 65664 to 16777216, got '65663'");
}

TEST(AuthRelayLimitsSchema, PermissionAndChannelQuotas) {
    const auto d = load_ok("realm: x");
    EXPECT_EQ(d.limits.max_permissions_per_allocation, 64u);
    EXPECT_EQ(d.limits.max_channels_per_allocation, 64u);
    const auto c =
        load_ok("limits: { max_permissions_per_allocation: 2, max_channels_per_allocation: 4096 }");
    EXPECT_EQ(c.limits.max_permissions_per_allocation, 2u);
    EXPECT_EQ(c.limits.max_channels_per_allocation, 4096u);
    expect_one_error("limits: { max_channels_per_allocation: 4097 }",
                     "limits.max_channels_per_allocation", 1,
                     "expected a whole number from 1 to 4096, got '4097'");
    expect_one_error("limits: { max_permissions_per_allocation: 0 }",
                     "limits.max_permissions_per_allocation", 1,
                     "expected a whole number from 1 to 65535, got '0'");
}

TEST(AuthRelayLimitsSchema, Bandwidth) {
    const auto d = load_ok("realm: x");
    EXPECT_EQ(d.limits.allocation_bandwidth, 10000000u);
    EXPECT_EQ(d.limits.user_bandwidth, 50000000u);
    const auto c = load_ok("limits: { allocation_bandwidth: 0, user_bandwidth: 4294967295 }");
    EXPECT_EQ(c.limits.allocation_bandwidth, 0u);
    EXPECT_EQ(c.limits.user_bandwidth, 4294967295u);
    expect_one_error("limits: { user_bandwidth: -1 }", "limits.user_bandwidth", 1,
                     "expected a whole number from 0 to 4294967295, got '-1'");
    expect_one_error("limits: { allocation_bandwidth: 1e6 }", "limits.allocation_bandwidth", 1,
                     "expected a whole number from 0 to 4294967295, got '1e6'");
}

TEST(AuthRelayLimitsSchema, UnauthenticatedRate) {
    const auto d = load_ok("realm: x");
    EXPECT_EQ(d.limits.unauthenticated_rate, 50u);
    EXPECT_EQ(d.limits.unauthenticated_burst, 100u);
    const auto c = load_ok("limits: { unauthenticated_rate: 0, unauthenticated_burst: 1 }");
    EXPECT_EQ(c.limits.unauthenticated_rate, 0u);
    EXPECT_EQ(c.limits.unauthenticated_burst, 1u);
    expect_one_error("limits: { unauthenticated_burst: 0 }", "limits.unauthenticated_burst", 1,
                     "expected a whole number from 1 to 1000000, got '0'");
    expect_one_error("limits: { unauthenticated_rate: 1000001 }", "limits.unauthenticated_rate", 1,
                     "expected a whole number from 0 to 1000000, got '1000001'");
}

TEST(AuthRelayLimitsSchema, ShutdownGrace) {
    EXPECT_EQ(load_ok("realm: x").limits.shutdown_grace, 30u);
    EXPECT_EQ(load_ok("limits: { shutdown_grace: 0 }").limits.shutdown_grace, 0u);
    EXPECT_EQ(load_ok("limits: { shutdown_grace: 3600 }").limits.shutdown_grace, 3600u);
    expect_one_error("limits: { shutdown_grace: 3601 }", "limits.shutdown_grace", 1,
                     "expected a whole number of seconds from 0 to 3600, got '3601'");
}

TEST(AuthRelayLimitsSchema, RelayChannelNumbers) {
    EXPECT_EQ(load_ok("realm: x").relay.channel_numbers, ChannelNumbers::rfc8656);
    EXPECT_EQ(load_ok("relay: { channel_numbers: rfc5766 }").relay.channel_numbers,
              ChannelNumbers::rfc5766);
    EXPECT_EQ(load_ok("relay: { channel_numbers: rfc8656 }").relay.channel_numbers,
              ChannelNumbers::rfc8656);
    EXPECT_STREQ(to_string(ChannelNumbers::rfc5766), "rfc5766");
    expect_one_error("relay:\n  channel_numbers: any\n", "relay.channel_numbers", 2,
                     "unknown range 'any' (expected rfc8656 or rfc5766)");
}

TEST(AuthRelayLimitsSchema, RelayKernelFastPathDefaults) {
    const Config c = load_ok("realm: x");
    EXPECT_EQ(c.relay.kernel_fast_path, KernelFastPath::off);
    EXPECT_TRUE(c.relay.kernel_fast_path_interfaces.empty());
    EXPECT_EQ(c.relay.kernel_fast_path_max_channels, 65536u);
    EXPECT_EQ(c.relay, Relay{});
}

TEST(AuthRelayLimitsSchema, RelayKernelFastPathModes) {
    EXPECT_EQ(load_ok("relay: { kernel_fast_path: off }").relay.kernel_fast_path,
              KernelFastPath::off);
    EXPECT_EQ(load_ok("relay: { kernel_fast_path: auto }").relay.kernel_fast_path,
              KernelFastPath::auto_);
    EXPECT_EQ(load_ok("relay: { kernel_fast_path: on }").relay.kernel_fast_path,
              KernelFastPath::on);
    EXPECT_STREQ(to_string(KernelFastPath::off), "off");
    EXPECT_STREQ(to_string(KernelFastPath::auto_), "auto");
    EXPECT_STREQ(to_string(KernelFastPath::on), "on");
    expect_one_error("relay:\n  ports: 50000-50100\n  kernel_fast_path: yes\n",
                     "relay.kernel_fast_path", 3, "unknown mode 'yes' (expected off, auto or on)");
    expect_one_error("relay: { kernel_fast_path: [ on ] }", "relay.kernel_fast_path", 1,
                     "expected a string, got a list");
}

TEST(AuthRelayLimitsSchema, RelayKernelFastPathInterfaces) {
    EXPECT_EQ(load_ok("relay: { kernel_fast_path_interfaces: [ eth0, enp3s0f1, lo ] }")
                  .relay.kernel_fast_path_interfaces,
              (std::vector<std::string>{"eth0", "enp3s0f1", "lo"}));
    EXPECT_EQ(load_ok("relay:\n  kernel_fast_path_interfaces:\n    - a23456789012345\n")
                  .relay.kernel_fast_path_interfaces,
              std::vector<std::string>{"a23456789012345"});  // 15 bytes, the longest
    const std::string key = "relay.kernel_fast_path_interfaces";
    expect_one_error("relay:\n  kernel_fast_path_interfaces:\n    - eth0\n    - \"\"\n",
                     key + "[1]", 4, "an interface name must not be empty");
    expect_one_error("relay: { kernel_fast_path_interfaces: [ a234567890123456 ] }", key + "[0]", 1,
                     "'a234567890123456' is longer than 15 bytes, the longest interface name "
                     "Linux allows");
    const std::string rule = " is not an interface name (no '/', ':' or whitespace, not . or ..)";
    for (const std::string bad : {"eth/0", "eth 0", "eth0:1", ".", ".."}) {
        expect_one_error("relay: { kernel_fast_path_interfaces: [ \"" + bad + "\" ] }", key + "[0]",
                         1, "'" + bad + "'" + rule);
    }
    expect_one_error("relay: { kernel_fast_path_interfaces: [ \"eth\\t0\" ] }", key + "[0]", 1,
                     "'eth\\x090'" + rule);
    expect_one_error("relay:\n  kernel_fast_path_interfaces:\n    - eth0\n    - eth1\n    - eth0\n",
                     key + "[2]", 5, "duplicate of " + key + "[0]");
    expect_one_error("relay: { kernel_fast_path_interfaces: eth0 }", key, 1,
                     "expected a list of strings, got a string");
}

TEST(AuthRelayLimitsSchema, RelayKernelFastPathMaxChannels) {
    EXPECT_EQ(
        load_ok("relay: { kernel_fast_path_max_channels: 1 }").relay.kernel_fast_path_max_channels,
        1u);
    EXPECT_EQ(load_ok("relay: { kernel_fast_path_max_channels: 16777216 }")
                  .relay.kernel_fast_path_max_channels,
              16777216u);
    const std::string key = "relay.kernel_fast_path_max_channels";
    const std::string expected = "expected a whole number from 1 to 16777216, got ";
    expect_one_error("relay:\n\n  kernel_fast_path_max_channels: 0\n", key, 3, expected + "'0'");
    expect_one_error("relay: { kernel_fast_path_max_channels: 16777217 }", key, 1,
                     expected + "'16777217'");
    expect_one_error("relay: { kernel_fast_path_max_channels: -1 }", key, 1, expected + "'-1'");
    expect_one_error("relay: { kernel_fast_path_max_channels: 64k }", key, 1, expected + "'64k'");
}

TEST(AuthRelayLimitsSchema, AllocationLimits) {
    const Config c =
        load_ok("limits: { max_allocations: 1, max_allocations_per_user: 4294967295 }");
    EXPECT_EQ(c.limits.max_allocations, 1u);
    EXPECT_EQ(c.limits.max_allocations_per_user, 4294967295u);
    const std::string expected = "expected a whole number from 1 to 4294967295, got ";
    expect_one_error("limits: { max_allocations: 0 }", "limits.max_allocations", 1,
                     expected + "'0'");
    expect_one_error("limits:\n  max_allocations_per_user: 4294967296\n",
                     "limits.max_allocations_per_user", 2, expected + "'4294967296'");
    expect_one_error("limits: { max_allocations_per_user: -1 }", "limits.max_allocations_per_user",
                     1, expected + "'-1'");
    expect_one_error("limits: { max_allocations: [1] }", "limits.max_allocations", 1,
                     "expected a number, got a list");
}

TEST(AuthRelayLimitsSchema, CredentialLifetimeTimeoutAndPrefixDefaults) {
    const Config d = load_ok("realm: x");
    EXPECT_EQ(d.auth.max_credential_lifetime, 259200u);  // 3 days
    EXPECT_EQ(d.limits.unauthenticated_timeout, 30u);
    EXPECT_EQ(d.limits.ipv6_source_prefix, 64u);
    // Empty sections keep them too.
    const Config e = load_ok("auth:\nlimits:\n");
    EXPECT_EQ(e.auth, Auth{});
    EXPECT_EQ(e.limits, Limits{});
}

TEST(AuthRelayLimitsSchema, MaxCredentialLifetimeRange) {
    EXPECT_EQ(load_ok("auth: { max_credential_lifetime: 60 }").auth.max_credential_lifetime, 60u);
    EXPECT_EQ(load_ok("auth: { max_credential_lifetime: 86400 }").auth.max_credential_lifetime,
              86400u);
    EXPECT_EQ(load_ok("auth: { max_credential_lifetime: 31536000 }").auth.max_credential_lifetime,
              31536000u);
    const std::string expected =
        "expected a whole number of seconds from 60 to 31536000 (a year), got ";
    expect_one_error("auth: { max_credential_lifetime: 59 }", "auth.max_credential_lifetime", 1,
                     expected + "'59'");
    expect_one_error("auth:\n  secrets: [ s ]\n  max_credential_lifetime: 31536001\n",
                     "auth.max_credential_lifetime", 3, expected + "'31536001'");
    expect_one_error("auth: { max_credential_lifetime: 0 }", "auth.max_credential_lifetime", 1,
                     expected + "'0'");
    expect_one_error("auth: { max_credential_lifetime: -1 }", "auth.max_credential_lifetime", 1,
                     expected + "'-1'");
    expect_one_error("auth: { max_credential_lifetime: 3d }", "auth.max_credential_lifetime", 1,
                     expected + "'3d'");
    expect_one_error("auth: { max_credential_lifetime: 18446744073709551616 }",
                     "auth.max_credential_lifetime", 1, expected + "'18446744073709551616'");
    expect_one_error("auth:\n  max_credential_lifetime:\n", "auth.max_credential_lifetime", 2,
                     "expected a number of seconds, got nothing");
    expect_one_error("auth: { max_credential_lifetime: [ 60 ] }", "auth.max_credential_lifetime", 1,
                     "expected a number of seconds, got a list");
}

TEST(AuthRelayLimitsSchema, UnauthenticatedTimeoutRange) {
    EXPECT_EQ(load_ok("limits: { unauthenticated_timeout: 1 }").limits.unauthenticated_timeout, 1u);
    const Config hour =
        load_ok("limits: { unauthenticated_timeout: 3600, connection_idle_timeout: 3600 }");
    EXPECT_EQ(hour.limits.unauthenticated_timeout, 3600u);
    const std::string expected = "expected a whole number of seconds from 1 to 3600, got ";
    expect_one_error("limits: { unauthenticated_timeout: 0 }", "limits.unauthenticated_timeout", 1,
                     expected + "'0'");
    expect_one_error("limits:\n  connection_idle_timeout: 7200\n  unauthenticated_timeout: 3601\n",
                     "limits.unauthenticated_timeout", 3, expected + "'3601'");
    expect_one_error("limits: { unauthenticated_timeout: 30s }", "limits.unauthenticated_timeout",
                     1, expected + "'30s'");
}

TEST(AuthRelayLimitsSchema, UnauthenticatedTimeoutIsIndependentOfTheIdleTimeout) {
    // One counts from the connection's start, the other from its last frame; before a client
    // authenticates, whichever ends first closes it. So either may be the longer one, and a
    // file that was valid before the key existed (idle timeouts of 5 to 29 s) still loads.
    const Config short_idle = load_ok("limits: { connection_idle_timeout: 10 }");
    EXPECT_EQ(short_idle.limits.connection_idle_timeout, 10u);
    EXPECT_EQ(short_idle.limits.unauthenticated_timeout, 30u);
    const Config longer =
        load_ok("limits:\n  connection_idle_timeout: 60\n  unauthenticated_timeout: 120\n");
    EXPECT_EQ(longer.limits.unauthenticated_timeout, 120u);
    EXPECT_EQ(longer.limits.connection_idle_timeout, 60u);
}

TEST(AuthRelayLimitsSchema, Ipv6SourcePrefixRange) {
    EXPECT_EQ(load_ok("limits: { ipv6_source_prefix: 32 }").limits.ipv6_source_prefix, 32u);
    EXPECT_EQ(load_ok("limits: { ipv6_source_prefix: 56 }").limits.ipv6_source_prefix, 56u);
    EXPECT_EQ(load_ok("limits: { ipv6_source_prefix: 128 }").limits.ipv6_source_prefix, 128u);
    const std::string expected = "expected a whole number from 32 to 128, got ";
    expect_one_error("limits: { ipv6_source_prefix: 31 }", "limits.ipv6_source_prefix", 1,
                     expected + "'31'");
    expect_one_error("limits:\n  ipv6_source_prefix: 129\n", "limits.ipv6_source_prefix", 2,
                     expected + "'129'");
    expect_one_error("limits: { ipv6_source_prefix: /64 }", "limits.ipv6_source_prefix", 1,
                     expected + "'/64'");
    expect_one_error("limits: { ipv6_source_prefix: 0 }", "limits.ipv6_source_prefix", 1,
                     expected + "'0'");
}

TEST(AuthRelayLimitsSchema, MisspeltKeysGetSuggestions) {
    expect_one_error("auth: { expiri: strict }", "auth.expiri", 1,
                     "unknown key, did you mean expiry?");
    expect_one_error("limits: { max_allocation: 5 }", "limits.max_allocation", 1,
                     "unknown key, did you mean max_allocations?");
    expect_one_error("auth: { max_credential_lifetme: 60 }", "auth.max_credential_lifetme", 1,
                     "unknown key, did you mean max_credential_lifetime?");
    expect_one_error("limits: { unauthenticated_timout: 5 }", "limits.unauthenticated_timout", 1,
                     "unknown key, did you mean unauthenticated_timeout?");
    expect_one_error("limits: { ipv6_source_prefx: 48 }", "limits.ipv6_source_prefx", 1,
                     "unknown key, did you mean ipv6_source_prefix?");
    expect_one_error("relay: { kernel_fastpath: auto }", "relay.kernel_fastpath", 1,
                     "unknown key, did you mean kernel_fast_path?");
    expect_one_error("relay: { kernel_fast_path_max_channel: 8 }",
                     "relay.kernel_fast_path_max_channel", 1,
                     "unknown key, did you mean kernel_fast_path_max_channels?");
}

}  // namespace
}  // namespace tern::config
