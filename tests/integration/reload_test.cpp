// SIGHUP under traffic against a real ternd. A client streams numbered ChannelData through an
// allocation to an echo peer while the config is rewritten (secrets rotated, static users
// changed, limits and allow_peers changed, TLS certificate swapped) and reloaded several times:
// every packet must arrive, both ways, over UDP and TCP, and each change must then be in force.
// Refused reloads (a YAML syntax error, a bad value, a TLS key that does not fit) must name what
// is wrong and leave the running config, credentials and certificate as they were.
// lifecycle_test.cpp covers the basics without traffic (a refused relay.ports, a SOFTWARE
// change, settings that need a restart); nothing here repeats those.
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "support.hpp"
#include "tern/ctl/endpoint_client.hpp"
#include "tern/ctl/status_report.hpp"
#include "tern/protocol/message.hpp"
#include "tern/protocol/message_builder.hpp"

namespace tern::test {
namespace {

using protocol::MessageBuilder;
using protocol::Method;
using Clock = std::chrono::steady_clock;

constexpr const char* old_secret = "old-secret-0123456789";
constexpr const char* new_secret = "new-secret-9876543210";
constexpr std::uint16_t channel = 0x4001;
constexpr const char* reloaded = "SIGHUP: configuration reloaded from";
constexpr const char* refused = "keeping the running configuration";

// Waits until `needle` occurs at least `n` times in ternd's output.
bool wait_for_count(const TerndProcess& ternd, const std::string& needle, std::size_t n,
                    std::chrono::milliseconds timeout = 5s) {
    for (const auto deadline = Clock::now() + timeout; Clock::now() < deadline;) {
        if (count_of(ternd.output(), needle) >= n) return true;
        std::this_thread::sleep_for(10ms);
    }
    return count_of(ternd.output(), needle) >= n;
}

// Retries `check` for a while: a reload is posted to each worker's own thread, so the log line
// can come a moment before the last worker has applied it.
bool eventually(const std::function<bool()>& check, std::chrono::milliseconds timeout = 3s) {
    for (const auto deadline = Clock::now() + timeout; Clock::now() < deadline;) {
        if (check()) return true;
        std::this_thread::sleep_for(50ms);
    }
    return check();
}

void copy_file(const std::string& from, const std::string& to) {
    // Write beside, then rename: how certificate renewal tools replace files.
    std::filesystem::copy_file(from, to + ".new",
                               std::filesystem::copy_options::overwrite_existing);
    std::filesystem::rename(to + ".new", to);
}

// Two certificate/key pairs for "localhost": A from tests/data/tls, B made now with the openssl
// CLI. `cert`/`key` are the files ternd's config names; tests overwrite them.
struct Certificates {
    std::string dir;
    std::string cert_a = data_dir() + "/tls/cert.pem";
    std::string key_a = data_dir() + "/tls/key.pem";
    std::string cert_b, key_b, cert, key;
    std::string fingerprint_a, fingerprint_b;

    Certificates() {
        char tmpl[] = "/tmp/tern-reload-XXXXXX";
        if (!::mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
        dir = tmpl;
        cert_b = dir + "/cert-b.pem";
        key_b = dir + "/key-b.pem";
        cert = dir + "/cert.pem";
        key = dir + "/key.pem";
        std::string out;
        const int rc = run_command(
            "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 "
            "-subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout " +
                key_b + " -out " + cert_b,
            out);
        if (rc != 0) throw std::runtime_error("openssl req failed: " + out);
        copy_file(cert_a, cert);
        copy_file(key_a, key);
        fingerprint_a = certificate_file_sha256(cert_a);
        fingerprint_b = certificate_file_sha256(cert_b);
    }
    ~Certificates() {
        std::error_code ec;
        std::filesystem::remove_all(dir, ec);
    }
    void install(const std::string& c, const std::string& k) const {
        copy_file(c, cert);
        copy_file(k, key);
    }
};

// The config, in block style so that a line number names one key.
struct Spec {
    std::uint16_t port = 0;
    std::uint16_t tls_port = 0;
    std::uint16_t metrics_port = 0;
    std::string cert, key;
    std::vector<std::string> secrets{old_secret};
    std::string users = "alice: { password: wonderland }, carol: { password: looking-glass }";
    std::string allow_peers = "127.0.0.0/8";
    int per_user = 100;
    std::string limits_extra;  // more lines under limits:, each "  key: value\n"
    std::string software = "tern";

    std::string yaml() const {
        const std::string p = std::to_string(port);
        std::string y = "realm: reload.test\nthreads: 2\nlisten: [ \"udp://127.0.0.1:" + p +
                        "\", \"tcp://127.0.0.1:" + p +
                        "\", \"tls://127.0.0.1:" + std::to_string(tls_port) +
                        "\" ]\ntls: { certificate: " + cert + ", private_key: " + key +
                        " }\nauth:\n  secrets: [ ";
        for (std::size_t i = 0; i < secrets.size(); ++i) {
            y += (i ? ", \"" : "\"") + secrets[i] + "\"";
        }
        y += " ]\n  users: { " + users +
             " }\n"
             "relay:\n"
             "  ports: 48000-48999\n"
             "  allow_peers: [ " +
             allow_peers +
             " ]\n"
             "limits:\n"
             "  max_allocations_per_user: " +
             std::to_string(per_user) +
             "\n"
             "  allocation_bandwidth: 0\n"
             "  user_bandwidth: 0\n"
             "  shutdown_grace: 0\n" +
             limits_extra + "software: " + software +
             "\nlog: { level: info }\nmetrics: { listen: \"127.0.0.1:" +
             std::to_string(metrics_port) + "\" }\n";
        return y;
    }
};

// The default config on fresh ports, serving `certs`.
Spec spec_for(const Certificates& certs) {
    Spec spec;
    spec.port = free_port();
    spec.tls_port = free_port();
    spec.metrics_port = free_port();
    spec.cert = certs.cert;
    spec.key = certs.key;
    return spec;
}

// 1-based line of the first line of `yaml` that starts with `prefix`.
int line_of(const std::string& yaml, const std::string& prefix) {
    int line = 1;
    for (std::size_t at = 0; at < yaml.size();) {
        if (yaml.compare(at, prefix.size(), prefix) == 0) return line;
        at = yaml.find('\n', at);
        if (at == std::string::npos) break;
        ++at;
        ++line;
    }
    return -1;
}

std::string rest_user(const std::string& user) {
    return rest_username(unix_now() + 3600, user);
}

// An Allocate's result code; a granted allocation is deleted again so that it does not count
// against a per-user quota later.
int allocate_code(const TransportAddress& server, const std::string& user,
                  const std::string& password) {
    TurnClient c(server, user, password);
    const int code = c.request(Method::allocate, TurnClient::udp_transport()).code();
    if (code == 0) c.request(Method::refresh, [](MessageBuilder& b) { b.add_lifetime(0); });
    return code;
}

int rest_allocate_code(const TransportAddress& server, const std::string& secret) {
    const std::string user = rest_user("bob");
    return allocate_code(server, user, rest_password(secret, user));
}

// CreatePermission's result code on a fresh allocation of a REST user of `secret`; a failed
// Allocate comes back as -1000 - its code.
int permission_code(const TransportAddress& server, const std::string& secret,
                    const TransportAddress& peer) {
    const std::string user = rest_user("peer-check");
    TurnClient c(server, user, rest_password(secret, user));
    if (const Reply r = c.request(Method::allocate, TurnClient::udp_transport()); r.code() != 0) {
        return -1000 - r.code();
    }
    const int code = c.request(Method::create_permission, [&](MessageBuilder& b) {
                          b.add_xor_address(protocol::attr::xor_peer_address, peer);
                      }).code();
    c.request(Method::refresh, [](MessageBuilder& b) { b.add_lifetime(0); });
    return code;
}

// Allocation, permission and channel to `peer` on `c`: the relayed port, or 0 (with a failure).
std::uint16_t bind_channel(TurnClient& c, const TransportAddress& peer) {
    const Reply allocated = c.request(Method::allocate, TurnClient::udp_transport());
    EXPECT_EQ(allocated.code(), 0) << allocated.describe();
    const Reply bound = c.request(Method::channel_bind, [&](MessageBuilder& b) {
        b.add_channel_number(channel);
        b.add_xor_address(protocol::attr::xor_peer_address, peer);
    });
    EXPECT_EQ(bound.code(), 0) << bound.describe();
    const auto relayed = allocated.view.xor_relayed_address();
    EXPECT_TRUE(relayed);
    return allocated.code() == 0 && bound.code() == 0 && relayed ? relayed->port : 0;
}

// Where a stream's datagrams can be dropped: the UDP sockets along its path (ternd's listener
// and relay socket, the peer, a UDP client) and ternd itself, which counts what it drops.
struct StreamPath {
    std::vector<std::uint16_t> udp_ports;
    std::uint16_t metrics_port = 0;
};

struct DropCounts {
    std::int64_t kernel = 0;  // at those sockets' full buffers and the input backlog
    double ternd = 0;         // tern_relay_dropped_packets_total, every reason
};

DropCounts count_drops(const StreamPath& path) {
    DropCounts d;
    for (const auto port : path.udp_ports) d.kernel += kernel_udp_drops(port);
    d.kernel += kernel_backlog_drops();
    const auto r =
        ctl::http_request({"127.0.0.1", std::to_string(path.metrics_port)}, "GET", "/metrics");
    EXPECT_EQ(r.status, 200u) << r.error;
    for (const auto& sample : ctl::parse_prometheus(r.body)) {
        if (sample.name == "tern_relay_dropped_packets_total") d.ternd += sample.value;
    }
    return d;
}

// A numbered ChannelData stream from `c` through ternd to an echo peer and back, paced at one
// packet per `interval`, while `during` runs on the calling thread. Counts each sequence number
// at the peer (client to peer) and back at the client (peer to client).
struct StreamResult {
    int sent = 0;
    int at_peer = 0;        // distinct numbers the peer saw
    int back = 0;           // distinct numbers that came back to the client
    int duplicates = 0;     // at either end
    std::string first_gap;  // the first missing number, for the failure message
    DropCounts dropped;     // while the stream ran
};

constexpr int stream_packets = 2000;
constexpr auto stream_interval = 1ms;
constexpr std::size_t stream_payload = 160;

StreamResult stream_through(TurnClient& c, std::vector<std::atomic<int>>& peer_seen,
                            const StreamPath& path, const std::function<void()>& during) {
    StreamResult result;
    const DropCounts before = count_drops(path);
    std::vector<int> client_seen(stream_packets, 0);
    std::atomic<bool> receiving{true};
    std::atomic<int> back{0};
    std::thread receiver([&] {
        while (receiving) {
            const auto f = c.receive_raw(50ms);
            if (!f || f->size() < 4 + stream_payload || (*f)[0] != (channel >> 8) ||
                (*f)[1] != (channel & 0xFF)) {
                continue;
            }
            std::uint32_t seq = 0;
            std::memcpy(&seq, f->data() + 4, sizeof seq);
            if (seq >= stream_packets) continue;
            if (client_seen[seq]++ == 0) ++back;
        }
    });
    std::thread sender([&] {
        const auto start = Clock::now();
        for (int i = 0; i < stream_packets; ++i) {
            std::this_thread::sleep_until(start + i * stream_interval);
            Bytes payload(stream_payload, 0x5A);
            const auto seq = static_cast<std::uint32_t>(i);
            std::memcpy(payload.data(), &seq, sizeof seq);
            if (c.send_raw(channel_data(channel, payload))) ++result.sent;
        }
    });
    during();
    sender.join();
    // Stragglers: everything sent should be back within a moment on loopback.
    for (const auto deadline = Clock::now() + 3s; back < result.sent && Clock::now() < deadline;) {
        std::this_thread::sleep_for(10ms);
    }
    receiving = false;
    receiver.join();
    const DropCounts after = count_drops(path);
    result.dropped = {after.kernel - before.kernel, after.ternd - before.ternd};
    for (int i = 0; i < stream_packets; ++i) {
        const int p = peer_seen[static_cast<std::size_t>(i)].load();
        const int b = client_seen[static_cast<std::size_t>(i)];
        result.at_peer += p > 0;
        result.back += b > 0;
        result.duplicates += (p > 1 ? p - 1 : 0) + (b > 1 ? b - 1 : 0);
        if (result.first_gap.empty() && (p == 0 || b == 0)) {
            result.first_gap = "packet " + std::to_string(i) +
                               (p == 0 ? " never reached the peer" : " never came back");
        }
    }
    return result;
}

// An echo peer that counts each sequence number it sees.
struct CountingPeer {
    std::vector<std::atomic<int>> seen = std::vector<std::atomic<int>>(stream_packets);
    UdpEchoPeer echo{loopback4(0), [this](const std::uint8_t* data, std::size_t n) {
                         if (n < stream_payload) return;
                         std::uint32_t seq = 0;
                         std::memcpy(&seq, data, sizeof seq);
                         if (seq < stream_packets) ++seen[seq];
                     }};
};

std::optional<TurnClient> connect(const TransportAddress& server, bool tcp, const std::string& user,
                                  const std::string& password) {
    if (!tcp) return std::optional<TurnClient>(std::in_place, server, user, password);
    auto stream = StreamClient::connect_tcp(server);
    if (!stream) return std::nullopt;
    return std::optional<TurnClient>(std::in_place, std::move(*stream), user, password);
}

// ternd drops nothing and duplicates nothing. A datagram the kernel itself dropped at a full
// buffer (a receiver left unscheduled for a while: CI runs two tests beside a two-thread ternd
// on two cores) is UDP doing what UDP does, so loss is tolerated up to what the kernel reports
// having dropped along the path, and at most a tenth of the stream: a reload that stalled ternd
// for more than ~200 ms still fails.
void expect_lossless(const StreamResult& r, const char* what) {
    std::printf("%s: %d sent, %d reached the peer, %d came back, %d duplicates\n", what, r.sent,
                r.at_peer, r.back, r.duplicates);
    EXPECT_EQ(r.sent, stream_packets) << what;
    EXPECT_EQ(r.duplicates, 0) << what;
    EXPECT_EQ(r.dropped.ternd, 0) << what << ": ternd dropped relayed packets";
    // One datagram lost per missing echo: either the packet or its echo (the echo of a packet
    // that never reached the peer was never sent).
    const int lost = stream_packets - r.back;
    if (lost > 0) {
        std::printf("%s: %d lost (%s); the kernel reports %lld dropped at full buffers\n", what,
                    lost, r.first_gap.c_str(), static_cast<long long>(r.dropped.kernel));
    }
    EXPECT_LE(lost, r.dropped.kernel)
        << what << ": " << r.first_gap << ", and not by the kernel, so by ternd";
    EXPECT_LE(lost, stream_packets / 10) << what << ": " << r.first_gap;
}

// ---------------------------------------------------------------------------------------------
// Good reloads under traffic.

void live_relay_survives_reloads(bool tcp) {
    Certificates certs;
    Spec spec = spec_for(certs);
    TerndProcess ternd(spec.yaml());
    ASSERT_TRUE(ternd.wait_for_output("is listening on", 10s)) << ternd.output();
    const auto server = loopback4(spec.port);
    const auto elsewhere = TransportAddress::v4({127, 0, 0, 2}, 40000);

    // What the reloads will change, as it is before them.
    ASSERT_EQ(rest_allocate_code(server, new_secret), 401);
    ASSERT_EQ(rest_allocate_code(server, old_secret), 0);
    ASSERT_EQ(allocate_code(server, "carol", "looking-glass"), 0);
    ASSERT_EQ(allocate_code(server, "dave", "in-the-sky"), 401);
    ASSERT_EQ(permission_code(server, old_secret, elsewhere), 0);
    {
        auto tls = StreamClient::connect_tls(loopback4(spec.tls_port), certs.cert_a, "localhost");
        ASSERT_TRUE(tls);
        ASSERT_EQ(tls->peer_certificate_sha256(), certs.fingerprint_a);
    }

    CountingPeer peer;
    auto c = connect(server, tcp, "alice", "wonderland");
    ASSERT_TRUE(c);
    const std::uint16_t relay_port = bind_channel(*c, peer.echo.address());
    ASSERT_NE(relay_port, 0) << ternd.output();
    StreamPath path{{spec.port, relay_port, peer.echo.address().port}, spec.metrics_port};
    if (!tcp) path.udp_ports.push_back(c->socket().local_address().port);

    // Five reloads ~300 ms apart while 2000 packets flow over ~2 s.
    std::vector<Spec> steps;
    Spec s = spec;
    s.secrets = {new_secret, old_secret};  // rotation: the new secret in front
    steps.push_back(s);
    s.users = "alice: { password: wonderland }, dave: { password: in-the-sky }";
    s.per_user = 1;
    steps.push_back(s);
    s.allow_peers = "127.0.0.1/32";  // narrower, still covering the peer
    steps.push_back(s);
    s.secrets = {new_secret};  // rotation done: the old secret goes
    steps.push_back(s);
    s.software = "tern-reloaded";
    steps.push_back(s);

    const StreamResult r = stream_through(*c, peer.seen, path, [&] {
        std::this_thread::sleep_for(200ms);
        for (std::size_t i = 0; i < steps.size(); ++i) {
            if (i == 0) certs.install(certs.cert_b, certs.key_b);  // renewed certificate
            ternd.rewrite_config(steps[i].yaml());
            ternd.send_signal(SIGHUP);
            EXPECT_TRUE(wait_for_count(ternd, reloaded, i + 1)) << ternd.output();
            std::this_thread::sleep_for(300ms);
        }
    });
    expect_lossless(r, tcp ? "TCP client through 5 reloads" : "UDP client through 5 reloads");

    const std::string log = ternd.output();
    EXPECT_EQ(count_of(log, reloaded), steps.size()) << log;
    EXPECT_EQ(count_of(log, refused), 0u) << log;

    // Each change is in force.
    EXPECT_TRUE(eventually([&] { return rest_allocate_code(server, new_secret) == 0; }));
    EXPECT_EQ(rest_allocate_code(server, old_secret), 401);
    EXPECT_EQ(allocate_code(server, "carol", "looking-glass"), 401);
    {
        TurnClient dave(server, "dave", "in-the-sky");
        EXPECT_EQ(dave.request(Method::allocate, TurnClient::udp_transport()).code(), 0);
        TurnClient dave_again(server, "dave", "in-the-sky");
        EXPECT_EQ(dave_again.request(Method::allocate, TurnClient::udp_transport()).code(), 486)
            << "limits.max_allocations_per_user 1 not applied";
    }
    EXPECT_EQ(permission_code(server, new_secret, elsewhere), 403) << "allow_peers not narrowed";
    {
        auto tls = StreamClient::connect_tls(loopback4(spec.tls_port), certs.cert_b, "localhost");
        ASSERT_TRUE(tls) << "the renewed certificate is not served\n" << ternd.output();
        EXPECT_EQ(tls->peer_certificate_sha256(), certs.fingerprint_b);
    }
    // The live client's allocation, nonce and key all survived: it can still refresh.
    const Reply refreshed =
        c->request(Method::refresh, [](MessageBuilder& b) { b.add_lifetime(600); });
    EXPECT_EQ(refreshed.code(), 0) << refreshed.describe();
    EXPECT_TRUE(ternd.running()) << ternd.output();
}

TEST(ReloadUnderTraffic, UdpRelayLosesNothingWhileSecretsUsersLimitsPeersAndCertsChange) {
    live_relay_survives_reloads(false);
}

TEST(ReloadUnderTraffic, TcpRelayLosesNothingWhileSecretsUsersLimitsPeersAndCertsChange) {
    live_relay_survives_reloads(true);
}

// ---------------------------------------------------------------------------------------------
// Refused reloads under traffic.

TEST(ReloadRefused, BrokenConfigsAreRefusedByKeyAndLineAndTheRelayAndOldCredentialsCarryOn) {
    Certificates certs;
    Spec spec = spec_for(certs);
    TerndProcess ternd(spec.yaml());
    ASSERT_TRUE(ternd.wait_for_output("is listening on", 10s)) << ternd.output();
    const auto server = loopback4(spec.port);

    CountingPeer peer;
    TurnClient c(server, "alice", "wonderland");
    const std::uint16_t relay_port = bind_channel(c, peer.echo.address());
    ASSERT_NE(relay_port, 0) << ternd.output();
    const StreamPath path{
        {spec.port, relay_port, peer.echo.address().port, c.socket().local_address().port},
        spec.metrics_port};

    // Both broken files would also drop the old secret and alice and add a new secret, had any
    // of them been applied.
    Spec broken = spec;
    broken.secrets = {new_secret};
    broken.users = "dave: { password: in-the-sky }";
    broken.limits_extra = "  max_lifetime: 5\n";
    const std::string bad_value = broken.yaml();
    const int bad_line = line_of(bad_value, "  max_lifetime:");
    ASSERT_GT(bad_line, 0);
    std::string bad_syntax = broken.yaml();
    bad_syntax.replace(bad_syntax.find(" ]\n  users:"), 2, ",");  // an unclosed flow list

    const StreamResult r = stream_through(c, peer.seen, path, [&] {
        std::this_thread::sleep_for(300ms);
        ternd.rewrite_config(bad_value);
        ternd.send_signal(SIGHUP);
        EXPECT_TRUE(wait_for_count(ternd, refused, 1)) << ternd.output();
        std::this_thread::sleep_for(500ms);
        ternd.rewrite_config(bad_syntax);
        ternd.send_signal(SIGHUP);
        EXPECT_TRUE(wait_for_count(ternd, refused, 2)) << ternd.output();
    });
    expect_lossless(r, "UDP client through 2 refused reloads");

    const std::string log = ternd.output();
    EXPECT_EQ(count_of(log, reloaded), 0u) << log;
    EXPECT_EQ(count_of(log, "SIGHUP: " + ternd.config_path() + " is invalid, " + refused), 2u)
        << log;
    // The bad value: file, line and dotted key, and what was wrong with it.
    EXPECT_NE(log.find(ternd.config_path() + ":" + std::to_string(bad_line) +
                       ": limits.max_lifetime: expected a whole number of seconds from 600 to "
                       "86400, got '5'"),
              std::string::npos)
        << log;
    // The syntax error: file and the line where the parser gave up.
    EXPECT_TRUE(
        std::regex_search(log, std::regex(ternd.config_path() + R"(:\d+: YAML syntax error: )")))
        << log;

    // Nothing of either file was applied.
    EXPECT_EQ(rest_allocate_code(server, old_secret), 0);
    EXPECT_EQ(rest_allocate_code(server, new_secret), 401);
    EXPECT_EQ(allocate_code(server, "carol", "looking-glass"), 0);
    EXPECT_EQ(allocate_code(server, "dave", "in-the-sky"), 401);
    EXPECT_EQ(c.request(Method::refresh, [](MessageBuilder& b) { b.add_lifetime(600); }).code(), 0);

    // And a good file after the bad ones is still taken.
    Spec good = spec;
    good.secrets = {new_secret};
    ternd.rewrite_config(good.yaml());
    ternd.send_signal(SIGHUP);
    ASSERT_TRUE(wait_for_count(ternd, reloaded, 1)) << ternd.output();
    EXPECT_TRUE(eventually([&] { return rest_allocate_code(server, new_secret) == 0; }));
}

// ---------------------------------------------------------------------------------------------
// TLS certificates on reload.

// ChannelData frames through an existing TLS connection: how many of `n` came back.
// A reload that removes every credential must not open the relay: ternd keeps only a secret of
// its own (with_runtime_secret), says so, and the removed credentials stop working.
TEST(ReloadCredentials, RemovingEveryCredentialLeavesTheRelayClosedNotOpen) {
    const auto port = free_port();
    const auto yaml = [&](bool with_credentials) {
        std::string y = "listen: [ \"udp://127.0.0.1:" + std::to_string(port) + "\" ]\n";
        if (with_credentials) {
            y += std::string("auth:\n  secrets: [ \"") + old_secret +
                 "\" ]\n  users: { alice: { password: wonderland } }\n";
        }
        return y + "limits: { shutdown_grace: 0 }\n";
    };
    TerndProcess ternd(yaml(true));
    ASSERT_TRUE(ternd.wait_for_output("is listening on", 10s)) << ternd.output();
    const auto server = loopback4(port);
    ASSERT_EQ(allocate_code(server, "alice", "wonderland"), 0);
    ASSERT_EQ(rest_allocate_code(server, old_secret), 0);

    ternd.rewrite_config(yaml(false));
    ternd.send_signal(SIGHUP);
    ASSERT_TRUE(wait_for_count(ternd, reloaded, 1)) << ternd.output();
    EXPECT_EQ(count_of(ternd.output(), "configures no auth.secrets or auth.users"), 1u)
        << ternd.output();
    EXPECT_TRUE(eventually([&] { return allocate_code(server, "alice", "wonderland") == 401; }));
    EXPECT_EQ(rest_allocate_code(server, old_secret), 401);
    // Nor does any guess at an empty or default secret work.
    EXPECT_EQ(rest_allocate_code(server, ""), 401);
    EXPECT_EQ(rest_allocate_code(server, "tern"), 401);
}

int tls_echoes(TurnClient& c, int n, std::uint8_t mark) {
    for (int i = 0; i < n; ++i) {
        Bytes payload(64, mark);
        payload[0] = static_cast<std::uint8_t>(i);
        if (!c.send_raw(channel_data(channel, payload))) return -1;
    }
    std::vector<bool> seen(static_cast<std::size_t>(n), false);
    int back = 0;
    for (const auto deadline = Clock::now() + 3s; back < n && Clock::now() < deadline;) {
        const auto f = c.receive_raw(200ms);
        if (!f || f->size() != 4 + 64 || (*f)[5] != mark || (*f)[4] >= n || seen[(*f)[4]]) {
            continue;
        }
        seen[(*f)[4]] = true;
        ++back;
    }
    return back;
}

TEST(ReloadTls, NewConnectionsGetTheNewCertificateOldOnesKeepWorkingBadKeysAreRefused) {
    Certificates certs;
    Spec spec = spec_for(certs);
    TerndProcess ternd(spec.yaml());
    ASSERT_TRUE(ternd.wait_for_output("is listening on", 10s)) << ternd.output();
    const auto tls_server = loopback4(spec.tls_port);
    ASSERT_FALSE(certs.fingerprint_a.empty());
    ASSERT_FALSE(certs.fingerprint_b.empty());
    ASSERT_NE(certs.fingerprint_a, certs.fingerprint_b);

    // Which certificate a new connection is shown, trusting only `ca`; empty if the handshake
    // fails (the server showed a certificate `ca` does not vouch for).
    const auto served = [&](const std::string& ca) {
        auto s = StreamClient::connect_tls(tls_server, ca, "localhost");
        return s ? s->peer_certificate_sha256() : std::string();
    };
    ASSERT_EQ(served(certs.cert_a), certs.fingerprint_a) << ternd.output();
    ASSERT_EQ(served(certs.cert_b), "");  // control: B does not vouch for A

    UdpEchoPeer peer;
    auto first = StreamClient::connect_tls(tls_server, certs.cert_a, "localhost");
    ASSERT_TRUE(first);
    TurnClient live(std::move(*first), "alice", "wonderland");
    ASSERT_NE(bind_channel(live, peer.address()), 0) << ternd.output();
    ASSERT_EQ(tls_echoes(live, 50, 1), 50);

    // Renewal: same paths, new contents, SIGHUP.
    certs.install(certs.cert_b, certs.key_b);
    ternd.send_signal(SIGHUP);
    ASSERT_TRUE(wait_for_count(ternd, reloaded, 1)) << ternd.output();
    EXPECT_TRUE(eventually([&] { return served(certs.cert_b) == certs.fingerprint_b; }))
        << ternd.output();
    EXPECT_EQ(served(certs.cert_a), "") << "the old certificate is still served";
    // The connection made before the renewal keeps its session and its allocation.
    EXPECT_EQ(tls_echoes(live, 50, 2), 50);
    EXPECT_EQ(live.request(Method::refresh, [](MessageBuilder& b) { b.add_lifetime(600); }).code(),
              0);

    // A key that does not belong to the certificate: refused, and the config beside it (a new
    // secret) is not applied either.
    Spec with_secret = spec;
    with_secret.secrets = {new_secret};
    ternd.rewrite_config(with_secret.yaml());
    copy_file(data_dir() + "/tls/other-key.pem", certs.key);
    ternd.send_signal(SIGHUP);
    ASSERT_TRUE(wait_for_count(ternd, refused, 1)) << ternd.output();
    // OpenSSL notices the mismatch while loading the key (SSL_CTX_use_PrivateKey_file checks it
    // against the certificate already loaded).
    const std::string cannot_load = "SIGHUP: " + ternd.config_path() + ":" +
                                    std::to_string(line_of(spec.yaml(), "tls:")) +
                                    ": tls.private_key: cannot load " + certs.key + ": ";
    EXPECT_EQ(count_of(ternd.output(), cannot_load), 1u) << ternd.output();
    EXPECT_NE(ternd.output().find("key values mismatch; " + std::string(refused)),
              std::string::npos)
        << ternd.output();
    EXPECT_EQ(rest_allocate_code(loopback4(spec.port), new_secret), 401);

    // A key file OpenSSL cannot read as a key.
    copy_file(data_dir() + "/tls/not-a-certificate.pem", certs.key);
    ternd.send_signal(SIGHUP);
    ASSERT_TRUE(wait_for_count(ternd, refused, 2)) << ternd.output();
    EXPECT_EQ(count_of(ternd.output(), cannot_load), 2u) << ternd.output();

    // No key file at all (as root, a mode cannot make a file unreadable; a missing file can).
    std::filesystem::remove(certs.key);
    ternd.send_signal(SIGHUP);
    ASSERT_TRUE(wait_for_count(ternd, refused, 3)) << ternd.output();
    const std::string log = ternd.output();
    EXPECT_NE(log.find(ternd.config_path() + ":" + std::to_string(line_of(spec.yaml(), "tls:")) +
                       ": tls.private_key: "),
              std::string::npos)
        << log;

    // Through all three refusals B is still what new connections get, and the live one works.
    EXPECT_EQ(served(certs.cert_b), certs.fingerprint_b) << log;
    EXPECT_EQ(tls_echoes(live, 50, 3), 50);
    EXPECT_EQ(count_of(log, reloaded), 1u) << log;

    // With the right key back the reload goes through again.
    copy_file(certs.key_b, certs.key);
    ternd.send_signal(SIGHUP);
    ASSERT_TRUE(wait_for_count(ternd, reloaded, 2)) << ternd.output();
    EXPECT_EQ(served(certs.cert_b), certs.fingerprint_b);
    EXPECT_TRUE(
        eventually([&] { return rest_allocate_code(loopback4(spec.port), new_secret) == 0; }));
    EXPECT_EQ(tls_echoes(live, 50, 4), 50);
}

}  // namespace
}  // namespace tern::test
