// A fleet of real ternd processes sharing one real redis-server (issue 19, docs/deployment.md
// "A fleet"): the per-user quota counted across nodes through leases, a killed node's leases
// lapsing, Redis stopped (local quotas, one log line per episode, leases registered again) and
// paused (Allocates wait fleet.allocate_wait_ms at most, relaying not at all), refuse mode,
// revocations (also one made while Redis was away), an admin listing answered when the store's
// connection breaks under it, the fleet-wide session list and kill, 300 Try Alternate, the usage
// stream, and a retransmitted Allocate answered once while its lease is pending. Skipped when
// /usr/bin/redis-server is missing (Debian package redis-server, in `make test-deps`).
#include <gtest/gtest.h>
#include <sys/types.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "support.hpp"
#include "tern/ctl/endpoint_client.hpp"
#include "tern/ctl/status_report.hpp"
#include "tern/protocol/attribute_type.hpp"
#include "tern/protocol/integrity.hpp"
#include "tern/protocol/message.hpp"
#include "tern/protocol/message_builder.hpp"

namespace tern::test {
namespace {

using protocol::MessageBuilder;
using protocol::Method;
using Clock = std::chrono::steady_clock;

constexpr const char* redis_binary = "/usr/bin/redis-server";
constexpr const char* redis_password = "fleet-test-redis-pw";
constexpr std::string_view token = "0123456789abcdef0123456789abcdef";
constexpr std::string_view secret = "fleet-test-shared-secret-0123456789";
constexpr std::string_view realm = "fleet.test";

std::string temp_dir(const char* name) {
    std::string pattern = std::string("/tmp/tern-") + name + "-XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) return "/tmp";
    return pattern;
}

std::string trimmed(std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
    return s;
}

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> out;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) {
        if (!line.empty()) out.push_back(line);
    }
    return out;
}

// Polls `done` every `step` until it holds or `timeout` passes; true if it held.
bool eventually(const std::function<bool()>& done, std::chrono::milliseconds timeout,
                std::chrono::milliseconds step = 50ms) {
    const auto deadline = Clock::now() + timeout;
    for (;;) {
        if (done()) return true;
        if (Clock::now() >= deadline) return false;
        std::this_thread::sleep_for(step);
    }
}

double seconds_since(Clock::time_point start) {
    return std::chrono::duration<double>(Clock::now() - start).count();
}

// The value of "key" in the first object of `json` that has it: a number or a string's text.
std::string json_field(const std::string& json, const std::string& key) {
    const auto at = json.find("\"" + key + "\": ");
    if (at == std::string::npos) return {};
    const auto start = at + key.size() + 4;
    if (json[start] == '"') {
        const auto end = json.find('"', start + 1);
        return json.substr(start + 1, end - start - 1);
    }
    const auto end = json.find_first_of(",}\n]", start);
    return json.substr(start, end - start);
}

std::uint64_t json_u64(const std::string& json, const std::string& key) {
    const std::string text = json_field(json, key);
    return text.empty() ? 0 : std::stoull(text);
}

// A redis-server of the test's own: a free port on 127.0.0.1, a password, no persistence.
// Stopped by its PID (BackgroundProcess), never by name.
class RedisServer {
public:
    RedisServer() : port_(free_port()), dir_(temp_dir("redis")) { start(); }
    ~RedisServer() { stop(); }
    RedisServer(const RedisServer&) = delete;
    RedisServer& operator=(const RedisServer&) = delete;

    std::uint16_t port() const { return port_; }
    std::string url() const {
        return std::string("redis://:") + redis_password + "@127.0.0.1:" + std::to_string(port_);
    }

    // SIGTERM (Redis exits at once: nothing to save), on the same port at the next start().
    void stop() {
        if (!process_) return;
        resume();
        process_->stop();
        process_.reset();
    }
    void pause() {
        if (process_ && !paused_) {
            ::kill(process_->pid(), SIGSTOP);
            paused_ = true;
        }
    }
    void resume() {
        if (process_ && paused_) {
            ::kill(process_->pid(), SIGCONT);
            paused_ = false;
        }
    }
    void restart() {
        stop();
        start();
    }
    bool running() const { return process_ != nullptr; }

    // redis-cli's answer (raw, one value a line), trailing newlines cut.
    std::string cli(const std::string& args) const {
        std::string out;
        run_command("redis-cli -h 127.0.0.1 -p " + std::to_string(port_) + " -a " + redis_password +
                        " --no-auth-warning " + args,
                    out);
        return trimmed(out);
    }
    long long integer(const std::string& args) const {
        const std::string out = cli(args);
        try {
            return std::stoll(out);
        } catch (const std::exception&) {
            return -1;
        }
    }

private:
    void start() {
        process_ = std::make_unique<BackgroundProcess>(std::vector<std::string>{
            redis_binary, "--port", std::to_string(port_), "--bind", "127.0.0.1", "--requirepass",
            redis_password, "--save", "", "--appendonly", "no", "--dir", dir_, "--daemonize", "no",
            "--loglevel", "warning"});
        const bool up = eventually([this] { return cli("PING") == "PONG"; }, 10s, 20ms);
        EXPECT_TRUE(up) << "redis-server did not answer PING: " << process_->output();
    }

    std::uint16_t port_;
    std::string dir_;
    std::unique_ptr<BackgroundProcess> process_;
    bool paused_ = false;
};

struct NodeOptions {
    std::string id;
    std::string fleet;   // more `fleet:` keys, one "key: value" a line
    std::string limits;  // more `limits:` entries, "key: value, "
    int shutdown_grace = 0;
};

NodeOptions node(std::string id, std::string fleet = {}, std::string limits = {},
                 int shutdown_grace = 0) {
    return NodeOptions{std::move(id), std::move(fleet), std::move(limits), shutdown_grace};
}

// One ternd of the fleet: UDP on 127.0.0.1, metrics and the admin API on another port, REST
// secret and static users shared by all nodes.
class Node {
public:
    Node(const RedisServer& redis, NodeOptions options)
        : options_(std::move(options)), dir_(temp_dir("fleet-node")) {
        std::ofstream(dir_ + "/token") << token << "\n";
        process_ = std::make_unique<TerndProcess>(yaml(redis));
        EXPECT_TRUE(process_->wait_for_output("is listening on", 10s)) << process_->output();
        EXPECT_TRUE(process_->wait_for_output("joined through Redis", 10s)) << process_->output();
    }

    const std::string& id() const { return options_.id; }
    std::uint16_t port() const { return port_; }
    TransportAddress address() const { return loopback4(port_); }
    TerndProcess& process() { return *process_; }
    std::string output() const { return process_->output(); }

    ctl::HttpResult call(std::string_view method, const std::string& target,
                         std::string body = {}) const {
        return ctl::http_request(http_, method, target,
                                 ctl::HttpExtras{std::string(token), std::move(body)});
    }
    double metric(const std::string& name,
                  const std::vector<std::pair<std::string, std::string>>& labels = {}) const {
        const auto r = ctl::http_request(http_, "GET", "/metrics");
        return ctl::sample_value(ctl::parse_prometheus(r.body), name, labels).value_or(-1);
    }
    // This node's sessions of `user` as GET /v1/sessions?user= lists them (its own live ones,
    // and the other nodes' snapshots).
    std::uint64_t sessions_of(const std::string& user) const {
        const auto r = call("GET", "/v1/sessions?user=" + user);
        return r.status == 200 ? json_u64(r.body, "count") : 9999;
    }
    unsigned drain() const { return ctl::http_request(http_, "POST", "/drain").status; }

private:
    std::string yaml(const RedisServer& redis) const {
        const auto p = std::to_string(port_);
        std::string y = "listen: [\"udp://127.0.0.1:" + p +
                        "\"]\n"
                        "realm: " +
                        std::string(realm) +
                        "\n"
                        "auth:\n"
                        "  secrets: [\"" +
                        std::string(secret) +
                        "\"]\n"
                        "  nonce_secret: \"fleet-test-nonce-secret-0123456789\"\n"
                        "  users: { alice: { password: wonderland-rabbit }, bob: { password: "
                        "builder-of-things } "
                        "}\n"
                        "relay: { allow_peers: [\"127.0.0.0/8\"] }\n"
                        "limits: { " +
                        options_.limits + "unauthenticated_rate: 0, shutdown_grace: " +
                        std::to_string(options_.shutdown_grace) +
                        " }\n"
                        "threads: 2\n"
                        "metrics: { listen: \"127.0.0.1:" +
                        std::to_string(metrics_port_) +
                        "\" }\n"
                        "admin:\n"
                        "  token_file: " +
                        dir_ + "/token\n  revocations_file: " + dir_ + "/revocations\n";
        y += "fleet:\n  redis: \"" + redis.url() + "\"\n  node_id: " + options_.id +
             "\n  advertise: [\"127.0.0.1:" + p + "\"]\n";
        for (const auto& line : lines_of(options_.fleet)) y += "  " + line + "\n";
        return y;
    }

    NodeOptions options_;
    std::string dir_;
    std::uint16_t port_ = free_port();
    std::uint16_t metrics_port_ = free_port();
    ctl::Endpoint http_{"127.0.0.1", std::to_string(metrics_port_)};
    std::unique_ptr<TerndProcess> process_;
};

std::string rest_user(const std::string& user, std::int64_t ttl = 3600) {
    return rest_username(unix_now() + ttl, user);
}

int allocate(TurnClient& c) {
    return c.request(Method::allocate, TurnClient::udp_transport()).code();
}

int allocate_on(const Node& node, const std::string& user, const std::string& password) {
    TurnClient c(node.address(), user, password);
    return allocate(c);
}

int refresh(TurnClient& c, std::uint32_t lifetime) {
    return c.request(Method::refresh, [lifetime](MessageBuilder& b) { b.add_lifetime(lifetime); })
        .code();
}

// The Allocate alone, timed: the nonce is fetched first, so one round trip is measured.
double timed_allocate(TurnClient& c, int& code) {
    const auto start = Clock::now();
    code = allocate(c);
    return seconds_since(start);
}

class Fleet : public ::testing::Test {
protected:
    void SetUp() override {
        if (::access(redis_binary, X_OK) != 0) {
            GTEST_SKIP() << redis_binary
                         << " is missing: install Debian's redis-server (make test-deps)";
        }
        redis = std::make_unique<RedisServer>();
        ASSERT_TRUE(redis->running());
    }
    std::unique_ptr<RedisServer> redis;

    std::string lease_key(const std::string& user) const { return "tern:lease:" + user; }
    long long leases(const std::string& user) const {
        return redis->integer("ZCARD " + lease_key(user));
    }
};

// 1. limits.max_allocations_per_user counts every node's allocations: one on each node fills a
// quota of 2 (each node alone holds only 1), and a deleted one makes room on the other node.
TEST_F(Fleet, QuotaCountsAllocationsOnEveryNode) {
    Node n1(*redis, node("n1", {}, "max_allocations_per_user: 2, "));
    Node n2(*redis, node("n2", {}, "max_allocations_per_user: 2, "));
    TurnClient a1(n1.address(), "alice", "wonderland-rabbit");
    TurnClient a2(n2.address(), "alice", "wonderland-rabbit");
    ASSERT_EQ(allocate(a1), 0);
    ASSERT_EQ(allocate(a2), 0);
    EXPECT_EQ(allocate_on(n1, "alice", "wonderland-rabbit"), 486);  // n1 holds one of the two
    EXPECT_EQ(allocate_on(n2, "alice", "wonderland-rabbit"), 486);
    EXPECT_EQ(allocate_on(n1, "bob", "builder-of-things"), 0);  // another user's quota is untouched

    // One member per live allocation, named NODE/TOKEN.
    EXPECT_EQ(leases("alice"), 2);
    const auto members = lines_of(redis->cli("ZRANGE " + lease_key("alice") + " 0 -1"));
    ASSERT_EQ(members.size(), 2u);
    int on_n1 = 0, on_n2 = 0;
    for (const auto& m : members) {
        on_n1 += m.rfind("n1/", 0) == 0 ? 1 : 0;
        on_n2 += m.rfind("n2/", 0) == 0 ? 1 : 0;
    }
    EXPECT_EQ(on_n1, 1) << redis->cli("ZRANGE " + lease_key("alice") + " 0 -1");
    EXPECT_EQ(on_n2, 1);

    // Deleted on n1 (Refresh lifetime 0): its lease goes, and n2 admits a second one.
    ASSERT_EQ(refresh(a1, 0), 0);
    EXPECT_TRUE(eventually([&] { return leases("alice") == 1; }, 1s)) << leases("alice");
    TurnClient a3(n2.address(), "alice", "wonderland-rabbit");
    EXPECT_EQ(allocate(a3), 0);
    EXPECT_EQ(allocate_on(n1, "alice", "wonderland-rabbit"), 486);
    EXPECT_EQ(leases("alice"), 2);
    for (const auto& m : lines_of(redis->cli("ZRANGE " + lease_key("alice") + " 0 -1"))) {
        EXPECT_EQ(m.rfind("n2/", 0), 0u) << m;
    }
    EXPECT_GE(n2.metric("tern_fleet_lease_requests_total", {{"outcome", "quota_full"}}), 1);
    EXPECT_GE(n1.metric("tern_fleet_lease_requests_total", {{"outcome", "granted"}}), 1);

    // A clean stop gives the node's leases back at once and takes it out of the registry.
    EXPECT_EQ(redis->cli("ZSCORE tern:nodes n2").empty(), false);
    EXPECT_EQ(n2.process().stop(), 0);
    EXPECT_TRUE(eventually([&] { return leases("alice") == 0; }, 500ms))
        << redis->cli("ZRANGE " + lease_key("alice") + " 0 -1");
    EXPECT_EQ(redis->cli("ZSCORE tern:nodes n2"), "");
    EXPECT_EQ(redis->cli("EXISTS tern:node:n2 tern:sessions:n2"), "0");
}

// 2. A node killed outright gives nothing back: its leases hold the quota until they lapse,
// fleet.lease_seconds after their last renewal (every lease_seconds/3), no sooner.
TEST_F(Fleet, AKilledNodesLeasesLapseAfterLeaseSeconds) {
    const std::string fleet = "lease_seconds: 3";
    Node n1(*redis, node("n1", fleet, "max_allocations_per_user: 2, "));
    Node n2(*redis, node("n2", fleet, "max_allocations_per_user: 2, "));
    TurnClient a1(n1.address(), "alice", "wonderland-rabbit");
    TurnClient a2(n2.address(), "alice", "wonderland-rabbit");
    ASSERT_EQ(allocate(a1), 0);
    ASSERT_EQ(allocate(a2), 0);
    // Let a renewal or two go by, so the lapse is measured from a renewal, not the grant.
    std::this_thread::sleep_for(1500ms);

    n1.process().send_signal(SIGKILL);
    const auto killed = Clock::now();
    ASSERT_TRUE(n1.process().wait_exited(5s));
    TurnClient a3(n2.address(), "alice", "wonderland-rabbit");
    ASSERT_EQ(allocate(a3), 486) << "the dead node's lease must still count at first";

    int code = 486;
    double healed = 0;
    while (code == 486 && seconds_since(killed) < 8) {
        std::this_thread::sleep_for(100ms);
        code = allocate(a3);
        healed = seconds_since(killed);
    }
    ASSERT_EQ(code, 0) << "n1's lease never lapsed (" << healed << " s); lease set: "
                       << redis->cli("ZRANGE " + lease_key("alice") + " 0 -1 WITHSCORES");
    EXPECT_LE(healed, 3.0 + 1.0) << "lapsed later than lease_seconds + 1 s";
    EXPECT_GE(healed, 1.5) << "lapsed before ~lease_seconds/2: something other than the lease "
                              "held the quota";
    for (const auto& m : lines_of(redis->cli("ZRANGE " + lease_key("alice") + " 0 -1"))) {
        EXPECT_EQ(m.rfind("n2/", 0), 0u) << m;
    }
    // The registry forgets the dead node too (its hash expires after 5 s; not waited for here).
    std::printf("[ fleet    ] killed node's lease lapsed after %.2f s\n", healed);
}

// 3. Redis stopped, on_store_failure: local: Allocates go on, on this node's quotas, without
// waiting; one warning for the episode; when Redis is back on its port every lease (those
// admitted while it was away too) is registered again.
TEST_F(Fleet, StoreStoppedAdmitsLocallyAndRegistersTheLeasesWhenBack) {
    Node n1(*redis, node("n1", "allocate_wait_ms: 100\non_store_failure: local\nlease_seconds: 3",
                         "max_allocations_per_user: 5, "));
    TurnClient a1(n1.address(), "alice", "wonderland-rabbit");
    ASSERT_EQ(allocate(a1), 0);
    ASSERT_EQ(leases("alice"), 1);
    EXPECT_EQ(n1.metric("tern_fleet_store_up"), 1);
    EXPECT_EQ(n1.metric("tern_fleet_store_failures_total"), 0);

    redis->stop();
    TurnClient a2(n1.address(), "alice", "wonderland-rabbit");
    TurnClient a3(n1.address(), "alice", "wonderland-rabbit");
    ASSERT_TRUE(a2.fetch_nonce());
    ASSERT_TRUE(a3.fetch_nonce());
    int code = -1;
    const double first = timed_allocate(a2, code);
    EXPECT_EQ(code, 0);
    EXPECT_LT(first, 0.1 + 0.5) << "an Allocate waited longer than allocate_wait_ms + margin";
    EXPECT_TRUE(eventually([&] { return n1.metric("tern_fleet_store_up") == 0; }, 3s));
    const double second = timed_allocate(a3, code);
    EXPECT_EQ(code, 0);
    EXPECT_LT(second, 0.1 + 0.5);
    EXPECT_EQ(n1.metric("tern_fleet_store_failures_total"), 1);
    EXPECT_GE(n1.metric("tern_fleet_lease_requests_total", {{"outcome", "store_down"}}), 1);

    // Several reconnect attempts fail meanwhile (100 ms, 200 ms, ... backoff): still one line.
    std::this_thread::sleep_for(1500ms);
    const auto down_lines = [&] {
        const std::string out = n1.output();
        return count_of(out, "stopped answering") + count_of(out, "is unreachable");
    };
    EXPECT_EQ(down_lines(), 1u) << n1.output();

    redis->restart();
    EXPECT_TRUE(eventually([&] { return n1.metric("tern_fleet_store_up") == 1; }, 8s))
        << n1.output();
    EXPECT_TRUE(n1.process().wait_for_output("3 lease(s) registered again", 2s)) << n1.output();
    EXPECT_EQ(count_of(n1.output(), "answers again"), 1u);
    EXPECT_EQ(down_lines(), 1u);
    EXPECT_EQ(n1.metric("tern_fleet_store_failures_total"), 1);
    // The empty Redis now holds all three: the one granted before and the two admitted locally.
    EXPECT_TRUE(eventually([&] { return leases("alice") == 3; }, 2s))
        << redis->cli("ZRANGE " + lease_key("alice") + " 0 -1");
    for (const auto& m : lines_of(redis->cli("ZRANGE " + lease_key("alice") + " 0 -1"))) {
        EXPECT_EQ(m.rfind("n1/", 0), 0u) << m;
    }
}

// 4. Redis paused (it accepts but never answers): the first Allocate waits allocate_wait_ms,
// later ones none while the store is marked down; relaying never waits for Redis.
TEST_F(Fleet, StorePausedDelaysOnlyTheFirstAllocateAndNeverTheRelay) {
    Node n1(*redis, node("n1", "allocate_wait_ms: 400\non_store_failure: local",
                         "max_allocations_per_user: 10, "));
    UdpEchoPeer peer;
    TurnClient relay(n1.address(), "alice", "wonderland-rabbit");
    ASSERT_EQ(allocate(relay), 0);
    ASSERT_EQ(relay.bind(0x4000, peer.address()), 0);
    TurnClient b(n1.address(), "alice", "wonderland-rabbit");
    TurnClient c(n1.address(), "alice", "wonderland-rabbit");
    ASSERT_TRUE(b.fetch_nonce());
    ASSERT_TRUE(c.fetch_nonce());

    // ChannelData to the echo peer and back, one at a time, all through the pause.
    std::atomic<bool> stop{false};
    std::atomic<int> sent{0}, echoed{0};
    std::atomic<long long> worst_us{0};
    std::thread relaying([&] {
        for (std::uint32_t seq = 0; !stop.load(); ++seq) {
            Bytes payload(100, 0x42);
            std::memcpy(payload.data(), &seq, sizeof seq);
            const auto start = Clock::now();
            relay.send_raw(channel_data(0x4000, payload));
            ++sent;
            for (;;) {
                const auto got = relay.receive_raw(2s);
                if (!got) break;
                if (got->size() >= 8 && (*got)[0] == 0x40 &&
                    std::memcmp(got->data() + 4, &seq, sizeof seq) == 0) {
                    ++echoed;
                    const long long us =
                        std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start)
                            .count();
                    if (us > worst_us.load()) worst_us = us;
                    break;
                }
            }
            std::this_thread::sleep_for(10ms);
        }
    });

    std::this_thread::sleep_for(200ms);
    redis->pause();
    int code = -1;
    const double first = timed_allocate(b, code);
    EXPECT_EQ(code, 0);
    EXPECT_GE(first, 0.38) << "answered before allocate_wait_ms: the store was not asked?";
    EXPECT_LT(first, 0.95) << "waited far longer than allocate_wait_ms (400 ms)";
    const double second = timed_allocate(c, code);
    EXPECT_EQ(code, 0);
    EXPECT_LT(second, 0.2) << "a later Allocate waited for the paused store again";
    std::this_thread::sleep_for(1500ms);  // past the store's own 1 s command timeout
    redis->resume();
    std::this_thread::sleep_for(300ms);
    stop = true;
    relaying.join();

    EXPECT_GT(sent.load(), 50);
    EXPECT_EQ(echoed.load(), sent.load()) << "datagrams lost while Redis was paused";
    EXPECT_LT(worst_us.load(), 500'000) << "a relayed datagram waited " << worst_us.load() << " us";
    EXPECT_EQ(n1.metric("tern_fleet_lease_requests_total", {{"outcome", "timeout"}}), 1);
    std::printf(
        "[ fleet    ] paused: first Allocate %.0f ms, next %.0f ms, %d/%d relayed, worst "
        "%.1f ms\n",
        first * 1000, second * 1000, echoed.load(), sent.load(), worst_us.load() / 1000.0);

    // Back: the three allocations' leases are in Redis.
    EXPECT_TRUE(eventually([&] { return n1.metric("tern_fleet_store_up") == 1; }, 8s));
    EXPECT_TRUE(eventually([&] { return leases("alice") == 3; }, 3s))
        << redis->cli("ZRANGE " + lease_key("alice") + " 0 -1");
}

// 5. on_store_failure: refuse answers 508 while Redis is unreachable.
TEST_F(Fleet, StoreStoppedWithRefuseAnswers508) {
    Node n1(*redis, node("n1", "allocate_wait_ms: 100\non_store_failure: refuse"));
    EXPECT_EQ(allocate_on(n1, "alice", "wonderland-rabbit"), 0);
    redis->stop();
    EXPECT_EQ(allocate_on(n1, "alice", "wonderland-rabbit"), 508);
    EXPECT_TRUE(eventually([&] { return n1.metric("tern_fleet_store_up") == 0; }, 3s));
    EXPECT_EQ(allocate_on(n1, "bob", "builder-of-things"), 508);
    EXPECT_NE(n1.output().find("Allocates get 508"), std::string::npos) << n1.output();
}

// 6. A revocation on one node ends the user's allocation on the other within a second and
// refuses their credentials there; lifting it on the other node lifts it on the first.
TEST_F(Fleet, RevocationOnOneNodeAppliesOnEveryNode) {
    Node n1(*redis, node("n1"));
    Node n2(*redis, node("n2"));
    const std::string user = rest_user("mallory");
    const std::string password = rest_password(std::string(secret), user);
    TurnClient m(n2.address(), user, password);
    ASSERT_EQ(allocate(m), 0);
    ASSERT_EQ(n2.sessions_of("mallory"), 1u);

    const auto revoked = n1.call("POST", "/v1/users/mallory/revoke");
    ASSERT_EQ(revoked.status, 200u) << revoked.body;
    const auto at = Clock::now();
    EXPECT_TRUE(eventually([&] { return n2.sessions_of("mallory") == 0; }, 1s, 20ms))
        << "n2 still holds mallory's allocation " << seconds_since(at) << " s after the revoke";
    EXPECT_TRUE(n2.process().wait_for_output("fleet: mallory revoked by another node", 1s))
        << n2.output();
    EXPECT_EQ(refresh(m, 600), 401);  // the credential itself is refused on n2
    const std::string fresh = rest_user("mallory", 60);
    EXPECT_EQ(allocate_on(n2, fresh, rest_password(std::string(secret), fresh)), 401);
    EXPECT_EQ(allocate_on(n2, "bob", "builder-of-things"), 0);
    EXPECT_EQ(redis->cli("HEXISTS tern:revocations mallory"), "1");
    {
        // A node that joins later (no revocations file of its own) loads it from the store.
        Node n3(*redis, node("n3"));
        const std::string third = rest_user("mallory", 90);
        EXPECT_TRUE(eventually(
            [&] {
                return allocate_on(n3, third, rest_password(std::string(secret), third)) == 401;
            },
            1s));
    }

    // Lifted on n2: n1 admits mallory again within a second.
    const auto lifted = n2.call("DELETE", "/v1/users/mallory/revoke");
    ASSERT_EQ(lifted.status, 200u) << lifted.body;
    const std::string later = rest_user("mallory", 120);
    TurnClient again(n1.address(), later, rest_password(std::string(secret), later));
    int code = -1;
    EXPECT_TRUE(eventually(
        [&] {
            code = allocate(again);
            return code == 0;
        },
        1s, 50ms))
        << "n1 still refuses mallory: " << code;
    // The lift stays in the store as the user's latest decision ("0 <when>"), for nodes that
    // were cut off meanwhile.
    EXPECT_EQ(redis->cli("HGET tern:revocations mallory").rfind("0 ", 0), 0u);
    // The allocation on n2 was ended, not merely refused: its credential works again, it is gone.
    EXPECT_EQ(refresh(m, 600), 437);
}

// 6b. A revocation made on one node while Redis was away reaches the other nodes once Redis is
// back (the node puts what the store lacks; the others must learn it too, and end the user's
// allocations, not only at their next reconnect).
TEST_F(Fleet, RevocationMadeWhileTheStoreWasDownReachesTheOtherNodesWhenItIsBack) {
    Node n1(*redis, node("n1"));
    Node n2(*redis, node("n2"));
    const std::string user = rest_user("eve");
    const std::string password = rest_password(std::string(secret), user);
    TurnClient e(n2.address(), user, password);
    ASSERT_EQ(allocate(e), 0);

    redis->stop();
    ASSERT_TRUE(eventually([&] { return n1.metric("tern_fleet_store_up") == 0; }, 3s));
    const auto revoked = n1.call("POST", "/v1/users/eve/revoke");
    ASSERT_EQ(revoked.status, 200u) << revoked.body;
    ASSERT_TRUE(eventually([&] { return n2.metric("tern_fleet_store_up") == 0; }, 3s));
    EXPECT_EQ(n2.sessions_of("eve"), 1u);  // n2 cannot know yet

    // n2 gets through to Redis first (its backoff was shorter, say): n1 is held (SIGSTOP) until
    // n2 is back, so n2 loads the revocations before n1 can put eve's there.
    n1.process().send_signal(SIGSTOP);
    redis->restart();
    const bool n2_back = eventually([&] { return n2.metric("tern_fleet_store_up") == 1; }, 8s);
    n1.process().send_signal(SIGCONT);
    ASSERT_TRUE(n2_back);
    ASSERT_TRUE(eventually([&] { return n1.metric("tern_fleet_store_up") == 1; }, 8s));
    EXPECT_TRUE(eventually([&] { return redis->cli("HEXISTS tern:revocations eve") == "1"; }, 2s));
    EXPECT_TRUE(eventually([&] { return n2.sessions_of("eve") == 0; }, 2s))
        << "FAIL (BUGS.md #1): n2 never learnt of the revocation made while Redis was down\n"
        << n2.output();
    const std::string fresh = rest_user("eve", 60);
    EXPECT_EQ(allocate_on(n2, fresh, rest_password(std::string(secret), fresh)), 401)
        << "FAIL (BUGS.md #1): n2 still admits a user revoked on n1 while Redis was down";
}

// 6c. The store's connection breaking under a job (here: CLIENT KILL, Redis itself stays up) must
// still answer that job: GET /v1/sessions gets its 200 (with the other nodes' sessions or an
// "error"), never a connection closed without an answer.
TEST_F(Fleet, ALiftMadeWhileTheStoreWasDownReachesTheOtherNodesWhenItIsBack) {
    Node n1(*redis, node("n1"));
    Node n2(*redis, node("n2"));
    ASSERT_EQ(n1.call("POST", "/v1/users/fay/revoke").status, 200u);
    const std::string user = rest_user("fay");
    const std::string password = rest_password(std::string(secret), user);
    ASSERT_TRUE(eventually([&] { return allocate_on(n2, user, password) == 401; }, 2s));

    // Redis restarts with its data (its file is the test's), and n1 lifts the revocation
    // while cut off; n2 resubscribes first and must not take it back from the store.
    redis->cli("SAVE");
    redis->stop();
    ASSERT_TRUE(eventually([&] { return n1.metric("tern_fleet_store_up") == 0; }, 3s));
    ASSERT_EQ(n1.call("DELETE", "/v1/users/fay/revoke").status, 200u);
    redis->restart();
    ASSERT_TRUE(eventually([&] { return n1.metric("tern_fleet_store_up") == 1; }, 8s));
    ASSERT_TRUE(eventually([&] { return n2.metric("tern_fleet_store_up") == 1; }, 8s));
    EXPECT_TRUE(eventually(
        [&] { return redis->cli("HGET tern:revocations fay").rfind("0 ", 0) == 0; }, 2s));
    const std::string fresh = rest_user("fay", 60);
    EXPECT_TRUE(eventually(
        [&] { return allocate_on(n2, fresh, rest_password(std::string(secret), fresh)) == 0; }, 2s))
        << "n2 still refuses a user whose revocation n1 lifted while Redis was down";
    EXPECT_EQ(allocate_on(n1, rest_user("fay", 61),
                          rest_password(std::string(secret), rest_user("fay", 61))),
              0);
}

TEST_F(Fleet, AListingIsAnsweredWhenTheStoreConnectionBreaksUnderIt) {
    Node n1(*redis, node("n1"));
    int unanswered = 0;
    for (int i = 0; i < 3; ++i) {
        ASSERT_TRUE(eventually([&] { return n1.metric("tern_fleet_store_up") == 1; }, 5s));
        std::this_thread::sleep_for(100ms);
        redis->cli("CLIENT KILL TYPE normal");  // the node's command connection (not redis-cli's)
        const auto r = n1.call("GET", "/v1/sessions");
        unanswered += r.status == 200 ? 0 : 1;
        EXPECT_EQ(r.status, 200u) << "regression (BUGS.md #2): no HTTP answer when the store "
                                     "connection broke during the read ("
                                  << r.error << ")";
    }
    std::printf("[ fleet    ] %d of 3 listings unanswered\n", unanswered);
}

// 7. GET /v1/sessions on any node lists the other nodes' sessions with their node and W-N@NODE
// ids; DELETE of such an id ends the session on its node within a second.
TEST_F(Fleet, SessionsAreListedAndKilledFromAnyNode) {
    Node n1(*redis, node("n1"));
    Node n2(*redis, node("n2"));
    TurnClient bob(n2.address(), "bob", "builder-of-things");
    ASSERT_EQ(allocate(bob), 0);

    std::string body;
    EXPECT_TRUE(eventually(
        [&] {
            const auto r = n1.call("GET", "/v1/sessions?user=bob");
            body = r.body;
            return r.status == 200 && json_u64(body, "count") == 1;
        },
        3s, 100ms))
        << body;
    EXPECT_EQ(json_field(body, "node"), "n2") << body;
    EXPECT_EQ(json_field(body, "user"), "bob");
    EXPECT_EQ(json_field(body, "client"), bob.socket().local_address().to_string());
    const std::string id = json_field(body, "id");
    EXPECT_TRUE(std::regex_match(id, std::regex(R"([0-9]+-[0-9]+@n2)"))) << id;
    // n2 lists its own with the same id.
    const auto own = n2.call("GET", "/v1/sessions?user=bob");
    EXPECT_EQ(json_field(own.body, "id"), id) << own.body;
    EXPECT_EQ(json_field(own.body, "node"), "n2");

    const auto killed = n1.call("DELETE", "/v1/sessions/" + id);
    EXPECT_EQ(killed.status, 202u) << killed.body;
    const auto at = Clock::now();
    EXPECT_TRUE(eventually(
        [&] {
            const auto r = n2.call("GET", "/v1/sessions?user=bob");
            return r.status == 200 && json_u64(r.body, "count") == 0;
        },
        1s, 20ms))
        << "still on n2 " << seconds_since(at) << " s after the kill";
    EXPECT_EQ(refresh(bob, 600), 437);
    EXPECT_TRUE(n2.process().wait_for_output("killed by another node", 1s)) << n2.output();

    // All of a user's sessions, on every node: DELETE /v1/sessions?user= on n1.
    TurnClient bob2(n2.address(), "bob", "builder-of-things");
    ASSERT_EQ(allocate(bob2), 0);
    ASSERT_EQ(n2.sessions_of("bob"), 1u);
    const auto all = n1.call("DELETE", "/v1/sessions?user=bob");
    EXPECT_EQ(all.status, 200u) << all.body;
    EXPECT_TRUE(eventually([&] { return n2.sessions_of("bob") == 0; }, 1s, 20ms));
    EXPECT_EQ(refresh(bob2, 600), 437);
}

// The 300 of a redirect: ALTERNATE-SERVER, and a MESSAGE-INTEGRITY made with the client's key.
void expect_try_alternate(const Reply& r, const TransportAddress& to, const std::string& user,
                          const std::string& password) {
    ASSERT_EQ(r.code(), 300) << r.describe();
    const auto alternate = r.view.plain_address(protocol::attr::alternate_server);
    ASSERT_TRUE(alternate) << r.describe();
    EXPECT_EQ(alternate->to_string(), to.to_string());
    EXPECT_FALSE(r.view.find(protocol::attr::alternate_domain)) << "no TLS here, no domain";
    const Bytes key = long_term_key(user, std::string(realm), password);
    EXPECT_EQ(protocol::verify_message_integrity(r.view, key), protocol::IntegrityResult::ok);
    const Bytes wrong = long_term_key(user, std::string(realm), password + "x");
    EXPECT_EQ(protocol::verify_message_integrity(r.view, wrong),
              protocol::IntegrityResult::mismatch);
}

// 8. A node past fleet.redirect_above, or draining, answers 300 Try Alternate naming another
// node's advertised address, signed; with no node left that accepts, 508.
TEST_F(Fleet, LoadedOrDrainingNodesRedirectToAnotherNode) {
    Node n1(*redis, node("n1", {}, {}, 30));
    Node n2(*redis, node("n2", "redirect_above: 2", {}, 30));
    ASSERT_TRUE(eventually([&] { return n2.metric("tern_fleet_nodes") == 2; }, 3s))
        << n2.metric("tern_fleet_nodes");
    const auto n2_allocations = [&] { return redis->integer("HGET tern:node:n2 allocations"); };

    // Up to redirect_above, n2 serves; past it, 300 to n1.
    TurnClient x1(n2.address(), "alice", "wonderland-rabbit");
    TurnClient x2(n2.address(), "alice", "wonderland-rabbit");
    ASSERT_EQ(allocate(x1), 0);
    ASSERT_EQ(allocate(x2), 0);
    ASSERT_TRUE(eventually([&] { return n2_allocations() == 2; }, 3s)) << n2_allocations();
    TurnClient y(n2.address(), "alice", "wonderland-rabbit");
    expect_try_alternate(y.request(Method::allocate, TurnClient::udp_transport()), n1.address(),
                         "alice", "wonderland-rabbit");
    EXPECT_EQ(n2.metric("tern_fleet_redirects_total"), 1);
    EXPECT_EQ(allocate_on(n1, "alice", "wonderland-rabbit"), 0);  // where the client goes next

    // Back under the threshold, then drained: 300 again, for the drain alone.
    ASSERT_EQ(refresh(x2, 0), 0);
    ASSERT_TRUE(eventually([&] { return n2_allocations() == 1; }, 3s)) << n2_allocations();
    ASSERT_EQ(n2.drain(), 202u);
    TurnClient z(n2.address(), "bob", "builder-of-things");
    expect_try_alternate(z.request(Method::allocate, TurnClient::udp_transport()), n1.address(),
                         "bob", "builder-of-things");
    EXPECT_EQ(n2.metric("tern_fleet_redirects_total"), 2);

    // n1 drained too (it holds an allocation, so it drains rather than stops): nobody accepts.
    ASSERT_EQ(n1.drain(), 202u);
    ASSERT_TRUE(eventually([&] { return redis->cli("HGET tern:node:n1 draining") == "1"; }, 3s));
    std::this_thread::sleep_for(1200ms);  // n2's next registry read
    EXPECT_EQ(allocate_on(n2, "bob", "builder-of-things"), 508);
    EXPECT_EQ(allocate_on(n1, "bob", "builder-of-things"), 508);
    EXPECT_EQ(n2.metric("tern_fleet_redirects_total"), 2);
}

// 9. fleet.usage_stream: every ended allocation is XADDed with its node, reason and record.
TEST_F(Fleet, EndedAllocationsGoToTheUsageStream) {
    Node n1(*redis, node("n1", "usage_stream: \"tern:usage\"\nusage_stream_max: 1000"));
    TurnClient bob(n1.address(), "bob", "builder-of-things");
    ASSERT_EQ(allocate(bob), 0);
    EXPECT_EQ(redis->integer("XLEN tern:usage"), 0);
    ASSERT_EQ(refresh(bob, 0), 0);
    ASSERT_TRUE(eventually([&] { return redis->integer("XLEN tern:usage") == 1; }, 2s));
    const auto entry = lines_of(redis->cli("XRANGE tern:usage - +"));
    // id, then field/value pairs.
    ASSERT_EQ(entry.size(), 7u) << redis->cli("XRANGE tern:usage - +");
    EXPECT_EQ(entry[1], "node");
    EXPECT_EQ(entry[2], "n1");
    EXPECT_EQ(entry[3], "reason");
    EXPECT_EQ(entry[4], "deleted");
    EXPECT_EQ(entry[5], "record");
    EXPECT_EQ(json_field(entry[6], "user"), "bob") << entry[6];
    EXPECT_EQ(json_field(entry[6], "reason"), "deleted") << entry[6];
    EXPECT_EQ(json_field(entry[6], "node"), "n1") << entry[6];
    EXPECT_TRUE(std::regex_search(json_field(entry[6], "id"), std::regex(R"(^[0-9]+-[0-9]+)")))
        << entry[6];
}

// 10. Retransmissions of an Allocate whose lease is still pending get no answer of their own:
// the request is answered once, when the lease is decided (here: allocate_wait_ms with Redis
// paused), and only one allocation and one lease come of it.
TEST_F(Fleet, ARetransmittedAllocateIsAnsweredOnceWhileItsLeaseIsPending) {
    Node n1(*redis, node("n1", "allocate_wait_ms: 300\non_store_failure: local"));
    TurnClient c(n1.address(), "alice", "wonderland-rabbit");
    ASSERT_TRUE(c.fetch_nonce());
    const Bytes request = c.build(Method::allocate, TurnClient::udp_transport());
    redis->pause();
    const auto start = Clock::now();
    for (int i = 0; i < 4; ++i) {
        ASSERT_TRUE(c.send_raw(request));
        std::this_thread::sleep_for(i == 0 ? 1ms : 40ms);
    }
    int answers = 0, success = 0;
    double first_at = 0;
    for (auto got = c.receive_raw(1200ms); got; got = c.receive_raw(700ms)) {
        protocol::MessageView v;
        if (protocol::MessageView::parse(*got, v) != protocol::ParseError::ok) continue;
        if (!std::equal(v.transaction_id().bytes.begin(), v.transaction_id().bytes.end(),
                        request.begin() + 8)) {
            continue;
        }
        if (answers++ == 0) first_at = seconds_since(start);
        success += v.message_class() == protocol::MessageClass::success_response ? 1 : 0;
    }
    redis->resume();
    EXPECT_EQ(answers, 1) << "four copies of one pending Allocate";
    EXPECT_EQ(success, 1);
    EXPECT_GE(first_at, 0.28);
    // A retransmission after the answer gets the same answer again (the transaction cache).
    ASSERT_TRUE(c.send_raw(request));
    const auto again = c.receive_raw(1s);
    ASSERT_TRUE(again);
    protocol::MessageView v;
    ASSERT_EQ(protocol::MessageView::parse(*again, v), protocol::ParseError::ok);
    EXPECT_EQ(v.message_class(), protocol::MessageClass::success_response);
    EXPECT_EQ(n1.sessions_of("alice"), 1u);
    EXPECT_TRUE(eventually([&] { return n1.metric("tern_fleet_store_up") == 1; }, 8s));
    EXPECT_TRUE(eventually([&] { return leases("alice") == 1; }, 3s))
        << redis->cli("ZRANGE " + lease_key("alice") + " 0 -1");

    // Redis answering: two copies a moment apart make one allocation and one lease, whether
    // the second is held with the first or answered from the transaction cache.
    TurnClient d(n1.address(), "alice", "wonderland-rabbit");
    ASSERT_TRUE(d.fetch_nonce());
    const Bytes twice = d.build(Method::allocate, TurnClient::udp_transport());
    ASSERT_TRUE(d.send_raw(twice));
    ASSERT_TRUE(d.send_raw(twice));
    int replies = 0;
    for (auto got = d.receive_raw(1s); got; got = d.receive_raw(300ms)) {
        protocol::MessageView m;
        if (protocol::MessageView::parse(*got, m) != protocol::ParseError::ok) continue;
        EXPECT_EQ(m.message_class(), protocol::MessageClass::success_response);
        ++replies;
    }
    EXPECT_GE(replies, 1);
    EXPECT_LE(replies, 2);
    EXPECT_EQ(n1.sessions_of("alice"), 2u);
    EXPECT_TRUE(eventually([&] { return leases("alice") == 2; }, 1s));
    std::this_thread::sleep_for(200ms);
    EXPECT_EQ(leases("alice"), 2);
}

}  // namespace
}  // namespace tern::test
