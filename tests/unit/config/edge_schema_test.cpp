// The edge and proxy_protocol sections (edge_schema.cpp): every key's default, accepted values
// and ranges, the checks against the listeners, and errors naming key and line.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tern/config/config.hpp"

namespace tern::config {
namespace {

const std::string data_dir = TERN_TEST_DATA_DIR;

LoadResult load(const std::string& yaml) {
    return load_config_text(yaml, "test.yaml");
}

std::string all_errors(const LoadResult& result) {
    std::string out;
    for (const auto& error : result.errors) out += error.to_string() + "\n";
    return out;
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
    ASSERT_EQ(result.errors.size(), 1u) << yaml << "\n" << all_errors(result);
    const auto& error = result.errors.front();
    EXPECT_EQ(error.key, key) << error.to_string();
    EXPECT_EQ(error.line, line) << error.to_string();
    EXPECT_EQ(error.message, message) << error.to_string();
}

// Lines 1 and 2: a tcp:// and a tls:// listener (the shared port, 443) and the tls section, so
// that whatever follows starts on line 3.
std::string shared_port(const std::string& rest) {
    return "listen: [ \"udp://0.0.0.0:3478\", \"tcp://0.0.0.0:3478\", \"tls://0.0.0.0:443\" ]\n"
           "tls: { certificate: " +
           data_dir + "/tls/cert.pem, private_key: " + data_dir + "/tls/key.pem }\n" + rest;
}

// As shared_port, with an edge section on line 3 whose fallback is 127.0.0.1:8443 and `rest`
// as further keys of it (flow style, so every edge error is on line 3).
std::string edge_with(const std::string& rest) {
    return shared_port("edge: { fallback: \"127.0.0.1:8443\"" +
                       (rest.empty() ? std::string() : ", " + rest) + " }\n");
}

TransportAddress v4(std::uint8_t a, std::uint8_t b, std::uint8_t c, std::uint8_t d,
                    std::uint16_t port) {
    return TransportAddress::v4({a, b, c, d}, port);
}

// --- defaults and every key ----------------------------------------------------------------

TEST(EdgeSchema, DefaultsAreTheStructInitialisers) {
    const Config c = load_ok("");
    EXPECT_EQ(c.edge, Edge{});
    EXPECT_EQ(c.proxy_protocol, ProxyProtocol{});
    EXPECT_FALSE(c.edge.fallback);
    EXPECT_TRUE(c.edge.turn_names.empty());
    EXPECT_EQ(c.edge.fallback_proxy_protocol, ProxyHeader::off);
    EXPECT_EQ(c.edge.fallback_max_connections, 10000u);
    EXPECT_EQ(c.edge.fallback_max_connections_per_ip, 100u);
    EXPECT_EQ(c.edge.fallback_connect_timeout, 5u);
    EXPECT_EQ(c.edge.fallback_idle_timeout, 300u);
    EXPECT_TRUE(c.proxy_protocol.trusted.empty());
    // Empty sections are absent ones.
    EXPECT_EQ(load_ok("edge:\nproxy_protocol:\n"), c);
}

TEST(EdgeSchema, FallbackAloneKeepsTheOtherDefaults) {
    const Config c = load_ok(edge_with(""));
    Edge expected;
    expected.fallback = v4(127, 0, 0, 1, 8443);
    EXPECT_EQ(c.edge, expected);
}

TEST(EdgeSchema, EveryKeyInBlockStyle) {
    const Config c = load_ok(shared_port(R"(edge:
  fallback: 127.0.0.1:8443
  turn_names: [turn.example.com, "*.turn.example.net"]
  fallback_proxy_protocol: v2
  fallback_max_connections: 20000
  fallback_max_connections_per_ip: 20
  fallback_connect_timeout: 3
  fallback_idle_timeout: 120
proxy_protocol:
  trusted: [10.0.0.0/8, 127.0.0.1/32, "fd00::/8"]
)"));
    EXPECT_EQ(c.edge.fallback, v4(127, 0, 0, 1, 8443));
    EXPECT_EQ(c.edge.turn_names,
              (std::vector<std::string>{"turn.example.com", "*.turn.example.net"}));
    EXPECT_EQ(c.edge.fallback_proxy_protocol, ProxyHeader::v2);
    EXPECT_EQ(c.edge.fallback_max_connections, 20000u);
    EXPECT_EQ(c.edge.fallback_max_connections_per_ip, 20u);
    EXPECT_EQ(c.edge.fallback_connect_timeout, 3u);
    EXPECT_EQ(c.edge.fallback_idle_timeout, 120u);
    ASSERT_EQ(c.proxy_protocol.trusted.size(), 3u);
    EXPECT_EQ(c.proxy_protocol.trusted[0].to_string(), "10.0.0.0/8");
    EXPECT_EQ(c.proxy_protocol.trusted[1].to_string(), "127.0.0.1/32");
    EXPECT_EQ(c.proxy_protocol.trusted[2].to_string(), "fd00::/8");
}

TEST(EdgeSchema, UnknownKeysSuggestTheKnownOnes) {
    expect_one_error(edge_with("fallback_idle_timout: 10"), "edge.fallback_idle_timout", 3,
                     "unknown key, did you mean fallback_idle_timeout?");
    expect_one_error("proxy_protocol: { trustd: [] }", "proxy_protocol.trustd", 1,
                     "unknown key, did you mean trusted?");
    expect_one_error("edgee: {}", "edgee", 1, "unknown key, did you mean edge?");
    expect_one_error("edge: [ fallback ]", "edge", 1, "expected a map, got a list");
    expect_one_error("proxy_protocol: on", "proxy_protocol", 1, "expected a map, got a string");
}

// --- edge.fallback ---------------------------------------------------------------------------

TEST(EdgeSchema, FallbackAddressForms) {
    EXPECT_EQ(load_ok(shared_port("edge: { fallback: \"[::1]:8443\" }")).edge.fallback,
              TransportAddress::parse("[::1]:8443"));
    EXPECT_EQ(load_ok(shared_port("edge: { fallback: \"10.0.0.5:443\" }")).edge.fallback,
              v4(10, 0, 0, 5, 443));
    // An IPv4-mapped address is the IPv4 address it denotes.
    EXPECT_EQ(load_ok(shared_port("edge: { fallback: \"[::ffff:10.0.0.5]:443\" }")).edge.fallback,
              v4(10, 0, 0, 5, 443));
}

TEST(EdgeSchema, FallbackMustBeAnIpAndAPort) {
    expect_one_error(shared_port("edge:\n  fallback: \"127.0.0.1:0\"\n"), "edge.fallback", 4,
                     "port 0 is out of range 1-65535");
    expect_one_error(shared_port("edge: { fallback: 127.0.0.1 }"), "edge.fallback", 3,
                     "missing port in '127.0.0.1' (expected ip:port)");
    expect_one_error(shared_port("edge: { fallback: \"localhost:8443\" }"), "edge.fallback", 3,
                     "'localhost' is not an IPv4 or IPv6 address (host names are not accepted)");
    expect_one_error(shared_port("edge: { fallback: \"::1:8443\" }"), "edge.fallback", 3,
                     "IPv6 addresses need brackets, e.g. [2001:db8::1]:3478; got '::1:8443'");
    expect_one_error(shared_port("edge: { fallback: \"127.0.0.1:70000\" }"), "edge.fallback", 3,
                     "port 70000 is out of range 1-65535");
    expect_one_error(shared_port("edge: { fallback: \"0.0.0.0:8443\" }"), "edge.fallback", 3,
                     "'0.0.0.0:8443' has the unspecified address; give the web server's address");
    expect_one_error(shared_port("edge: { fallback: \"[::]:8443\" }"), "edge.fallback", 3,
                     "'[::]:8443' has the unspecified address; give the web server's address");
    expect_one_error(shared_port("edge: { fallback: [ \"127.0.0.1:8443\" ] }"), "edge.fallback", 3,
                     "expected a string, got a list");
    expect_one_error(shared_port("edge:\n  fallback:\n"), "edge.fallback", 4,
                     "expected a string, got nothing");
}

TEST(EdgeSchema, FallbackThatIsOneOfTernsOwnListenersIsALoop) {
    // The shared port itself, through the wildcard listener's loopback.
    expect_one_error(shared_port("edge:\n  fallback: \"127.0.0.1:443\"\n"), "edge.fallback", 4,
                     "loops back to ternd: 127.0.0.1:443 is served by its own listener "
                     "tls://0.0.0.0:443; give the web server's address");
    // A tcp:// listener is as much a loop as a tls:// one.
    expect_one_error(shared_port("edge: { fallback: \"127.0.0.53:3478\" }"), "edge.fallback", 3,
                     "loops back to ternd: 127.0.0.53:3478 is served by its own listener "
                     "tcp://0.0.0.0:3478; give the web server's address");
    // The exact address of a listener bound to one address.
    const std::string tls = "tls: { certificate: " + data_dir +
                            "/tls/cert.pem, private_key: " + data_dir + "/tls/key.pem }\n";
    expect_one_error(
        "listen: [ \"tls://192.0.2.10:443\", \"tls://[2001:db8::10]:443\" ]\n" + tls +
            "edge: { fallback: \"192.0.2.10:443\" }\n",
        "edge.fallback", 3,
        "loops back to ternd: 192.0.2.10:443 is served by its own listener tls://192.0.2.10:443; "
        "give the web server's address");
    expect_one_error(
        "listen: [ \"tls://[::]:443\" ]\n" + tls + "edge: { fallback: \"[::1]:443\" }\n",
        "edge.fallback", 3,
        "loops back to ternd: [::1]:443 is served by its own listener tls://[::]:443; give the "
        "web server's address");
    expect_one_error("listen: [ \"tls://0.0.0.0:443\" ]\n" + tls +
                         "edge: { fallback: \"[::ffff:127.0.0.1]:443\" }\n",
                     "edge.fallback", 3,
                     "loops back to ternd: 127.0.0.1:443 is served by its own listener "
                     "tls://0.0.0.0:443; give the web server's address");
}

TEST(EdgeSchema, FallbackBesideTernsListenersIsNoLoop) {
    const std::string tls = "tls: { certificate: " + data_dir +
                            "/tls/cert.pem, private_key: " + data_dir + "/tls/key.pem }\n";
    // Another port on loopback: the usual web server behind the shared port.
    load_ok(shared_port("edge: { fallback: \"127.0.0.1:8443\" }"));
    // Another host on the same port: a wildcard listener only catches local addresses.
    load_ok(shared_port("edge: { fallback: \"10.0.0.5:443\" }"));
    // UDP sockets take no TCP connections.
    load_ok("listen: [ \"udp://127.0.0.1:8443\", \"tls://127.0.0.1:443\" ]\n" + tls +
            "edge: { fallback: \"127.0.0.1:8443\" }\n");
    // A listener bound to one loopback address does not take another's connections.
    load_ok("listen: [ \"tls://127.0.0.1:443\" ]\n" + tls +
            "edge: { fallback: \"127.0.0.2:443\" }\n");
    // TCP listeners on [::] are IPv6-only.
    load_ok("listen: [ \"tls://[::]:443\" ]\n" + tls + "edge: { fallback: \"127.0.0.1:443\" }\n");
}

TEST(EdgeSchema, FallbackNeedsATlsListener) {
    expect_one_error(
        "listen: [ \"udp://0.0.0.0:3478\", \"tcp://0.0.0.0:3478\" ]\n"
        "edge:\n  fallback: \"127.0.0.1:8443\"\n",
        "edge.fallback", 3, "needs a tls:// listener (the shared port)");
    // The default listeners have no tls:// one either.
    expect_one_error("edge: { fallback: \"127.0.0.1:8443\" }", "edge.fallback", 1,
                     "needs a tls:// listener (the shared port)");
    // A fallback that is not even an address still needs the shared port: both are reported.
    const auto result = load("edge: { fallback: \"localhost:8443\" }");
    EXPECT_EQ(result.errors.size(), 2u) << all_errors(result);
}

TEST(EdgeSchema, OtherEdgeKeysNeedAFallback) {
    for (const std::string key :
         {"turn_names: [turn.example.com]", "fallback_proxy_protocol: v2",
          "fallback_max_connections: 5", "fallback_max_connections_per_ip: 5",
          "fallback_connect_timeout: 5", "fallback_idle_timeout: 5", "turn_names: []"}) {
        expect_one_error(shared_port("edge:\n  " + key + "\n"),
                         "edge." + key.substr(0, key.find(':')), 4,
                         "has no effect without edge.fallback");
    }
    // Each such key is named, on its own line.
    const auto result =
        load(shared_port("edge:\n  fallback_idle_timeout: 10\n"
                         "  turn_names:\n    - turn.example.com\n"));
    ASSERT_EQ(result.errors.size(), 2u) << all_errors(result);
    EXPECT_EQ(result.errors[0].to_string(),
              "test.yaml:4: edge.fallback_idle_timeout: has no effect without edge.fallback");
    EXPECT_EQ(result.errors[1].to_string(),
              "test.yaml:5: edge.turn_names: has no effect without edge.fallback");
    // A fallback that is given but wrong is still given: only its own error.
    expect_one_error(shared_port("edge: { fallback: \"127.0.0.1\", fallback_idle_timeout: 10 }"),
                     "edge.fallback", 3, "missing port in '127.0.0.1' (expected ip:port)");
}

// --- edge.turn_names -------------------------------------------------------------------------

TEST(EdgeSchema, TurnNamesAreLowercasedHostNames) {
    const Config c = load_ok(
        edge_with("turn_names: [ Turn.Example.COM, \"*.Example.org\", localhost, a-b.x1.example, "
                  "xn--bcher-kva.example ]"));
    EXPECT_EQ(c.edge.turn_names,
              (std::vector<std::string>{"turn.example.com", "*.example.org", "localhost",
                                        "a-b.x1.example", "xn--bcher-kva.example"}));
    EXPECT_TRUE(load_ok(edge_with("turn_names: []")).edge.turn_names.empty());
    EXPECT_TRUE(load_ok(shared_port("edge:\n  fallback: 127.0.0.1:8443\n  turn_names:\n"))
                    .edge.turn_names.empty());
    // Longest label and longest name.
    const std::string label63(63, 'a');
    const std::string name253 =
        label63 + "." + label63 + "." + label63 + "." + std::string(61, 'b');
    EXPECT_EQ(load_ok(edge_with("turn_names: [ " + name253 + " ]")).edge.turn_names,
              std::vector<std::string>{name253});
}

TEST(EdgeSchema, TurnNamesMustBeUniqueIgnoringCase) {
    expect_one_error(shared_port("edge:\n  fallback: 127.0.0.1:8443\n  turn_names:\n"
                                 "    - turn.example.com\n    - TURN.example.com\n"),
                     "edge.turn_names[1]", 7, "duplicate of edge.turn_names[0]");
}

TEST(EdgeSchema, BadTurnNames) {
    const auto bad = [](const std::string& name, const std::string& message) {
        expect_one_error(edge_with("turn_names: [ ok.example, " + name + " ]"),
                         "edge.turn_names[1]", 3, message);
    };
    bad("\"\"", "a name must not be empty");
    // The rule is the one tls.certificates[].names follow (config/src/host_names.hpp).
    bad("\"turn example.com\"",
        "'turn example.com' holds ' '; a host name has letters, digits, hyphens and dots");
    bad("turn_1.example.com",
        "'turn_1.example.com' holds '_'; a host name has letters, digits, hyphens and dots");
    bad("\"turn..example.com\"", "'turn..example.com' has an empty label");
    bad("\"turn.example.com.\"",
        "'turn.example.com.' ends with a dot; write the name without it (clients send it "
        "without one)");
    bad("\".example.com\"", "'.example.com' has an empty label");
    bad("\"-turn.example.com\"",
        "'-turn.example.com' has a label that starts or ends with a hyphen");
    bad("turn-.example.com", "'turn-.example.com' has a label that starts or ends with a hyphen");
    const std::string leftmost =
        ": a wildcard must be the whole leftmost label, as in *.example.com";
    bad("\"*\"", "'*'" + leftmost);
    bad("\"*example.com\"", "'*example.com'" + leftmost);
    bad("\"turn.*.example.com\"", "'turn.*.example.com'" + leftmost);
    bad("\"*.*.example.com\"", "'*.*.example.com'" + leftmost);
    bad("\"*.\"", "'*.' has no name after the wildcard; write one, as in *.example.com");
    bad("192.0.2.1", "'192.0.2.1' is an IP address; SNI carries host names only");
    bad("\"2001:db8::1\"", "'2001:db8::1' is an IP address; SNI carries host names only");
    bad("\"bücher.example\"",
        "'bücher.example' is not ASCII; write an internationalized name in its xn-- form");
    // Messages quote at most 64 bytes of the name.
    const std::string label64(64, 'a');
    bad(label64 + ".example",
        std::string(1, '\'') + label64 + "...' has a label longer than 63 bytes");
    const std::string label63(63, 'a');
    bad(label63 + "." + label63 + "." + label63 + "." + std::string(62, 'b'),
        "too long: 254 bytes, a host name has at most 253");
    expect_one_error(edge_with("turn_names: turn.example.com"), "edge.turn_names", 3,
                     "expected a list of strings, got a string");
    expect_one_error(edge_with("turn_names: [ [ a ] ]"), "edge.turn_names[0]", 3,
                     "expected a string, got a list");
}

// --- edge.fallback_proxy_protocol ------------------------------------------------------------

TEST(EdgeSchema, FallbackProxyProtocol) {
    EXPECT_EQ(load_ok(edge_with("fallback_proxy_protocol: v2")).edge.fallback_proxy_protocol,
              ProxyHeader::v2);
    EXPECT_EQ(load_ok(edge_with("fallback_proxy_protocol: off")).edge.fallback_proxy_protocol,
              ProxyHeader::off);
    EXPECT_STREQ(to_string(ProxyHeader::v2), "v2");
    EXPECT_STREQ(to_string(ProxyHeader::off), "off");
    expect_one_error(edge_with("fallback_proxy_protocol: v1"), "edge.fallback_proxy_protocol", 3,
                     "PROXY protocol v1 is not written, only received (see "
                     "proxy_protocol.trusted); expected v2 or off");
    expect_one_error(edge_with("fallback_proxy_protocol: V2"), "edge.fallback_proxy_protocol", 3,
                     "unknown version 'V2' (expected v2 or off)");
    expect_one_error(edge_with("fallback_proxy_protocol: \"on\""), "edge.fallback_proxy_protocol",
                     3, "unknown version 'on' (expected v2 or off)");
    expect_one_error(edge_with("fallback_proxy_protocol: 2"), "edge.fallback_proxy_protocol", 3,
                     "unknown version '2' (expected v2 or off)");
    expect_one_error(edge_with("fallback_proxy_protocol: [ v2 ]"), "edge.fallback_proxy_protocol",
                     3, "expected a string, got a list");
}

// --- the numbers -----------------------------------------------------------------------------

TEST(EdgeSchema, ConnectionLimits) {
    const Config low =
        load_ok(edge_with("fallback_max_connections: 1, fallback_max_connections_per_ip: 1"));
    EXPECT_EQ(low.edge.fallback_max_connections, 1u);
    EXPECT_EQ(low.edge.fallback_max_connections_per_ip, 1u);
    const Config high = load_ok(edge_with(
        "fallback_max_connections: 4294967295, fallback_max_connections_per_ip: 4294967295"));
    EXPECT_EQ(high.edge.fallback_max_connections, 4294967295u);
    EXPECT_EQ(high.edge.fallback_max_connections_per_ip, 4294967295u);
    for (const std::string key : {"fallback_max_connections", "fallback_max_connections_per_ip"}) {
        for (const std::string value : {"0", "4294967296", "-1", "1e3", "many"}) {
            expect_one_error(edge_with(key + ": " + value), "edge." + key, 3,
                             "expected a whole number from 1 to 4294967295, got '" + value + "'");
        }
        expect_one_error(edge_with(key + ": [ 1 ]"), "edge." + key, 3,
                         "expected a number, got a list");
    }
}

TEST(EdgeSchema, Timeouts) {
    const Config low = load_ok(edge_with("fallback_connect_timeout: 1, fallback_idle_timeout: 1"));
    EXPECT_EQ(low.edge.fallback_connect_timeout, 1u);
    EXPECT_EQ(low.edge.fallback_idle_timeout, 1u);
    const Config high =
        load_ok(edge_with("fallback_connect_timeout: 60, fallback_idle_timeout: 86400"));
    EXPECT_EQ(high.edge.fallback_connect_timeout, 60u);
    EXPECT_EQ(high.edge.fallback_idle_timeout, 86400u);
    for (const std::string value : {"0", "61", "5s"}) {
        expect_one_error(edge_with("fallback_connect_timeout: " + value),
                         "edge.fallback_connect_timeout", 3,
                         "expected a whole number of seconds from 1 to 60, got '" + value + "'");
    }
    for (const std::string value : {"0", "86401", "1h"}) {
        expect_one_error(edge_with("fallback_idle_timeout: " + value), "edge.fallback_idle_timeout",
                         3,
                         "expected a whole number of seconds from 1 to 86400, got '" + value + "'");
    }
    expect_one_error(edge_with("fallback_idle_timeout: { a: 1 }"), "edge.fallback_idle_timeout", 3,
                     "expected a number of seconds, got a map");
}

// --- proxy_protocol.trusted ------------------------------------------------------------------

TEST(EdgeSchema, ProxyProtocolTrusted) {
    const Config c = load_ok(
        "proxy_protocol:\n  trusted:\n    - 10.0.0.0/8\n    - 192.0.2.7\n"
        "    - \"2001:db8::/32\"\n");
    ASSERT_EQ(c.proxy_protocol.trusted.size(), 3u);
    EXPECT_EQ(c.proxy_protocol.trusted[0].to_string(), "10.0.0.0/8");
    EXPECT_EQ(c.proxy_protocol.trusted[1].to_string(), "192.0.2.7/32");
    EXPECT_EQ(c.proxy_protocol.trusted[2].to_string(), "2001:db8::/32");
    // Needs no edge section: a load balancer in front of plain tcp:// listeners.
    EXPECT_FALSE(c.edge.fallback);
    EXPECT_TRUE(load_ok("proxy_protocol: { trusted: [] }").proxy_protocol.trusted.empty());
    EXPECT_TRUE(load_ok("proxy_protocol: { trusted: }").proxy_protocol.trusted.empty());
}

TEST(EdgeSchema, ProxyProtocolTrustedBadCidrs) {
    expect_one_error("proxy_protocol:\n  trusted:\n    - 10.0.0.0/8\n    - 10.0.0.1/8\n",
                     "proxy_protocol.trusted[1]", 4,
                     "'10.0.0.1/8' has host bits set; did you mean 10.0.0.0/8?");
    expect_one_error("proxy_protocol: { trusted: [ 10.0.0.0/33 ] }", "proxy_protocol.trusted[0]", 1,
                     "prefix length 33 is too long for IPv4 (at most 32) in '10.0.0.0/33'");
    expect_one_error(
        "proxy_protocol: { trusted: [ lb.example.com ] }", "proxy_protocol.trusted[0]", 1,
        "'lb.example.com' is not an IPv4 or IPv6 address (host names are not accepted)");
    expect_one_error("proxy_protocol: { trusted: 10.0.0.0/8 }", "proxy_protocol.trusted", 1,
                     "expected a list of strings, got a string");
}

TEST(EdgeSchema, ProxyProtocolTrustedNeedsAStreamListener) {
    expect_one_error(
        "listen: [ \"udp://0.0.0.0:3478\" ]\nproxy_protocol:\n  trusted: [ 10.0.0.0/8 ]\n",
        "proxy_protocol.trusted", 3, "applies to tcp:// and tls:// listeners; none is configured");
    // No sources, nothing to apply.
    load_ok("listen: [ \"udp://0.0.0.0:3478\" ]\nproxy_protocol: { trusted: [] }\n");
    // A tcp:// listener is enough, and so is a tls:// one.
    load_ok("listen: [ \"tcp://0.0.0.0:3478\" ]\nproxy_protocol: { trusted: [ 10.0.0.0/8 ] }\n");
    load_ok(shared_port("proxy_protocol: { trusted: [ 10.0.0.0/8 ] }\n"));
}

}  // namespace
}  // namespace tern::config
