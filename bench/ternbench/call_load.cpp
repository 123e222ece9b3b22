#include "call_load.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "forwarder.hpp"
#include "link.hpp"
#include "server_probe.hpp"
#include "setup_load.hpp"

namespace ternbench {

namespace {

constexpr std::size_t batch = 64;
constexpr std::size_t slot = 2048;
constexpr std::size_t control_bytes = 64;
constexpr std::size_t header = 4;  // ChannelData header, client side only
constexpr std::uint32_t magic = 0x7E4C0A11;
// Payload layout: magic, epoch, call, kind (4 bytes each), then the send time (8).
constexpr std::size_t min_payload = 24;
constexpr std::size_t stamp_at = 16;
constexpr std::size_t setup_chunk = 1024;  // Links open at once during set-up

// Media: kinds 0-1 leave the client (audio, video), 2-3 the peer.
constexpr std::uint64_t audio_period_ns = 20'000'000;  // 50 packets/s
constexpr std::uint64_t video_period_ns = 11'111'111;  // 90 packets/s
constexpr std::size_t audio_bytes = 160;
constexpr std::size_t video_bytes = 960;
constexpr double packets_per_call = 2.0 * (50 + 90);  // relayed per second, both ways
constexpr std::size_t wheel_slots = 64;               // 1 ms each; every period is shorter
constexpr std::uint64_t skip_after_ns = 50'000'000;   // a stream this late skips ahead

std::uint64_t clock_ns(clockid_t id) {
    timespec t{};
    ::clock_gettime(id, &t);
    return static_cast<std::uint64_t>(t.tv_sec) * 1'000'000'000u +
           static_cast<std::uint64_t>(t.tv_nsec);
}
std::uint64_t mono_ns() {
    return clock_ns(CLOCK_MONOTONIC);
}
std::uint64_t real_ns() {
    return clock_ns(CLOCK_REALTIME);
}

[[noreturn]] void fail(const std::string& what) {
    throw std::runtime_error(what + ": " + std::strerror(errno));
}

sockaddr_in v4(std::uint32_t host, std::uint16_t port) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(host);
    a.sin_port = htons(port);
    return a;
}

TransportAddress transport_address(const sockaddr_in& s) {
    TransportAddress a{};
    a.family = tern::protocol::AddressFamily::ipv4;
    std::memcpy(a.bytes.data(), &s.sin_addr, 4);
    a.port = ntohs(s.sin_port);
    return a;
}

std::string dotted(std::uint32_t host) {
    in_addr a{htonl(host)};
    char text[INET_ADDRSTRLEN];
    ::inet_ntop(AF_INET, &a, text, sizeof text);
    return text;
}

// Enters a named network namespace (/run/netns/NAME) for the sockets opened in its scope; leaves
// it again at the end. An empty name stays where the process is.
class NetnsScope {
public:
    explicit NetnsScope(const std::string& name) {
        if (name.empty()) return;
        home_ = ::open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
        if (home_ < 0) fail("open /proc/self/ns/net");
        const int target = ::open(("/run/netns/" + name).c_str(), O_RDONLY | O_CLOEXEC);
        if (target < 0) fail("open /run/netns/" + name);
        const int r = ::setns(target, CLONE_NEWNET);
        ::close(target);
        if (r != 0) fail("setns " + name);
    }
    ~NetnsScope() {
        if (home_ < 0) return;
        ::setns(home_, CLONE_NEWNET);
        ::close(home_);
    }
    NetnsScope(const NetnsScope&) = delete;
    NetnsScope& operator=(const NetnsScope&) = delete;

private:
    int home_ = -1;
};

// Latencies in 5 µs buckets up to 100 ms (the last bucket holds everything later).
class Histogram {
public:
    Histogram() : counts_(buckets + 1, 0) {}
    void clear() {
        std::fill(counts_.begin(), counts_.end(), 0);
        total_ = 0;
        max_ns_ = 0;
    }
    void add(std::int64_t ns) {
        if (ns < 0) ns = 0;
        const auto b = std::min<std::uint64_t>(static_cast<std::uint64_t>(ns) / width_ns, buckets);
        ++counts_[b];
        ++total_;
        max_ns_ = std::max<std::uint64_t>(max_ns_, static_cast<std::uint64_t>(ns));
    }
    std::uint64_t total() const { return total_; }
    void merge(const Histogram& other) {
        for (std::size_t b = 0; b <= buckets; ++b) counts_[b] += other.counts_[b];
        total_ += other.total_;
        max_ns_ = std::max(max_ns_, other.max_ns_);
    }
    // The q-quantile in milliseconds (the upper edge of its bucket); 0 when empty.
    double quantile_ms(double q) const {
        if (total_ == 0) return 0;
        const auto rank = static_cast<std::uint64_t>(q * static_cast<double>(total_ - 1)) + 1;
        std::uint64_t seen = 0;
        for (std::size_t b = 0; b <= buckets; ++b) {
            seen += counts_[b];
            if (seen >= rank) {
                return b == buckets ? static_cast<double>(max_ns_) / 1e6
                                    : static_cast<double>((b + 1) * width_ns) / 1e6;
            }
        }
        return static_cast<double>(max_ns_) / 1e6;
    }
    double max_ms() const { return static_cast<double>(max_ns_) / 1e6; }

private:
    static constexpr std::uint64_t width_ns = 5'000;
    static constexpr std::size_t buckets = 20'000;
    std::vector<std::uint64_t> counts_;
    std::uint64_t total_ = 0;
    std::uint64_t max_ns_ = 0;
};

// CPU time so far, from /proc: per CPU the time it was not busy (idle + iowait + steal; busy
// is the rest of the wall time: /proc/stat's idle time is measured, while its user and system
// times are sampled at the tick, which a process waking every millisecond aliases with), this
// process, and the server's and generator's other pids (utime + stime, measured).
struct CpuSample {
    double at = 0;             // CLOCK_MONOTONIC, seconds
    std::vector<double> idle;  // per CPU, seconds
    double steal_all = 0;
    double self = 0;
    double server = 0;
    double generator_extra = 0;
    bool server_alive = true;
};

double ticks() {
    static const double t = static_cast<double>(::sysconf(_SC_CLK_TCK));
    return t;
}

CpuSample sample_cpu(const CallPlan& plan) {
    CpuSample s;
    std::ifstream stat("/proc/stat");
    std::string line;
    while (std::getline(stat, line)) {
        if (line.rfind("cpu", 0) != 0) break;
        std::istringstream in(line);
        std::string name;
        in >> name;
        std::array<std::uint64_t, 8> v{};
        for (auto& x : v) in >> x;
        if (name == "cpu") {
            s.steal_all = static_cast<double>(v[7]) / ticks();
        } else {
            s.idle.push_back(static_cast<double>(v[3] + v[4] + v[7]) / ticks());
        }
    }
    s.at = static_cast<double>(mono_ns()) / 1e9;
    s.self = stat_cpu_seconds("/proc/self/stat").value_or(0);
    for (const pid_t p : plan.server_pids) {
        const auto c = stat_cpu_seconds("/proc/" + std::to_string(p) + "/stat");
        if (!c) s.server_alive = false;
        s.server += c.value_or(0);
    }
    for (const pid_t p : plan.generator_pids) {
        s.generator_extra += stat_cpu_seconds("/proc/" + std::to_string(p) + "/stat").value_or(0);
    }
    return s;
}

// Where datagrams were dropped, from the generator's namespaces (their veth ends mirror the
// server ends' counters) and the server's: a generator end's rx_dropped counts the server's
// sends its full receive ring refused (generator side), its tx_dropped the generator's sends the
// server end's full ring refused (server side); UDP RcvbufErrors count full sockets.
struct DropSample {
    std::uint64_t generator_ring = 0;
    std::uint64_t server_ring = 0;
    std::uint64_t generator_socket = 0;
    std::uint64_t server_socket = 0;
};

// rx_dropped and tx_dropped summed over the devices of /proc/thread-self/net/dev (loopback aside).
std::pair<std::uint64_t, std::uint64_t> device_drops() {
    std::ifstream in("/proc/thread-self/net/dev");
    std::string line;
    std::uint64_t rx = 0;
    std::uint64_t tx = 0;
    while (std::getline(in, line)) {
        const auto colon = line.find(':');
        if (colon == std::string::npos) continue;
        std::string name = line.substr(0, colon);
        name.erase(0, name.find_first_not_of(' '));
        if (name == "lo") continue;
        std::istringstream fields(line.substr(colon + 1));
        std::array<std::uint64_t, 16> v{};
        for (auto& x : v) fields >> x;
        rx += v[3];
        tx += v[11];
    }
    return {rx, tx};
}

// Udp RcvbufErrors from a /proc/.../net/snmp file.
std::uint64_t udp_receive_errors(const std::string& path) {
    std::ifstream in(path);
    std::string names;
    std::string values;
    while (std::getline(in, names)) {
        if (names.rfind("Udp:", 0) != 0) continue;
        std::getline(in, values);
        std::istringstream h(names);
        std::istringstream v(values);
        std::string name;
        std::string value;
        while (h >> name && v >> value) {
            if (name == "RcvbufErrors") return std::stoull(value);
        }
    }
    return 0;
}

DropSample sample_drops(const CallPlan& plan) {
    DropSample d;
    for (const std::string& ns : {plan.client_netns, plan.peer_netns}) {
        if (ns.empty()) continue;
        NetnsScope scope(ns);
        const auto [rx, tx] = device_drops();
        d.generator_ring += rx;
        d.server_ring += tx;
        d.generator_socket += udp_receive_errors("/proc/thread-self/net/snmp");
    }
    if (!plan.server_pids.empty()) {
        d.server_socket =
            udp_receive_errors("/proc/" + std::to_string(plan.server_pids.front()) + "/net/snmp");
    }
    return d;
}

// One line of JSON.
class Json {
public:
    Json& add(const std::string& key, const std::string& value) {
        out_ << (first_ ? "" : ",") << '"' << key << "\":\"" << value << '"';
        first_ = false;
        return *this;
    }
    Json& add(const std::string& key, const char* value) { return add(key, std::string(value)); }
    Json& add(const std::string& key, double value) {
        char buffer[64];
        std::snprintf(buffer, sizeof buffer, "%.6g", value);
        out_ << (first_ ? "" : ",") << '"' << key << "\":" << buffer;
        first_ = false;
        return *this;
    }
    Json& add(const std::string& key, bool value) {
        out_ << (first_ ? "" : ",") << '"' << key << "\":" << (value ? "true" : "false");
        first_ = false;
        return *this;
    }
    Json& raw(const std::string& key, const std::string& json) {
        out_ << (first_ ? "" : ",") << '"' << key << "\":" << json;
        first_ = false;
        return *this;
    }
    std::string str() const { return '{' + out_.str() + '}'; }
    void print() const { std::cout << str() << '\n' << std::flush; }

private:
    std::ostringstream out_;
    bool first_ = true;
};

// What a measured window saw, per direction: 0 = client to peer (arrives at the peer), 1 = peer
// to client.
struct Window {
    std::array<std::uint64_t, 2> sent{};
    std::array<std::uint64_t, 2> received{};
    std::array<Histogram, 2> delay;
    Histogram app;  // the same, to when the generator read it
    Histogram lag;  // how late the generator sent a paced packet
    std::uint64_t skipped = 0;
    std::uint64_t send_drops = 0;
    std::uint64_t foreign = 0;                   // not ours, or from an earlier step
    std::uint64_t rt_start = ~std::uint64_t{0};  // window: send stamps in [rt_start, rt_end)
    std::uint64_t rt_end = ~std::uint64_t{0};
    void clear() {
        sent = {};
        received = {};
        for (auto& h : delay) h.clear();
        app.clear();
        lag.clear();
        skipped = send_drops = foreign = 0;
        rt_start = rt_end = ~std::uint64_t{0};
    }
    bool in(std::uint64_t stamp) const { return stamp >= rt_start && stamp < rt_end; }
};

// One side's socket: every call of that side sends and receives through it.
class Side {
public:
    Side(std::string netns, std::uint16_t port, bool channel_data, std::size_t direction)
        : netns_(std::move(netns)),
          port_(port),
          channel_data_(channel_data),
          direction_(direction),
          out_(batch * slot, 0),
          in_(batch * slot, 0) {}
    ~Side() { close(); }
    Side(const Side&) = delete;
    Side& operator=(const Side&) = delete;

    void open() {
        if (fd_ >= 0) return;
        NetnsScope ns(netns_);
        fd_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd_ < 0) fail("socket");
        const int one = 1;
        const int buffer = 32 << 20;
        if (::setsockopt(fd_, SOL_SOCKET, SO_RCVBUFFORCE, &buffer, sizeof buffer) != 0) {
            ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &buffer, sizeof buffer);
        }
        if (::setsockopt(fd_, SOL_SOCKET, SO_SNDBUFFORCE, &buffer, sizeof buffer) != 0) {
            ::setsockopt(fd_, SOL_SOCKET, SO_SNDBUF, &buffer, sizeof buffer);
        }
        ::setsockopt(fd_, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one);
        const sockaddr_in any = v4(INADDR_ANY, port_);
        if (::bind(fd_, reinterpret_cast<const sockaddr*>(&any), sizeof any) != 0) {
            const int e = errno;
            ::close(fd_);
            fd_ = -1;
            errno = e;
            fail("bind 0.0.0.0:" + std::to_string(port_));
        }
    }
    void close() {
        if (fd_ >= 0) ::close(fd_);
        fd_ = -1;
        queued_ = 0;
    }
    int fd() const { return fd_; }

    // A fresh packet of `payload` bytes: the header fields now, the stamp at flush.
    void queue(const sockaddr_in& to, std::uint32_t from, std::uint32_t epoch, std::uint32_t call,
               std::uint32_t kind, std::size_t payload, Window& w) {
        std::uint8_t* p = begin(to, from, payload, w);
        const std::array<std::uint32_t, 4> fields{magic, epoch, call, kind};
        std::memcpy(p, fields.data(), sizeof fields);
        restamp_[queued_++] = true;
    }
    // Someone else's payload, stamp kept (the flood's echo).
    void queue_copy(const sockaddr_in& to, std::uint32_t from, const std::uint8_t* bytes,
                    std::size_t payload, Window& w) {
        std::memcpy(begin(to, from, payload, w), bytes, payload);
        restamp_[queued_++] = false;
    }

    void flush(Window& w) {
        if (queued_ == 0) return;
        const std::uint64_t now = real_ns();
        for (std::size_t i = 0; i < queued_; ++i) {
            if (!restamp_[i]) continue;
            std::memcpy(out_.data() + i * slot + (channel_data_ ? header : 0) + stamp_at, &now, 8);
            if (w.in(now)) ++w.sent[direction_];
        }
        std::size_t done = 0;
        while (done < queued_) {
            const int n = ::sendmmsg(fd_, send_headers_.data() + done,
                                     static_cast<unsigned>(queued_ - done), MSG_DONTWAIT);
            if (n <= 0) {
                if (n < 0 && errno == EINTR) continue;
                // A full buffer (or an ICMP error surfacing): this datagram is lost, go on.
                if (w.send_drops++ == 0) {
                    std::cerr << "calls: a send failed: " << std::strerror(errno) << "\n";
                }
                ++done;
                continue;
            }
            done += static_cast<std::size_t>(n);
        }
        queued_ = 0;
    }

    // Receives one batch; calls on(payload, size, source, kernel receive time in real ns or 0).
    template <typename F>
    int receive(F&& on) {
        for (std::size_t i = 0; i < batch; ++i) {
            riov_[i] = {in_.data() + i * slot, slot};
            msghdr& h = recv_headers_[i].msg_hdr;
            h.msg_name = &sources_[i];
            h.msg_namelen = sizeof(sockaddr_in);
            h.msg_iov = &riov_[i];
            h.msg_iovlen = 1;
            h.msg_control = rcontrol_.data() + i * control_bytes;
            h.msg_controllen = control_bytes;
            h.msg_flags = 0;
        }
        const int n = ::recvmmsg(fd_, recv_headers_.data(), batch, MSG_DONTWAIT, nullptr);
        for (int k = 0; k < n; ++k) {
            const auto i = static_cast<std::size_t>(k);
            msghdr& h = recv_headers_[i].msg_hdr;
            std::uint64_t at = 0;
            for (cmsghdr* c = CMSG_FIRSTHDR(&h); c != nullptr; c = CMSG_NXTHDR(&h, c)) {
                if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
                    timespec t{};
                    std::memcpy(&t, CMSG_DATA(c), sizeof t);
                    at = static_cast<std::uint64_t>(t.tv_sec) * 1'000'000'000u +
                         static_cast<std::uint64_t>(t.tv_nsec);
                }
            }
            const std::uint8_t* bytes = in_.data() + i * slot;
            std::size_t size = recv_headers_[i].msg_len;
            if (channel_data_) {
                if (size < header || (bytes[0] & 0xC0) != 0x40) {
                    on(nullptr, 0, sources_[i], at);
                    continue;
                }
                const std::size_t length = (std::size_t{bytes[2]} << 8) | bytes[3];
                if (length > size - header) {
                    on(nullptr, 0, sources_[i], at);
                    continue;
                }
                bytes += header;
                size = length;
            }
            on(bytes, size, sources_[i], at);
        }
        return n;
    }

private:
    std::uint8_t* begin(const sockaddr_in& to, std::uint32_t from, std::size_t payload, Window& w) {
        if (queued_ == batch) flush(w);
        const std::size_t i = queued_;
        std::uint8_t* frame = out_.data() + i * slot;
        std::size_t size = payload;
        if (channel_data_) {
            frame[0] = 0x40;
            frame[1] = 0x00;
            frame[2] = static_cast<std::uint8_t>(payload >> 8);
            frame[3] = static_cast<std::uint8_t>(payload);
            size += header;
        }
        names_[i] = to;
        siov_[i] = {frame, size};
        auto* control = scontrol_.data() + i * control_bytes;
        std::memset(control, 0, control_bytes);
        msghdr& h = send_headers_[i].msg_hdr;
        h = {};
        h.msg_name = &names_[i];
        h.msg_namelen = sizeof(sockaddr_in);
        h.msg_iov = &siov_[i];
        h.msg_iovlen = 1;
        h.msg_control = control;
        h.msg_controllen = CMSG_SPACE(sizeof(in_pktinfo));
        cmsghdr* c = CMSG_FIRSTHDR(&h);
        c->cmsg_level = IPPROTO_IP;
        c->cmsg_type = IP_PKTINFO;
        c->cmsg_len = CMSG_LEN(sizeof(in_pktinfo));
        in_pktinfo info{};
        info.ipi_spec_dst.s_addr = htonl(from);
        std::memcpy(CMSG_DATA(c), &info, sizeof info);
        return frame + (channel_data_ ? header : 0);
    }

    std::string netns_;
    std::uint16_t port_;
    bool channel_data_;
    std::size_t direction_;  // the direction this side's sends are counted in
    int fd_ = -1;
    std::vector<std::uint8_t> out_;
    std::vector<std::uint8_t> in_;
    std::size_t queued_ = 0;
    std::array<bool, batch> restamp_{};
    std::array<mmsghdr, batch> send_headers_{};
    std::array<iovec, batch> siov_{};
    std::array<sockaddr_in, batch> names_{};
    std::array<std::uint8_t, batch * control_bytes> scontrol_{};
    std::array<mmsghdr, batch> recv_headers_{};
    std::array<iovec, batch> riov_{};
    std::array<sockaddr_in, batch> sources_{};
    std::array<std::uint8_t, batch * control_bytes> rcontrol_{};
};

struct CpuFigures {
    double window_s = 0;
    double system_busy = 0;  // cores, every CPU
    double generator = 0;    // cores: this process + --generator-pids
    double server_sys = 0;   // cores: system busy - generator (the report's figure)
    double server_proc = 0;  // cores: --server-pids
    double steal = 0;
    std::vector<double> per_cpu;
    bool server_alive = true;
};

CpuFigures cpu_figures(const CpuSample& a, const CpuSample& b, double window_s) {
    CpuFigures f;
    f.window_s = window_s;
    const double wall = b.at - a.at > 0 ? b.at - a.at : window_s;
    for (std::size_t i = 0; i < a.idle.size() && i < b.idle.size(); ++i) {
        const double busy = std::clamp((wall - (b.idle[i] - a.idle[i])) / wall, 0.0, 1.0);
        f.per_cpu.push_back(busy);
        f.system_busy += busy;
    }
    f.generator = (b.self - a.self + b.generator_extra - a.generator_extra) / wall;
    f.server_sys = std::max(0.0, f.system_busy - f.generator);
    f.server_proc = (b.server - a.server) / wall;
    f.steal = (b.steal_all - a.steal_all) / wall;
    f.server_alive = b.server_alive;
    return f;
}

void add_cpu(Json& j, const CpuFigures& f, double relayed) {
    std::string per_cpu = "[";
    for (std::size_t i = 0; i < f.per_cpu.size(); ++i) {
        char buffer[32];
        std::snprintf(buffer, sizeof buffer, "%s%.4g", i ? "," : "", f.per_cpu[i]);
        per_cpu += buffer;
    }
    per_cpu += "]";
    const double packets = relayed * f.window_s;
    j.add("system_cpu_util", f.system_busy)
        .add("other_cpu_util", std::max(0.0, f.system_busy - f.generator - f.server_proc))
        .add("generator_cpu_util", f.generator)
        .add("server_cpu_util", f.server_sys)
        .add("server_proc_cpu_util", f.server_proc)
        .add("steal_util", f.steal)
        .raw("cpu_util", per_cpu)
        .add("cpu_us_per_relayed", packets > 0 ? f.server_sys * f.window_s / packets * 1e6 : 0)
        .add("proc_cpu_us_per_relayed",
             packets > 0 ? f.server_proc * f.window_s / packets * 1e6 : 0);
}

struct Drops {
    std::uint64_t generator = 0;  // at the generator's receive rings and sockets
    std::uint64_t server = 0;     // at the server's
};

Drops add_drops(Json& j, const DropSample& a, const DropSample& b) {
    const std::uint64_t generator_ring = b.generator_ring - a.generator_ring;
    const std::uint64_t server_ring = b.server_ring - a.server_ring;
    const std::uint64_t generator_socket = b.generator_socket - a.generator_socket;
    const std::uint64_t server_socket = b.server_socket - a.server_socket;
    j.add("drops_generator_ring", static_cast<double>(generator_ring))
        .add("drops_server_ring", static_cast<double>(server_ring))
        .add("drops_generator_socket", static_cast<double>(generator_socket))
        .add("drops_server_socket", static_cast<double>(server_socket));
    return {generator_ring + generator_socket, server_ring + server_socket};
}

class CallLoad {
public:
    explicit CallLoad(const CallPlan& plan)
        : plan_(plan),
          server_(to_sockaddr_v4(plan.server)),
          client_(plan.client_netns, plan.client_port, true, 0),
          peer_(plan.peer_netns, plan.peer_port, false, 1),
          rng_(0x7E4C) {
        if (plan.size < min_payload) throw std::invalid_argument("--size must be at least 24");
        peer_.open();
    }

    int run() {
        switch (plan_.mode) {
            case CallMode::flood:
                return flood();
            case CallMode::fixed: {
                const bool pass = media_step(plan_.calls, 0);
                return pass ? 0 : 4;
            }
            case CallMode::search:
                return search();
        }
        return 2;
    }

private:
    std::uint32_t client_host(std::size_t i) const { return call_address(plan_.client_base, i); }
    std::uint32_t peer_host(std::size_t i) const { return call_address(plan_.peer_base, i); }
    TransportAddress peer_of(std::size_t i) const {
        return transport_address(v4(peer_host(i), plan_.peer_port));
    }

    // Calls 0..n-1 set up (allocation, permission and channel to their peer).
    void ensure_calls(std::size_t n) {
        if (relayed_.size() >= n) return;
        client_.close();  // its port is each Link's port: they cannot both be bound
        const auto started = std::chrono::steady_clock::now();
        const std::size_t from = relayed_.size();
        while (relayed_.size() < n) {
            const std::size_t first = relayed_.size();
            const std::size_t count = std::min(setup_chunk, n - first);
            std::vector<std::unique_ptr<Link>> links;
            {
                NetnsScope ns(plan_.client_netns);
                for (std::size_t k = 0; k < count; ++k) {
                    const sockaddr_in source = v4(client_host(first + k), plan_.client_port);
                    links.push_back(
                        std::make_unique<Link>(Transport::udp, server_, source, nullptr));
                }
            }
            if (plan_.forwarder) {
                for (std::size_t k = 0; k < count; ++k) {
                    const TransportAddress r =
                        forwarder_exchange(*links[k], fwd_allocate, peer_of(first + k));
                    forwarder_exchange(*links[k], fwd_bind, peer_of(first + k));
                    relayed_.push_back(to_sockaddr_v4(r));
                }
            } else {
                SetupPlan setup;
                setup.secret = plan_.secret;
                setup.peer = peer_of(first);
                setup.peer_of = [this, first](const SetupEngine&, std::size_t k) {
                    return std::optional<TransportAddress>(peer_of(first + k));
                };
                SetupEngine engine(links, setup);
                engine.run(std::chrono::steady_clock::now() + std::chrono::seconds(60));
                setup_errors_ += engine.errors();
                for (std::size_t k = 0; k < count; ++k) {
                    relayed_.push_back(to_sockaddr_v4(engine.relayed(k)));
                }
            }
        }
        setup_s_ +=
            std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
        std::cerr << "calls: " << n - from << " call(s) set up (" << n << " in all, " << setup_s_
                  << " s of set-up so far)\n";
        client_.open();
    }

    // Receives what is waiting on both sides (bounded per turn).
    template <typename OnClient, typename OnPeer>
    void drain(OnClient&& on_client, OnPeer&& on_peer) {
        for (int round = 0; round < 16; ++round) {
            const int a = client_.receive(on_client);
            const int b = peer_.receive(on_peer);
            if (a < static_cast<int>(batch) && b < static_cast<int>(batch)) return;
        }
    }

    void wait(int timeout_ms) {
        std::array<pollfd, 2> p{pollfd{client_.fd(), POLLIN, 0}, pollfd{peer_.fd(), POLLIN, 0}};
        ::poll(p.data(), p.size(), timeout_ms);
    }

    // A packet of ours that arrived at `direction`'s receiving side; false if it is not ours.
    bool account(const std::uint8_t* bytes, std::size_t size, std::uint64_t at,
                 std::size_t direction, std::uint32_t& call) {
        if (bytes == nullptr || size < min_payload) {
            ++w_.foreign;
            return false;
        }
        std::array<std::uint32_t, 4> fields{};
        std::memcpy(fields.data(), bytes, sizeof fields);
        if (fields[0] != magic || fields[1] != epoch_ || fields[2] >= relayed_.size()) {
            ++w_.foreign;
            return false;
        }
        call = fields[2];
        std::uint64_t stamp = 0;
        std::memcpy(&stamp, bytes + stamp_at, 8);
        if (w_.in(stamp)) {
            ++w_.received[direction];
            const std::uint64_t now = real_ns();
            w_.delay[direction].add(static_cast<std::int64_t>((at != 0 ? at : now) - stamp));
            w_.app.add(static_cast<std::int64_t>(now - stamp));
        }
        return true;
    }

    // One measured window of n calls of media. Prints its JSON line; true if it passed.
    // Waits (up to --quiet-wait) until the machine is quiet; returns the seconds waited.
    double wait_quiet() {
        if (plan_.quiet_wait_s <= 0) return 0;
        const std::uint64_t start = mono_ns();
        for (;;) {
            const CpuSample a = sample_cpu(plan_);
            ::usleep(250'000);
            const CpuFigures f = cpu_figures(a, sample_cpu(plan_), 0.25);
            quiet_busy_ = f.system_busy;
            const double waited = static_cast<double>(mono_ns() - start) / 1e9;
            if (f.system_busy < plan_.quiet_below || waited >= plan_.quiet_wait_s) return waited;
        }
    }

    bool media_step(std::size_t n, std::size_t step, bool retry = false) {
        ensure_calls(n);
        const double waited = wait_quiet();
        ++epoch_;
        w_.clear();
        // Four streams per call: client audio, client video, peer audio, peer video.
        const std::size_t streams = 4 * n;
        due_.assign(streams, 0);
        for (auto& b : wheel_) b.clear();
        const std::uint64_t t0 = mono_ns() + 2'000'000;
        for (std::size_t s = 0; s < streams; ++s) {
            const std::uint64_t period = (s & 1) ? video_period_ns : audio_period_ns;
            due_[s] = t0 + rng_() % period;
            wheel_[(due_[s] / 1'000'000) % wheel_slots].push_back(static_cast<std::uint32_t>(s));
        }
        const auto seconds = [](double s) { return static_cast<std::uint64_t>(s * 1e9); };
        const std::uint64_t w0 = t0 + seconds(plan_.warmup_s);
        const std::uint64_t w1 = w0 + seconds(plan_.duration_s);
        std::uint64_t next_ms = t0 / 1'000'000;
        CpuSample before{};
        CpuSample after{};
        DropSample drops_before{};
        DropSample drops_after{};
        bool counting = false;
        auto on_client = [&](const std::uint8_t* b, std::size_t size, const sockaddr_in&,
                             std::uint64_t at) {
            std::uint32_t call = 0;
            account(b, size, at, 1, call);
        };
        auto on_peer = [&](const std::uint8_t* b, std::size_t size, const sockaddr_in&,
                           std::uint64_t at) {
            std::uint32_t call = 0;
            account(b, size, at, 0, call);
        };
        std::vector<std::uint32_t> work;
        for (;;) {
            std::uint64_t now = mono_ns();
            if (!counting && now >= w0) {
                before = sample_cpu(plan_);
                drops_before = sample_drops(plan_);
                w_.rt_start = real_ns();
                counting = true;
            }
            if (now >= w1) {
                w_.rt_end = real_ns();
                after = sample_cpu(plan_);
                drops_after = sample_drops(plan_);
                break;
            }
            const std::uint64_t now_ms = now / 1'000'000;
            if (next_ms > now_ms) wait(1);
            drain(on_client, on_peer);
            now = mono_ns();
            for (; next_ms <= now / 1'000'000; ++next_ms) {
                work.swap(wheel_[next_ms % wheel_slots]);
                for (const std::uint32_t s : work) {
                    if (due_[s] / 1'000'000 > next_ms) {  // a later lap of the wheel
                        wheel_[next_ms % wheel_slots].push_back(s);
                        continue;
                    }
                    send_media(s, now);
                    const std::uint64_t period = (s & 1) ? video_period_ns : audio_period_ns;
                    due_[s] += period;
                    if (due_[s] + skip_after_ns < now) {
                        ++w_.skipped;
                        due_[s] = now + period;
                    }
                    wheel_[(due_[s] / 1'000'000) % wheel_slots].push_back(s);
                }
                work.clear();
            }
            client_.flush(w_);
            peer_.flush(w_);
        }
        // Late packets of the window still count (not lost) until the drain ends.
        const std::uint64_t drain_end = mono_ns() + 300'000'000;
        while (mono_ns() < drain_end) {
            wait(5);
            drain(on_client, on_peer);
        }
        const CpuFigures cpu = cpu_figures(before, after, plan_.duration_s);
        const std::uint64_t sent = w_.sent[0] + w_.sent[1];
        const std::uint64_t received = w_.received[0] + w_.received[1];
        const double loss = sent == 0 ? 1.0
                                      : static_cast<double>(sent - std::min(sent, received)) /
                                            static_cast<double>(sent);
        Histogram both;
        both.merge(w_.delay[0]);
        both.merge(w_.delay[1]);
        const double p50 = both.quantile_ms(0.50);
        const double p99 = both.quantile_ms(0.99);
        const double p999 = both.quantile_ms(0.999);
        const bool pass =
            cpu.server_alive && sent > 0 && loss < plan_.max_loss && p99 < plan_.max_p99_ms;
        // The generator's own limit: its core busy, or paced sends running late (the delay is
        // measured from each packet's real send time; a late send only makes the load burstier).
        const double lag_p99 = w_.lag.quantile_ms(0.99);
        const bool generator_saturated = cpu.generator >= 0.9 || lag_p99 > 5.0 || w_.skipped > 0;
        const double relayed_pps = static_cast<double>(received) / plan_.duration_s;
        Json j;
        j.add("test", "calls")
            .add("step", static_cast<double>(step))
            .add("retry", retry)
            .add("quiet_waited_s", waited)
            .add("busy_before", quiet_busy_)
            .add("calls", static_cast<double>(n))
            .add("offered_pps", packets_per_call * static_cast<double>(n))
            .add("relayed_pps", relayed_pps)
            .add("sent", static_cast<double>(sent))
            .add("received", static_cast<double>(received))
            .add("loss", loss)
            .add("loss_to_peer", ratio_lost(0))
            .add("loss_to_client", ratio_lost(1))
            .add("delay_p50_ms", p50)
            .add("delay_p99_ms", p99)
            .add("delay_p999_ms", p999)
            .add("delay_max_ms", std::max(w_.delay[0].max_ms(), w_.delay[1].max_ms()))
            .add("delay_p99_to_peer_ms", w_.delay[0].quantile_ms(0.99))
            .add("delay_p99_to_client_ms", w_.delay[1].quantile_ms(0.99))
            .add("app_p99_ms", w_.app.quantile_ms(0.99))
            .add("pacing_lag_p99_ms", lag_p99)
            .add("skipped", static_cast<double>(w_.skipped))
            .add("send_drops", static_cast<double>(w_.send_drops))
            .add("foreign", static_cast<double>(w_.foreign))
            .add("pass", pass)
            .add("generator_saturated", generator_saturated);
        add_cpu(j, cpu, relayed_pps);
        const Drops drops = add_drops(j, drops_before, drops_after);
        // Limited by the generator: saturated, or more of the loss at its end than the server's.
        const bool generator_limited =
            generator_saturated || (drops.generator > 0 && drops.generator >= drops.server);
        j.add("generator_limited", generator_limited);
        j.print();
        std::cerr << "calls: step " << step << ": " << n << " calls, loss " << loss * 100
                  << " %, p99 " << p99 << " ms, server CPU " << cpu.server_sys * 100
                  << " %, generator CPU " << cpu.generator * 100 << " %"
                  << (pass ? " pass" : " FAIL") << (generator_limited ? " (generator-limited)" : "")
                  << "\n";
        last_ = j.str();
        last_saturated_ = generator_limited;
        return pass;
    }

    double ratio_lost(std::size_t d) const {
        if (w_.sent[d] == 0) return 0;
        return static_cast<double>(w_.sent[d] - std::min(w_.sent[d], w_.received[d])) /
               static_cast<double>(w_.sent[d]);
    }

    void send_media(std::uint32_t s, std::uint64_t now) {
        const std::size_t call = s / 4;
        const std::uint32_t kind = s % 4;
        const std::size_t bytes = (kind & 1) ? video_bytes : audio_bytes;
        if (w_.rt_start != ~std::uint64_t{0}) {
            w_.lag.add(static_cast<std::int64_t>(now - due_[s]));
        }
        if (kind < 2) {
            client_.queue(server_, client_host(call), epoch_, static_cast<std::uint32_t>(call),
                          kind, bytes, w_);
        } else {
            peer_.queue(relayed_[call], peer_host(call), epoch_, static_cast<std::uint32_t>(call),
                        kind, bytes, w_);
        }
    }

    // The largest number of calls that passes: doubling, then bisection.
    int search() {
        const auto started = std::chrono::steady_clock::now();
        auto elapsed = [&] {
            return std::chrono::duration<double>(std::chrono::steady_clock::now() - started)
                .count();
        };
        std::size_t pass = 0;  // largest n that passed
        std::size_t fail = 0;  // smallest n that failed (0: none yet)
        std::string pass_json;
        bool fail_saturated = false;  // the generator was saturated at `fail`
        std::string stop = "resolution";
        std::size_t n = std::max<std::size_t>(1, plan_.min_calls);
        const double step_s = plan_.warmup_s + plan_.duration_s + 0.5;
        for (std::size_t step = 1;; ++step) {
            // A set-up estimate on top of the step: 2,000 set-ups/s at worst.
            const double need =
                step_s +
                static_cast<double>(n > relayed_.size() ? n - relayed_.size() : 0) / 2000.0;
            if (elapsed() + need > plan_.budget_s) {
                stop = "budget";
                break;
            }
            // Another process on the machine can fail a step alone: a failure counts only if the
            // same step fails again.
            if (media_step(n, step) ||
                (plan_.confirm_failures && elapsed() + step_s <= plan_.budget_s &&
                 media_step(n, step, true))) {
                pass = n;
                pass_json = last_;
            } else {
                fail = n;
                fail_saturated = last_saturated_;
            }
            std::size_t next = 0;
            if (fail == 0) {
                if (pass >= plan_.max_calls) {
                    stop = "max_calls";
                    break;
                }
                next = std::min(plan_.max_calls, 2 * pass);
            } else {
                const std::size_t gap = fail - pass;
                const auto tolerance = std::max<std::size_t>(
                    8, static_cast<std::size_t>(plan_.resolution * static_cast<double>(pass)));
                if (gap <= tolerance || fail <= 1) break;
                next = pass + gap / 2;
            }
            n = next;
        }
        Json j;
        j.add("test", "calls-search")
            .add("max_calls", static_cast<double>(pass))
            .add("first_failing", static_cast<double>(fail))
            .add("stopped_by", stop)
            .add("generator_limited_at_failure", fail_saturated)
            .add("search_seconds", elapsed())
            .add("setup_seconds", setup_s_)
            .add("setup_errors", static_cast<double>(setup_errors_))
            .add("criteria", "loss < " + std::to_string(plan_.max_loss * 100) + " %, p99 < " +
                                 std::to_string(plan_.max_p99_ms) + " ms");
        if (!pass_json.empty()) j.raw("at_max", pass_json);
        j.print();
        return 0;
    }

    // Closed loop: each call keeps `window` packets in flight through the relay and back.
    int flood() {
        const std::size_t n = plan_.calls;
        ensure_calls(n);
        const double waited = wait_quiet();
        ++epoch_;
        w_.clear();
        // The window: `window` slots per call, each holding one packet in flight (the payload's
        // kind field: slot << 24 | sequence). A packet back frees its slot for the next; one out
        // for longer than the timeout is taken as lost and its slot refilled, and if it comes
        // back after all it counts as received but frees nothing.
        const std::size_t window = std::min<std::size_t>(plan_.window, 255);
        const std::size_t slots = n * window;
        std::vector<std::uint32_t> sequence(slots, 0);
        std::vector<std::uint64_t> sent_at(slots, 0);
        constexpr std::uint64_t timeout_ns = 20'000'000;
        std::uint64_t received_in_window = 0;
        std::uint64_t timeouts = 0;
        Histogram rtt;
        bool counting = false;
        auto send_slot = [&](std::size_t call, std::size_t s, std::uint64_t now) {
            const std::size_t i = call * window + s;
            sequence[i] = (sequence[i] + 1) & 0xFFFFFFu;
            sent_at[i] = now;
            client_.queue(server_, client_host(call), epoch_, static_cast<std::uint32_t>(call),
                          static_cast<std::uint32_t>(s << 24) | sequence[i], plan_.size, w_);
        };
        w_.rt_start = 0;  // every send counts (loss over the whole run)
        for (std::size_t c = 0; c < n; ++c) {
            for (std::size_t s = 0; s < window; ++s) send_slot(c, s, mono_ns());
        }
        client_.flush(w_);
        auto on_peer = [&](const std::uint8_t* b, std::size_t size, const sockaddr_in& from,
                           std::uint64_t) {
            std::uint32_t call = 0;
            if (b == nullptr || size < min_payload) {
                ++w_.foreign;
                return;
            }
            std::memcpy(&call, b + 8, 4);
            if (call >= n) {
                ++w_.foreign;
                return;
            }
            peer_.queue_copy(from, peer_host(call), b, size, w_);
        };
        auto on_client = [&](const std::uint8_t* b, std::size_t size, const sockaddr_in&,
                             std::uint64_t at) {
            if (b == nullptr || size < min_payload) {
                ++w_.foreign;
                return;
            }
            std::array<std::uint32_t, 4> fields{};
            std::memcpy(fields.data(), b, sizeof fields);
            if (fields[0] != magic || fields[1] != epoch_ || fields[2] >= n) {
                ++w_.foreign;
                return;
            }
            ++w_.received[1];
            if (counting) {
                ++received_in_window;
                std::uint64_t stamp = 0;
                std::memcpy(&stamp, b + stamp_at, 8);
                rtt.add(static_cast<std::int64_t>((at != 0 ? at : real_ns()) - stamp));
            }
            const std::size_t s = fields[3] >> 24;
            if (s < window && (fields[3] & 0xFFFFFFu) == sequence[fields[2] * window + s]) {
                send_slot(fields[2], s, mono_ns());
            }
        };
        const std::uint64_t t0 = mono_ns();
        const auto seconds = [](double s) { return static_cast<std::uint64_t>(s * 1e9); };
        const std::uint64_t w0 = t0 + seconds(plan_.warmup_s);
        const std::uint64_t w1 = w0 + seconds(plan_.duration_s);
        std::uint64_t last_check = t0;
        CpuSample before{};
        CpuSample after{};
        DropSample drops_before{};
        DropSample drops_after{};
        for (;;) {
            const std::uint64_t now = mono_ns();
            if (!counting && now >= w0) {
                before = sample_cpu(plan_);
                drops_before = sample_drops(plan_);
                counting = true;
            }
            if (now >= w1) {
                after = sample_cpu(plan_);
                drops_after = sample_drops(plan_);
                counting = false;
                break;
            }
            wait(1);
            for (int round = 0; round < 16; ++round) {
                const int a = peer_.receive(on_peer);
                peer_.flush(w_);
                const int b = client_.receive(on_client);
                client_.flush(w_);
                if (a < static_cast<int>(batch) && b < static_cast<int>(batch)) break;
            }
            if (now - last_check >= 5'000'000) {
                last_check = now;
                const std::uint64_t t = mono_ns();  // later than some sends of this turn
                for (std::size_t i = 0; i < slots; ++i) {
                    if (sent_at[i] + timeout_ns > t) continue;
                    ++timeouts;
                    send_slot(i / window, i % window, t);
                }
                client_.flush(w_);
            }
        }
        const std::uint64_t sent = w_.sent[0];
        const std::uint64_t drain_end = mono_ns() + 300'000'000;
        while (mono_ns() < drain_end) {
            wait(5);
            peer_.receive(
                [&](const std::uint8_t*, std::size_t, const sockaddr_in&, std::uint64_t) {});
            client_.receive(
                [&](const std::uint8_t* b, std::size_t size, const sockaddr_in&, std::uint64_t) {
                    std::array<std::uint32_t, 2> fields{};
                    if (b == nullptr || size < min_payload) return;
                    std::memcpy(fields.data(), b, sizeof fields);
                    if (fields[0] == magic && fields[1] == epoch_) ++w_.received[1];
                });
        }
        const CpuFigures cpu = cpu_figures(before, after, plan_.duration_s);
        const double relayed_pps = 2.0 * static_cast<double>(received_in_window) / plan_.duration_s;
        Json j;
        j.add("test", "flood")
            .add("calls", static_cast<double>(n))
            .add("window", static_cast<double>(plan_.window))
            .add("size", static_cast<double>(plan_.size))
            .add("relayed_pps", relayed_pps)
            .add("sent", static_cast<double>(sent))
            .add("received", static_cast<double>(w_.received[1]))
            .add("loss", sent == 0 ? 0.0
                                   : static_cast<double>(sent - std::min(sent, w_.received[1])) /
                                         static_cast<double>(sent))
            .add("rtt_p50_us", rtt.quantile_ms(0.5) * 1e3)
            .add("rtt_p99_us", rtt.quantile_ms(0.99) * 1e3)
            .add("timeouts", static_cast<double>(timeouts))
            .add("send_drops", static_cast<double>(w_.send_drops))
            .add("foreign", static_cast<double>(w_.foreign))
            .add("setup_seconds", setup_s_)
            .add("setup_errors", static_cast<double>(setup_errors_))
            .add("server_alive", cpu.server_alive)
            .add("quiet_waited_s", waited)
            .add("busy_before", quiet_busy_);
        add_cpu(j, cpu, relayed_pps);
        add_drops(j, drops_before, drops_after);
        j.print();
        return received_in_window > 0 ? 0 : 3;
    }

    CallPlan plan_;
    sockaddr_in server_;
    Side client_;
    Side peer_;
    std::mt19937_64 rng_;
    std::vector<sockaddr_in> relayed_;  // per call: its relayed address
    std::uint32_t epoch_ = 0;
    Window w_;
    std::vector<std::uint64_t> due_;
    std::array<std::vector<std::uint32_t>, wheel_slots> wheel_;
    double setup_s_ = 0;
    std::uint64_t setup_errors_ = 0;
    std::string last_;
    bool last_saturated_ = false;
    double quiet_busy_ = 0;
};

}  // namespace

std::uint32_t call_address(std::uint32_t base, std::size_t i) {
    const auto third = static_cast<std::uint32_t>(i / 250);
    const auto fourth = static_cast<std::uint32_t>(i % 250 + 1);
    if (third > 255) throw std::invalid_argument("more than 64,000 calls");
    return (base & 0xFFFF0000u) | (third << 8) | fourth;
}

int run_call_load(const CallPlan& plan) {
    std::cerr << "calls: clients " << dotted(call_address(plan.client_base, 0)) << ":"
              << plan.client_port << "..., peers " << dotted(call_address(plan.peer_base, 0)) << ":"
              << plan.peer_port << "..., server " << plan.server.to_string() << "\n";
    CallLoad load(plan);
    return load.run();
}

}  // namespace ternbench
