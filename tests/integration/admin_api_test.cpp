// The admin API of a real ternd over HTTP (/v1/ on metrics.listen) and the usage records it
// writes: sessions listed with their traffic, a kill that frees the relay port and makes Refresh
// 437, a revocation that ends a user's allocations and refuses their credentials across SIGHUP
// and restart, wrong tokens limited, bad requests answered with JSON errors, and ternctl's
// commands on top of it all.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <array>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "support.hpp"
#include "tern/ctl/endpoint_client.hpp"
#include "tern/ctl/status_report.hpp"

namespace tern::test {
namespace {

using protocol::Method;

constexpr std::string_view token = "0123456789abcdef0123456789abcdef";
constexpr std::string_view secret = "admin-test-shared-secret-0123456789";

// A ternd with the admin API on, two workers, a static user and a REST secret.
struct AdminTernd {
    std::uint16_t port = free_port();
    std::uint16_t metrics_port = free_port();
    std::string state_dir = make_state_dir();
    std::unique_ptr<TerndProcess> process;
    ctl::Endpoint http{"127.0.0.1", std::to_string(metrics_port)};

    int shutdown_grace = 0;

    AdminTernd() { start(); }
    explicit AdminTernd(int grace) : shutdown_grace(grace) { start(); }

    static std::string make_state_dir() {
        char dir[] = "/tmp/tern-admin-XXXXXX";
        if (::mkdtemp(dir) == nullptr) return "/tmp";
        std::ofstream(std::string(dir) + "/token") << token << "\n";
        return dir;
    }
    std::string yaml() const {
        const auto p = std::to_string(port);
        return "listen: [\"udp://127.0.0.1:" + p + "\", \"tcp://127.0.0.1:" + p +
               "\"]\n"
               "auth:\n"
               "  secrets: [\"" +
               std::string(secret) +
               "\"]\n"
               "  users: { bob: { password: builder-of-things } }\n"
               "relay: { allow_peers: [\"127.0.0.0/8\"] }\n"
               "limits: { unauthenticated_rate: 0, shutdown_grace: " +
               std::to_string(shutdown_grace) +
               " }\n"
               "threads: 2\n"
               "metrics: { listen: \"127.0.0.1:" +
               std::to_string(metrics_port) +
               "\" }\n"
               "admin:\n"
               "  token_file: " +
               state_dir + "/token\n  revocations_file: " + state_dir +
               "/revocations\n"
               "usage_records: { file: " +
               state_dir + "/usage.jsonl }\n";
    }
    void start() {
        process = std::make_unique<TerndProcess>(yaml());
        ASSERT_TRUE(process->wait_for_output("is listening on", 10s)) << process->output();
    }
    void restart() {
        EXPECT_EQ(process->stop(), 0);
        process.reset();
        start();
    }
    ctl::HttpResult call(std::string_view method, const std::string& target,
                         std::string_view bearer = token, std::string body = {}) const {
        return ctl::http_request(http, method, target,
                                 ctl::HttpExtras{std::string(bearer), std::move(body)});
    }
    double metric(const std::string& name,
                  const std::vector<std::pair<std::string, std::string>>& labels = {}) const {
        const auto r = ctl::http_request(http, "GET", "/metrics");
        return ctl::sample_value(ctl::parse_prometheus(r.body), name, labels).value_or(-1);
    }
    std::vector<std::string> usage_records() const {
        std::ifstream in(state_dir + "/usage.jsonl");
        std::vector<std::string> lines;
        for (std::string line; std::getline(in, line);) lines.push_back(line);
        return lines;
    }
};

// The value of "key" in the first object of `json` that has it: a number or a string's text.
std::string json_field(const std::string& json, const std::string& key) {
    const auto at = json.find("\"" + key + "\": ");
    if (at == std::string::npos) return {};
    auto start = at + key.size() + 4;
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

std::string rest_user(const std::string& user, std::int64_t ttl = 3600) {
    return rest_username(unix_now() + ttl, user);
}

Bytes frame(std::uint16_t channel, std::size_t size) {
    Bytes f(4 + size, 0x5A);
    f[0] = static_cast<std::uint8_t>(channel >> 8);
    f[1] = static_cast<std::uint8_t>(channel);
    f[2] = static_cast<std::uint8_t>(size >> 8);
    f[3] = static_cast<std::uint8_t>(size);
    return f;
}

// Allocates, binds a channel to `peer` and relays `count` datagrams of `size` each way.
struct Relaying {
    TurnClient client;
    TransportAddress relayed;
    Relaying(std::uint16_t port, const std::string& user, const std::string& password,
             UdpClient& peer, int count, std::size_t size)
        : client(loopback4(port), user, password) {
        const Reply allocated = client.request(Method::allocate, TurnClient::udp_transport());
        EXPECT_EQ(allocated.code(), 0) << allocated.describe();
        if (allocated.code() != 0) return;
        relayed = *allocated.view.xor_relayed_address();
        EXPECT_EQ(client.bind(0x4000, peer.local_address()), 0);
        for (int i = 0; i < count; ++i) {
            EXPECT_TRUE(client.send_raw(frame(0x4000, size)));
            TransportAddress from;
            const auto got = peer.receive(3s, &from);
            EXPECT_TRUE(got) << i;
            if (!got) return;
            EXPECT_TRUE(peer.send_to(from, *got));
            EXPECT_TRUE(client.receive_raw(3s)) << i;
        }
    }
};

bool port_bindable(const TransportAddress& a) {
    const int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(a.port);
    std::memcpy(&sa.sin_addr, a.bytes.data(), 4);
    const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0;
    ::close(fd);
    return ok;
}

int refresh(TurnClient& client) {
    return client.request(Method::refresh, [](protocol::MessageBuilder& b) { b.add_lifetime(600); })
        .code();
}

TEST(AdminApi, OffWithoutATokenFileAndMetricsStayAsTheyWere) {
    const auto port = free_port();
    const auto metrics_port = free_port();
    TerndProcess ternd("listen: [\"udp://127.0.0.1:" + std::to_string(port) +
                       "\"]\nmetrics: { listen: \"127.0.0.1:" + std::to_string(metrics_port) +
                       "\" }\n");
    ASSERT_TRUE(ternd.wait_for_output("is listening on", 10s)) << ternd.output();
    const ctl::Endpoint http{"127.0.0.1", std::to_string(metrics_port)};
    const auto r =
        ctl::http_request(http, "GET", "/v1/sessions", ctl::HttpExtras{std::string(token), {}});
    EXPECT_EQ(r.status, 404u);
    EXPECT_NE(r.body.find("admin.token_file"), std::string::npos) << r.body;
    EXPECT_EQ(ctl::http_request(http, "GET", "/metrics").status, 200u);
    EXPECT_EQ(ctl::http_request(http, "GET", "/healthz").status, 200u);
}

TEST(AdminApi, ListsSessionsWithTheirTrafficAndKillFreesThePortAndRefreshGets437) {
    AdminTernd ternd;
    UdpClient peer(loopback4(0));
    const std::string user = rest_user("alice");
    Relaying alice(ternd.port, user, rest_password(std::string(secret), user), peer, 20, 100);
    Relaying bob(ternd.port, "bob", "builder-of-things", peer, 5, 40);

    // No token, a wrong one: 401 and nothing listed.
    EXPECT_EQ(ternd.call("GET", "/v1/sessions", "").status, 401u);
    EXPECT_EQ(ternd.call("GET", "/v1/sessions", "0123456789abcdef0123456789abcdeX").status, 401u);

    const auto all = ternd.call("GET", "/v1/sessions");
    ASSERT_EQ(all.status, 200u) << all.body;
    EXPECT_EQ(json_u64(all.body, "count"), 2u) << all.body;

    const auto mine = ternd.call("GET", "/v1/sessions?user=alice");
    ASSERT_EQ(mine.status, 200u) << mine.body;
    ASSERT_EQ(json_u64(mine.body, "count"), 1u) << mine.body;
    EXPECT_EQ(json_field(mine.body, "user"), user);
    EXPECT_EQ(json_field(mine.body, "realm"), "tern");
    EXPECT_EQ(json_field(mine.body, "client"), alice.client.socket().local_address().to_string());
    EXPECT_EQ(json_field(mine.body, "transport"), "udp");
    EXPECT_NE(mine.body.find("\"relayed\": [\"" + alice.relayed.to_string() + "\"]"),
              std::string::npos)
        << mine.body;
    EXPECT_EQ(json_u64(mine.body, "permissions"), 1u);
    EXPECT_EQ(json_u64(mine.body, "channels"), 1u);
    EXPECT_EQ(json_u64(mine.body, "bytes_to_peer"), 20u * 100);
    EXPECT_EQ(json_u64(mine.body, "packets_to_peer"), 20u);
    EXPECT_EQ(json_u64(mine.body, "bytes_to_client"), 20u * 100);
    EXPECT_EQ(json_u64(mine.body, "packets_to_client"), 20u);
    EXPECT_FALSE(json_field(mine.body, "started").empty());
    EXPECT_FALSE(json_field(mine.body, "expires").empty());

    const auto by_client =
        ternd.call("GET", "/v1/sessions?client=" + bob.client.socket().local_address().to_string());
    EXPECT_EQ(json_u64(by_client.body, "count"), 1u) << by_client.body;
    EXPECT_EQ(json_field(by_client.body, "user"), "bob");
    EXPECT_EQ(json_u64(ternd.call("GET", "/v1/sessions?user=carol").body, "count"), 0u);

    // The kill: the relayed port is free at once, a Refresh gets 437.
    const std::string id = json_field(mine.body, "id");
    EXPECT_FALSE(port_bindable(alice.relayed));
    const double free_before = ternd.metric("tern_relay_ports_free", {{"family", "ipv4"}});
    const double fds_before = ternd.metric("tern_open_fds");
    EXPECT_GT(fds_before, 0);
    EXPECT_GE(ternd.metric("tern_max_fds"), fds_before);
    const auto killed = ternd.call("DELETE", "/v1/sessions/" + id);
    EXPECT_EQ(killed.status, 200u) << killed.body;
    EXPECT_TRUE(port_bindable(alice.relayed));
    EXPECT_EQ(ternd.metric("tern_relay_ports_free", {{"family", "ipv4"}}), free_before + 1);
    EXPECT_EQ(ternd.metric("tern_open_fds"), fds_before - 1);  // the relay socket
    EXPECT_EQ(refresh(alice.client), 437);
    EXPECT_EQ(ternd.call("DELETE", "/v1/sessions/" + id).status, 404u);
    EXPECT_EQ(json_u64(ternd.call("GET", "/v1/sessions").body, "count"), 1u);
    EXPECT_EQ(refresh(bob.client), 0);  // the other session is untouched

    // The usage record of the killed allocation carries what the relay counted.
    const auto records = ternd.usage_records();
    ASSERT_EQ(records.size(), 1u);
    EXPECT_EQ(json_field(records[0], "reason"), "killed");
    EXPECT_EQ(json_field(records[0], "id"), id);
    EXPECT_EQ(json_u64(records[0], "bytes_to_peer"), 2000u);
    EXPECT_EQ(json_u64(records[0], "bytes_to_client"), 2000u);
    EXPECT_EQ(json_u64(records[0], "channels"), 1u);
    EXPECT_FALSE(json_field(records[0], "ended").empty());
    EXPECT_EQ(ternd.metric("tern_admin_requests_total", {{"outcome", "unauthorized"}}), 2);
    EXPECT_EQ(ternd.metric("tern_usage_records_total", {{"outcome", "written"}}), 1);
}

TEST(AdminApi, UsageRecordsAddUpToTheRelayCountersAndSayWhyEachEnded) {
    AdminTernd ternd;
    UdpClient peer(loopback4(0));
    {
        Relaying a(ternd.port, "bob", "builder-of-things", peer, 7, 300);
        Relaying b(ternd.port, "bob", "builder-of-things", peer, 11, 64);
        const std::string user = rest_user("dave");
        Relaying c(ternd.port, user, rest_password(std::string(secret), user), peer, 13, 1000);
        // One deleted by its client (Refresh 0), one killed, one ended by the user's kill.
        EXPECT_EQ(
            a.client
                .request(Method::refresh, [](protocol::MessageBuilder& m) { m.add_lifetime(0); })
                .code(),
            0);
        const auto listed = ternd.call("GET", "/v1/sessions?user=dave");
        EXPECT_EQ(ternd.call("DELETE", "/v1/sessions/" + json_field(listed.body, "id")).status,
                  200u);
        const auto by_user = ternd.call("DELETE", "/v1/sessions?user=bob");
        EXPECT_EQ(by_user.status, 200u) << by_user.body;
        EXPECT_EQ(json_u64(by_user.body, "killed"), 1u) << by_user.body;
    }
    const auto records = ternd.usage_records();
    ASSERT_EQ(records.size(), 3u);
    std::uint64_t to_peer = 0, to_client = 0, packets = 0;
    std::vector<std::string> reasons;
    for (const auto& r : records) {
        to_peer += json_u64(r, "bytes_to_peer");
        to_client += json_u64(r, "bytes_to_client");
        packets += json_u64(r, "packets_to_peer");
        reasons.push_back(json_field(r, "reason"));
    }
    EXPECT_EQ(reasons, (std::vector<std::string>{"deleted", "killed", "killed"}));
    EXPECT_EQ(packets, 7u + 11 + 13);
    EXPECT_EQ(to_peer, ternd.metric("tern_relayed_bytes_total", {{"direction", "to_peer"}}));
    EXPECT_EQ(to_client, ternd.metric("tern_relayed_bytes_total", {{"direction", "to_client"}}));
    EXPECT_EQ(to_peer, 7u * 300 + 11 * 64 + 13 * 1000);

    // logrotate: the file moves, SIGHUP, and the next record starts a new file.
    ASSERT_EQ(std::rename((ternd.state_dir + "/usage.jsonl").c_str(),
                          (ternd.state_dir + "/usage.jsonl.1").c_str()),
              0);
    ternd.process->send_signal(SIGHUP);
    ASSERT_TRUE(ternd.process->wait_for_output("configuration reloaded", 5s));
    {
        Relaying d(ternd.port, "bob", "builder-of-things", peer, 3, 10);
        EXPECT_EQ(
            d.client
                .request(Method::refresh, [](protocol::MessageBuilder& m) { m.add_lifetime(0); })
                .code(),
            0);
    }
    const auto rotated = ternd.usage_records();
    ASSERT_EQ(rotated.size(), 1u);
    EXPECT_EQ(json_u64(rotated[0], "bytes_to_peer"), 30u);
}

TEST(AdminApi, UsageRecordsSayWhenADrainOrAStopEndedTheAllocation) {
    UdpClient peer(loopback4(0));
    {
        AdminTernd ternd(1);
        Relaying bob(ternd.port, "bob", "builder-of-things", peer, 2, 10);
        ternd.process->send_signal(SIGTERM);  // a drain, 1 s of grace, then the exit
        ASSERT_TRUE(ternd.process->wait_exited(10s));
        const auto records = ternd.usage_records();
        ASSERT_EQ(records.size(), 1u);
        EXPECT_EQ(json_field(records[0], "reason"), "drained");
        EXPECT_GE(std::stod(json_field(records[0], "duration_seconds")), 1.0);
    }
    {
        AdminTernd ternd;  // no grace: SIGTERM stops at once
        Relaying bob(ternd.port, "bob", "builder-of-things", peer, 2, 10);
        EXPECT_EQ(ternd.process->stop(), 0);
        const auto records = ternd.usage_records();
        ASSERT_EQ(records.size(), 1u);
        EXPECT_EQ(json_field(records[0], "reason"), "shutdown");
        EXPECT_EQ(json_u64(records[0], "bytes_to_peer"), 20u);
    }
}

// journald's native socket, held by the test where no journald runs (a container, CI): what
// sd_journal_send writes there is what journald would store.
class JournalSocket {
public:
    static constexpr const char* path = "/run/systemd/journal/socket";
    JournalSocket() {
        if (::access(path, F_OK) == 0) return;  // a real journald: leave it alone
        std::filesystem::create_directories("/run/systemd/journal");
        fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        sockaddr_un sa{};
        sa.sun_family = AF_UNIX;
        std::strncpy(sa.sun_path, path, sizeof sa.sun_path - 1);
        if (::bind(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
            ::close(fd_);
            fd_ = -1;
        }
    }
    ~JournalSocket() {
        if (fd_ < 0) return;
        ::close(fd_);
        ::unlink(path);
    }
    JournalSocket(const JournalSocket&) = delete;
    JournalSocket& operator=(const JournalSocket&) = delete;
    bool held() const { return fd_ >= 0; }
    // One entry: KEY=value lines (the native protocol; our values hold no line breaks).
    std::string receive(std::chrono::milliseconds timeout) const {
        pollfd p{fd_, POLLIN, 0};
        if (::poll(&p, 1, static_cast<int>(timeout.count())) != 1) return {};
        std::string entry(65536, '\0');
        const auto n = ::recv(fd_, entry.data(), entry.size(), 0);
        entry.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
        return entry;
    }

private:
    int fd_ = -1;
};

TEST(AdminApi, UsageRecordsGoToTheJournalWithTheirFields) {
    JournalSocket journal;
    if (!journal.held()) GTEST_SKIP() << "a journald runs here; its socket is left alone";
    AdminTernd ternd;
    // The file key is replaced: records go to the journal only.
    auto config = ternd.yaml();
    config.replace(config.find("usage_records: { file: "), std::string::npos,
                   "usage_records: { journal: true }\n");
    ternd.process->rewrite_config(config);
    ternd.process->send_signal(SIGHUP);
    ASSERT_TRUE(ternd.process->wait_for_output("configuration reloaded", 5s))
        << ternd.process->output();
    UdpClient peer(loopback4(0));
    Relaying bob(ternd.port, "bob", "builder-of-things", peer, 4, 25);
    const auto listed = ternd.call("GET", "/v1/sessions");
    const std::string id = json_field(listed.body, "id");
    ASSERT_EQ(ternd.call("DELETE", "/v1/sessions/" + id).status, 200u);
    std::string entry;
    for (int i = 0; i < 20 && entry.find("TERN_EVENT=allocation_ended") == std::string::npos; ++i) {
        entry = journal.receive(500ms);  // other lines of ternd's may come first
    }
    EXPECT_NE(entry.find("TERN_EVENT=allocation_ended\n"), std::string::npos) << entry;
    EXPECT_NE(entry.find("TERN_SESSION=" + id + "\n"), std::string::npos) << entry;
    EXPECT_NE(entry.find("TERN_USER=bob\n"), std::string::npos) << entry;
    EXPECT_NE(entry.find("TERN_REASON=killed\n"), std::string::npos) << entry;
    EXPECT_NE(entry.find("TERN_BYTES_TO_PEER=100\n"), std::string::npos) << entry;
    EXPECT_NE(entry.find("TERN_RECORD={\"id\": \"" + id + "\""), std::string::npos) << entry;
    EXPECT_EQ(ternd.usage_records().size(), 0u);  // no file any more
}

TEST(AdminApi, RevokeEndsTheUsersAllocationsAndRefusesTheirCredentialsUntilLifted) {
    AdminTernd ternd;
    UdpClient peer(loopback4(0));
    const std::string user = rest_user("mallory");
    Relaying leaked(ternd.port, user, rest_password(std::string(secret), user), peer, 2, 10);
    Relaying bob(ternd.port, "bob", "builder-of-things", peer, 2, 10);

    const auto revoked = ternd.call("POST", "/v1/users/mallory/revoke");
    ASSERT_EQ(revoked.status, 200u) << revoked.body;
    EXPECT_EQ(json_u64(revoked.body, "ended_sessions"), 1u);
    // The default lasts a week: the longest REST credential ternctl mints without --force.
    const auto until = static_cast<std::int64_t>(json_u64(revoked.body, "until"));
    EXPECT_NEAR(static_cast<double>(until - unix_now()), 7 * 86400.0, 5);

    EXPECT_EQ(refresh(leaked.client), 401);  // the credential itself is refused now
    const auto fresh_allocate = [&](const std::string& name, const std::string& password) {
        TurnClient c(loopback4(ternd.port), name, password);
        return c.request(Method::allocate, TurnClient::udp_transport()).code();
    };
    const std::string another = rest_user("mallory", 60);
    EXPECT_EQ(fresh_allocate(another, rest_password(std::string(secret), another)), 401);
    EXPECT_EQ(refresh(bob.client), 0);
    EXPECT_EQ(ternd.usage_records().size(), 1u);
    EXPECT_EQ(json_field(ternd.usage_records()[0], "reason"), "revoked");

    // A static user, with an explicit until in the body.
    const auto bob_revoked = ternd.call("POST", "/v1/users/bob/revoke", token,
                                        "{\"until\": " + std::to_string(unix_now() + 3600) + "}");
    ASSERT_EQ(bob_revoked.status, 200u) << bob_revoked.body;
    EXPECT_EQ(fresh_allocate("bob", "builder-of-things"), 401);
    EXPECT_EQ(ternd.metric("tern_revoked_users"), 2);

    // Across SIGHUP and a restart.
    ternd.process->send_signal(SIGHUP);
    ASSERT_TRUE(ternd.process->wait_for_output("configuration reloaded", 5s));
    EXPECT_EQ(fresh_allocate("bob", "builder-of-things"), 401);
    ternd.restart();
    EXPECT_EQ(fresh_allocate("bob", "builder-of-things"), 401);
    const std::string later = rest_user("mallory", 60);
    EXPECT_EQ(fresh_allocate(later, rest_password(std::string(secret), later)), 401);
    const auto listed = ternd.call("GET", "/v1/revocations");
    EXPECT_EQ(json_u64(listed.body, "count"), 2u) << listed.body;

    // Lifted: credentials work again; lifting twice is 404.
    EXPECT_EQ(ternd.call("DELETE", "/v1/users/bob/revoke").status, 200u);
    EXPECT_EQ(ternd.call("DELETE", "/v1/users/bob/revoke").status, 404u);
    EXPECT_EQ(fresh_allocate("bob", "builder-of-things"), 0);
    EXPECT_EQ(fresh_allocate(later, rest_password(std::string(secret), later)), 401);
    ternd.restart();
    EXPECT_EQ(fresh_allocate("bob", "builder-of-things"), 0);
    EXPECT_EQ(ternd.metric("tern_revoked_users"), 1);
}

TEST(AdminApi, BadRequestsGetJsonErrorsAndWrongTokensAreLimitedPerSource) {
    AdminTernd ternd;
    const auto expect = [&](std::string_view method, const std::string& target, unsigned status,
                            std::string body = {}) {
        const auto r = ternd.call(method, target, token, std::move(body));
        EXPECT_EQ(r.status, status) << method << " " << target << ": " << r.body;
        EXPECT_NE(r.body.find("\"error\": "), std::string::npos) << r.body;
    };
    expect("GET", "/v1/nothing", 404);
    expect("POST", "/v1/sessions", 405);
    expect("DELETE", "/v1/sessions", 400);
    expect("DELETE", "/v1/sessions/zz", 404);
    expect("DELETE", "/v1/sessions/1-99", 404);
    expect("DELETE", "/v1/sessions/7-1", 404);  // no worker 7
    expect("GET", "/v1/sessions?colour=red", 400);
    expect("POST", "/v1/users/x/revoke?until=12", 400);  // in the past
    expect("POST", "/v1/users/x/revoke", 400, "{\"until\": \"soon\"}");
    expect("POST", "/v1/users/%0a/revoke", 400);  // a line break would break the state file
    expect("DELETE", "/v1/users/nobody/revoke", 404);

    for (std::size_t i = 0; i < 10; ++i) {
        EXPECT_EQ(
            ternd.call("GET", "/v1/sessions", "wrong-token-number-" + std::to_string(i)).status,
            401u);
    }
    // The source is locked out for a minute, even with the right token.
    EXPECT_EQ(ternd.call("GET", "/v1/sessions").status, 429u);
    EXPECT_EQ(ternd.metric("tern_admin_requests_total", {{"outcome", "unauthorized"}}), 10);
    EXPECT_EQ(ternd.metric("tern_admin_requests_total", {{"outcome", "rate_limited"}}), 1);
    EXPECT_EQ(ternd.metric("tern_admin_requests_total", {{"outcome", "bad_request"}}), 6);
    EXPECT_EQ(ternd.metric("tern_admin_requests_total", {{"outcome", "not_found"}}), 5);
}

TEST(AdminApi, TernctlFindsTheEndpointAndTokenInTernsConfig) {
    AdminTernd ternd;
    UdpClient peer(loopback4(0));
    const std::string ctl =
        std::string(TERNCTL_PATH) + " %s --config " + ternd.process->config_path();
    const auto ternctl = [&](const std::string& args, std::string& out) {
        std::string command = ctl;
        command.replace(command.find("%s"), 2, args);
        return run_command(command, out);
    };
    std::string out;
    {
        Relaying bob(ternd.port, "bob", "builder-of-things", peer, 3, 100);
        ASSERT_EQ(ternctl("sessions", out), 0) << out;
        EXPECT_NE(out.find("bob"), std::string::npos) << out;
        EXPECT_NE(out.find(bob.relayed.to_string()), std::string::npos) << out;
        EXPECT_NE(out.find("1 session\n"), std::string::npos) << out;
        ASSERT_EQ(ternctl("sessions --json --user bob", out), 0) << out;
        const std::string id = json_field(out, "id");
        ASSERT_FALSE(id.empty()) << out;
        ASSERT_EQ(ternctl("kill " + id, out), 0) << out;
        EXPECT_EQ(refresh(bob.client), 437);
        EXPECT_EQ(ternctl("kill " + id, out), 1) << out;  // gone already: ternd says 404
        EXPECT_NE(out.find("404"), std::string::npos) << out;
    }
    {
        Relaying bob(ternd.port, "bob", "builder-of-things", peer, 1, 10);
        ASSERT_EQ(ternctl("kill --user bob", out), 0) << out;
        EXPECT_NE(out.find("\"killed\": 1"), std::string::npos) << out;
        EXPECT_EQ(refresh(bob.client), 437);
    }
    const auto allocate = [&] {
        TurnClient c(loopback4(ternd.port), "bob", "builder-of-things");
        return c.request(Method::allocate, TurnClient::udp_transport()).code();
    };
    ASSERT_EQ(ternctl("revoke bob --for 600", out), 0) << out;
    EXPECT_EQ(allocate(), 401);
    ASSERT_EQ(ternctl("unrevoke bob", out), 0) << out;
    EXPECT_EQ(allocate(), 0);
    EXPECT_EQ(ternctl("unrevoke bob", out), 1) << out;
    EXPECT_EQ(ternctl("kill", out), 2) << out;                          // neither ID nor --user
    EXPECT_EQ(ternctl("revoke bob --until 1 --for 2", out), 2) << out;  // one of the two

    // A config without admin.token_file: ternctl says the API is off instead of trying.
    ternd.process->rewrite_config(
        "listen: [\"udp://127.0.0.1:" + std::to_string(ternd.port) +
        "\"]\nmetrics: { listen: \"127.0.0.1:" + std::to_string(ternd.metrics_port) + "\" }\n");
    EXPECT_EQ(ternctl("sessions", out), 2) << out;
    EXPECT_NE(out.find("admin.token_file"), std::string::npos) << out;
}

}  // namespace
}  // namespace tern::test
