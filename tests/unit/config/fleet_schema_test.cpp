// The fleet section (fleet_schema.cpp): every key's default, accepted values and ranges, the
// fleet.redis URL forms, keys that need fleet.redis, and what a reload and the warning tier
// say about the section.
#include <gtest/gtest.h>
#include <unistd.h>

#include <array>
#include <climits>
#include <string>
#include <vector>

#include "tern/config/config.hpp"
#include "tern/config/config_changes.hpp"
#include "tern/config/config_warnings.hpp"
#include "tern/config/parse.hpp"

namespace tern::config {
namespace {

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

// A fleet section on line 1 with redis on a private address and `rest` as further keys (flow
// style, so every fleet error is on line 1).
std::string fleet_with(const std::string& rest) {
    return "fleet: { redis: \"redis://10.0.0.5\"" + (rest.empty() ? std::string() : ", " + rest) +
           " }\n";
}

// The one error of fleet_with(rest), which must be at `key` on line 1.
void expect_fleet_error(const std::string& rest, const std::string& key,
                        const std::string& message) {
    expect_one_error(fleet_with(rest), key, 1, message);
}

Parsed<RedisEndpoint> redis(std::string_view url) {
    return parse_redis_url(url);
}

RedisEndpoint endpoint(std::string host, std::uint16_t port = 6379, std::string user = {},
                       std::string password = {}, std::uint32_t db = 0) {
    return RedisEndpoint{std::move(host), port, std::move(user), std::move(password), db};
}

std::string this_host_name() {
    std::array<char, HOST_NAME_MAX + 1> name{};
    EXPECT_EQ(gethostname(name.data(), name.size()), 0);
    return name.data();
}

// --- defaults and every key ----------------------------------------------------------------

TEST(FleetSchema, AbsentMeansNoFleet) {
    const Config c = load_ok("");
    EXPECT_EQ(c.fleet, Fleet{});
    EXPECT_FALSE(c.fleet.redis);
    EXPECT_EQ(c.fleet.node_id, "");
    EXPECT_TRUE(c.fleet.advertise.empty());
    EXPECT_TRUE(c.fleet.advertise_tls.empty());
    EXPECT_EQ(c.fleet.tls_domain, "");
    EXPECT_EQ(c.fleet.allocate_wait_ms, 50u);
    EXPECT_EQ(c.fleet.lease_seconds, 15u);
    EXPECT_EQ(c.fleet.on_store_failure, StoreFailure::local);
    EXPECT_EQ(c.fleet.redirect_above, 0u);
    EXPECT_EQ(c.fleet.usage_stream, "");
    EXPECT_EQ(c.fleet.usage_stream_max, 100000u);
    EXPECT_EQ(c.fleet.key_prefix, "tern:");
    // An empty section is an absent one.
    EXPECT_EQ(load_ok("fleet:\n"), c);
}

TEST(FleetSchema, RedisAloneKeepsTheOtherDefaultsAndNamesTheNodeAfterTheHost) {
    const Config c = load_ok(fleet_with(""));
    Fleet expected;
    expected.redis = endpoint("10.0.0.5");
    expected.redis_url = "redis://10.0.0.5";
    expected.node_id = this_host_name();
    EXPECT_EQ(c.fleet, expected);
    EXPECT_FALSE(c.fleet.node_id.empty());
}

TEST(FleetSchema, EveryKeyInBlockStyle) {
    const Config c = load_ok(R"(fleet:
  redis: "redis://:s3cret@10.0.0.5:6380/2"
  node_id: turn-a.example_1
  advertise: ["192.0.2.10:3478", "[2001:db8::10]:3478"]
  advertise_tls: ["192.0.2.10:5349"]
  tls_domain: Turn-A.Example.com
  allocate_wait_ms: 1000
  lease_seconds: 3600
  on_store_failure: refuse
  redirect_above: 5000
  usage_stream: "tern:usage"
  usage_stream_max: 1
  key_prefix: "prod:tern:"
)");
    const Fleet& f = c.fleet;
    EXPECT_EQ(f.redis, endpoint("10.0.0.5", 6380, "", "s3cret", 2));
    EXPECT_EQ(f.redis_url, "redis://:***@10.0.0.5:6380/2");
    EXPECT_EQ(f.node_id, "turn-a.example_1");
    EXPECT_EQ(f.advertise,
              (std::vector<TransportAddress>{*TransportAddress::parse("192.0.2.10:3478"),
                                             *TransportAddress::parse("[2001:db8::10]:3478")}));
    EXPECT_EQ(f.advertise_tls,
              (std::vector<TransportAddress>{*TransportAddress::parse("192.0.2.10:5349")}));
    EXPECT_EQ(f.tls_domain, "turn-a.example.com");
    EXPECT_EQ(f.allocate_wait_ms, 1000u);
    EXPECT_EQ(f.lease_seconds, 3600u);
    EXPECT_EQ(f.on_store_failure, StoreFailure::refuse);
    EXPECT_EQ(f.redirect_above, 5000u);
    EXPECT_EQ(f.usage_stream, "tern:usage");
    EXPECT_EQ(f.usage_stream_max, 1u);
    EXPECT_EQ(f.key_prefix, "prod:tern:");
    // The other value of the enum, and the lower ends of the ranges.
    const Config low =
        load_ok(fleet_with("allocate_wait_ms: 1, lease_seconds: 3, on_store_failure: local, "
                           "redirect_above: 0, usage_stream: \"\", tls_domain: \"\""));
    EXPECT_EQ(low.fleet.allocate_wait_ms, 1u);
    EXPECT_EQ(low.fleet.lease_seconds, 3u);
    EXPECT_EQ(low.fleet.on_store_failure, StoreFailure::local);
    EXPECT_EQ(low.fleet.usage_stream, "");
    EXPECT_EQ(low.fleet.tls_domain, "");
    EXPECT_EQ(load_ok(fleet_with("redirect_above: 4294967295")).fleet.redirect_above, 4294967295u);
}

TEST(FleetSchema, StoreFailureToString) {
    EXPECT_STREQ(to_string(StoreFailure::local), "local");
    EXPECT_STREQ(to_string(StoreFailure::refuse), "refuse");
}

TEST(FleetSchema, UnknownKeysSuggestTheKnownOnes) {
    expect_fleet_error("lease_second: 10", "fleet.lease_second",
                       "unknown key, did you mean lease_seconds?");
    expect_one_error("fleat: {}", "fleat", 1, "unknown key, did you mean fleet?");
    expect_one_error("fleet: [ redis ]", "fleet", 1, "expected a map, got a list");
    expect_one_error("fleet: on", "fleet", 1, "expected a map, got a string");
}

// --- keys without fleet.redis ----------------------------------------------------------------

TEST(FleetSchema, EveryOtherKeyNeedsRedis) {
    for (const std::string key :
         {"node_id: a", "advertise: []", "advertise_tls: []", "tls_domain: a.example",
          "allocate_wait_ms: 50", "lease_seconds: 15", "on_store_failure: local",
          "redirect_above: 0", "usage_stream: s", "usage_stream_max: 5", "key_prefix: p"}) {
        const std::string name = key.substr(0, key.find(':'));
        expect_one_error("realm: x\nfleet:\n  " + key + "\n", "fleet." + name, 3,
                         "needs fleet.redis (without it this node runs on its own)");
    }
    // Each such key is named, not only the first.
    const auto two = load("fleet: { node_id: a, lease_seconds: 15 }\n");
    ASSERT_EQ(two.errors.size(), 2u) << all_errors(two);
    EXPECT_EQ(two.errors[1].key, "fleet.lease_seconds");
}

TEST(FleetSchema, ABadRedisStillCountsAsGivenForTheOtherKeys) {
    expect_one_error("fleet: { redis: \"http://10.0.0.5\", node_id: a }", "fleet.redis", 1,
                     "unknown scheme 'http' (expected redis://), in 'http://10.0.0.5'");
}

// --- fleet.redis ------------------------------------------------------------------------------

TEST(FleetSchema, RedisUrlForms) {
    EXPECT_EQ(redis("redis://10.0.0.5").value, endpoint("10.0.0.5"));
    EXPECT_EQ(redis("redis://10.0.0.5:6380").value, endpoint("10.0.0.5", 6380));
    EXPECT_EQ(redis("redis://10.0.0.5:65535/").value, endpoint("10.0.0.5", 65535));
    EXPECT_EQ(redis("redis://10.0.0.5/15").value, endpoint("10.0.0.5", 6379, "", "", 15));
    EXPECT_EQ(redis("redis://10.0.0.5/4294967294").value->db, 4294967294u);
    EXPECT_EQ(redis("redis://:s3cret@10.0.0.5").value, endpoint("10.0.0.5", 6379, "", "s3cret"));
    EXPECT_EQ(redis("redis://tern:s3cret@10.0.0.5:6379/1").value,
              endpoint("10.0.0.5", 6379, "tern", "s3cret", 1));
    // IPv6 in brackets, stored without them, as the resolver wants it.
    EXPECT_EQ(redis("redis://[2001:DB8::5]").value, endpoint("2001:db8::5"));
    EXPECT_EQ(redis("redis://:p@[::1]:7000/3").value, endpoint("::1", 7000, "", "p", 3));
    // Names, lowercased; one label and '_' are normal for container service names.
    EXPECT_EQ(redis("redis://Redis.Internal:6379").value, endpoint("redis.internal"));
    EXPECT_EQ(redis("redis://redis_1").value, endpoint("redis_1"));
    EXPECT_EQ(redis("REDIS://localhost").value, endpoint("localhost"));
    // %XX in user and password, and a raw '@', '/' or ':' in the password.
    EXPECT_EQ(redis("redis://us%65r:p%40ss%2Fw%3Ard@h").value,
              endpoint("h", 6379, "user", "p@ss/w:rd"));
    EXPECT_EQ(redis("redis://:a@b/c:d@h/1").value, endpoint("h", 6379, "", "a@b/c:d", 1));
}

TEST(FleetSchema, RedisUrlMistakes) {
    const auto error = [](std::string_view url) { return redis(url).error; };
    EXPECT_EQ(error("rediss://:p@10.0.0.5:6380"),
              "rediss:// (Redis over TLS) is not supported: hiredis 0.14 has no TLS; point "
              "redis:// at a local TLS tunnel (stunnel, spiped) instead, see docs/deployment.md");
    EXPECT_EQ(error("10.0.0.5:6379"),
              "expected redis://host[:port][/db] such as redis://10.0.0.5:6379, got "
              "'10.0.0.5:6379'");
    EXPECT_EQ(error("unix:///run/redis.sock"),
              "unknown scheme 'unix' (expected redis://), in 'unix:///run/redis.sock'");
    EXPECT_EQ(error("redis://10.0.0.5:0"),
              "port 0 is out of range 1-65535 in 'redis://10.0.0.5:0'");
    EXPECT_EQ(error("redis://10.0.0.5:65536"),
              "port 65536 is out of range 1-65535 in 'redis://10.0.0.5:65536'");
    EXPECT_EQ(error("redis://10.0.0.5:"), "missing port number in 'redis://10.0.0.5:'");
    EXPECT_EQ(error("redis://10.0.0.5:port"),
              "'port' is not a port number in 'redis://10.0.0.5:port'");
    EXPECT_EQ(error("redis://[::1]:0"), "port 0 is out of range 1-65535 in 'redis://[::1]:0'");
    EXPECT_EQ(error("redis://2001:db8::5"),
              "IPv6 addresses need brackets, e.g. redis://[2001:db8::5]:6379; got "
              "'redis://2001:db8::5'");
    EXPECT_EQ(error("redis://[2001:db8::5"),
              "missing ']' after the IPv6 address in "
              "'redis://[2001:db8::5'");
    EXPECT_EQ(error("redis://[10.0.0.5]"), "'[10.0.0.5]' is not a bracketed IPv6 address");
    EXPECT_EQ(error("redis://[::1]x"), "unexpected 'x' after '[::1]'");
    EXPECT_EQ(error("redis://"), "missing host in 'redis://'");
    EXPECT_EQ(error("redis://:6379"), "missing host in 'redis://:6379'");
    EXPECT_EQ(error("redis://:p@/0"), "missing host in 'redis://:***@/0'");
    EXPECT_EQ(error("redis://10.0.0"), "'10.0.0' is not an IPv4 address");
    EXPECT_EQ(error("redis://red is"),
              "'red is' holds ' '; a host name has letters, digits, '-', '_' and dots");
    EXPECT_EQ(error("redis://a..b"), "'a..b' has an empty label");
    EXPECT_EQ(error("redis://" + std::string(254, 'a')), "the host name is longer than 253 bytes");
    EXPECT_EQ(error("redis://h/x"), "database 'x' is not a number such as /0, in 'redis://h/x'");
    EXPECT_EQ(error("redis://h/4294967295"),
              "database '4294967295' is not a number such as /0, in 'redis://h/4294967295'");
    EXPECT_EQ(error("redis://h/0?timeout=1"),
              "URL parameters ('?', '#') are not supported, in 'redis://h/0?timeout=1'");
}

TEST(FleetSchema, RedisPasswordsNeverShowInErrors) {
    for (const std::string url :
         {"redis://s3cret@h", "redis://:s3cret@h:0", "redis://:s3cret%zz@h", "redis://u%4:s3cret@h",
          "redis://:s3cret@h/x", "redis://:s3cret%00@h", "redis://:s3cret@2001:db8::1",
          "redis://:s3cret@[::1", "redis://u:s3cret@h?x"}) {
        const auto parsed = redis(url);
        EXPECT_FALSE(parsed.value) << url;
        EXPECT_EQ(parsed.error.find("s3cret"), std::string::npos) << parsed.error;
    }
    EXPECT_EQ(redis("redis://s3cret@h").error,
              "the part before '@' has no ':'; write redis://:password@host for a password "
              "alone, or redis://user:password@host");
    EXPECT_EQ(redis("redis://:s3cret%zz@h").error,
              "the password has a bad %-escape (expected %XX, two hex digits, not %00), in "
              "'redis://:***@h'");
    EXPECT_EQ(redis("redis://u%4:s3cret@h").error,
              "the user name has a bad %-escape (expected %XX, two hex digits, not %00), in "
              "'redis://u%4:***@h'");
    EXPECT_EQ(redis("redis://u:@h").error,
              "the password after ':' is empty; leave out the part up to '@' for a Redis "
              "without AUTH, in 'redis://u:***@h'");
}

TEST(FleetSchema, MaskedRedisUrl) {
    EXPECT_EQ(masked_redis_url("redis://10.0.0.5:6379/0"), "redis://10.0.0.5:6379/0");
    EXPECT_EQ(masked_redis_url("redis://:s3cret@10.0.0.5:6379/0"), "redis://:***@10.0.0.5:6379/0");
    EXPECT_EQ(masked_redis_url("redis://tern:s3cret@h"), "redis://tern:***@h");
    EXPECT_EQ(masked_redis_url("redis://:a@b:c@h"), "redis://:***@h");
    EXPECT_EQ(masked_redis_url("redis://nocolon@h"), "redis://***@h");
    EXPECT_EQ(masked_redis_url("x:y@h"), "x:***@h");
}

TEST(FleetSchema, RedisInTheFile) {
    const Config c = load_ok("fleet:\n  redis: redis://tern:p%40ss@[fd00::5]:6380/1\n");
    EXPECT_EQ(c.fleet.redis, endpoint("fd00::5", 6380, "tern", "p@ss", 1));
    EXPECT_EQ(c.fleet.redis_url, "redis://tern:***@[fd00::5]:6380/1");
    expect_one_error("realm: x\nfleet:\n  redis: \"rediss://:p@10.0.0.5\"\n", "fleet.redis", 3,
                     redis("rediss://x").error);
    expect_one_error("fleet: { redis: \"redis://10.0.0.5:99999\" }", "fleet.redis", 1,
                     "port 99999 is out of range 1-65535 in 'redis://10.0.0.5:99999'");
    expect_one_error("fleet: { redis: \"\" }", "fleet.redis", 1,
                     "must not be empty; leave fleet out for a node on its own");
    expect_one_error("fleet: { redis: [ a ] }", "fleet.redis", 1, "expected a string, got a list");
    // The whole file's errors never carry the password either.
    const auto result = load("fleet: { redis: \"redis://:s3cret@h:0\" }\n");
    EXPECT_EQ(all_errors(result).find("s3cret"), std::string::npos) << all_errors(result);
}

// --- the other keys ---------------------------------------------------------------------------

TEST(FleetSchema, NodeId) {
    EXPECT_EQ(load_ok(fleet_with("node_id: A.b_c-9")).fleet.node_id, "A.b_c-9");
    EXPECT_EQ(load_ok(fleet_with("node_id: " + std::string(64, 'n'))).fleet.node_id.size(), 64u);
    expect_fleet_error("node_id: " + std::string(65, 'n'), "fleet.node_id",
                       "too long: 65 bytes, at most 64");
    expect_fleet_error("node_id: \"\"", "fleet.node_id", "must not be empty");
    expect_fleet_error("node_id: \"a@b\"", "fleet.node_id",
                       "'a@b' holds '@'; a node id has letters, digits, '.', '_' and '-'");
    expect_fleet_error("node_id: \"a/b\"", "fleet.node_id",
                       "'a/b' holds '/'; a node id has letters, digits, '.', '_' and '-'");
    expect_fleet_error("node_id: \"a b\"", "fleet.node_id",
                       "'a b' holds ' '; a node id has letters, digits, '.', '_' and '-'");
}

TEST(FleetSchema, AdvertiseLists) {
    const Config c = load_ok(
        fleet_with("advertise: [ \"[::ffff:192.0.2.1]:3478\" ], advertise_tls: [ \"[::1]:443\" ]"));
    EXPECT_EQ(c.fleet.advertise,
              (std::vector<TransportAddress>{*TransportAddress::parse("192.0.2.1:3478")}));
    EXPECT_EQ(c.fleet.advertise_tls,
              (std::vector<TransportAddress>{*TransportAddress::parse("[::1]:443")}));
    for (const std::string key : {"advertise", "advertise_tls"}) {
        const std::string path = "fleet." + key;
        expect_fleet_error(key + ": [ \"192.0.2.1:0\" ]", path + "[0]",
                           "port 0 is out of range 1-65535");
        expect_fleet_error(key + ": [ \"192.0.2.1\" ]", path + "[0]",
                           "missing port in '192.0.2.1' (expected ip:port)");
        expect_fleet_error(key + ": [ \"2001:db8::1:3478\" ]", path + "[0]",
                           "IPv6 addresses need brackets, e.g. [2001:db8::1]:3478; got "
                           "'2001:db8::1:3478'");
        expect_fleet_error(key + ": [ \"turn.example.com:3478\" ]", path + "[0]",
                           "'turn.example.com' is not an IPv4 or IPv6 address (host names are "
                           "not accepted)");
        expect_fleet_error(key + ": [ \"0.0.0.0:3478\" ]", path + "[0]",
                           "'0.0.0.0:3478' has the unspecified address; give the address "
                           "clients reach this node on");
        expect_fleet_error(key + ": [ \"192.0.2.1:3478\", \"192.0.2.1:3478\" ]", path + "[1]",
                           "duplicate of " + path + "[0]");
        expect_fleet_error(key + ": \"192.0.2.1:3478\"", path,
                           "expected a list of strings, got a string");
    }
}

TEST(FleetSchema, TlsDomain) {
    expect_fleet_error("tls_domain: 192.0.2.1", "fleet.tls_domain",
                       "'192.0.2.1' is an IP address; ALTERNATE-DOMAIN carries the host name the "
                       "certificate is for");
    expect_fleet_error("tls_domain: \"*.example.com\"", "fleet.tls_domain",
                       "'*.example.com' is a wildcard; give this node's own name, as a client "
                       "checks it against the certificate");
    expect_fleet_error("tls_domain: \"turn_a.example.com\"", "fleet.tls_domain",
                       "'turn_a.example.com' holds '_'; a host name has letters, digits, hyphens "
                       "and dots");
}

TEST(FleetSchema, NumbersAndTheirRanges) {
    expect_fleet_error("allocate_wait_ms: 0", "fleet.allocate_wait_ms",
                       "expected a whole number of milliseconds from 1 to 1000, got '0'");
    expect_fleet_error("allocate_wait_ms: 1001", "fleet.allocate_wait_ms",
                       "expected a whole number of milliseconds from 1 to 1000, got '1001'");
    expect_fleet_error("allocate_wait_ms: 50ms", "fleet.allocate_wait_ms",
                       "expected a whole number of milliseconds from 1 to 1000, got '50ms'");
    expect_fleet_error("lease_seconds: 2", "fleet.lease_seconds",
                       "expected a whole number of seconds from 3 to 3600, got '2'");
    expect_fleet_error("lease_seconds: 3601", "fleet.lease_seconds",
                       "expected a whole number of seconds from 3 to 3600, got '3601'");
    expect_fleet_error("redirect_above: -1", "fleet.redirect_above",
                       "expected a whole number from 0 to 4294967295, got '-1'");
    expect_fleet_error("redirect_above: 4294967296", "fleet.redirect_above",
                       "expected a whole number from 0 to 4294967295, got '4294967296'");
    expect_fleet_error("usage_stream_max: 0", "fleet.usage_stream_max",
                       "expected a whole number from 1 to 4294967295, got '0'");
    expect_fleet_error("usage_stream_max: {}", "fleet.usage_stream_max",
                       "expected a number, got a map");
}

TEST(FleetSchema, StoreFailureWords) {
    expect_fleet_error("on_store_failure: fail", "fleet.on_store_failure",
                       "unknown value 'fail' (expected local or refuse)");
}

TEST(FleetSchema, KeyPrefixAndUsageStream) {
    EXPECT_EQ(load_ok(fleet_with("key_prefix: \"{t}:\"")).fleet.key_prefix, "{t}:");
    expect_fleet_error("key_prefix: \"\"", "fleet.key_prefix", "must not be empty, e.g. \"tern:\"");
    expect_fleet_error("key_prefix: \"my tern:\"", "fleet.key_prefix",
                       "'my tern:' holds a blank or control character; a key prefix has none");
    expect_fleet_error("key_prefix: \"t\\t\"", "fleet.key_prefix",
                       "'t\\x09' holds a blank or control character; a key prefix has none");
    expect_fleet_error("usage_stream: \"tern usage\"", "fleet.usage_stream",
                       "'tern usage' holds a blank or control character; a stream key has none");
}

// --- reload -----------------------------------------------------------------------------------

std::string joined(const Config& before, const Config& after) {
    std::string text;
    for (const auto& c : describe_changes(before, after)) text += (text.empty() ? "" : ", ") + c;
    return text;
}

TEST(FleetSchema, ReloadTurningTheFleetOnOrOffNeedsARestart) {
    const Config off = load_ok("");
    const Config on = load_ok("fleet: { redis: \"redis://:s3cret@10.0.0.5\", node_id: a }\n");
    EXPECT_EQ(joined(off, on),
              "fleet.redis off -> redis://:***@10.0.0.5 (takes effect at restart)");
    EXPECT_EQ(joined(on, off),
              "fleet.redis redis://:***@10.0.0.5 -> off (takes effect at restart)");
    EXPECT_EQ(joined(on, on), "");
}

TEST(FleetSchema, ReloadNamesRestartKeysAndChangedOnes) {
    const auto fleet = [](const std::string& keys) {
        return load_ok("fleet: { redis: \"redis://:s3cret@10.0.0.5\", node_id: a" + keys + " }\n");
    };
    const Config before = fleet("");
    EXPECT_EQ(joined(before, fleet(", key_prefix: \"x:\"")),
              "fleet.key_prefix tern: -> x: (takes effect at restart)");
    EXPECT_EQ(joined(before, load_ok("fleet: { redis: \"redis://:s3cret@10.0.0.5\", node_id: b }")),
              "fleet.node_id a -> b (takes effect at restart)");
    EXPECT_EQ(joined(before, load_ok("fleet: { redis: \"redis://:s3cret@10.0.0.6\", node_id: a }")),
              "fleet.redis redis://:***@10.0.0.5 -> redis://:***@10.0.0.6 (takes effect at "
              "restart)");
    // A new password: the key alone, never the password.
    const auto new_password =
        joined(before, load_ok("fleet: { redis: \"redis://:other@10.0.0.5\", node_id: a }"));
    EXPECT_EQ(new_password, "fleet.redis (takes effect at restart)");
    // The same endpoint written another way changes nothing.
    EXPECT_EQ(joined(before, load_ok("fleet: { redis: \"redis://:s3cret@10.0.0.5:6379/0\", "
                                     "node_id: a }")),
              "");
    EXPECT_EQ(joined(before, fleet(", advertise: [ \"192.0.2.1:3478\" ], advertise_tls: [ "
                                   "\"192.0.2.1:443\" ], tls_domain: t.example, "
                                   "allocate_wait_ms: 20, lease_seconds: 30, on_store_failure: "
                                   "refuse, redirect_above: 10, usage_stream: u, "
                                   "usage_stream_max: 5")),
              "fleet.advertise, fleet.advertise_tls, fleet.tls_domain \"\" -> t.example, "
              "fleet.allocate_wait_ms 50 -> 20, fleet.lease_seconds 15 -> 30, "
              "fleet.on_store_failure local -> refuse, fleet.redirect_above 0 -> 10, "
              "fleet.usage_stream \"\" -> u, fleet.usage_stream_max 100000 -> 5");
}

// --- warnings ---------------------------------------------------------------------------------

// Credentials and a nonce secret that raise no warning of their own (lines 1-2); the fleet
// section follows on line 3.
const std::string clean =
    "auth: { secrets: [ \"0123456789abcdef0123456789abcdef\" ],\n"     // 1
    "        nonce_secret: \"0123456789abcdef0123456789abcdef\" }\n";  // 2

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

void expect_one_warning(const std::string& yaml, const std::string& key, int line,
                        const std::string& part) {
    const auto warnings = warnings_of(yaml);
    ASSERT_EQ(warnings.size(), 1u) << yaml << "\n" << all(warnings);
    EXPECT_EQ(warnings[0].key, key) << all(warnings);
    EXPECT_EQ(warnings[0].line, line) << all(warnings);
    EXPECT_NE(warnings[0].message.find(part), std::string::npos) << all(warnings);
}

// A fleet on `url` advertising an address, on lines 3-5.
std::string fleet_on(const std::string& url) {
    return clean + "fleet:\n  redis: \"" + url + "\"\n  advertise: [ \"192.0.2.10:3478\" ]\n";
}

TEST(FleetSchema, NoWarningsOnAPrivateOrLoopbackRedis) {
    EXPECT_TRUE(warnings_of(clean).empty()) << all(warnings_of(clean));
    for (const std::string url : {"redis://127.0.0.1", "redis://[::1]", "redis://10.1.2.3",
                                  "redis://172.31.0.1", "redis://192.168.1.1", "redis://[fd00::5]",
                                  "redis://[::ffff:10.0.0.5]", "redis://redis.internal"}) {
        EXPECT_TRUE(warnings_of(fleet_on(url)).empty()) << url << "\n"
                                                        << all(warnings_of(fleet_on(url)));
    }
}

TEST(FleetSchema, WarnsOnAPublicRedis) {
    for (const std::string url : {"redis://:p@203.0.113.5:6379", "redis://172.32.0.1",
                                  "redis://[2001:db8::5]", "redis://100.64.0.1"}) {
        expect_one_warning(fleet_on(url), "fleet.redis", 4,
                           "the Redis link is plain text; keep it on a private network or a "
                           "TLS tunnel");
    }
    EXPECT_EQ(warnings_of(fleet_on("redis://203.0.113.5"))[0].message,
              "203.0.113.5 is neither loopback nor a private address: the Redis link is plain "
              "text; keep it on a private network or a TLS tunnel");
}

TEST(FleetSchema, WarnsWithoutAdvertisedAddresses) {
    const std::string fleet = clean + "fleet:\n  redis: redis://10.0.0.5\n";
    expect_one_warning(fleet, "fleet", 3,
                       "fleet.advertise is empty: other nodes cannot redirect clients to this "
                       "one; list");
    // Written empty: that line is named; with only advertise_tls, UDP and TCP clients miss out.
    expect_one_warning(fleet + "  advertise: []\n  advertise_tls: [ \"192.0.2.10:443\" ]\n",
                       "fleet.advertise", 5,
                       "other nodes cannot redirect clients to this one over UDP or TCP");
}

TEST(FleetSchema, WarnsWithoutASharedNonceSecret) {
    const std::string yaml =
        "auth: { secrets: [ \"0123456789abcdef0123456789abcdef\" ] }\n"
        "fleet: { redis: redis://10.0.0.5, advertise: [ \"192.0.2.10:3478\" ] }\n";
    expect_one_warning(yaml, "fleet", 2,
                       "no auth.nonce_secret: nonces minted here are refused by the other nodes");
    // Without a fleet a random nonce key is fine.
    EXPECT_TRUE(
        warnings_of("auth: { secrets: [ \"0123456789abcdef0123456789abcdef\" ] }\n").empty());
}

}  // namespace
}  // namespace tern::config
