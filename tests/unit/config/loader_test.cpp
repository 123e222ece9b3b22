// YAML -> Config: the contract example, the embedded default, and every kind of error with
// the exact key and line it is reported at.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <string>

#include "tern/config/config.hpp"

namespace tern::config {
namespace {

const std::string data_dir = TERN_TEST_DATA_DIR;
const std::string cert_path = data_dir + "/tls/cert.pem";
const std::string key_path = data_dir + "/tls/key.pem";

TransportAddress v4(std::uint8_t a, std::uint8_t b, std::uint8_t c, std::uint8_t d,
                    std::uint16_t port = 0) {
    return TransportAddress::v4({a, b, c, d}, port);
}

TransportAddress v6(std::array<std::uint8_t, 16> bytes, std::uint16_t port = 0) {
    return TransportAddress::v6(bytes, port);
}

// 2001:db8::7 and ::, byte by byte.
const std::array<std::uint8_t, 16> doc_v6_7 = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0,
                                               0,    0,    0,    0,    0, 0, 0, 7};
const std::array<std::uint8_t, 16> any_v6 = {};

LoadResult load(const std::string& yaml) {
    return load_config_text(yaml, "test.yaml");
}

Config load_ok(const std::string& yaml) {
    const auto result = load(yaml);
    for (const auto& error : result.errors) ADD_FAILURE() << error.to_string();
    EXPECT_TRUE(result.config);
    return result.config.value_or(Config{});
}

std::string all_errors(const LoadResult& result) {
    std::string text;
    for (const auto& error : result.errors) text += error.to_string() + "\n";
    return text;
}

// Loads `yaml`, which must hold exactly one problem, and checks where it was reported.
void expect_one_error(const std::string& yaml, const std::string& key, int line,
                      const std::string& message) {
    const auto result = load(yaml);
    EXPECT_FALSE(result.config) << yaml;
    ASSERT_EQ(result.errors.size(), 1u) << yaml << "\n" << all_errors(result);
    const auto& error = result.errors.front();
    EXPECT_EQ(error.source, "test.yaml");
    EXPECT_EQ(error.key, key) << error.to_string();
    EXPECT_EQ(error.line, line) << error.to_string();
    EXPECT_EQ(error.message, message) << error.to_string();
}

// Same, but only part of the message is fixed (the rest names paths or yaml-cpp's wording).
void expect_one_error_containing(const std::string& yaml, const std::string& key, int line,
                                 const std::string& message_part) {
    const auto result = load(yaml);
    EXPECT_FALSE(result.config) << yaml;
    ASSERT_EQ(result.errors.size(), 1u) << yaml << "\n" << all_errors(result);
    const auto& error = result.errors.front();
    EXPECT_EQ(error.key, key) << error.to_string();
    EXPECT_EQ(error.line, line) << error.to_string();
    EXPECT_NE(error.message.find(message_part), std::string::npos) << error.to_string();
}

std::vector<Listener> default_listeners() {
    return {{Transport::udp, v4(0, 0, 0, 0, 3478)},
            {Transport::tcp, v4(0, 0, 0, 0, 3478)},
            {Transport::udp, v6(any_v6, 3478)},
            {Transport::tcp, v6(any_v6, 3478)}};
}

// The contract example, with certificate paths that exist on the test machine.
std::string contract_yaml() {
    return R"(realm: example.org
listen: [ "udp://0.0.0.0:3478", "tcp://0.0.0.0:3478", "tls://0.0.0.0:5349", "udp://[::]:3478" ]
tls: { certificate: )" +
           cert_path + ", private_key: " + key_path + R"( }
auth:
  secrets: [ "s3cr3t-current", "s3cr3t-previous" ]   # TURN REST API shared secrets
  users: { alice: { password: wonderland }, bob: { key: "b70615a74a524becc6960f540634bb00" } }
relay:
  addresses: [ 203.0.113.7, "2001:db8::7" ]          # where relay sockets bind
  external_addresses: { 10.0.0.5: 203.0.113.7 }      # private -> advertised (1:1 NAT)
  ports: 49152-65535
  allow_peers: [ ]                                   # CIDRs exempt from the default deny list
  deny_peers: [ ]                                    # CIDRs refused in addition
limits: { max_lifetime: 3600 }
threads: auto
log: { level: info, format: text }
metrics: { listen: "127.0.0.1:9641" }                # absent = off
)";
}

Config expected_contract_config(const std::string& certificate, const std::string& key) {
    Config c;
    c.realm = "example.org";
    c.listen = {{Transport::udp, v4(0, 0, 0, 0, 3478)},
                {Transport::tcp, v4(0, 0, 0, 0, 3478)},
                {Transport::tls, v4(0, 0, 0, 0, 5349)},
                {Transport::udp, v6(any_v6, 3478)}};
    c.tls = TlsFiles{certificate, key};
    c.auth.secrets = {"s3cr3t-current", "s3cr3t-previous"};
    c.auth.users = {
        StaticUser{"alice", "wonderland", std::nullopt},
        StaticUser{"bob", "",
                   std::array<std::uint8_t, 16>{0xb7, 0x06, 0x15, 0xa7, 0x4a, 0x52, 0x4b, 0xec,
                                                0xc6, 0x96, 0x0f, 0x54, 0x06, 0x34, 0xbb, 0x00}},
    };
    c.relay.addresses = {v4(203, 0, 113, 7), v6(doc_v6_7)};
    c.relay.external_addresses = {ExternalAddress{v4(10, 0, 0, 5), v4(203, 0, 113, 7)}};
    c.relay.ports = PortRange{49152, 65535};
    c.limits.max_lifetime = 3600;
    c.threads = 0;
    c.log = Log{LogLevel::info, LogFormat::text};
    c.metrics.listen = v4(127, 0, 0, 1, 9641);
    c.software = "tern";
    return c;
}

// --- whole documents -----------------------------------------------------------------------

TEST(LoadConfig, ContractExampleParsesToExactValues) {
    const Config config = load_ok(contract_yaml());
    EXPECT_EQ(config, expected_contract_config(cert_path, key_path));
    // Field by field as well, so a mismatch says which one.
    const Config expected = expected_contract_config(cert_path, key_path);
    EXPECT_EQ(config.listen, expected.listen);
    EXPECT_EQ(config.auth, expected.auth);
    EXPECT_EQ(config.relay, expected.relay);
    EXPECT_EQ(config.metrics, expected.metrics);
}

TEST(LoadConfig, ContractExampleFileResolvesCertificatesBesideIt) {
    const std::string config_dir = data_dir + "/good-configs";
    const auto result = load_config_file(config_dir + "/full-contract.yaml");
    ASSERT_TRUE(result.config) << all_errors(result);
    Config expected =
        expected_contract_config(config_dir + "/../tls/cert.pem", config_dir + "/../tls/key.pem");
    EXPECT_EQ(*result.config, expected);
}

TEST(LoadConfig, EmbeddedDefaultListensOnUdpAndTcp3478EverywhereWithNoSecrets) {
    const auto result = load_embedded_default();
    ASSERT_TRUE(result.config) << all_errors(result);
    const Config& config = *result.config;
    EXPECT_EQ(config.listen, default_listeners());
    EXPECT_EQ(config.realm, "tern");
    EXPECT_TRUE(config.auth.secrets.empty());
    EXPECT_TRUE(config.auth.users.empty());
    EXPECT_FALSE(config.tls);
    EXPECT_FALSE(config.metrics.listen);
    // Apart from the listeners, the embedded default is exactly the struct's defaults.
    Config rest = config;
    rest.listen.clear();
    EXPECT_EQ(rest, Config{});
}

TEST(LoadConfig, EmbeddedDefaultTextNamesItsListeners) {
    const std::string text(embedded_default_yaml());
    for (const char* url :
         {"udp://0.0.0.0:3478", "tcp://0.0.0.0:3478", "udp://[::]:3478", "tcp://[::]:3478"}) {
        EXPECT_NE(text.find(url), std::string::npos) << url;
    }
}

TEST(LoadConfig, EmptyDocumentIsTheEmbeddedDefault) {
    EXPECT_EQ(load_ok(""), *load_embedded_default().config);
    EXPECT_EQ(load_ok("# nothing but a comment\n"), *load_embedded_default().config);
}

TEST(LoadConfig, FileWithoutListenGetsTheDefaultListeners) {
    const Config config = load_ok("realm: example.org\n");
    EXPECT_EQ(config.realm, "example.org");
    EXPECT_EQ(config.listen, default_listeners());
}

TEST(LoadConfig, EmptySectionsKeepTheirDefaults) {
    const Config config = load_ok("auth:\nrelay:\nlog:\nlimits:\nmetrics:\ntls:\n");
    Config expected;
    expected.listen = default_listeners();
    EXPECT_EQ(config, expected);
}

TEST(LoadConfig, BlockStyleAndEveryOptionalValue) {
    const Config config = load_ok(R"(listen:
  - udp://127.0.0.1:0
  - "tcp://[::1]:0"
relay:
  ports: 50000-50001
  allow_peers:
    - 10.0.0.0/8
    - "::1"
  deny_peers: [ 198.51.100.0/24 ]
threads: 256
log:
  level: critical
  format: json
metrics:
  listen: "[::1]:9641"
limits:
  max_lifetime: 86400
software: ""
)");
    EXPECT_EQ(config.listen.size(), 2u);
    EXPECT_EQ(config.listen[1].to_url(), "tcp://[::1]:0");
    EXPECT_EQ(config.relay.ports, (PortRange{50000, 50001}));
    ASSERT_EQ(config.relay.allow_peers.size(), 2u);
    EXPECT_EQ(config.relay.allow_peers[0].to_string(), "10.0.0.0/8");
    EXPECT_EQ(config.relay.allow_peers[1].to_string(), "::1/128");
    ASSERT_EQ(config.relay.deny_peers.size(), 1u);
    EXPECT_EQ(config.relay.deny_peers[0].to_string(), "198.51.100.0/24");
    EXPECT_EQ(config.threads, 256u);
    EXPECT_EQ(config.log, (Log{LogLevel::critical, LogFormat::json}));
    ASSERT_TRUE(config.metrics.listen);
    EXPECT_EQ(config.metrics.listen->to_string(), "[::1]:9641");
    EXPECT_EQ(config.limits.max_lifetime, 86400u);
    EXPECT_EQ(config.software, "");
}

TEST(LoadConfig, EveryLogLevelIsAccepted) {
    const std::pair<const char*, LogLevel> levels[] = {
        {"trace", LogLevel::trace},      {"debug", LogLevel::debug}, {"info", LogLevel::info},
        {"warn", LogLevel::warn},        {"error", LogLevel::error}, {"off", LogLevel::off},
        {"critical", LogLevel::critical}};
    for (const auto& [name, level] : levels) {
        EXPECT_EQ(load_ok(std::string("log: { level: ") + name + " }").log.level, level) << name;
    }
}

TEST(LoadConfig, AnchorsAndAliasesWork) {
    // A list anchored as secrets and reused as peers: odd, but YAML allows it.
    const Config config = load_ok(
        "software: &x 192.0.2.1\nauth:\n  secrets: &s [ 10.0.0.0/8 ]\n"
        "relay:\n  allow_peers: [ *x ]\n  deny_peers: *s\n");
    EXPECT_EQ(config.software, "192.0.2.1");
    EXPECT_EQ(config.auth.secrets, std::vector<std::string>{"10.0.0.0/8"});
    ASSERT_EQ(config.relay.allow_peers.size(), 1u);
    EXPECT_EQ(config.relay.allow_peers[0].to_string(), "192.0.2.1/32");
    ASSERT_EQ(config.relay.deny_peers.size(), 1u);
    EXPECT_EQ(config.relay.deny_peers[0].to_string(), "10.0.0.0/8");
}

// --- unknown keys, wrong types, duplicate keys ----------------------------------------------

TEST(LoadConfigErrors, UnknownKeySuggestsTheClosestKnownKey) {
    expect_one_error("realm: x\nrelay:\n  portz: 49152-65535\n", "relay.portz", 3,
                     "unknown key, did you mean ports?");
    expect_one_error("lisen: [ \"udp://0.0.0.0:3478\" ]\n", "lisen", 1,
                     "unknown key, did you mean listen?");
    // Only the misspelling is reported, not also "needs a password or a key".
    expect_one_error("auth:\n  users:\n    bob: { pasword: x }\n", "auth.users.bob.pasword", 3,
                     "unknown key, did you mean password?");
}

TEST(LoadConfigErrors, UnknownKeyFarFromAnyKnownKeyGetsNoSuggestion) {
    expect_one_error("bananas: 3\n", "bananas", 1, "unknown key");
    expect_one_error("log:\n  colour: true\n", "log.colour", 2, "unknown key");
}

TEST(LoadConfigErrors, WrongTypes) {
    expect_one_error("listen: \"udp://0.0.0.0:3478\"\n", "listen", 1,
                     "expected a list of strings, got a string");
    expect_one_error("realm: [ a, b ]\n", "realm", 1, "expected a string, got a list");
    expect_one_error("log: debug\n", "log", 1, "expected a map, got a string");
    expect_one_error("relay: [ 1, 2 ]\n", "relay", 1, "expected a map, got a list");
    expect_one_error("auth:\n  secrets:\n    - [ nested ]\n", "auth.secrets[0]", 3,
                     "expected a string, got a list");
    expect_one_error("auth:\n  users: [ alice ]\n", "auth.users", 2, "expected a map, got a list");
    expect_one_error("auth:\n  users:\n    alice: wonderland\n", "auth.users.alice", 3,
                     "expected a map with password or key, got a string");
    expect_one_error("threads: [ 4 ]\n", "threads", 1, "expected auto or a number, got a list");
    expect_one_error("limits: { max_lifetime: { s: 1 } }\n", "limits.max_lifetime", 1,
                     "expected a number of seconds, got a map");
    expect_one_error("realm:\n", "realm", 1, "expected a string, got nothing");
}

TEST(LoadConfigErrors, DuplicateKeyNamesTheFirstOne) {
    expect_one_error("realm: a\nthreads: 2\nrealm: b\n", "realm", 3,
                     "duplicate key (first given on line 1)");
    expect_one_error("log:\n  level: info\n  level: debug\n", "log.level", 3,
                     "duplicate key (first given on line 2)");
    expect_one_error("auth:\n  users:\n    a: { password: x }\n    a: { password: y }\n",
                     "auth.users.a", 4, "duplicate key (first given on line 3)");
}

TEST(LoadConfigErrors, KeysMustBePlainNames) {
    expect_one_error("[ a ]: 1\n", "", 1, "keys must be plain names, got a list");
}

TEST(LoadConfigErrors, TopLevelMustBeAMap) {
    expect_one_error("- realm: x\n- threads: 2\n", "", 1,
                     "the configuration must be a map of keys such as realm and listen, got a "
                     "list");
    expect_one_error("just some words\n", "", 1,
                     "the configuration must be a map of keys such as realm and listen, got a "
                     "string");
}

TEST(LoadConfigErrors, MoreThanOneDocument) {
    expect_one_error("realm: a\n---\nrealm: b\n", "", 2,
                     "more than one YAML document; a config is a single document");
    expect_one_error("realm: a\n...\n---\n", "", 3,
                     "more than one YAML document; a config is a single document");
}

TEST(LoadConfigErrors, StrayTextAfterTheDocument) {
    // yaml-cpp 0.7 would loop forever on these in YAML::LoadAll (found by fuzzing).
    expect_one_error(",", "", 1, "unexpected ',' after the end of the configuration");
    expect_one_error("{ realm: a },\n", "", 1, "unexpected ',' after the end of the configuration");
    expect_one_error("# comment\n[ a ]\n  ,\n", "", 3,
                     "unexpected ',' after the end of the configuration");
}

// --- YAML syntax: yaml-cpp's exceptions come back as errors --------------------------------

TEST(LoadConfigErrors, TabIndentationIsASyntaxErrorThatSaysSo) {
    expect_one_error("log:\n\tlevel: debug\n", "", 2,
                     "YAML syntax error: illegal map value (YAML indents with spaces, not tabs)");
}

TEST(LoadConfigErrors, UnterminatedQuoteIsReportedOnTheQuotesLine) {
    // yaml-cpp 0.7 itself would accept the first two, swallowing the rest of the file.
    const auto open_quote = [](int stopped, const std::string& symptom) {
        return "YAML syntax error: a quote opened on this line is not closed (the parser "
               "stopped on line " +
               std::to_string(stopped) + ": " + symptom + ")";
    };
    expect_one_error("realm: \"example.org\n", "", 1, open_quote(1, "illegal EOF in scalar"));
    expect_one_error("threads: 2\nrealm: 'example.org\nlog: {}\n\n", "", 2,
                     open_quote(3, "illegal EOF in scalar"));
    expect_one_error("realm: 'it''s' # '\nsoftware: \"a\\\"b\" # \"\nlog: [ \"x\n", "", 3,
                     open_quote(3, "illegal EOF in scalar"));
    expect_one_error("realm: \"example.org", "", 1, open_quote(1, "illegal EOF in scalar"));
    // The quote swallows the next line's opening quote, and the parser trips over the rest.
    expect_one_error("realm: \"example.org\nlisten: [ \"udp://0.0.0.0:3478\" ]\n", "", 1,
                     open_quote(2, "end of map not found"));
}

TEST(LoadConfigErrors, UnterminatedFlowListIsASyntaxError) {
    expect_one_error("listen: [ \"udp://0.0.0.0:3478\"\nlog: { level: info }\n", "", 2,
                     "YAML syntax error: end of sequence flow not found");
}

TEST(LoadConfigErrors, UndefinedAliasIsAnError) {
    expect_one_error("realm: *nowhere\n", "", 1,
                     "YAML syntax error: the referenced anchor is not defined");
}

TEST(LoadConfigErrors, DeepNestingIsRefusedBeforeParsing) {
    expect_one_error_containing("realm: " + std::string(100000, '[') + "\n", "", 1,
                                "nesting too deep");
    std::string dashes;
    for (int i = 0; i < 50000; ++i) dashes += "- ";
    expect_one_error_containing(dashes + "x\n", "", 1, "nesting too deep");
    std::string indented;
    for (int i = 0; i < 300; ++i)
        indented += std::string(static_cast<std::size_t>(i), ' ') + "k:\n";
    const auto result = load(indented);
    ASSERT_FALSE(result.errors.empty());
    EXPECT_NE(result.errors.front().message.find("nesting too deep"), std::string::npos);
}

TEST(LoadConfig, DeeplyIndentedBlankAndCommentLinesAreNotNesting) {
    const std::string far(300, ' ');
    EXPECT_EQ(load_ok("realm: a\n" + far + "\n" + far + "# note\nthreads: 2\n").threads, 2u);
}

TEST(LoadConfigErrors, NestingErrorLineCountsLinesAsYamlCppDoes) {
    // CRLF is one line break; the deep line is the third.
    expect_one_error_containing(
        "realm: a\r\nthreads: 2\r\nsoftware: " + std::string(300, '[') + "\r\n", "", 3,
        "nesting too deep");
}

TEST(LoadConfigErrors, DeepNestingHiddenFromThePreScanIsStillRefused) {
    // Closing brackets inside quotes fool the pre-scan; yaml-cpp's depth guard catches it.
    std::string hidden = "realm: ";
    for (int i = 0; i < 3000; ++i) hidden += "[ \"]\", ";
    expect_one_error(hidden + "\n", "", 1, "YAML nesting too deep");
}

TEST(LoadConfigErrors, ModerateNestingIsStillParsed) {
    // Forty brackets are far beyond any real config but well within the limit; the loader
    // must get as far as the type check.
    expect_one_error("realm: " + std::string(40, '[') + std::string(40, ']') + "\n", "realm", 1,
                     "expected a string, got a list");
}

TEST(LoadConfigErrors, OversizedInputIsRefusedBeforeParsing) {
    std::string huge = "realm: x\n";
    huge += "# " + std::string(max_config_bytes, 'x') + "\n";
    expect_one_error(huge, "", 0, "file is larger than 1 MiB; refusing to parse it");
}

// --- listeners ---------------------------------------------------------------------------------

TEST(LoadConfigErrors, ListenPortOutOfRange) {
    expect_one_error("listen:\n  - udp://0.0.0.0:3478\n  - tcp://0.0.0.0:65536\n", "listen[1]", 3,
                     "port 65536 is out of range 1-65535 (or 0 to let the kernel choose)");
}

TEST(LoadConfig, ListenPortZeroLetsTheKernelChooseAndMayRepeat) {
    const Config config = load_ok("listen: [ \"udp://127.0.0.1:0\", \"udp://127.0.0.1:0\" ]\n");
    ASSERT_EQ(config.listen.size(), 2u);
    EXPECT_EQ(config.listen[0].address.port, 0);
}

TEST(LoadConfigErrors, BadListenUrls) {
    expect_one_error("listen: [ \"sctp://0.0.0.0:3478\" ]\n", "listen[0]", 1,
                     "unknown scheme 'sctp' (expected udp, tcp or tls)");
    expect_one_error("listen:\n  - \"udp://::1:3478\"\n", "listen[0]", 2,
                     "IPv6 addresses need brackets, e.g. [2001:db8::1]:3478; got '::1:3478'");
    expect_one_error("listen: [ \"udp://0.0.0.0\" ]\n", "listen[0]", 1,
                     "missing port in '0.0.0.0' (expected ip:port)");
    expect_one_error("listen: [ \"udp://turn.example.org:3478\" ]\n", "listen[0]", 1,
                     "'turn.example.org' is not an IPv4 or IPv6 address (host names are not "
                     "accepted)");
    expect_one_error("listen: [ \"0.0.0.0:3478\" ]\n", "listen[0]", 1,
                     "expected scheme://address:port such as udp://0.0.0.0:3478, got "
                     "'0.0.0.0:3478'");
}

TEST(LoadConfigErrors, EmptyListenList) {
    expect_one_error("listen: []\n", "listen", 1,
                     "needs at least one listener such as udp://0.0.0.0:3478");
    expect_one_error("listen:\nrealm: x\n", "listen", 1,
                     "needs at least one listener such as udp://0.0.0.0:3478");
}

TEST(LoadConfigErrors, DuplicateListener) {
    expect_one_error(
        "listen:\n  - udp://0.0.0.0:3478\n  - tcp://0.0.0.0:3478\n"
        "  - udp://0.0.0.0:3478\n",
        "listen[2]", 4, "duplicate of listen[0]");
}

TEST(LoadConfigErrors, TcpAndTlsCannotShareAPort) {
    expect_one_error(
        "listen: [ \"tcp://[::]:443\", \"tls://[::]:443\" ]\ntls: { certificate: " + cert_path +
            ", private_key: " + key_path + " }\n",
        "listen[1]", 1, "tcp and tls cannot share a port; listen[0] already uses [::]:443");
}

TEST(LoadConfig, UdpAndTcpMayShareAPort) {
    EXPECT_EQ(load_ok("listen: [ \"udp://[::]:3478\", \"tcp://[::]:3478\" ]\n").listen.size(), 2u);
}

// --- tls -------------------------------------------------------------------------------------

TEST(LoadConfigErrors, TlsListenerWithoutTlsSection) {
    expect_one_error(
        "realm: x\nlisten:\n  - udp://0.0.0.0:3478\n  - tls://0.0.0.0:5349\n"
        "  - tls://[::]:5349\n",
        "listen[1]", 4, "a tls:// listener needs the tls section (certificate and private_key)");
}

TEST(LoadConfigErrors, MissingCertificateFile) {
    expect_one_error(
        "listen: [ \"tls://0.0.0.0:5349\" ]\ntls:\n"
        "  certificate: /nonexistent/tern/cert.pem\n  private_key: " +
            key_path + "\n",
        "tls.certificate", 3, "cannot read /nonexistent/tern/cert.pem: No such file or directory");
}

TEST(LoadConfigErrors, MissingKeyFileIsCheckedEvenWithoutTlsListener) {
    expect_one_error(
        "tls:\n  certificate: " + cert_path + "\n  private_key: /nonexistent/tern/key.pem\n",
        "tls.private_key", 3, "cannot read /nonexistent/tern/key.pem: No such file or directory");
}

TEST(LoadConfigErrors, CertificateThatIsADirectory) {
    expect_one_error("tls: { certificate: " + data_dir + ", private_key: " + key_path + " }\n",
                     "tls.certificate", 1, "cannot read " + data_dir + ": not a regular file");
}

TEST(LoadConfigErrors, UnreadableCertificate) {
    if (::geteuid() == 0) GTEST_SKIP() << "root reads any file";
    const auto path = std::filesystem::temp_directory_path() /
                      ("tern-unreadable-" + std::to_string(::getpid()) + ".pem");
    {
        std::FILE* f = std::fopen(path.c_str(), "w");
        ASSERT_NE(f, nullptr);
        std::fclose(f);
    }
    std::filesystem::permissions(path, std::filesystem::perms::none);
    expect_one_error("tls: { certificate: " + path.string() + ", private_key: " + key_path + " }\n",
                     "tls.certificate", 1, "cannot read " + path.string() + ": Permission denied");
    std::filesystem::remove(path);
}

TEST(LoadConfigErrors, TlsSectionNeedsBothFiles) {
    expect_one_error("tls:\n  certificate: " + cert_path + "\n", "tls.private_key", 1,
                     "missing; the tls section needs certificate and private_key");
    expect_one_error("tls: { certificate: \"\", private_key: " + key_path + " }\n",
                     "tls.certificate", 1, "must not be empty");
}

TEST(LoadConfig, RelativeTlsPathsResolveAgainstTheConfigDirectory) {
    // Errors still carry the resolved path, which shows the rule without needing the files.
    const auto result = load_config_text(
        "tls: { certificate: cert.pem, private_key: ./sub/../key.pem }\n", "/etc/tern/tern.yaml");
    ASSERT_EQ(result.errors.size(), 2u) << all_errors(result);
    EXPECT_EQ(result.errors[0].message,
              "cannot read /etc/tern/cert.pem: No such file or directory");
    // "." is dropped, ".." is kept: it is only meaningful after following symbolic links.
    EXPECT_EQ(result.errors[1].message,
              "cannot read /etc/tern/sub/../key.pem: No such file or directory");
}

TEST(LoadConfig, RelativeTlsPathsFromASourceWithoutDirectoryUseTheCurrentDirectory) {
    const auto result =
        load_config_text("tls: { certificate: c.pem, private_key: /k.pem }\n", "tern.yaml");
    ASSERT_EQ(result.errors.size(), 2u) << all_errors(result);
    const std::string cwd = std::filesystem::current_path().string();
    EXPECT_EQ(result.errors[0].message, "cannot read " + cwd + "/c.pem: No such file or directory");
    EXPECT_EQ(result.errors[1].message, "cannot read /k.pem: No such file or directory");
}

TEST(LoadConfig, RelativeTlsPathsAreStoredResolved) {
    const auto result = load_config_text("tls: { certificate: cert.pem, private_key: key.pem }\n",
                                         data_dir + "/tls/some-config.yaml");
    ASSERT_TRUE(result.config) << all_errors(result);
    ASSERT_TRUE(result.config->tls);
    EXPECT_EQ(result.config->tls->certificate, cert_path);
    EXPECT_EQ(result.config->tls->private_key, key_path);
}

TEST(LoadConfig, AbsoluteTlsPathsAreKeptAsWritten) {
    const Config config =
        load_ok("tls: { certificate: " + cert_path + ", private_key: " + key_path + " }\n");
    ASSERT_TRUE(config.tls);
    EXPECT_EQ(*config.tls, (TlsFiles{cert_path, key_path}));
}

// --- auth --------------------------------------------------------------------------------------

TEST(LoadConfigErrors, EmptySecret) {
    expect_one_error("auth:\n  secrets:\n    - current\n    - \"\"\n", "auth.secrets[1]", 4,
                     "a secret must not be empty");
}

TEST(LoadConfig, ShortSecretsAreAllowed) {
    EXPECT_EQ(load_ok("auth: { secrets: [ x ] }\n").auth.secrets, std::vector<std::string>{"x"});
}

TEST(LoadConfigErrors, UserKeyMustBe32HexDigits) {
    expect_one_error("auth:\n  users:\n    bob: { key: abc }\n", "auth.users.bob.key", 3,
                     "expected 32 hex digits (MD5 of user:realm:password), got 3 characters");
    expect_one_error("auth:\n  users:\n    bob: { key: 0123456789abcdef0123456789abcdeg }\n",
                     "auth.users.bob.key", 3,
                     "expected 32 hex digits (MD5 of user:realm:password), got 32 characters "
                     "that are not all hex digits");
}

TEST(LoadConfig, UserKeyInUpperCaseHex) {
    const Config config =
        load_ok("auth: { users: { bob: { key: B70615A74A524BECC6960F540634BB00 } } }");
    ASSERT_EQ(config.auth.users.size(), 1u);
    ASSERT_TRUE(config.auth.users[0].key);
    EXPECT_EQ((*config.auth.users[0].key)[0], 0xb7);
    EXPECT_EQ((*config.auth.users[0].key)[15], 0x00);
    EXPECT_EQ(config.auth.users[0].password, "");
}

TEST(LoadConfigErrors, UserNeedsExactlyOneOfPasswordAndKey) {
    expect_one_error(
        "auth:\n  users:\n    alice:\n      password: x\n"
        "      key: 0123456789abcdef0123456789abcdef\n",
        "auth.users.alice", 3, "give either password or key, not both");
    expect_one_error("auth:\n  users:\n    alice: {}\n", "auth.users.alice", 3,
                     "needs a password or a key");
    expect_one_error("auth:\n  users:\n    alice: { password: \"\" }\n",
                     "auth.users.alice.password", 3, "must not be empty");
}

// --- relay ---------------------------------------------------------------------------------

TEST(LoadConfigErrors, InvertedRelayPortRange) {
    expect_one_error("relay:\n  ports: 60000-50000\n", "relay.ports", 2,
                     "first port 60000 > last 50000");
}

TEST(LoadConfigErrors, RelayPortRangeLimits) {
    expect_one_error("relay: { ports: 1000-2000 }\n", "relay.ports", 1,
                     "first port 1000 is below 1024; relay ports must not be privileged ports");
    expect_one_error("relay: { ports: 50000-50000 }\n", "relay.ports", 1,
                     "the range holds 1 port; at least 2 are needed");
    expect_one_error("relay: { ports: 50000-70000 }\n", "relay.ports", 1,
                     "port 70000 is out of range 1-65535");
    expect_one_error("relay: { ports: 50000 }\n", "relay.ports", 1,
                     "expected a port range such as 49152-65535, got '50000'");
}

TEST(LoadConfigErrors, BadRelayAddresses) {
    expect_one_error("relay:\n  addresses: [ 203.0.113.7, 203.0.113.300 ]\n", "relay.addresses[1]",
                     2,
                     "'203.0.113.300' is not an IPv4 or IPv6 address (host names are not "
                     "accepted)");
    expect_one_error("relay:\n  addresses: [ 0.0.0.0 ]\n", "relay.addresses[0]", 2,
                     "'0.0.0.0' is the unspecified address; give the address itself");
    expect_one_error("relay:\n  addresses:\n    - \"::1\"\n    - \"[::1]\"\n", "relay.addresses[1]",
                     4, "duplicate of relay.addresses[0]");
}

TEST(LoadConfigErrors, ExternalAddresses) {
    expect_one_error("relay:\n  external_addresses: { 10.0.0.5: \"2001:db8::5\" }\n",
                     "relay.external_addresses.10.0.0.5", 2,
                     "maps 10.0.0.5 to 2001:db8::5; internal and external addresses must be of "
                     "the same IP family");
    expect_one_error("relay:\n  external_addresses:\n    10.0.0.5: nat.example.org\n",
                     "relay.external_addresses.10.0.0.5", 3,
                     "'nat.example.org' is not an IPv4 or IPv6 address (host names are not "
                     "accepted)");
    expect_one_error("relay:\n  external_addresses:\n    private: 203.0.113.7\n",
                     "relay.external_addresses.private", 3,
                     "'private' is not an IPv4 or IPv6 address (host names are not accepted)");
}

TEST(LoadConfigErrors, BadCidrs) {
    expect_one_error("relay:\n  allow_peers:\n    - 10.0.0.0/8\n    - 192.168.1.1/24\n",
                     "relay.allow_peers[1]", 4,
                     "'192.168.1.1/24' has host bits set; did you mean 192.168.1.0/24?");
    expect_one_error("relay:\n  deny_peers: [ 10.0.0.0/33 ]\n", "relay.deny_peers[0]", 2,
                     "prefix length 33 is too long for IPv4 (at most 32) in '10.0.0.0/33'");
    expect_one_error("relay:\n  deny_peers: [ \"2001:db8::/129\" ]\n", "relay.deny_peers[0]", 2,
                     "prefix length 129 is too long for IPv6 (at most 128) in '2001:db8::/129'");
}

// --- scalars -----------------------------------------------------------------------------------

TEST(LoadConfigErrors, RealmLength) {
    expect_one_error("realm: \"\"\n", "realm", 1, "must not be empty");
    expect_one_error("realm: " + std::string(764, 'r') + "\n", "realm", 1,
                     "too long: 764 bytes, at most 763 are allowed");
    EXPECT_EQ(load_ok("realm: " + std::string(763, 'r') + "\n").realm.size(), 763u);
}

TEST(LoadConfigErrors, SoftwareLength) {
    expect_one_error("software: " + std::string(764, 's') + "\n", "software", 1,
                     "too long: 764 bytes, at most 763 are allowed");
    EXPECT_EQ(load_ok("software: tern/1.0\n").software, "tern/1.0");
}

TEST(LoadConfigErrors, Threads) {
    EXPECT_EQ(load_ok("threads: auto\n").threads, 0u);
    EXPECT_EQ(load_ok("threads: 1\n").threads, 1u);
    const std::string expected = "expected auto or a number from 1 to 256, got ";
    expect_one_error("threads: 0\n", "threads", 1, expected + "'0'");
    expect_one_error("threads: 257\n", "threads", 1, expected + "'257'");
    expect_one_error("threads: -1\n", "threads", 1, expected + "'-1'");
    expect_one_error("threads: Auto\n", "threads", 1, expected + "'Auto'");
}

TEST(LoadConfigErrors, LogLevelAndFormat) {
    expect_one_error("log:\n  level: verbose\n", "log.level", 2,
                     "unknown level 'verbose' (expected trace, debug, info, warn, error, critical "
                     "or off)");
    expect_one_error("log:\n  format: xml\n", "log.format", 2,
                     "unknown format 'xml' (expected text or json)");
}

TEST(LoadConfigErrors, MaxLifetimeRange) {
    EXPECT_EQ(load_ok("limits: { max_lifetime: 600 }").limits.max_lifetime, 600u);
    const std::string expected = "expected a whole number of seconds from 600 to 86400, got ";
    expect_one_error("limits: { max_lifetime: 599 }", "limits.max_lifetime", 1, expected + "'599'");
    expect_one_error("limits: { max_lifetime: 86401 }", "limits.max_lifetime", 1,
                     expected + "'86401'");
    expect_one_error("limits: { max_lifetime: 1h }", "limits.max_lifetime", 1, expected + "'1h'");
}

TEST(LoadConfigErrors, MetricsListen) {
    expect_one_error("metrics:\n  listen: 127.0.0.1\n", "metrics.listen", 2,
                     "missing port in '127.0.0.1' (expected ip:port)");
    expect_one_error("metrics:\n  listen: \"127.0.0.1:0\"\n", "metrics.listen", 2,
                     "port 0 is out of range 1-65535");
    expect_one_error("metrics:\n  listen: \"::1:9641\"\n", "metrics.listen", 2,
                     "IPv6 addresses need brackets, e.g. [2001:db8::1]:3478; got '::1:9641'");
}

// --- many errors at once ----------------------------------------------------------------------

TEST(LoadConfigErrors, AllErrorsAreReportedInFileOrder) {
    const auto result = load(R"(realm: ""
listen:
  - "udp://0.0.0.0:99999"
  - "tls://0.0.0.0:5349"
relay:
  portz: 1
  ports: 60000-50000
log: { level: loud }
threads: none
realm: again
)");
    EXPECT_FALSE(result.config);
    ASSERT_EQ(result.errors.size(), 8u) << all_errors(result);
    // The duplicate realm (line 10) is found first, the tls listener (line 4) last of all;
    // both must still appear in file order.
    const std::pair<int, const char*> expected[] = {
        {1, "realm"},       {3, "listen[0]"}, {4, "listen[1]"}, {6, "relay.portz"},
        {7, "relay.ports"}, {8, "log.level"}, {9, "threads"},   {10, "realm"},
    };
    for (std::size_t i = 0; i < result.errors.size(); ++i) {
        EXPECT_EQ(result.errors[i].line, expected[i].first) << all_errors(result);
        EXPECT_EQ(result.errors[i].key, expected[i].second) << all_errors(result);
    }
    EXPECT_EQ(result.errors[7].message, "duplicate key (first given on line 1)");
    EXPECT_EQ(result.errors[3].message, "unknown key, did you mean ports?");
    EXPECT_EQ(result.errors[2].message,
              "a tls:// listener needs the tls section (certificate and private_key)");
}

TEST(LoadConfigErrors, StopsAfter200Errors) {
    // Aliases let a few lines name one bad map many times; the report stays bounded.
    std::string yaml = "software: &bad { one: 1, two: 2, three: 3, four: 4 }\nauth:\n  users:\n";
    for (int i = 0; i < 100; ++i) yaml += "    u" + std::to_string(i) + ": *bad\n";
    const auto result = load(yaml);
    ASSERT_EQ(result.errors.size(), 201u);
    EXPECT_EQ(result.errors.front().to_string(),
              "test.yaml:1: software: expected a string, got a map");
    EXPECT_EQ(result.errors.back().to_string(),
              "test.yaml: more than 200 errors; stopped checking");
}

TEST(LoadConfigErrors, ErrorsCarryTheSourceName) {
    const auto result = load_config_text("threads: many\n", "/etc/tern/tern.yaml");
    ASSERT_EQ(result.errors.size(), 1u);
    EXPECT_EQ(result.errors[0].to_string(),
              "/etc/tern/tern.yaml:1: threads: expected auto or a number from 1 to 256, got "
              "'many'");
}

TEST(LoadConfigErrors, ControlCharactersInYamlCppMessagesAreEscaped) {
    // yaml-cpp names the offending input character in some messages (found by fuzzing).
    const auto result = load(std::string("#x\n\xff\x00", 5));
    ASSERT_EQ(result.errors.size(), 1u) << all_errors(result);
    EXPECT_EQ(result.errors[0].to_string().find_first_of(std::string("\n\0", 2)), std::string::npos)
        << all_errors(result);
    EXPECT_EQ(result.errors[0].line, 2);
}

TEST(LoadConfigErrors, ControlCharactersInFileNamesAreEscaped) {
    // Found by fuzzing: the resolved path is echoed in the message.
    const auto result = load("tls: { certificate: \"/a\\nb\", private_key: \"/c\\u0001d\" }\n");
    ASSERT_EQ(result.errors.size(), 2u) << all_errors(result);
    EXPECT_EQ(result.errors[0].message, "cannot read /a\\x0ab: No such file or directory");
    EXPECT_EQ(result.errors[1].message, "cannot read /c\\x01d: No such file or directory");
}

TEST(LoadConfigErrors, ControlCharactersInKeysAndValuesAreEscaped) {
    const auto result = load("\"re\\nalm\": 1\nthreads: \"a\\u0007b\"\n");
    ASSERT_EQ(result.errors.size(), 2u) << all_errors(result);
    EXPECT_EQ(result.errors[1].message, "expected auto or a number from 1 to 256, got 'a\\x07b'");
    EXPECT_EQ(result.errors[0].key, "re\\x0aalm");
    for (const auto& error : result.errors) {
        EXPECT_EQ(error.to_string().find_first_of("\n\a"), std::string::npos);
    }
}

// --- files ------------------------------------------------------------------------------------

TEST(LoadConfigFile, MissingFile) {
    const auto result = load_config_file("/nonexistent/tern.yaml");
    EXPECT_FALSE(result.config);
    ASSERT_EQ(result.errors.size(), 1u);
    EXPECT_EQ(result.errors[0].to_string(),
              "/nonexistent/tern.yaml: cannot read: No such file or directory");
}

TEST(LoadConfigFile, OversizedFileIsRefused) {
    const auto path = std::filesystem::temp_directory_path() /
                      ("tern-oversized-" + std::to_string(::getpid()) + ".yaml");
    {
        std::FILE* file = std::fopen(path.c_str(), "w");
        ASSERT_NE(file, nullptr);
        const std::string comment = "# " + std::string(max_config_bytes, 'x') + "\n";
        std::fwrite(comment.data(), 1, comment.size(), file);
        std::fclose(file);
    }
    const auto result = load_config_file(path.string());
    std::filesystem::remove(path);
    ASSERT_EQ(result.errors.size(), 1u) << all_errors(result);
    EXPECT_EQ(result.errors[0].to_string(),
              path.string() + ": file is larger than 1 MiB; refusing to parse it");
}

TEST(LoadConfigFile, DirectoryIsNotAConfig) {
    const auto result = load_config_file(data_dir);
    EXPECT_FALSE(result.config);
    ASSERT_EQ(result.errors.size(), 1u);
    EXPECT_EQ(result.errors[0].to_string(), data_dir + ": not a regular file");
}

}  // namespace
}  // namespace tern::config
