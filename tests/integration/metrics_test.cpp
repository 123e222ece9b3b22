// The operator's side of a real ternd: /metrics scraped over HTTP while it relays (counters move
// by exactly what crossed the relay), /healthz and `ternctl drain`, `ternctl status`, a hostile
// HTTP client, and systemd's notify protocol (READY, WATCHDOG, RELOADING, STOPPING).
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
#include <string>
#include <thread>
#include <vector>

#include "support.hpp"
#include "tern/ctl/endpoint_client.hpp"
#include "tern/ctl/status_report.hpp"

namespace tern::test {
namespace {

using protocol::MessageBuilder;
using protocol::Method;
using Labels = std::vector<std::pair<std::string, std::string>>;

std::string config(std::uint16_t port, std::uint16_t metrics_port) {
    const auto p = std::to_string(port);
    return "listen: [\"udp://127.0.0.1:" + p + "\", \"tcp://127.0.0.1:" + p +
           "\"]\n"
           "auth:\n"
           "  users: { alice: { password: wonderland } }\n"
           "relay: { allow_peers: [\"127.0.0.0/8\"] }\n"
           "limits: { unauthenticated_rate: 0, shutdown_grace: 30 }\n"
           "threads: 2\n"
           "metrics: { listen: \"127.0.0.1:" +
           std::to_string(metrics_port) + "\" }\n";
}

class Metrics {
public:
    explicit Metrics(std::vector<ctl::Sample> samples) : samples_(std::move(samples)) {}
    // The sample with exactly these labels; 0 when absent (tern_requests_total lists only the
    // codes it has answered).
    double operator()(const std::string& name, const Labels& labels = {}) const {
        return ctl::sample_value(samples_, name, labels).value_or(0);
    }

private:
    std::vector<ctl::Sample> samples_;
};

struct Endpoint {
    ctl::Endpoint address;
    ctl::HttpResult get(const std::string& target) const {
        return ctl::http_request(address, "GET", target);
    }
    Metrics scrape(std::string* body = nullptr) const {
        const auto r = get("/metrics");
        EXPECT_EQ(r.status, 200u) << r.error;
        if (body) *body = r.body;
        return Metrics(ctl::parse_prometheus(r.body));
    }
};

Endpoint endpoint(std::uint16_t port) {
    return {ctl::Endpoint{"127.0.0.1", std::to_string(port)}};
}

Bytes channel_data(std::uint16_t channel, std::size_t size, std::uint8_t fill) {
    Bytes frame(4 + size, fill);
    frame[0] = static_cast<std::uint8_t>(channel >> 8);
    frame[1] = static_cast<std::uint8_t>(channel);
    frame[2] = static_cast<std::uint8_t>(size >> 8);
    frame[3] = static_cast<std::uint8_t>(size);
    return frame;
}

// Runs a command, returns its exit status and everything it printed.
int run(const std::string& command, std::string& output) {
    output.clear();
    FILE* p = ::popen((command + " 2>&1").c_str(), "r");
    if (!p) return -1;
    std::array<char, 4096> buf{};
    while (std::fgets(buf.data(), buf.size(), p)) output += buf.data();
    const int status = ::pclose(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// Polls until `predicate` holds (the permission and channel gauges are counted once a second).
template <typename F>
bool eventually(F predicate, std::chrono::milliseconds timeout = 4s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
        if (predicate()) return true;
        std::this_thread::sleep_for(100ms);
    }
    return predicate();
}

// A ternd of config() on fresh ports, with its metrics endpoint.
struct MeteredTernd {
    std::uint16_t port = free_port();
    std::uint16_t metrics_port = free_port();
    TerndProcess process{config(port, metrics_port)};
    Endpoint http = endpoint(metrics_port);
    bool ready() const { return process.wait_for_output("is listening on", 10s); }
};

const Labels to_peer{{"direction", "to_peer"}};
const Labels to_client{{"direction", "to_client"}};
const Labels udp4{{"transport", "udp"}, {"family", "ipv4"}};

TEST(Metrics, CountersMoveByExactlyWhatTheRelayCarriedAndAreScrapedLive) {
    MeteredTernd server;
    ASSERT_TRUE(server.ready()) << server.process.output();
    const auto& http = server.http;
    const auto port = server.port;
    const Metrics before = http.scrape();
    EXPECT_EQ(before("tern_draining"), 0);
    EXPECT_EQ(before("tern_build_info", {{"version", "0.1.0"}}), 1);

    UdpClient peer(loopback4(0));
    TurnClient client(loopback4(port), "alice", "wonderland");
    const Reply allocated = client.request(Method::allocate, TurnClient::udp_transport());
    ASSERT_EQ(allocated.code(), 0) << allocated.describe();
    const auto relayed = allocated.view.xor_relayed_address();
    ASSERT_TRUE(relayed);
    ASSERT_EQ(client.permit(peer.local_address()), 0);
    constexpr std::uint16_t channel = 0x4000;
    ASSERT_EQ(client.bind(channel, peer.local_address()), 0);

    // Client to peer in two halves, with a scrape in between while the relay is in use. Sent
    // in batches the peer reads before the next one, so no socket buffer can overflow even
    // when ternd runs slowly (sanitizers) and then catches up in a burst.
    constexpr int half = 1000;
    constexpr int batch = 50;
    constexpr std::size_t to_peer_size = 100;
    int received_by_peer = 0;
    const auto send_half = [&] {
        for (int sent = 0; sent < half; sent += batch) {
            for (int i = 0; i < batch; ++i) {
                ASSERT_TRUE(client.send_raw(channel_data(channel, to_peer_size, 0x11)));
            }
            for (int i = 0; i < batch; ++i) {
                const auto got = peer.receive(3s);
                ASSERT_TRUE(got) << received_by_peer << " reached the peer";
                EXPECT_EQ(got->size(), to_peer_size);
                ++received_by_peer;
            }
        }
    };
    send_half();
    const Metrics middle = http.scrape();
    EXPECT_EQ(middle("tern_relayed_packets_total", to_peer) -
                  before("tern_relayed_packets_total", to_peer),
              half);
    EXPECT_EQ(middle("tern_allocations_active", udp4), 1);
    send_half();
    ASSERT_EQ(received_by_peer, 2 * half);

    // Peer to client: ChannelData, because a channel is bound to the peer.
    constexpr int to_client_count = 300;
    constexpr std::size_t to_client_size = 50;
    int received_by_client = 0;
    for (int sent = 0; sent < to_client_count; sent += batch) {
        for (int i = 0; i < batch; ++i) {
            ASSERT_TRUE(peer.send_to(*relayed, Bytes(to_client_size, 0x22)));
        }
        while (received_by_client < sent + batch) {
            const auto got = client.receive_raw(3s);
            if (!got) break;
            if (!got->empty() && protocol::looks_like_channel_data((*got)[0])) ++received_by_client;
        }
    }
    ASSERT_EQ(received_by_client, to_client_count);

    // A wrong password is counted by reason.
    TurnClient intruder(loopback4(port), "alice", "not-the-password");
    EXPECT_EQ(intruder.request(Method::allocate, TurnClient::udp_transport()).code(), 401);

    std::string body;
    const Metrics after = http.scrape(&body);
    const auto delta = [&](const std::string& name, const Labels& labels = {}) {
        return after(name, labels) - before(name, labels);
    };
    EXPECT_EQ(delta("tern_relayed_packets_total", to_peer), 2 * half);
    EXPECT_EQ(delta("tern_relayed_bytes_total", to_peer), 2 * half * to_peer_size);
    EXPECT_EQ(delta("tern_relayed_packets_total", to_client), to_client_count);
    EXPECT_EQ(delta("tern_relayed_bytes_total", to_client), to_client_count * to_client_size);
    EXPECT_EQ(after("tern_allocations_active", udp4), 1);
    EXPECT_EQ(delta("tern_allocations_created_total", udp4), 1);
    EXPECT_EQ(delta("tern_allocations_created_total", {{"transport", "tcp"}, {"family", "ipv4"}}),
              0);
    // The client's first Allocate is challenged, the intruder's two both fail.
    EXPECT_EQ(delta("tern_requests_total", {{"method", "allocate"}, {"code", "401"}}), 3);
    EXPECT_EQ(delta("tern_requests_total", {{"method", "allocate"}, {"code", "200"}}), 1);
    EXPECT_EQ(delta("tern_requests_total", {{"method", "create_permission"}, {"code", "200"}}), 1);
    EXPECT_EQ(delta("tern_requests_total", {{"method", "channel_bind"}, {"code", "200"}}), 1);
    EXPECT_EQ(delta("tern_auth_failures_total", {{"reason", "missing_credentials"}}), 2);
    EXPECT_EQ(delta("tern_auth_failures_total", {{"reason", "integrity_mismatch"}}), 1);
    EXPECT_EQ(delta("tern_relay_dropped_packets_total", {{"reason", "no_permission"}}), 0);
    EXPECT_EQ(body.find("alice"), std::string::npos) << "a user name leaked into /metrics";
    EXPECT_TRUE(eventually([&] {
        const Metrics now = http.scrape();
        return now("tern_permissions_active") == 1 && now("tern_channels_active") == 1;
    })) << body;

    // A datagram from a peer without permission is dropped and counted as such.
    UdpClient stranger(TransportAddress::v4({127, 0, 0, 2}, 0));
    ASSERT_TRUE(stranger.send_to(*relayed, Bytes(10, 0x33)));
    EXPECT_TRUE(eventually([&] {
        return http.scrape()("tern_relay_dropped_packets_total", {{"reason", "no_permission"}}) -
                   before("tern_relay_dropped_packets_total", {{"reason", "no_permission"}}) ==
               1;
    }));

    ASSERT_EQ(client.request(Method::refresh, [](MessageBuilder& b) { b.add_lifetime(0); }).code(),
              0);
    EXPECT_EQ(http.scrape()("tern_allocations_active", udp4), 0);
}

TEST(Metrics, TcpConnectionsAreCountedWhileOpen) {
    MeteredTernd server;
    ASSERT_TRUE(server.ready()) << server.process.output();
    const auto& http = server.http;
    const auto port = server.port;
    const Labels tcp{{"transport", "tcp"}};
    {
        auto stream = StreamClient::connect_tcp(loopback4(port));
        ASSERT_TRUE(stream);
        TurnClient client(std::move(*stream), "alice", "wonderland");
        ASSERT_EQ(client.request(Method::allocate, TurnClient::udp_transport()).code(), 0);
        const Metrics open = http.scrape();
        EXPECT_EQ(open("tern_connections_active", tcp), 1);
        EXPECT_EQ(open("tern_allocations_active", {{"transport", "tcp"}, {"family", "ipv4"}}), 1);
    }
    EXPECT_TRUE(eventually([&] {
        const Metrics closed = http.scrape();
        return closed("tern_connections_active", tcp) == 0 &&
               closed("tern_allocations_active", {{"transport", "tcp"}, {"family", "ipv4"}}) == 0;
    }));
}

TEST(Metrics, TernctlDrainTurnsHealthzTo503WhileLiveAllocationsKeepRelaying) {
    MeteredTernd server;
    ASSERT_TRUE(server.ready()) << server.process.output();
    auto& ternd = server.process;
    const auto& http = server.http;
    const auto port = server.port;
    const std::string ternctl = std::string(TERNCTL_PATH) + " ";
    const std::string at = " --endpoint 127.0.0.1:" + std::to_string(server.metrics_port);

    UdpEchoPeer peer;
    TurnClient client(loopback4(port), "alice", "wonderland");
    ASSERT_EQ(client.request(Method::allocate, TurnClient::udp_transport()).code(), 0);
    ASSERT_EQ(client.bind(0x4000, peer.address()), 0);

    auto health = http.get("/healthz");
    EXPECT_EQ(health.status, 200u);
    EXPECT_EQ(health.body, "ok\n");
    std::string out;
    EXPECT_EQ(run(ternctl + "status" + at, out), 0) << out;
    EXPECT_NE(out.find(": serving"), std::string::npos) << out;
    EXPECT_NE(out.find("1 active (udp/ipv4 1)"), std::string::npos) << out;
    EXPECT_NE(out.find("workers        2"), std::string::npos) << out;

    EXPECT_EQ(run(ternctl + "drain" + at, out), 0) << out;
    EXPECT_NE(out.find("draining"), std::string::npos) << out;
    health = http.get("/healthz");
    EXPECT_EQ(health.status, 503u);
    EXPECT_EQ(health.body, "draining\n");
    EXPECT_EQ(http.scrape()("tern_draining"), 1);
    EXPECT_EQ(run(ternctl + "status" + at, out), 0) << out;
    EXPECT_NE(out.find("DRAINING"), std::string::npos) << out;
    // A second drain is harmless.
    EXPECT_EQ(run(ternctl + "drain" + at, out), 0) << out;
    EXPECT_NE(out.find("already draining"), std::string::npos) << out;

    // New clients go elsewhere; the live allocation still relays both ways.
    TurnClient late(loopback4(port), "alice", "wonderland");
    EXPECT_NE(late.request(Method::allocate, TurnClient::udp_transport()).code(), 0);
    ASSERT_TRUE(client.send_raw(channel_data(0x4000, 40, 0x44)));
    bool echoed = false;
    while (auto got = client.receive_raw(2s)) {
        if (!got->empty() && protocol::looks_like_channel_data((*got)[0])) {
            echoed = true;
            break;
        }
    }
    EXPECT_TRUE(echoed) << ternd.output();

    // The last allocation ending ends the drain: ternd exits on its own.
    ASSERT_EQ(client.request(Method::refresh, [](MessageBuilder& b) { b.add_lifetime(0); }).code(),
              0);
    EXPECT_TRUE(ternd.wait_exited(5s)) << ternd.output();
    EXPECT_NE(ternd.output().find("POST /drain, draining 1 allocations"), std::string::npos)
        << ternd.output();
}

TEST(Metrics, TernctlSaysWhenTheEndpointIsUnreachable) {
    std::string out;
    const auto unused = free_port();
    EXPECT_EQ(
        run(std::string(TERNCTL_PATH) + " status --endpoint 127.0.0.1:" + std::to_string(unused),
            out),
        1);
    EXPECT_NE(out.find("cannot reach ternd's metrics endpoint at 127.0.0.1:"), std::string::npos)
        << out;
    EXPECT_NE(out.find("metrics.listen"), std::string::npos) << out;
    EXPECT_EQ(run(std::string(TERNCTL_PATH) + " status --endpoint nonsense", out), 2) << out;
}

TEST(Metrics, AMetricsAddressInUseStopsTheStartWithTheKeyNamed) {
    const auto metrics_port = free_port();
    TerndProcess first(config(free_port(), metrics_port));
    ASSERT_TRUE(first.wait_for_output("is listening on", 10s)) << first.output();
    TerndProcess second(config(free_port(), metrics_port));
    ASSERT_TRUE(second.wait_exited(10s)) << second.output();
    EXPECT_EQ(second.stop(), 1) << second.output();
    EXPECT_NE(second.output().find("metrics.listen: cannot bind 127.0.0.1:" +
                                   std::to_string(metrics_port)),
              std::string::npos)
        << second.output();
    EXPECT_EQ(endpoint(metrics_port).get("/healthz").status, 200u);  // the first one serves on
}

// A raw TCP connection to 127.0.0.1:`port`.
int connect_to(std::uint16_t port);
bool closed_by_server(int fd, std::chrono::milliseconds timeout, std::string* answer = nullptr);

TEST(Metrics, TlsHandshakeFailuresAndConnectionLimitRefusalsAreCounted) {
    const auto port = free_port();
    const auto tls_port = free_port();
    const auto metrics_port = free_port();
    const auto p = std::to_string(port);
    TerndProcess ternd(
        "listen: [\"tcp://127.0.0.1:" + p + "\", \"tls://127.0.0.1:" + std::to_string(tls_port) +
        "\"]\ntls: { certificate: " + data_dir() + "/tls/cert.pem, private_key: " + data_dir() +
        "/tls/key.pem }\n"
        "auth: { users: { alice: { password: wonderland } } }\n"
        "limits: { max_connections_per_ip: 1 }\n"
        "metrics: { listen: \"127.0.0.1:" +
        std::to_string(metrics_port) + "\" }\n");
    ASSERT_TRUE(ternd.wait_for_output("is listening on", 10s)) << ternd.output();
    const auto http = endpoint(metrics_port);

    // Plain text where a TLS ClientHello belongs.
    int fd = connect_to(tls_port);
    ASSERT_GE(fd, 0);
    const std::string junk = "GET / HTTP/1.0\r\n\r\n";
    ::send(fd, junk.data(), junk.size(), MSG_NOSIGNAL);
    EXPECT_TRUE(closed_by_server(fd, 3s));
    ::close(fd);
    EXPECT_TRUE(eventually([&] { return http.scrape()("tern_tls_handshakes_failed_total") == 1; }));

    // One connection per IP: the second is refused and counted.
    const int held = connect_to(port);
    ASSERT_GE(held, 0);
    EXPECT_TRUE(eventually([&] {
        return http.scrape()("tern_connections_active", {{"transport", "tcp"}}) == 1;
    }));
    fd = connect_to(port);
    ASSERT_GE(fd, 0);
    EXPECT_TRUE(closed_by_server(fd, 3s));
    ::close(fd);
    const Metrics m = http.scrape();
    EXPECT_EQ(m("tern_rejections_total", {{"reason", "connection_limit_per_ip"}}), 1);
    EXPECT_EQ(m("tern_rejections_total", {{"reason", "connection_limit"}}), 0);
    ::close(held);
}

// A raw TCP connection to the endpoint.
int connect_to(std::uint16_t port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
        ::close(fd);
        return -1;
    }
    return fd;
}

// True when the server closes the connection (EOF or reset) within `timeout`, after reading
// whatever answer it gives first.
bool closed_by_server(int fd, std::chrono::milliseconds timeout, std::string* answer) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    std::array<char, 4096> buf{};
    while (std::chrono::steady_clock::now() < deadline) {
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, 100) <= 0) continue;
        const ssize_t n = ::recv(fd, buf.data(), buf.size(), 0);
        if (n <= 0) return true;
        if (answer) answer->append(buf.data(), static_cast<std::size_t>(n));
    }
    return false;
}

TEST(Metrics, HostileHttpClientsAreClosedAndScrapesStillWork) {
    MeteredTernd server;
    ASSERT_TRUE(server.ready()) << server.process.output();
    auto& ternd = server.process;
    const auto& http = server.http;
    const auto metrics_port = server.metrics_port;

    // A header far over the 8 KiB limit.
    int fd = connect_to(metrics_port);
    ASSERT_GE(fd, 0);
    const std::string huge = "GET /metrics HTTP/1.1\r\nX-Junk: " + std::string(20000, 'a');
    ::send(fd, huge.data(), huge.size(), MSG_NOSIGNAL);
    EXPECT_TRUE(closed_by_server(fd, 3s));
    ::close(fd);

    // Not HTTP at all.
    fd = connect_to(metrics_port);
    ASSERT_GE(fd, 0);
    const std::string junk = "\x16\x03\x01\x02\x00garbage\r\n\r\n";
    ::send(fd, junk.data(), junk.size(), MSG_NOSIGNAL);
    EXPECT_TRUE(closed_by_server(fd, 3s));
    ::close(fd);

    // A body where none belongs, over the limit.
    fd = connect_to(metrics_port);
    ASSERT_GE(fd, 0);
    const std::string post = "POST /drain HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" +
                             std::string(2000, 'b');
    ::send(fd, post.data(), post.size(), MSG_NOSIGNAL);
    EXPECT_TRUE(closed_by_server(fd, 3s));
    ::close(fd);
    EXPECT_EQ(http.get("/healthz").status, 200u) << "an oversized POST /drain must not drain";

    // Wrong methods and paths get their status codes.
    EXPECT_EQ(ctl::http_request(http.address, "DELETE", "/metrics").status, 405u);
    EXPECT_EQ(http.get("/drain").status, 405u);
    EXPECT_EQ(http.get("/nothing-here").status, 404u);
    EXPECT_EQ(http.get("/metrics?name[]=tern_draining").status, 200u);

    // More idle connections than sessions allowed: the extra ones are closed at once.
    std::vector<int> idle;
    for (int i = 0; i < 24; ++i) idle.push_back(connect_to(metrics_port));
    int closed = 0;
    for (const int f : idle) {
        if (f >= 0 && closed_by_server(f, 100ms)) ++closed;
    }
    EXPECT_GE(closed, 24 - 16);
    for (const int f : idle) ::close(f);
    EXPECT_TRUE(eventually([&] { return http.get("/metrics").status == 200; }, 3s));
    EXPECT_TRUE(ternd.running());
}

// The notify socket systemd would give a Type=notify service, read by the test.
class NotifySocket {
public:
    explicit NotifySocket(const std::string& path) : path_(path) {
        fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        sockaddr_un sa{};
        sa.sun_family = AF_UNIX;
        path.copy(sa.sun_path, sizeof sa.sun_path - 1);
        ::unlink(path.c_str());
        bound_ = ::bind(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0;
    }
    ~NotifySocket() {
        ::close(fd_);
        ::unlink(path_.c_str());
    }
    NotifySocket(const NotifySocket&) = delete;
    NotifySocket& operator=(const NotifySocket&) = delete;
    bool bound() const { return bound_; }

    // Waits for a message containing `needle`; every message seen is appended to `log`.
    bool wait_for(const std::string& needle, std::chrono::milliseconds timeout) {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        std::array<char, 4096> buf{};
        while (std::chrono::steady_clock::now() < deadline) {
            pollfd p{fd_, POLLIN, 0};
            if (::poll(&p, 1, 50) <= 0) continue;
            const ssize_t n = ::recv(fd_, buf.data(), buf.size(), 0);
            if (n <= 0) continue;
            const std::string message(buf.data(), static_cast<std::size_t>(n));
            log += message + "|";
            if (message.find(needle) != std::string::npos) return true;
        }
        return false;
    }
    std::string log;

private:
    std::string path_;
    int fd_ = -1;
    bool bound_ = false;
};

TEST(SystemdNotify, ReadyWatchdogReloadAndStoppingReachTheNotifySocket) {
    char tmpl[] = "/tmp/tern-notify-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    const std::string dir = tmpl;
    NotifySocket notify(dir + "/notify.sock");
    ASSERT_TRUE(notify.bound());
    const auto port = free_port();
    const auto metrics_port = free_port();
    // WatchdogSec=1s: keep-alives every quarter of it while the workers turn.
    TerndProcess ternd(config(port, metrics_port),
                       {"NOTIFY_SOCKET=" + dir + "/notify.sock", "WATCHDOG_USEC=1000000"});
    ASSERT_TRUE(notify.wait_for("READY=1", 10s)) << notify.log << ternd.output();
    // READY comes only once the sockets are bound: a client can be served at once.
    TurnClient client(loopback4(port), "alice", "wonderland");
    EXPECT_TRUE(client.fetch_nonce());
    int keepalives = 0;
    const auto until = std::chrono::steady_clock::now() + 1500ms;
    while (std::chrono::steady_clock::now() < until) {
        if (notify.wait_for("WATCHDOG=1", 600ms)) ++keepalives;
    }
    EXPECT_GE(keepalives, 3) << notify.log;

    ternd.send_signal(SIGHUP);
    ASSERT_TRUE(notify.wait_for("RELOADING=1", 5s)) << notify.log;
    EXPECT_TRUE(notify.wait_for("READY=1", 5s)) << notify.log;

    ternd.send_signal(SIGTERM);
    EXPECT_TRUE(notify.wait_for("STOPPING=1", 5s)) << notify.log;
    EXPECT_TRUE(ternd.wait_exited(5s));
    ::rmdir(dir.c_str());
}

}  // namespace
}  // namespace tern::test
