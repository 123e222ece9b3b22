// Messages for the YAML mistakes whose raw parser error misleads: a key under the wrong
// section, a coturn file, an unquoted IPv6 address with a port; and relay.external_address.
#include <gtest/gtest.h>

#include <string>

#include "tern/config/config.hpp"

namespace tern::config {
namespace {

LoadResult load(const std::string& yaml) {
    return load_config_text(yaml, "test.yaml");
}

std::string all_errors(const LoadResult& result) {
    std::string text;
    for (const auto& error : result.errors) text += error.to_string() + "\n";
    return text;
}

void expect_first_error(const std::string& yaml, const std::string& expected) {
    const auto result = load(yaml);
    EXPECT_FALSE(result.config);
    ASSERT_FALSE(result.errors.empty()) << yaml;
    EXPECT_EQ(result.errors.front().to_string(), expected) << all_errors(result);
}

TEST(MisplacedKey, NamesTheSectionItBelongsUnder) {
    expect_first_error("relay:\n  max_allocations: 50\n",
                       "test.yaml:2: relay.max_allocations: unknown key, did you mean "
                       "limits.max_allocations? it belongs under limits:");
    expect_first_error("max_allocations: 50\n",
                       "test.yaml:1: max_allocations: unknown key, did you mean "
                       "limits.max_allocations? it belongs under limits:");
    expect_first_error("limits:\n  secrets: [ x ]\n",
                       "test.yaml:2: limits.secrets: unknown key, did you mean auth.secrets? it "
                       "belongs under auth:");
    expect_first_error("relay:\n  realm: example.org\n",
                       "test.yaml:2: relay.realm: unknown key, did you mean realm? it belongs at "
                       "the top level");
}

TEST(MisplacedKey, AClosePeerInTheSameSectionWinsAndUnknownStaysUnknown) {
    expect_first_error("relay:\n  portz: 49152-65535\n",
                       "test.yaml:2: relay.portz: unknown key, did you mean ports?");
    expect_first_error("relay:\n  no_such_thing: 1\n",
                       "test.yaml:2: relay.no_such_thing: unknown key");
    expect_first_error("relay:\n  \"a: b\": 1\n", "test.yaml:2: relay.a: b: unknown key");
}

TEST(CoturnFile, IsRecognisedAndTheConverterNamed) {
    const auto result = load(
        "# TURN server name and realm\nrealm=example.org\n"
        "listening-port=3478\nfingerprint\nlt-cred-mech\n");
    EXPECT_FALSE(result.config);
    const auto text = all_errors(result);
    EXPECT_NE(text.find("test.yaml:2: this looks like a coturn turnserver.conf (name=value "
                        "lines): convert it with `ternctl import-coturn`"),
              std::string::npos)
        << text;
    // A YAML file with an unrelated error gets no such hint.
    EXPECT_EQ(all_errors(load("realm: [\n")).find("coturn"), std::string::npos);
}

TEST(UnquotedIpv6, TheHintQuotesTheValue) {
    expect_first_error("edge:\n  fallback: [::1]:8443\n",
                       "test.yaml:2: YAML syntax error: end of map not found (YAML reads an "
                       "unquoted [ as the start of a list: quote the address, \"[::1]:8443\")");
    expect_first_error("listen: [ udp://[::]:3478 ]\n",
                       "test.yaml:1: YAML syntax error: end of sequence flow not found (YAML "
                       "reads an unquoted [ as the start of a list: quote the address, "
                       "\"udp://[::]:3478\")");
    // Quoted, it loads.
    EXPECT_TRUE(load("listen: [ \"udp://[::]:3478\" ]\n").config);
}

TEST(ExternalAddressShorthand, MapsTheWholeFamily) {
    const auto result = load("relay:\n  external_address: 203.0.113.7\n");
    ASSERT_TRUE(result.config) << all_errors(result);
    const auto& mappings = result.config->relay.external_addresses;
    ASSERT_EQ(mappings.size(), 1u);
    EXPECT_EQ(mappings[0].internal, TransportAddress{});  // 0.0.0.0: every IPv4 relay address
    EXPECT_EQ(mappings[0].external.ip_string(), "203.0.113.7");
    const auto v6 = load("relay:\n  external_address: \"2001:db8::7\"\n");
    ASSERT_TRUE(v6.config) << all_errors(v6);
    EXPECT_EQ(v6.config->relay.external_addresses[0].internal.family,
              protocol::AddressFamily::ipv6);
}

TEST(ExternalAddressShorthand, RefusedWithTheMapOrWhenNotAnAddress) {
    expect_first_error(
        "relay:\n  external_addresses: { 10.0.0.5: 203.0.113.7 }\n"
        "  external_address: 203.0.113.8\n",
        "test.yaml:3: relay.external_address: give either relay.external_address "
        "or relay.external_addresses (line 2), not both (the one address is "
        "shorthand for a map of them)");
    expect_first_error("relay:\n  external_address: nat.example.org\n",
                       "test.yaml:2: relay.external_address: 'nat.example.org' is not an IPv4 or "
                       "IPv6 address (host names are not accepted)");
    expect_first_error("relay:\n  external_address: 0.0.0.0\n",
                       "test.yaml:2: relay.external_address: '0.0.0.0' is the unspecified "
                       "address; give the address itself");
    expect_first_error("relay:\n  external_address: [ 203.0.113.7 ]\n",
                       "test.yaml:2: relay.external_address: expected a string, got a list");
}

}  // namespace
}  // namespace tern::config
