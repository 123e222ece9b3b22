// ternbench: the load generator of `make bench` (closed-loop and fixed-rate relaying, allocation
// set-up rate, idle allocation memory over UDP/TCP/TLS) and the bare forwarder it compares with.
#include <arpa/inet.h>
#include <openssl/ssl.h>
#include <poll.h>

#include <array>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "call_load.hpp"
#include "forwarder.hpp"
#include "link.hpp"
#include "relay_load.hpp"
#include "server_probe.hpp"
#include "setup_load.hpp"

namespace {

using namespace ternbench;

constexpr const char* usage = R"(usage:
  ternbench forward    --listen IP:PORT [--loop epoll|uring] [--busy-poll USEC] [--spin]
                       [--gso 1|0]
  ternbench throughput --server IP:PORT [--transport udp|tcp|tls] --secret S [--peer IP:PORT]
                       [--topology single|peers|pairs] [--clients N] [--window 8] [--size 100]
                       [--warmup 1] [--duration 5] [--pid SERVER_PID] [--indications]
                       [--forwarder] [--sni NAME]
  ternbench rate       (as throughput) --rate OWN_PACKETS_PER_SECOND
  ternbench setup      --server IP:PORT [--transport udp] --secret S [--clients 64]
                       [--warmup 1] [--duration 5] [--pid SERVER_PID] [--store-pid PID]
  ternbench idle       --server IP:PORT [--transport udp] --secret S [--allocations 10000]
                       [--pid SERVER_PID]
  ternbench calls      --server IP:PORT --secret S [--forwarder] [--mode fixed|search|flood]
                       [--calls 50] [--min-calls 64] [--max-calls 16384] [--budget 90]
                       [--window 8] [--size 100] [--warmup 1] [--duration 3]
                       [--max-loss 0.001] [--max-p99-ms 5] [--quiet-wait 0]
                       [--quiet-below 0.10] [--client-netns NAME]
                       [--peer-netns NAME] [--client-base 10.222.0.0] [--peer-base 10.223.0.0]
                       [--client-port 20000] [--peer-port 20000] [--server-pids P,P]
                       [--generator-pids P,P]
One JSON object goes to stdout; diagnostics to stderr. --sni NAME (TLS): the server name every
client's ClientHello carries (default: none). setup --store-pid PID: also the CPU time of that
process (the fleet's Redis) over the measured window, per set-up. setup reports the latency of
the authenticated Allocate (allocate_p50_us, allocate_p99_us) and of the whole set-up, first
Allocate to ChannelBind success (setup_p50_us, setup_p99_us), over the measured window.
Topologies: single = every client's peer is one echo socket (--peer; default 32 clients);
peers = client i's peer is an echo socket of its own at 127.20.x.y:PORT of --peer (default 50
clients); pairs = clients 2k and 2k+1 relay to each other through their two allocations (default
50 clients). relayed_pps = 2 x packets received by clients: each crossed the server twice. With
--rate, own packets per second: each is 2 relayed packets with an echo peer, 4 in pairs.
calls: audio + video calls (or a closed-loop flood) between clients and peers on address
blocks of their own, for bench/capacity.py; see call_load.hpp.
)";

class Options {
public:
    Options(int argc, char** argv) {
        for (int i = 2; i < argc; ++i) {
            const std::string a = argv[i];
            if (a.rfind("--", 0) != 0) throw std::invalid_argument("unexpected argument " + a);
            std::string key(a, 2);
            if (key == "indications" || key == "forwarder" || key == "spin") {
                values_[key].assign(1, '1');  // not = "1": GCC 12 -Wrestrict false positive
            } else if (i + 1 < argc) {
                values_[key].assign(argv[++i]);
            } else {
                throw std::invalid_argument(a + " needs a value");
            }
        }
    }
    std::string text(const std::string& key, const std::string& fallback = {}) const {
        const auto it = values_.find(key);
        if (it != values_.end()) return it->second;
        if (fallback.empty()) throw std::invalid_argument("--" + key + " is required");
        return fallback;
    }
    double number(const std::string& key, double fallback) const {
        const auto it = values_.find(key);
        return it == values_.end() ? fallback : std::stod(it->second);
    }
    bool flag(const std::string& key) const { return values_.count(key) != 0; }
    TransportAddress address(const std::string& key, const std::string& fallback = {}) const {
        const std::string t = text(key, fallback);
        const auto a = TransportAddress::parse(t);
        if (!a || a->family != tern::protocol::AddressFamily::ipv4) {
            throw std::invalid_argument("--" + key + ": expected IPv4:port, got " + t);
        }
        return *a;
    }

private:
    std::map<std::string, std::string> values_;
};

Transport transport_of(const Options& o) {
    if (const auto t = tern::protocol::parse_transport(o.text("transport", "udp"))) return *t;
    throw std::invalid_argument("--transport must be udp, tcp or tls");
}

// A flat JSON object, printed on one line.
class Json {
public:
    Json& add(const std::string& key, const std::string& value) {
        fields_ << (first_ ? "" : ",") << '"' << key << "\":\"" << value << '"';
        first_ = false;
        return *this;
    }
    Json& add(const std::string& key, double value) {
        char buffer[64];
        std::snprintf(buffer, sizeof buffer, "%.6g", value);
        fields_ << (first_ ? "" : ",") << '"' << key << "\":" << buffer;
        first_ = false;
        return *this;
    }
    void print() const { std::cout << '{' << fields_.str() << "}\n"; }

private:
    std::ostringstream fields_;
    bool first_ = true;
};

std::string sni_of(const Options& o) {
    return o.flag("sni") ? o.text("sni") : std::string();
}

struct Clients {
    explicit Clients(std::string server_name) : sni(std::move(server_name)) {}
    Clients(const Clients&) = delete;
    Clients& operator=(const Clients&) = delete;
    SSL_CTX* tls = nullptr;
    std::string sni;  // --sni: the server name in each TLS ClientHello; empty = none
    std::vector<std::unique_ptr<Link>> links;
    ~Clients() {
        links.clear();
        if (tls != nullptr) SSL_CTX_free(tls);
    }
};

// Set-up runs use addresses of their own (from client 40,000 on), so they never meet a 5-tuple
// that an earlier run against the same server left allocated.
constexpr std::size_t setup_address_offset = 40000;

void open_clients(Clients& c, Transport t, const TransportAddress& server, std::size_t count,
                  std::size_t first_address = 0) {
    if (t == Transport::tls) c.tls = make_client_tls();
    const sockaddr_in to = to_sockaddr_v4(server);
    c.links.reserve(count);
    for (std::size_t i = 0; i < count; ++i) {
        c.links.push_back(
            std::make_unique<Link>(t, to, client_source(first_address + i), c.tls, c.sni));
    }
}

Clock::time_point after(double seconds) {
    return Clock::now() +
           std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
}

enum class Topology { single, peers, pairs };

Topology topology_of(const Options& o) {
    const std::string t = o.text("topology", "single");
    if (t == "single") return Topology::single;
    if (t == "peers") return Topology::peers;
    if (t == "pairs") return Topology::pairs;
    throw std::invalid_argument("--topology must be single, peers or pairs");
}

// The peers topology's k-th echo socket: 127.20.0.1, 127.20.0.2, ... on the port of --peer.
TransportAddress peer_address(std::size_t k, std::uint16_t port) {
    const sockaddr_in s = client_source(k);  // 127.10.x.y
    std::uint32_t host = ntohl(s.sin_addr.s_addr);
    host = (host & 0xFF00FFFFu) | (20u << 16);
    TransportAddress a{};
    a.family = tern::protocol::AddressFamily::ipv4;
    const std::uint32_t net = htonl(host);
    std::memcpy(a.bytes.data(), &net, 4);
    a.port = port;
    return a;
}

int relay(const Options& o, bool fixed_rate) {
    const Transport t = transport_of(o);
    const Topology topology = topology_of(o);
    const bool forwarder = o.flag("forwarder");
    if (forwarder && (t != Transport::udp || o.flag("indications"))) {
        throw std::invalid_argument("--forwarder relays UDP ChannelData only");
    }
    const TransportAddress server = o.address("server");
    const TransportAddress peer = o.address("peer", "127.0.0.1:9000");
    const ServerProbe probe(static_cast<pid_t>(o.number("pid", 0)));
    RelayPlan plan;
    plan.indications = o.flag("indications");
    plan.pairs = topology == Topology::pairs;
    plan.size = static_cast<std::size_t>(o.number("size", 100));
    plan.window = static_cast<std::size_t>(o.number("window", 8));
    plan.rate = fixed_rate ? o.number("rate", 10000) : 0;
    plan.warmup_s = o.number("warmup", 1);
    plan.duration_s = o.number("duration", 5);
    const auto clients =
        static_cast<std::size_t>(o.number("clients", topology == Topology::single ? 32 : 50));
    if (topology == Topology::pairs && (clients < 2 || clients % 2 != 0)) {
        throw std::invalid_argument("--topology pairs needs an even number of clients");
    }

    // Whom each client relays to: one echo socket, one of its own, or its partner's relayed
    // address (known once the partner has allocated).
    std::vector<TransportAddress> echo_peers;
    if (topology == Topology::single) echo_peers.push_back(peer);
    if (topology == Topology::peers) {
        for (std::size_t k = 0; k < clients; ++k) echo_peers.push_back(peer_address(k, peer.port));
    }
    Clients c(sni_of(o));
    open_clients(c, t, server, clients);
    std::vector<TransportAddress> relayed(clients);
    std::vector<TransportAddress> targets(clients);
    auto fixed_target = [&](std::size_t i) {
        return topology == Topology::peers ? echo_peers[i] : peer;
    };
    if (forwarder) {
        // The forwarder's stand-in for Allocate, then for CreatePermission + ChannelBind.
        for (std::size_t i = 0; i < clients; ++i) {
            relayed[i] = forwarder_exchange(*c.links[i], fwd_allocate, peer);
        }
        for (std::size_t i = 0; i < clients; ++i) {
            targets[i] = topology == Topology::pairs ? relayed[i ^ 1] : fixed_target(i);
            forwarder_exchange(*c.links[i], fwd_bind, targets[i]);
        }
    } else {
        SetupPlan setup;
        setup.secret = o.text("secret");
        setup.peer = peer;
        if (topology == Topology::peers) {
            setup.peer_of = [&](const SetupEngine&, std::size_t i) {
                return std::optional<TransportAddress>(echo_peers[i]);
            };
        } else if (topology == Topology::pairs) {
            setup.peer_of = [](const SetupEngine& e,
                               std::size_t i) -> std::optional<TransportAddress> {
                const TransportAddress partner = e.relayed(i ^ 1);
                if (partner.port == 0) return std::nullopt;
                return partner;
            };
        }
        SetupEngine engine(c.links, setup);
        engine.run(after(20));
        for (std::size_t i = 0; i < clients; ++i) {
            relayed[i] = engine.relayed(i);
            targets[i] = topology == Topology::pairs ? relayed[i ^ 1] : fixed_target(i);
        }
    }
    const RelayResult r = run_relay_load(c.links, targets, echo_peers, plan, probe);
    const double relayed_packets = 2.0 * static_cast<double>(r.received_in_window);
    const char* topology_name = topology == Topology::pairs   ? "pairs"
                                : topology == Topology::peers ? "peers"
                                                              : "single";
    Json j;
    j.add("test", fixed_rate ? "rate" : "throughput")
        .add("transport", to_string(t))
        .add("mode", plan.indications ? "indications" : "channel_data")
        .add("topology", topology_name)
        .add("peers", static_cast<double>(plan.pairs ? clients : echo_peers.size()))
        .add("size", static_cast<double>(plan.size))
        .add("clients", static_cast<double>(c.links.size()))
        .add("relayed_pps", relayed_packets / r.window_s)
        .add("sent", static_cast<double>(r.sent))
        .add("received", static_cast<double>(r.received))
        .add("loss", r.sent == 0 ? 0.0
                                 : static_cast<double>(r.sent - std::min(r.sent, r.received)) /
                                       static_cast<double>(r.sent))
        .add("rtt_p50_us", r.rtt_p50_us)
        .add("rtt_p99_us", r.rtt_p99_us)
        .add("kernel_udp_drops", static_cast<double>(r.udp_drops))
        .add("window_refills", static_cast<double>(r.refills));
    if (fixed_rate) {
        j.add("rate", plan.rate).add("relayed_rate", plan.rate * (plan.pairs ? 4 : 2));
    }
    if (probe.enabled()) {
        j.add("server_cpu_s", r.server_cpu_s)
            .add("server_cpu_util", r.server_cpu_s / r.window_s)
            .add("cpu_us_per_relayed",
                 relayed_packets > 0 ? r.server_cpu_s / relayed_packets * 1e6 : 0)
            .add("rss_kib", static_cast<double>(r.rss_kib));
    }
    j.print();
    return r.received_in_window > 0 ? 0 : 3;
}

int setup(const Options& o) {
    const Transport t = transport_of(o);
    const ServerProbe probe(static_cast<pid_t>(o.number("pid", 0)));
    Clients c(sni_of(o));
    open_clients(c, t, o.address("server"), static_cast<std::size_t>(o.number("clients", 64)),
                 setup_address_offset);
    SetupPlan plan;
    plan.secret = o.text("secret");
    plan.peer = o.address("peer", "127.0.0.1:9000");
    plan.cycle = true;
    const sockaddr_in server = to_sockaddr_v4(o.address("server"));
    // Each client has its own address; its source port walks through 20,000 values so a
    // 5-tuple comes back only after minutes (coturn keeps a deleted one for a while).
    std::vector<std::uint16_t> next_port(c.links.size(), 0);
    plan.reopen = [&](std::size_t i) {
        for (int attempt = 0;; ++attempt) {
            sockaddr_in source = client_source(setup_address_offset + i);
            source.sin_port = htons(static_cast<std::uint16_t>(40000 + next_port[i]));
            next_port[i] = static_cast<std::uint16_t>((next_port[i] + 1) % 20000);
            try {
                return std::make_unique<Link>(t, server, source, c.tls, c.sni);
            } catch (const std::runtime_error&) {
                if (attempt == 16) throw;  // that port is taken: try the next
            }
        }
    };
    const ServerProbe store(static_cast<pid_t>(o.number("store-pid", 0)));
    SetupEngine engine(c.links, plan);
    const double duration = o.number("duration", 5);
    engine.run(after(o.number("warmup", 1)));
    engine.start_recording();
    const ServerSample before = probe.sample();
    const ServerSample store_before = store.sample();
    const std::uint64_t start = engine.cycles_completed();
    engine.run(after(duration));
    const ServerSample end = probe.sample();
    const ServerSample store_end = store.sample();
    const double cycles = static_cast<double>(engine.cycles_completed() - start);
    Json j;
    j.add("test", "setup")
        .add("transport", to_string(t))
        .add("clients", static_cast<double>(c.links.size()))
        .add("setups_per_s", cycles / duration)
        .add("allocate_p50_us", engine.allocate_latency_us(0.50))
        .add("allocate_p99_us", engine.allocate_latency_us(0.99))
        .add("setup_p50_us", engine.setup_latency_us(0.50))
        .add("setup_p99_us", engine.setup_latency_us(0.99))
        .add("latency_samples", static_cast<double>(engine.latency_samples()))
        .add("errors", static_cast<double>(engine.errors()));
    if (probe.enabled()) {
        const double cpu = end.cpu_seconds - before.cpu_seconds;
        j.add("server_cpu_s", cpu)
            .add("server_cpu_util", cpu / duration)
            .add("cpu_us_per_setup", cycles > 0 ? cpu / cycles * 1e6 : 0);
    }
    if (store.enabled()) {
        const double cpu = store_end.cpu_seconds - store_before.cpu_seconds;
        j.add("store_cpu_s", cpu)
            .add("store_cpu_util", cpu / duration)
            .add("store_cpu_us_per_setup", cycles > 0 ? cpu / cycles * 1e6 : 0);
    }
    j.print();
    return cycles > 0 ? 0 : 3;
}

int idle(const Options& o) {
    const Transport t = transport_of(o);
    const ServerProbe probe(static_cast<pid_t>(o.number("pid", 0)));
    if (!probe.enabled()) throw std::invalid_argument("idle needs --pid");
    const auto count = static_cast<std::size_t>(o.number("allocations", 10000));
    const ServerSample before = probe.sample();
    Clients c(sni_of(o));
    open_clients(c, t, o.address("server"), count);
    SetupPlan plan;
    plan.secret = o.text("secret");
    plan.peer = o.address("peer", "127.0.0.1:9000");
    SetupEngine engine(c.links, plan);
    const auto started = Clock::now();
    engine.run(after(120));
    const double seconds = std::chrono::duration<double>(Clock::now() - started).count();
    std::this_thread::sleep_for(std::chrono::milliseconds(500));  // let the server settle
    const ServerSample held = probe.sample();
    // What holding them costs: lifetimes are swept once a second per worker.
    std::this_thread::sleep_for(std::chrono::seconds(2));
    const double idle_cpu = probe.sample().cpu_seconds - held.cpu_seconds;
    const auto n = static_cast<double>(count);
    Json j;
    j.add("test", "idle")
        .add("transport", to_string(t))
        .add("allocations", n)
        .add("rss_before_kib", static_cast<double>(before.rss_kib))
        .add("rss_kib", static_cast<double>(held.rss_kib))
        .add("bytes_per_allocation",
             (static_cast<double>(held.rss_kib) - static_cast<double>(before.rss_kib)) * 1024 / n)
        .add("fds_per_allocation",
             (static_cast<double>(held.fds) - static_cast<double>(before.fds)) / n)
        .add("setup_seconds", seconds)
        .add("idle_cpu_util", idle_cpu / 2)
        .add("errors", static_cast<double>(engine.errors()));
    j.print();
    return 0;
}

std::vector<pid_t> pid_list(const Options& o, const std::string& key) {
    std::vector<pid_t> out;
    if (!o.flag(key)) return out;
    std::istringstream in(o.text(key));
    std::string item;
    while (std::getline(in, item, ',')) {
        if (!item.empty()) out.push_back(static_cast<pid_t>(std::stol(item)));
    }
    return out;
}

std::uint32_t ipv4_host(const Options& o, const std::string& key, const std::string& fallback) {
    in_addr a{};
    const std::string t = o.text(key, fallback);
    if (::inet_pton(AF_INET, t.c_str(), &a) != 1) {
        throw std::invalid_argument("--" + key + ": expected an IPv4 address, got " + t);
    }
    return ntohl(a.s_addr);
}

int calls(const Options& o) {
    CallPlan p;
    p.server = o.address("server");
    p.forwarder = o.flag("forwarder");
    p.secret = p.forwarder ? o.text("secret", "unused") : o.text("secret");
    p.client_netns = o.flag("client-netns") ? o.text("client-netns") : "";
    p.peer_netns = o.flag("peer-netns") ? o.text("peer-netns") : "";
    p.client_base = ipv4_host(o, "client-base", "10.222.0.0");
    p.peer_base = ipv4_host(o, "peer-base", "10.223.0.0");
    p.client_port = static_cast<std::uint16_t>(o.number("client-port", 20000));
    p.peer_port = static_cast<std::uint16_t>(o.number("peer-port", 20000));
    const std::string mode = o.text("mode", "fixed");
    if (mode == "flood") {
        p.mode = CallMode::flood;
    } else if (mode == "search") {
        p.mode = CallMode::search;
    } else if (mode != "fixed") {
        throw std::invalid_argument("--mode must be fixed, search or flood");
    }
    p.calls = static_cast<std::size_t>(o.number("calls", 50));
    p.window = static_cast<std::size_t>(o.number("window", 8));
    p.size = static_cast<std::size_t>(o.number("size", 100));
    p.min_calls = static_cast<std::size_t>(o.number("min-calls", 64));
    p.max_calls = static_cast<std::size_t>(o.number("max-calls", 16384));
    p.budget_s = o.number("budget", 90);
    p.warmup_s = o.number("warmup", 1);
    p.duration_s = o.number("duration", 3);
    p.max_loss = o.number("max-loss", 0.001);
    p.max_p99_ms = o.number("max-p99-ms", 5);
    p.quiet_wait_s = o.number("quiet-wait", 0);
    p.quiet_below = o.number("quiet-below", 0.10);
    p.server_pids = pid_list(o, "server-pids");
    p.generator_pids = pid_list(o, "generator-pids");
    return run_call_load(p);
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2 || std::strcmp(argv[1], "--help") == 0) {
        std::cerr << usage;
        return argc < 2 ? 2 : 0;
    }
    const std::string command = argv[1];
    try {
        const Options o(argc, argv);
        if (command == "forward") {
            ForwarderOptions f;
            f.listen = o.address("listen");
            const std::string loop = o.text("loop", "epoll");
            if (loop == "uring") {
                f.loop = ForwarderLoop::uring;
            } else if (loop != "epoll") {
                throw std::invalid_argument("--loop must be epoll or uring");
            }
            if (f.loop == ForwarderLoop::uring && !forwarder_has_uring()) {
                throw std::invalid_argument("--loop uring: built without liburing");
            }
            f.busy_poll_us = static_cast<int>(o.number("busy-poll", 0));
            f.spin = o.flag("spin");
            f.gso = o.number("gso", 1) != 0;
            return run_forwarder(f);
        }
        if (command == "throughput") return relay(o, false);
        if (command == "rate") return relay(o, true);
        if (command == "setup") return setup(o);
        if (command == "idle") return idle(o);
        if (command == "calls") return calls(o);
        std::cerr << "unknown command " << command << "\n" << usage;
        return 2;
    } catch (const std::exception& e) {
        std::cerr << "ternbench " << command << ": " << e.what() << "\n";
        return 1;
    }
}
