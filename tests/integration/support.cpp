#include "support.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "tern/protocol/integrity.hpp"
#include "tern/protocol/message_builder.hpp"

namespace tern::test {

namespace {

socklen_t to_sockaddr(const TransportAddress& a, sockaddr_storage& ss) {
    std::memset(&ss, 0, sizeof ss);
    if (a.family == protocol::AddressFamily::ipv4) {
        auto* in = reinterpret_cast<sockaddr_in*>(&ss);
        in->sin_family = AF_INET;
        in->sin_port = htons(a.port);
        std::memcpy(&in->sin_addr, a.bytes.data(), 4);
        return sizeof(sockaddr_in);
    }
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&ss);
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(a.port);
    std::memcpy(&in6->sin6_addr, a.bytes.data(), 16);
    return sizeof(sockaddr_in6);
}

TransportAddress from_sockaddr(const sockaddr_storage& ss) {
    if (ss.ss_family == AF_INET) {
        const auto* in = reinterpret_cast<const sockaddr_in*>(&ss);
        std::array<std::uint8_t, 4> b{};
        std::memcpy(b.data(), &in->sin_addr, 4);
        return TransportAddress::v4(b, ntohs(in->sin_port));
    }
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&ss);
    std::array<std::uint8_t, 16> b{};
    std::memcpy(b.data(), &in6->sin6_addr, 16);
    return TransportAddress::v6(b, ntohs(in6->sin6_port));
}

TransportAddress local_of(int fd) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
    return from_sockaddr(ss);
}

int family_of(const TransportAddress& a) {
    return a.family == protocol::AddressFamily::ipv4 ? AF_INET : AF_INET6;
}

bool can_bind(const TransportAddress& a, int type) {
    const int fd = ::socket(family_of(a), type, 0);
    if (fd < 0) return false;
    sockaddr_storage ss{};
    const socklen_t len = to_sockaddr(a, ss);
    const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) == 0;
    ::close(fd);
    return ok;
}

// Per thread: the soak test builds requests from several threads at once (UBSan caught the race).
std::mt19937& rng() {
    static thread_local std::mt19937 r{std::random_device{}()};
    return r;
}

}  // namespace

TransportAddress loopback4(std::uint16_t port) {
    return TransportAddress::v4({127, 0, 0, 1}, port);
}
TransportAddress loopback6(std::uint16_t port) {
    std::array<std::uint8_t, 16> b{};
    b[15] = 1;
    return TransportAddress::v6(b, port);
}

std::uint16_t free_port() {
    // A port handed out is not free again in this process even while nothing binds it yet: two
    // calls before ternd starts (its UDP/TCP port and its TLS port) once drew the same number.
    static std::mutex mutex;
    static std::set<std::uint16_t> handed_out;
    std::uniform_int_distribution<int> dist(20000, 45000);
    for (int attempt = 0; attempt < 200; ++attempt) {
        const auto port = static_cast<std::uint16_t>(dist(rng()));
        const std::lock_guard lock(mutex);
        if (handed_out.contains(port)) continue;
        if (can_bind(loopback4(port), SOCK_DGRAM) && can_bind(loopback4(port), SOCK_STREAM) &&
            can_bind(loopback6(port), SOCK_DGRAM) && can_bind(loopback6(port), SOCK_STREAM)) {
            handed_out.insert(port);
            return port;
        }
    }
    throw std::runtime_error("no free port found");
}

std::string data_dir() {
    return TERN_TEST_DATA_DIR;
}

std::size_t count_of(const std::string& haystack, const std::string& needle) {
    std::size_t n = 0;
    for (auto at = haystack.find(needle); at != std::string::npos;
         at = haystack.find(needle, at + needle.size())) {
        ++n;
    }
    return n;
}

std::uint64_t kernel_udp_drops(std::uint16_t port) {
    std::uint64_t drops = 0;
    for (const char* table : {"/proc/net/udp", "/proc/net/udp6"}) {
        std::ifstream in(table);
        std::string line;
        std::getline(in, line);  // the column names
        while (std::getline(in, line)) {
            // "sl local_address rem_address st ... drops": the local port is hex after the ':'.
            std::istringstream fields(line);
            std::string slot, local, field;
            fields >> slot >> local;
            const auto colon = local.rfind(':');
            if (colon == std::string::npos ||
                std::stoul(local.substr(colon + 1), nullptr, 16) != port) {
                continue;
            }
            while (fields >> field) {
            }
            drops += std::stoull(field);  // the last column
        }
    }
    return drops;
}

std::uint64_t kernel_backlog_drops() {
    std::uint64_t drops = 0;
    std::ifstream in("/proc/net/softnet_stat");
    std::string processed, dropped, rest;
    while (in >> processed >> dropped && std::getline(in, rest)) {
        drops += std::stoull(dropped, nullptr, 16);  // one row per CPU, the second column
    }
    return drops;
}

TerndProcess::TerndProcess(const std::string& yaml) : TerndProcess(yaml, {}) {}

TerndProcess::TerndProcess(const std::string& yaml, const std::vector<std::string>& environment) {
    char tmpl[] = "/tmp/tern-it-XXXXXX";
    if (!::mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
    dir_ = tmpl;
    rewrite_config(yaml);
    const std::string log = dir_ + "/ternd.log";
    const std::string config = config_path();
    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
        const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        ::dup2(fd, 1);
        ::dup2(fd, 2);
        for (const auto& e : environment) ::putenv(const_cast<char*>(e.c_str()));
        ::execl(TERND_PATH, TERND_PATH, "--config", config.c_str(), static_cast<char*>(nullptr));
        ::_exit(127);
    }
}

TerndProcess::~TerndProcess() {
    stop(5s);
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
}

namespace {

// TERN_TEST_KERNEL_FAST_PATH=auto|on runs the suite with relay.kernel_fast_path set so (the
// integration_fast_path ctest): written into the config's relay section, or a new one.
std::string with_fast_path(const std::string& yaml) {
    const char* mode = std::getenv("TERN_TEST_KERNEL_FAST_PATH");
    if (mode == nullptr || *mode == 0 || yaml.find("kernel_fast_path") != std::string::npos) {
        return yaml;
    }
    const std::string key = std::string("kernel_fast_path: ") + mode;
    std::string out = yaml;
    if (const auto at = out.find("\nrelay:");
        at != std::string::npos || out.rfind("relay:", 0) == 0) {
        const std::size_t colon = (at == std::string::npos ? 0 : at + 1) + 6;
        const std::size_t value = out.find_first_not_of(' ', colon);
        if (value != std::string::npos && out[value] == '{') {
            out.insert(value + 1, " " + key + ",");
        } else {
            out.insert(colon, "\n  " + key);
        }
        return out;
    }
    if (!out.empty() && out.back() != '\n') out += '\n';
    return out + "relay:\n  " + key + "\n";
}

}  // namespace

void TerndProcess::rewrite_config(const std::string& yaml) const {
    std::ofstream(dir_ + "/tern.yaml") << with_fast_path(yaml);
}

std::string TerndProcess::output() const {
    std::ifstream in(dir_ + "/ternd.log");
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

bool TerndProcess::wait_for_output(const std::string& needle,
                                   std::chrono::milliseconds timeout) const {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
        if (output().find(needle) != std::string::npos) return true;
        std::this_thread::sleep_for(20ms);
    }
    return output().find(needle) != std::string::npos;
}

void TerndProcess::send_signal(int signo) const {
    if (pid_ > 0) ::kill(pid_, signo);
}

bool TerndProcess::running() {
    if (reaped_ || pid_ <= 0) return false;
    const pid_t r = ::waitpid(pid_, &status_, WNOHANG);
    if (r == pid_) reaped_ = true;
    return !reaped_;
}

bool TerndProcess::wait_exited(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (running() && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(10ms);
    }
    return !running();
}

int TerndProcess::stop(std::chrono::milliseconds timeout) {
    if (pid_ <= 0) return -1;
    if (running()) {
        ::kill(pid_, SIGTERM);
        if (!wait_exited(timeout)) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, &status_, 0);
            reaped_ = true;
            return -1;
        }
    }
    return WIFEXITED(status_) ? WEXITSTATUS(status_) : -1;
}

Bytes binding_request(protocol::TransactionId* id_out, bool fingerprint) {
    protocol::TransactionId id;
    for (auto& b : id.bytes) b = static_cast<std::uint8_t>(rng()());
    if (id_out) *id_out = id;
    Bytes buf(128);
    protocol::MessageBuilder b(buf, {protocol::Method::binding, protocol::MessageClass::request},
                               id);
    if (fingerprint) b.add_fingerprint();
    const auto out = b.finish();
    return Bytes(out.begin(), out.end());
}

std::optional<Bytes> udp_exchange(const TransportAddress& server, const Bytes& request,
                                  const TransportAddress& local, TransportAddress& local_out,
                                  std::chrono::milliseconds timeout, TransportAddress* reply_from) {
    const int fd = ::socket(family_of(server), SOCK_DGRAM, 0);
    if (fd < 0) return std::nullopt;
    sockaddr_storage ss{};
    socklen_t len = to_sockaddr(local, ss);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
        ::close(fd);
        return std::nullopt;
    }
    len = to_sockaddr(server, ss);
    ::sendto(fd, request.data(), request.size(), 0, reinterpret_cast<sockaddr*>(&ss), len);
    local_out = local_of(fd);
    pollfd p{fd, POLLIN, 0};
    std::optional<Bytes> result;
    if (::poll(&p, 1, static_cast<int>(timeout.count())) == 1) {
        Bytes buf(65536);
        sockaddr_storage from{};
        socklen_t from_len = sizeof from;
        const ssize_t n = ::recvfrom(fd, buf.data(), buf.size(), 0,
                                     reinterpret_cast<sockaddr*>(&from), &from_len);
        if (n >= 0) {
            buf.resize(static_cast<std::size_t>(n));
            result = std::move(buf);
            if (reply_from) *reply_from = from_sockaddr(from);
        }
    }
    ::close(fd);
    return result;
}

std::optional<StreamClient> StreamClient::connect_tcp(const TransportAddress& server, int rcvbuf,
                                                      std::optional<TransportAddress> local) {
    const int fd = ::socket(family_of(server), SOCK_STREAM, 0);
    if (fd < 0) return std::nullopt;
    if (rcvbuf > 0) ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    if (local) {
        sockaddr_storage from{};
        const socklen_t from_len = to_sockaddr(*local, from);
        if (::bind(fd, reinterpret_cast<sockaddr*>(&from), from_len) != 0) {
            ::close(fd);
            return std::nullopt;
        }
    }
    sockaddr_storage ss{};
    const socklen_t len = to_sockaddr(server, ss);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
        ::close(fd);
        return std::nullopt;
    }
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    StreamClient c;
    c.fd_ = fd;
    return c;
}

std::optional<StreamClient> StreamClient::connect_tls(const TransportAddress& server,
                                                      const std::string& ca_file,
                                                      const std::string& host, int rcvbuf) {
    auto c = connect_tcp(server, rcvbuf);
    if (!c) return std::nullopt;
    SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
    if (SSL_CTX_load_verify_locations(ctx, ca_file.c_str(), nullptr) != 1) {
        SSL_CTX_free(ctx);
        return std::nullopt;
    }
    SSL* ssl = SSL_new(ctx);
    SSL_set_tlsext_host_name(ssl, host.c_str());
    SSL_set1_host(ssl, host.c_str());  // hostname checking stays on
    SSL_set_fd(ssl, c->fd_);
    c->ssl_ = ssl;
    c->ctx_ = ctx;
    timeval tv{5, 0};
    ::setsockopt(c->fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (SSL_connect(ssl) != 1) {
        ERR_print_errors_fp(stderr);
        return std::nullopt;
    }
    return c;
}

StreamClient::StreamClient(StreamClient&& o) noexcept
    : fd_(o.fd_), ssl_(o.ssl_), ctx_(o.ctx_), inbox_(std::move(o.inbox_)) {
    o.fd_ = -1;
    o.ssl_ = nullptr;
    o.ctx_ = nullptr;
}

StreamClient::~StreamClient() {
    if (ssl_) SSL_free(static_cast<SSL*>(ssl_));
    if (ctx_) SSL_CTX_free(static_cast<SSL_CTX*>(ctx_));
    if (fd_ >= 0) ::close(fd_);
}

TransportAddress StreamClient::local_address() const {
    return local_of(fd_);
}

bool StreamClient::send(const Bytes& bytes) {
    if (ssl_) {
        return SSL_write(static_cast<SSL*>(ssl_), bytes.data(), static_cast<int>(bytes.size())) ==
               static_cast<int>(bytes.size());
    }
    std::size_t sent = 0;
    while (sent < bytes.size()) {
        const ssize_t n = ::send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
        if (n <= 0) return false;
        sent += static_cast<std::size_t>(n);
    }
    return true;
}

void StreamClient::abort() {
    const linger l{1, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    if (ssl_) SSL_free(static_cast<SSL*>(ssl_));
    ssl_ = nullptr;
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
}

bool StreamClient::fill(std::size_t n, std::chrono::steady_clock::time_point deadline) {
    while (inbox_.size() < n) {
        const bool buffered = ssl_ && SSL_pending(static_cast<SSL*>(ssl_)) > 0;
        if (!buffered) {
            // Past the deadline, bytes already in the socket are still taken (poll 0): a thread
            // preempted between a frame's header and its body must not give up on the body.
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                deadline - std::chrono::steady_clock::now());
            pollfd p{fd_, POLLIN, 0};
            if (::poll(&p, 1, static_cast<int>(std::max<std::int64_t>(left.count(), 0))) != 1) {
                return false;
            }
        }
        const std::size_t have = inbox_.size();
        inbox_.resize(n);
        int r = 0;
        if (ssl_) {
            r = SSL_read(static_cast<SSL*>(ssl_), inbox_.data() + have, static_cast<int>(n - have));
            if (r <= 0) {
                inbox_.resize(have);
                if (SSL_get_error(static_cast<SSL*>(ssl_), r) == SSL_ERROR_WANT_READ) continue;
                return false;
            }
        } else {
            r = static_cast<int>(::recv(fd_, inbox_.data() + have, n - have, 0));
            if (r <= 0) {
                inbox_.resize(have);
                return false;
            }
        }
        inbox_.resize(have + static_cast<std::size_t>(r));
    }
    return true;
}

Bytes StreamClient::take(std::size_t n) {
    Bytes out(inbox_.begin(), inbox_.begin() + static_cast<std::ptrdiff_t>(n));
    inbox_.erase(inbox_.begin(), inbox_.begin() + static_cast<std::ptrdiff_t>(n));
    return out;
}

std::optional<Bytes> StreamClient::receive_message(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    if (!fill(20, deadline)) return std::nullopt;
    const std::size_t length = (static_cast<std::size_t>(inbox_[2]) << 8) | inbox_[3];
    if (!fill(20 + length, deadline)) return std::nullopt;
    return take(20 + length);
}

bool StreamClient::wait_closed(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) return false;
        pollfd p{fd_, POLLIN, 0};
        if (::poll(&p, 1, static_cast<int>(left.count())) != 1) return false;
        std::uint8_t buf[4096];
        const ssize_t n = ::recv(fd_, buf, sizeof buf, MSG_DONTWAIT);
        if (n == 0 || (n < 0 && (errno == ECONNRESET || errno == EPIPE))) return true;
        if (n < 0 && errno != EAGAIN && errno != EINTR) return false;
    }
}

int run_command(const std::string& command, std::string& output) {
    output.clear();
    FILE* p = ::popen((command + " 2>&1").c_str(), "r");
    if (!p) return -1;
    char buf[4096];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) output.append(buf, n);
    const int status = ::pclose(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

BackgroundProcess::BackgroundProcess(const std::vector<std::string>& argv) {
    if (argv.empty()) throw std::runtime_error("BackgroundProcess: empty argv");
    char tmpl[] = "/tmp/tern-it-bg-XXXXXX";
    const int log_fd = ::mkstemp(tmpl);
    if (log_fd < 0) throw std::runtime_error("mkstemp failed");
    log_ = tmpl;
    // Built before fork: the child only calls async-signal-safe functions.
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    pid_ = ::fork();
    if (pid_ < 0) {
        ::close(log_fd);
        throw std::runtime_error("fork failed");
    }
    if (pid_ == 0) {
        ::dup2(log_fd, 1);
        ::dup2(log_fd, 2);
        ::execvp(args[0], args.data());
        ::_exit(127);
    }
    ::close(log_fd);
}

BackgroundProcess::~BackgroundProcess() {
    stop(2s);
    std::error_code ec;
    std::filesystem::remove(log_, ec);
}

std::string BackgroundProcess::output() const {
    std::ifstream in(log_);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

bool BackgroundProcess::running() {
    if (reaped_ || pid_ <= 0) return false;
    if (::waitpid(pid_, &status_, WNOHANG) == pid_) reaped_ = true;
    return !reaped_;
}

int BackgroundProcess::stop(std::chrono::milliseconds timeout) {
    if (pid_ <= 0) return -1;
    if (running()) {
        ::kill(pid_, SIGTERM);
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        while (running() && std::chrono::steady_clock::now() < deadline) {
            std::this_thread::sleep_for(10ms);
        }
        if (running()) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, &status_, 0);
            reaped_ = true;
            return -1;
        }
    }
    return WIFEXITED(status_) ? WEXITSTATUS(status_) : -1;
}

namespace {

// Asks the kernel to stamp each datagram with its arrival time (read by receive_stamped).
void enable_arrival_stamps(int fd) {
    const int on = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof on);
}

// recvfrom that also returns the datagram's SO_TIMESTAMPNS arrival time in ns (0 if absent).
ssize_t receive_stamped(int fd, std::uint8_t* data, std::size_t size, sockaddr_storage& from,
                        socklen_t& from_len, std::int64_t& arrival_ns) {
    iovec iov{data, size};
    alignas(cmsghdr) std::array<std::uint8_t, CMSG_SPACE(sizeof(timespec))> control{};
    msghdr h{};
    h.msg_name = &from;
    h.msg_namelen = from_len;
    h.msg_iov = &iov;
    h.msg_iovlen = 1;
    h.msg_control = control.data();
    h.msg_controllen = control.size();
    const ssize_t n = ::recvmsg(fd, &h, 0);
    from_len = h.msg_namelen;
    arrival_ns = 0;
    for (cmsghdr* c = CMSG_FIRSTHDR(&h); n >= 0 && c != nullptr; c = CMSG_NXTHDR(&h, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
            timespec ts{};
            std::memcpy(&ts, CMSG_DATA(c), sizeof ts);
            arrival_ns = static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
        }
    }
    return n;
}

}  // namespace

UdpClient::UdpClient(const TransportAddress& local) {
    fd_ = ::socket(family_of(local), SOCK_DGRAM, 0);
    if (fd_ < 0) throw std::runtime_error("socket failed");
    // A stream of replies must outlast a receiving thread the machine leaves unscheduled a while.
    const int size = 4 << 20;
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
    enable_arrival_stamps(fd_);
    sockaddr_storage ss{};
    const socklen_t len = to_sockaddr(local, ss);
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
        ::close(fd_);
        throw std::runtime_error("bind failed");
    }
}

UdpClient::~UdpClient() {
    if (fd_ >= 0) ::close(fd_);
}

TransportAddress UdpClient::local_address() const {
    return local_of(fd_);
}

bool UdpClient::send_to(const TransportAddress& to, const Bytes& bytes) {
    sockaddr_storage ss{};
    const socklen_t len = to_sockaddr(to, ss);
    return ::sendto(fd_, bytes.data(), bytes.size(), 0, reinterpret_cast<sockaddr*>(&ss), len) ==
           static_cast<ssize_t>(bytes.size());
}

std::optional<Bytes> UdpClient::receive(std::chrono::milliseconds timeout, TransportAddress* from) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) != 1) return std::nullopt;
    Bytes buf(65536);
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    const ssize_t n = receive_stamped(fd_, buf.data(), buf.size(), ss, len, last_arrival_ns_);
    if (n < 0) return std::nullopt;
    buf.resize(static_cast<std::size_t>(n));
    if (from) *from = from_sockaddr(ss);
    return buf;
}

std::optional<Bytes> StreamClient::receive_frame(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    if (!fill(4, deadline)) return std::nullopt;
    const std::size_t length = (static_cast<std::size_t>(inbox_[2]) << 8) | inbox_[3];
    const bool channel_data = (inbox_[0] & 0xC0) == 0x40;
    // STUN: 16 more header bytes, then the body; ChannelData: the payload padded to 4 bytes.
    const std::size_t rest = channel_data ? (length + 3) / 4 * 4 : 16 + length;
    if (!fill(4 + rest, deadline)) return std::nullopt;
    Bytes frame = take(4 + rest);
    if (channel_data) frame.resize(4 + length);
    return frame;
}

namespace {

// SHA-256 of `cert`'s DER form, lower-case hex; takes ownership of `cert` (empty if null).
std::string sha256_hex(X509* cert) {
    if (!cert) return {};
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    X509_digest(cert, EVP_sha256(), md, &len);
    X509_free(cert);
    static const char* hex = "0123456789abcdef";
    std::string out;
    for (unsigned int i = 0; i < len; ++i) {
        out += hex[md[i] >> 4];
        out += hex[md[i] & 0xF];
    }
    return out;
}

}  // namespace

std::string StreamClient::peer_certificate_sha256() const {
    if (!ssl_) return {};
    return sha256_hex(SSL_get1_peer_certificate(static_cast<SSL*>(ssl_)));
}

std::string certificate_file_sha256(const std::string& pem_file) {
    FILE* f = std::fopen(pem_file.c_str(), "r");
    if (!f) return {};
    X509* cert = PEM_read_X509(f, nullptr, nullptr, nullptr);
    std::fclose(f);
    return sha256_hex(cert);
}

protocol::TransactionId random_id() {
    protocol::TransactionId id;
    for (auto& b : id.bytes) b = static_cast<std::uint8_t>(rng()());
    return id;
}

std::string rest_password(const std::string& secret, const std::string& username) {
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    HMAC(EVP_sha1(), secret.data(), static_cast<int>(secret.size()),
         reinterpret_cast<const unsigned char*>(username.data()), username.size(), mac, &len);
    std::string out(4 * ((len + 2) / 3) + 1, '\0');
    const int n =
        EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), mac, static_cast<int>(len));
    out.resize(static_cast<std::size_t>(n));
    return out;
}

std::string rest_username(std::int64_t expiry, const std::string& user) {
    return std::to_string(expiry) + ":" + user;
}

std::int64_t unix_now() {
    return static_cast<std::int64_t>(std::time(nullptr));
}

Bytes long_term_key(const std::string& username, const std::string& realm,
                    const std::string& password) {
    const std::string s = username + ":" + realm + ":" + password;
    Bytes key(16);
    unsigned int len = 0;
    EVP_Digest(s.data(), s.size(), key.data(), &len, EVP_md5(), nullptr);
    return key;
}

void append_fingerprint(Bytes& msg) {
    const std::size_t body = msg.size() - protocol::header_size + 8;
    msg[2] = static_cast<std::uint8_t>(body >> 8);
    msg[3] = static_cast<std::uint8_t>(body);
    const std::uint32_t crc = protocol::crc32(msg) ^ 0x5354554Eu;
    const std::uint8_t tlv[8] = {0x80,
                                 0x28,
                                 0,
                                 4,
                                 static_cast<std::uint8_t>(crc >> 24),
                                 static_cast<std::uint8_t>(crc >> 16),
                                 static_cast<std::uint8_t>(crc >> 8),
                                 static_cast<std::uint8_t>(crc)};
    msg.insert(msg.end(), tlv, tlv + 8);
}

Bytes channel_data(std::uint16_t channel, const Bytes& payload) {
    Bytes frame(4 + (payload.size() + 3) / 4 * 4, 0);
    frame[0] = static_cast<std::uint8_t>(channel >> 8);
    frame[1] = static_cast<std::uint8_t>(channel);
    frame[2] = static_cast<std::uint8_t>(payload.size() >> 8);
    frame[3] = static_cast<std::uint8_t>(payload.size());
    std::copy(payload.begin(), payload.end(), frame.begin() + 4);
    return frame;
}

int Reply::code() const {
    if (!ok) return -1;
    if (view.message_class() == protocol::MessageClass::success_response) return 0;
    if (view.message_class() != protocol::MessageClass::error_response) return -1;
    const auto e = view.error_code();
    return e ? e->code : -1;
}

std::string Reply::describe() const {
    if (!ok) return "no parseable reply";
    const auto e = view.error_code();
    return e ? std::to_string(e->code) + " " + std::string(e->reason) : "success";
}

TurnClient::TurnClient(const TransportAddress& server, std::string username, std::string password,
                       std::optional<TransportAddress> local)
    : udp_(std::make_unique<UdpClient>(local ? *local
                                       : server.family == protocol::AddressFamily::ipv4
                                           ? loopback4(0)
                                           : loopback6(0))),
      server_(server),
      username_(std::move(username)),
      password_(std::move(password)) {}

TurnClient::TurnClient(StreamClient stream, std::string username, std::string password)
    : stream_(std::move(stream)), username_(std::move(username)), password_(std::move(password)) {}

bool TurnClient::send_raw(const Bytes& bytes) {
    return stream_ ? stream_->send(bytes) : udp_->send_to(server_, bytes);
}

std::optional<Bytes> TurnClient::receive_raw(std::chrono::milliseconds timeout) {
    auto got = stream_ ? stream_->receive_frame(timeout) : udp_->receive(timeout);
    if (got && on_receive_) on_receive_(*got);
    return got;
}

Bytes TurnClient::build(protocol::Method method, const Attributes& attrs,
                        const std::function<void(Bytes&)>& tamper) {
    Bytes buf(1024);
    protocol::MessageBuilder b(buf, {method, protocol::MessageClass::request}, random_id());
    if (attrs) attrs(b);
    if (!nonce_.empty()) {
        b.add_text(protocol::attr::username, username_);
        b.add_text(protocol::attr::realm, realm_);
        b.add_text(protocol::attr::nonce, nonce_);
        b.add_message_integrity(key_);
    }
    const auto out = b.finish();
    Bytes msg(out.begin(), out.end());
    if (tamper) tamper(msg);
    append_fingerprint(msg);
    return msg;
}

Reply TurnClient::exchange(const Bytes& msg, int attempts, std::chrono::milliseconds stream_wait) {
    Reply r;
    // Retransmissions are for UDP only (RFC 8489 §6.2.1-6.2.2).
    if (stream_) attempts = 1;
    for (int attempt = 0; attempt < attempts && !r.ok; ++attempt) {
        send_raw(msg);
        const auto deadline = std::chrono::steady_clock::now() + (stream_ ? stream_wait : 1s);
        while (std::chrono::steady_clock::now() < deadline) {
            // The whole remaining time: a stream read cut short mid-frame would lose sync.
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                deadline - std::chrono::steady_clock::now());
            auto got = receive_raw(std::max(left, std::chrono::milliseconds(1)));
            if (!got) break;  // timed out, or the stream closed
            r.bytes = std::move(*got);
            if (protocol::MessageView::parse(r.bytes, r.view) != protocol::ParseError::ok) {
                continue;
            }
            const auto& id = r.view.transaction_id().bytes;
            if (std::equal(id.begin(), id.end(), msg.begin() + 8) &&
                r.view.message_class() != protocol::MessageClass::indication) {
                r.ok = true;
                break;
            }
        }
    }
    return r;
}

Reply TurnClient::request(protocol::Method method, const Attributes& attrs,
                          std::chrono::milliseconds stream_wait) {
    Reply r = exchange(build(method, attrs), 3, stream_wait);
    if ((r.code() == 401 || r.code() == 438) && r.view.nonce() && r.view.realm()) {
        const bool first = nonce_.empty() || r.code() == 438;
        learn(r);
        if (first) r = exchange(build(method, attrs), 3, stream_wait);
    }
    return r;
}

bool TurnClient::fetch_nonce() {
    const Reply r = exchange(build(protocol::Method::allocate, udp_transport()));
    if (r.code() != 401 || !r.view.nonce() || !r.view.realm()) return false;
    learn(r);
    return true;
}

Attributes TurnClient::udp_transport() {
    return [](protocol::MessageBuilder& b) { b.add_requested_transport(17); };
}

int TurnClient::permit(const TransportAddress& peer) {
    return request(protocol::Method::create_permission,
                   [&](protocol::MessageBuilder& b) {
                       b.add_xor_address(protocol::attr::xor_peer_address, peer);
                   })
        .code();
}

int TurnClient::bind(std::uint16_t channel, const TransportAddress& peer) {
    return request(protocol::Method::channel_bind,
                   [&](protocol::MessageBuilder& b) {
                       b.add_channel_number(channel);
                       b.add_xor_address(protocol::attr::xor_peer_address, peer);
                   })
        .code();
}

void TurnClient::learn(const Reply& r) {
    realm_ = std::string(*r.view.realm());
    nonce_ = std::string(*r.view.nonce());
    key_ = long_term_key(username_, realm_, password_);
}

UdpEchoPeer::UdpEchoPeer(const TransportAddress& local,
                         std::function<void(const std::uint8_t*, std::size_t)> observe)
    : observe_(std::move(observe)) {
    fd_ = ::socket(family_of(local), SOCK_DGRAM, 0);
    if (fd_ < 0) throw std::runtime_error("socket failed");
    // Bursts from several clients at once must not overflow the default receive buffer.
    const int size = 4 << 20;
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
    enable_arrival_stamps(fd_);
    sockaddr_storage ss{};
    const socklen_t len = to_sockaddr(local, ss);
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
        ::close(fd_);
        throw std::runtime_error("bind failed");
    }
    address_ = local_of(fd_);
    thread_ = std::thread([this] {
        std::array<std::uint8_t, 65536> buf{};
        while (!stop_.load()) {
            pollfd p{fd_, POLLIN, 0};
            if (::poll(&p, 1, 50) != 1) continue;
            sockaddr_storage from{};
            socklen_t from_len = sizeof from;
            std::int64_t arrival = 0;
            const ssize_t n = receive_stamped(fd_, buf.data(), buf.size(), from, from_len, arrival);
            if (n < 0) continue;
            if (arrival != 0) {
                if (first_arrival_ns_.load() == 0) first_arrival_ns_.store(arrival);
                last_arrival_ns_.store(arrival);
            }
            received_.fetch_add(1);
            if (observe_) observe_(buf.data(), static_cast<std::size_t>(n));
            ::sendto(fd_, buf.data(), static_cast<std::size_t>(n), 0,
                     reinterpret_cast<sockaddr*>(&from), from_len);
        }
    });
}

UdpEchoPeer::~UdpEchoPeer() {
    stop_.store(true);
    if (thread_.joinable()) thread_.join();
    if (fd_ >= 0) ::close(fd_);
}

double UdpEchoPeer::arrival_span_seconds() const {
    const std::int64_t first = first_arrival_ns_.load();
    return first == 0 ? 0.0 : static_cast<double>(last_arrival_ns_.load() - first) / 1e9;
}

long process_rss_kib(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
    }
    return -1;
}

int process_fd_count(pid_t pid) {
    std::error_code ec;
    std::filesystem::directory_iterator it("/proc/" + std::to_string(pid) + "/fd", ec);
    if (ec) return -1;
    int n = 0;
    for (; it != std::filesystem::directory_iterator(); it.increment(ec)) {
        if (ec) return -1;
        ++n;
    }
    return n;
}

}  // namespace tern::test
