// Fault tests against a real ternd over loopback: clients that vanish, half-close, stall or stop
// reading; a peer flooding a relay port; the relay port range and the open-files limit running
// out. Each test pairs the fault with a control that shows the refusal or the recovery is real,
// and every wait is bounded in count and in time.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "support.hpp"
#include "tern/protocol/message.hpp"
#include "tern/protocol/message_builder.hpp"

namespace tern::test {
namespace {

using protocol::MessageBuilder;
using protocol::MessageClass;
using protocol::MessageView;
using protocol::Method;
using Clock = std::chrono::steady_clock;

constexpr const char* realm = "fault.test";

std::string listen_url(const std::string& scheme, std::uint16_t port) {
    return "\"" + scheme + "://127.0.0.1:" + std::to_string(port) + "\"";
}

std::string tls_yaml() {
    return "tls: { certificate: " + data_dir() + "/tls/cert.pem, private_key: " + data_dir() +
           "/tls/key.pem }\n";
}

// Static users, loopback peers allowed (every peer here is on loopback), no drain on SIGTERM.
std::string server_yaml(const std::string& listen, const std::string& limits,
                        const std::string& relay_extra = "") {
    return std::string("realm: ") + realm +
           "\n"
           "threads: 1\n"
           "listen: [ " +
           listen +
           " ]\n"
           "auth: { users: { alice: { password: wonderland } } }\n"
           "relay: { allow_peers: [ 127.0.0.0/8 ]" +
           relay_extra +
           " }\n"
           "limits: { shutdown_grace: 0" +
           (limits.empty() ? "" : ", " + limits) +
           " }\n"
           "log: { level: info }\n";
}

void expect_ready(TerndProcess& ternd) {
    ASSERT_TRUE(ternd.wait_for_output("is listening on", 10s)) << ternd.output();
}

std::mt19937& rng() {
    static std::mt19937 r{std::random_device{}()};
    return r;
}

protocol::TransactionId random_id() {
    protocol::TransactionId id;
    for (auto& b : id.bytes) b = static_cast<std::uint8_t>(rng()());
    return id;
}

// Long-term key MD5(username ":" realm ":" password), RFC 8489 §9.2.2, computed here without
// tern's auth library.
Bytes long_term_key(const std::string& username, const std::string& password) {
    const std::string s = username + ":" + realm + ":" + password;
    Bytes key(16);
    unsigned int len = 0;
    EVP_Digest(s.data(), s.size(), key.data(), &len, EVP_md5(), nullptr);
    return key;
}

socklen_t to_sockaddr(const TransportAddress& a, sockaddr_storage& ss) {
    std::memset(&ss, 0, sizeof ss);
    auto* in = reinterpret_cast<sockaddr_in*>(&ss);
    in->sin_family = AF_INET;
    in->sin_port = htons(a.port);
    std::memcpy(&in->sin_addr, a.bytes.data(), 4);
    return sizeof(sockaddr_in);
}

// ---------------------------------------------------------------------------------------------
// A stream client with its socket in reach: abortive close (RST), half-close, a small receive
// window, and sends that never block.

class Stream {
public:
    // TCP connect; for TLS also the handshake, verifying tests/data's certificate. `rcvbuf`, if
    // set, is applied before connect so the advertised window stays small.
    static std::unique_ptr<Stream> connect(const TransportAddress& server, bool tls = false,
                                           int rcvbuf = 0) {
        auto s = std::unique_ptr<Stream>(new Stream);
        s->fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
        if (s->fd_ < 0) return nullptr;
        if (rcvbuf > 0) ::setsockopt(s->fd_, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
        sockaddr_storage ss{};
        const socklen_t len = to_sockaddr(server, ss);
        if (::connect(s->fd_, reinterpret_cast<sockaddr*>(&ss), len) != 0) return nullptr;
        const int one = 1;
        ::setsockopt(s->fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (tls) {
            s->ctx_ = SSL_CTX_new(TLS_client_method());
            SSL_CTX_set_verify(s->ctx_, SSL_VERIFY_PEER, nullptr);
            const std::string ca = data_dir() + "/tls/cert.pem";
            if (SSL_CTX_load_verify_locations(s->ctx_, ca.c_str(), nullptr) != 1) return nullptr;
            s->ssl_ = SSL_new(s->ctx_);
            SSL_set_tlsext_host_name(s->ssl_, "localhost");
            SSL_set1_host(s->ssl_, "localhost");
            SSL_set_fd(s->ssl_, s->fd_);
            timeval tv{5, 0};
            ::setsockopt(s->fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
            if (SSL_connect(s->ssl_) != 1) {
                ERR_print_errors_fp(stderr);
                return nullptr;
            }
        }
        return s;
    }

    ~Stream() {
        if (ssl_) SSL_free(ssl_);
        if (ctx_) SSL_CTX_free(ctx_);
        if (fd_ >= 0) ::close(fd_);
    }
    Stream(const Stream&) = delete;
    Stream& operator=(const Stream&) = delete;

    int fd() const { return fd_; }

    bool send(const Bytes& bytes) {
        if (ssl_) {
            return SSL_write(ssl_, bytes.data(), static_cast<int>(bytes.size())) ==
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

    // The client vanishes: SO_LINGER 0 turns close() into a RST, no TLS close_notify, no FIN.
    void abort() {
        const linger l{1, 0};
        ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof l);
        if (ssl_) SSL_free(ssl_);
        ssl_ = nullptr;
        ::close(fd_);
        fd_ = -1;
    }

    void shutdown_write() { ::shutdown(fd_, SHUT_WR); }

    // One STUN message or one ChannelData frame (its stream padding read and dropped).
    std::optional<Bytes> receive_frame(std::chrono::milliseconds timeout = 2s) {
        const auto deadline = Clock::now() + timeout;
        auto head = read_exact(4, deadline);
        if (!head) return std::nullopt;
        const std::size_t length = (static_cast<std::size_t>((*head)[2]) << 8) | (*head)[3];
        std::size_t rest = 0;
        if (protocol::looks_like_channel_data((*head)[0])) {
            rest = (length + 3) / 4 * 4;  // RFC 8656 §12.5: padded to 4 bytes on streams
        } else {
            rest = protocol::header_size - 4 + length;
        }
        auto body = read_exact(rest, deadline);
        if (!body) return std::nullopt;
        if (protocol::looks_like_channel_data((*head)[0])) body->resize(length);
        head->insert(head->end(), body->begin(), body->end());
        return head;
    }

    // True when the server closed (FIN or RST) within `timeout`; whatever else arrives (TLS
    // session tickets, say) is read and dropped.
    bool wait_closed(std::chrono::milliseconds timeout) {
        const auto deadline = Clock::now() + timeout;
        for (int reads = 0; reads < 100000; ++reads) {
            const auto left =
                std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
            if (left.count() <= 0) return false;
            pollfd p{fd_, POLLIN, 0};
            if (::poll(&p, 1, static_cast<int>(left.count())) != 1) return false;
            std::uint8_t buf[4096];
            const ssize_t n = ::recv(fd_, buf, sizeof buf, MSG_DONTWAIT);
            if (n == 0 || (n < 0 && (errno == ECONNRESET || errno == EPIPE))) return true;
        }
        return false;
    }

private:
    Stream() = default;

    std::optional<Bytes> read_exact(std::size_t n, Clock::time_point deadline) {
        Bytes out(n);
        std::size_t got = 0;
        while (got < n) {
            if (!(ssl_ && SSL_pending(ssl_) > 0)) {
                const auto left =
                    std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
                if (left.count() <= 0) return std::nullopt;
                pollfd p{fd_, POLLIN, 0};
                if (::poll(&p, 1, static_cast<int>(left.count())) != 1) return std::nullopt;
            }
            int r = 0;
            if (ssl_) {
                r = SSL_read(ssl_, out.data() + got, static_cast<int>(n - got));
                if (r <= 0) {
                    if (SSL_get_error(ssl_, r) == SSL_ERROR_WANT_READ) continue;
                    return std::nullopt;
                }
            } else {
                r = static_cast<int>(::recv(fd_, out.data() + got, n - got, 0));
                if (r <= 0) return std::nullopt;
            }
            got += static_cast<std::size_t>(r);
        }
        return out;
    }

    int fd_ = -1;
    SSL* ssl_ = nullptr;
    SSL_CTX* ctx_ = nullptr;
};

// ---------------------------------------------------------------------------------------------
// A long-term-credential TURN client on one 5-tuple (a UDP socket or a Stream).

// A parsed reply that owns its bytes (moving keeps `view` valid: a moved vector keeps its
// buffer).
struct Reply {
    Reply() = default;
    Reply(Reply&&) = default;
    Reply& operator=(Reply&&) = default;
    Reply(const Reply&) = delete;
    Reply& operator=(const Reply&) = delete;

    Bytes bytes;
    MessageView view;
    bool ok = false;

    // 0 for a success response, the ERROR-CODE for an error response, -1 for no answer.
    int code() const {
        if (!ok) return -1;
        if (view.message_class() == MessageClass::success_response) return 0;
        const auto e = view.error_code();
        return e ? e->code : -1;
    }
};

using Attributes = std::function<void(MessageBuilder&)>;

void udp_transport(MessageBuilder& b) {
    b.add_requested_transport(17);
}

class TurnClient {
public:
    // UDP from `local` (port 0: the kernel picks).
    TurnClient(const TransportAddress& server, const TransportAddress& local)
        : udp_(std::make_unique<UdpClient>(local)), server_(server) {}
    explicit TurnClient(std::unique_ptr<Stream> stream) : stream_(std::move(stream)) {}

    UdpClient& udp() { return *udp_; }
    Stream& stream() { return *stream_; }
    std::unique_ptr<Stream> take_stream() { return std::move(stream_); }
    // Peers of every Data indication seen so far, on any receive path.
    const std::vector<TransportAddress>& data_peers() const { return data_peers_; }

    bool send_raw(const Bytes& bytes) {
        return stream_ ? stream_->send(bytes) : udp_->send_to(server_, bytes);
    }

    std::optional<Bytes> receive_raw(std::chrono::milliseconds timeout) {
        auto got = stream_ ? stream_->receive_frame(timeout) : udp_->receive(timeout);
        if (got) note_data(*got);
        return got;
    }

    // Authenticated (USERNAME, REALM, NONCE, MESSAGE-INTEGRITY) once a nonce is known, then
    // FINGERPRINT.
    Bytes build(Method method, const Attributes& attrs) {
        Bytes buf(1024);
        MessageBuilder b(buf, {method, MessageClass::request}, random_id());
        if (attrs) attrs(b);
        if (!nonce_.empty()) {
            b.add_text(protocol::attr::username, username_);
            b.add_text(protocol::attr::realm, realm_);
            b.add_text(protocol::attr::nonce, nonce_);
            b.add_message_integrity(key_);
        }
        b.add_fingerprint();
        const auto out = b.finish();
        return Bytes(out.begin(), out.end());
    }

    // The response carrying `msg`'s transaction id; frames in between are skipped (and Data
    // indications noted).
    Reply exchange(const Bytes& msg, std::chrono::milliseconds wait = 2s) {
        Reply r;
        const int attempts = stream_ ? 1 : 3;  // retransmit on UDP only (RFC 8489 §6.2)
        for (int attempt = 0; attempt < attempts && !r.ok; ++attempt) {
            if (!send_raw(msg)) return r;
            const auto deadline = Clock::now() + (stream_ ? wait : wait / 2);
            for (int frames = 0; frames < 100000 && Clock::now() < deadline; ++frames) {
                // The whole remaining time: a stream read cut short mid-frame would lose sync.
                const auto left =
                    std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
                auto got = receive_raw(std::max(left, std::chrono::milliseconds(1)));
                if (!got) break;  // timed out (or the stream closed)
                r.bytes = std::move(*got);
                if (MessageView::parse(r.bytes, r.view) != protocol::ParseError::ok) continue;
                const auto& id = r.view.transaction_id().bytes;
                if (std::equal(id.begin(), id.end(), msg.begin() + 8) &&
                    r.view.message_class() != MessageClass::indication) {
                    r.ok = true;
                    break;
                }
            }
        }
        return r;
    }

    // On the first 401 (or a 438) learns REALM and NONCE and asks again, authenticated.
    Reply request(Method method, const Attributes& attrs, std::chrono::milliseconds wait = 2s) {
        Reply r = exchange(build(method, attrs), wait);
        if ((r.code() == 401 || r.code() == 438) && r.view.nonce() && r.view.realm()) {
            const bool retry = nonce_.empty() || r.code() == 438;
            realm_ = std::string(*r.view.realm());
            nonce_ = std::string(*r.view.nonce());
            if (retry) r = exchange(build(method, attrs), wait);
        }
        return r;
    }

    int allocate() { return request(Method::allocate, udp_transport).code(); }

    // An unauthenticated Allocate always gets 401 with REALM and NONCE and creates nothing.
    bool fetch_nonce() {
        const Reply r = exchange(build(Method::allocate, udp_transport));
        if (r.code() != 401 || !r.view.nonce() || !r.view.realm()) return false;
        realm_ = std::string(*r.view.realm());
        nonce_ = std::string(*r.view.nonce());
        return true;
    }

private:
    void note_data(const Bytes& frame) {
        MessageView v;
        if (MessageView::parse(frame, v) != protocol::ParseError::ok) return;
        if (v.method() == Method::data && v.message_class() == MessageClass::indication &&
            v.xor_peer_address()) {
            data_peers_.push_back(*v.xor_peer_address());
        }
    }

    std::unique_ptr<UdpClient> udp_;
    std::unique_ptr<Stream> stream_;
    TransportAddress server_;
    std::string username_ = "alice";
    Bytes key_ = long_term_key("alice", "wonderland");
    std::string realm_;
    std::string nonce_;
    std::vector<TransportAddress> data_peers_;
};

Attributes peer_attr(const TransportAddress& peer) {
    return [peer](MessageBuilder& b) { b.add_xor_address(protocol::attr::xor_peer_address, peer); };
}

bool udp_binding_works(std::uint16_t port) {
    TransportAddress local;
    const auto reply = udp_exchange(loopback4(port), binding_request(), loopback4(0), local, 1s);
    MessageView v;
    return reply && MessageView::parse(*reply, v) == protocol::ParseError::ok &&
           v.message_class() == MessageClass::success_response;
}

bool stream_binding_works(Stream& s, std::chrono::milliseconds timeout = 2s) {
    if (!s.send(binding_request())) return false;
    const auto reply = s.receive_frame(timeout);
    MessageView v;
    return reply && MessageView::parse(*reply, v) == protocol::ParseError::ok &&
           v.message_class() == MessageClass::success_response;
}

// A new stream connection from alice allocates within `within`, retrying while ternd still
// counts the old allocation (it learns of a vanished client asynchronously).
bool allocates_again(const TransportAddress& server, bool tls, std::chrono::milliseconds within,
                     int* last_code) {
    const auto deadline = Clock::now() + within;
    for (int attempt = 0; attempt < 40; ++attempt) {
        auto s = Stream::connect(server, tls);
        if (s) {
            TurnClient c(std::move(s));
            *last_code = c.allocate();
            if (*last_code == 0) return true;
        }
        if (Clock::now() >= deadline) return false;
        std::this_thread::sleep_for(100ms);
    }
    return false;
}

long vm_rss_kib(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
    }
    return -1;
}

// utime + stime in clock ticks (/proc/<pid>/stat fields 14 and 15, after the "(comm)").
long cpu_ticks(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const auto close = stat.rfind(')');
    if (close == std::string::npos) return -1;
    std::istringstream rest(stat.substr(close + 2));
    std::string field;
    long utime = 0, stime = 0;
    for (int i = 3; i <= 15 && rest >> field; ++i) {
        if (i == 14) utime = std::stol(field);
        if (i == 15) stime = std::stol(field);
    }
    return utime + stime;
}

int open_fds(pid_t pid) {
    std::error_code ec;
    int n = 0;
    for (auto it = std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec);
         !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
        ++n;
    }
    return n;
}

std::size_t count_of(const std::string& haystack, const std::string& needle) {
    std::size_t n = 0;
    for (auto at = haystack.find(needle); at != std::string::npos;
         at = haystack.find(needle, at + needle.size())) {
        ++n;
    }
    return n;
}

// ---------------------------------------------------------------------------------------------
// 1. Clients that vanish: the allocation goes with the connection (RFC 8656 §3.1: a TCP/TLS
// allocation ends when its control connection closes), and the user's quota comes back.

void expect_vanished_client_frees_its_quota(bool tls) {
    const std::uint16_t port = free_port();
    TerndProcess ternd(
        server_yaml(listen_url(tls ? "tls" : "tcp", port), "max_allocations_per_user: 1") +
        (tls ? tls_yaml() : ""));
    expect_ready(ternd);
    const auto server = loopback4(port);

    auto first_stream = Stream::connect(server, tls);
    ASSERT_TRUE(first_stream);
    TurnClient first(std::move(first_stream));
    ASSERT_EQ(first.allocate(), 0) << ternd.output();

    // Control: while the first allocation lives, the quota of one holds.
    {
        auto s = Stream::connect(server, tls);
        ASSERT_TRUE(s);
        TurnClient second(std::move(s));
        EXPECT_EQ(second.allocate(), 486);
    }

    first.stream().abort();  // RST: no Refresh(0), no FIN, no close_notify
    int code = -1;
    EXPECT_TRUE(allocates_again(server, tls, 2s, &code)) << "last Allocate answer " << code << "\n"
                                                         << ternd.output();
    EXPECT_TRUE(ternd.running()) << ternd.output();
}

TEST(FaultVanishingClient, TcpClientResetAfterAllocatingGivesItsQuotaBack) {
    expect_vanished_client_frees_its_quota(false);
}

TEST(FaultVanishingClient, TlsClientResetAfterAllocatingGivesItsQuotaBack) {
    expect_vanished_client_frees_its_quota(true);
}

TEST(FaultVanishingClient, TcpClientResetWhileItsAllocateIsInFlightLeavesNoAllocation) {
    const std::uint16_t port = free_port();
    TerndProcess ternd(server_yaml(listen_url("tcp", port), "max_allocations_per_user: 1"));
    expect_ready(ternd);
    const auto server = loopback4(port);
    // Several rounds, so the reset lands before, during and after ternd handles the Allocate.
    for (int round = 0; round < 5; ++round) {
        auto s = Stream::connect(server);
        ASSERT_TRUE(s);
        TurnClient c(std::move(s));
        ASSERT_TRUE(c.fetch_nonce());
        ASSERT_TRUE(c.send_raw(c.build(Method::allocate, udp_transport)));
        if (round % 2 == 1) std::this_thread::sleep_for(std::chrono::milliseconds(round));
        c.stream().abort();
    }
    int code = -1;
    EXPECT_TRUE(allocates_again(server, false, 2s, &code))
        << "last Allocate answer " << code << "\n"
        << ternd.output();
}

// ---------------------------------------------------------------------------------------------
// 2. Half-close: a client may send its request and then shut down its sending side. It still
// gets its answer, then ternd closes, and the connection slot comes back.

TEST(FaultHalfClose, RequestThenShutdownGetsItsAnswerThenTheServerClosesAndTheSlotReturns) {
    const std::uint16_t port = free_port();
    TerndProcess ternd(server_yaml(listen_url("tcp", port), "max_connections_per_ip: 1"));
    expect_ready(ternd);
    const auto server = loopback4(port);

    {
        auto s = Stream::connect(server);
        ASSERT_TRUE(s);
        // Request and FIN leave back to back, so ternd often reads both in one wake-up.
        ASSERT_TRUE(s->send(binding_request()));
        s->shutdown_write();
        const auto reply = s->receive_frame(2s);
        ASSERT_TRUE(reply) << "no answer after half-close\n" << ternd.output();
        MessageView v;
        ASSERT_EQ(MessageView::parse(*reply, v), protocol::ParseError::ok);
        EXPECT_EQ(v.message_class(), MessageClass::success_response);
        EXPECT_TRUE(s->wait_closed(2s)) << "ternd kept a half-closed connection open";
    }
    // One slot per address: a new connection gets in only once ternd has let go of the
    // half-closed one (the slot is returned when the connection object goes, a moment after
    // the close, hence the retries).
    bool admitted = false;
    for (int attempt = 0; attempt < 20 && !admitted; ++attempt) {
        auto again = Stream::connect(server);
        admitted = again && stream_binding_works(*again, 1s);
        if (!admitted) std::this_thread::sleep_for(100ms);
    }
    EXPECT_TRUE(admitted) << ternd.output();
}

TEST(FaultHalfClose, ABurstOfRequestsThenShutdownGetsEveryAnswerBeforeTheClose) {
    // The answers outgrow the socket buffers, so ternd is still writing when it reads the FIN:
    // closing at that point would lose the tail of the answers.
    const std::uint16_t port = free_port();
    TerndProcess ternd(server_yaml(listen_url("tcp", port), "unauthenticated_rate: 0"));
    expect_ready(ternd);
    auto s = Stream::connect(loopback4(port), false, 4096);
    ASSERT_TRUE(s);
    constexpr int requests = 5000;
    std::atomic<int> answers{0};
    std::atomic<bool> closed{false};
    std::thread reader([&] {
        std::this_thread::sleep_for(200ms);  // let the answers pile up on ternd's side first
        const auto deadline = Clock::now() + 10s;
        for (int i = 0; i < requests && Clock::now() < deadline; ++i) {
            const auto reply = s->receive_frame(3s);
            MessageView v;
            if (!reply || MessageView::parse(*reply, v) != protocol::ParseError::ok) break;
            if (v.message_class() == MessageClass::success_response) ++answers;
        }
        closed = s->wait_closed(3s);
    });
    Bytes burst;
    for (int i = 0; i < requests; ++i) {
        const Bytes r = binding_request();
        burst.insert(burst.end(), r.begin(), r.end());
    }
    const bool sent = s->send(burst);
    s->shutdown_write();
    reader.join();
    EXPECT_TRUE(sent);
    EXPECT_EQ(answers.load(), requests) << ternd.output();
    EXPECT_TRUE(closed.load());
}

// ---------------------------------------------------------------------------------------------
// 3. Stalling clients: limits.handshake_timeout bounds the TLS handshake and then the first
// complete message; limits.connection_idle_timeout bounds silence after that.

struct Stall {
    std::string name;
    std::unique_ptr<Stream> stream;
    Clock::time_point start;
    std::chrono::milliseconds expected;
    std::chrono::milliseconds closed_after{-1};
};

TEST(FaultStall, HandshakeAndIdleTimeoutsCloseStalledConnectionsOnTime) {
    const std::uint16_t port = free_port();
    const std::uint16_t tls_port = free_port();
    constexpr auto handshake = 2s;
    constexpr auto idle = 5s;
    TerndProcess ternd(server_yaml(listen_url("tcp", port) + ", " + listen_url("tls", tls_port),
                                   "handshake_timeout: 2, connection_idle_timeout: 5") +
                       tls_yaml());
    expect_ready(ternd);

    std::vector<Stall> stalls;
    // Each clock starts before anything ternd could start its own from (the connect, or the
    // request that resets the idle clock), so "not before the deadline" is exact.
    const auto add = [&](std::string name, Clock::time_point start, std::unique_ptr<Stream> s,
                         std::chrono::milliseconds expected) {
        ASSERT_TRUE(s) << name;
        stalls.push_back({std::move(name), std::move(s), start, expected});
    };
    // Connects to the TLS port and sends nothing at all.
    {
        const auto start = Clock::now();
        add("tls, silent", start, Stream::connect(loopback4(tls_port)), handshake);
    }
    // A TLS record header announcing a ClientHello, and then nothing.
    {
        const auto start = Clock::now();
        auto s = Stream::connect(loopback4(tls_port));
        ASSERT_TRUE(s);
        ASSERT_TRUE(s->send(Bytes{0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01}));
        add("tls, partial ClientHello", start, std::move(s), handshake);
    }
    // A finished handshake without a request: the first-message deadline starts over.
    {
        const auto start = Clock::now();
        add("tls, handshake but no request", start, Stream::connect(loopback4(tls_port), true),
            handshake);
    }
    // Half a STUN header on plain TCP.
    {
        const auto start = Clock::now();
        auto s = Stream::connect(loopback4(port));
        ASSERT_TRUE(s);
        const Bytes request = binding_request();
        ASSERT_TRUE(s->send(Bytes(request.begin(), request.begin() + 10)));
        add("tcp, half a header", start, std::move(s), handshake);
    }
    // One Binding answered, then silence: the idle timeout, counted from that request.
    {
        auto s = Stream::connect(loopback4(port));
        ASSERT_TRUE(s);
        const auto start = Clock::now();
        ASSERT_TRUE(stream_binding_works(*s));
        add("tcp, idle after a Binding", start, std::move(s), idle);
    }
    // Control: a client that keeps talking outlives both deadlines.
    auto talker = Stream::connect(loopback4(port));
    ASSERT_TRUE(talker);

    std::vector<std::thread> waiters;
    for (auto& stall : stalls) {
        waiters.emplace_back([&stall] {
            if (stall.stream->wait_closed(stall.expected + 6s)) {
                stall.closed_after = std::chrono::duration_cast<std::chrono::milliseconds>(
                    Clock::now() - stall.start);
            }
        });
    }
    bool talker_served = true;
    const auto talk_until = Clock::now() + idle + 2s;
    for (int i = 0; i < 20 && Clock::now() < talk_until; ++i) {
        talker_served = talker_served && stream_binding_works(*talker);
        std::this_thread::sleep_for(700ms);
    }
    for (auto& w : waiters) w.join();

    for (const auto& stall : stalls) {
        if (stall.closed_after.count() < 0) {
            ADD_FAILURE() << stall.name << ": never closed";
            continue;
        }
        EXPECT_GE(stall.closed_after, stall.expected) << stall.name << ": closed too early";
        EXPECT_LT(stall.closed_after, stall.expected + 3s) << stall.name << ": closed too late";
    }
    EXPECT_TRUE(talker_served) << "a client that keeps sending was cut off\n" << ternd.output();
}

// ---------------------------------------------------------------------------------------------
// 4. A peer without a permission floods the relay port (RFC 8656 §11.3: no permission, no
// delivery). The client keeps being served, and permitted data still gets through.

TEST(FaultFlood, UnpermittedPeerFloodReachesNothingAndTheClientKeepsService) {
    const std::uint16_t port = free_port();
    TerndProcess ternd(server_yaml(listen_url("udp", port), ""));
    expect_ready(ternd);

    TurnClient client(loopback4(port), loopback4(0));
    const Reply allocated = client.request(Method::allocate, udp_transport);
    ASSERT_EQ(allocated.code(), 0) << ternd.output();
    const auto relayed = allocated.view.xor_relayed_address();
    ASSERT_TRUE(relayed);

    // Permissions are per IP address: the flooder must sit on another loopback address.
    UdpClient permitted(loopback4(0));
    UdpClient flooder(TransportAddress::v4({127, 0, 0, 2}, 0));
    ASSERT_EQ(
        client.request(Method::create_permission, peer_attr(permitted.local_address())).code(), 0);

    std::atomic<bool> flooding{true};
    std::atomic<int> flood_sent{0};
    std::thread flood([&] {
        const Bytes junk(512, 0xAB);
        const auto deadline = Clock::now() + 5s;
        for (int i = 0; i < 20000 && Clock::now() < deadline; ++i) {
            if (flooder.send_to(*relayed, junk)) ++flood_sent;
        }
        flooding = false;
    });
    // Service while the flood runs (and after it, if it was over first).
    int refreshes = 0, answered = 0;
    for (int i = 0; i < 5; ++i) {
        ++refreshes;
        if (client.request(Method::refresh, [](MessageBuilder& b) { b.add_lifetime(600); })
                .code() == 0)
            ++answered;
    }
    const int perm_code =
        client.request(Method::create_permission, peer_attr(permitted.local_address())).code();
    const bool overlapped = flooding.load();
    flood.join();
    EXPECT_EQ(answered, refreshes) << ternd.output();
    EXPECT_EQ(perm_code, 0);
    EXPECT_GT(flood_sent.load(), 10000);
    std::cout << "flood: " << flood_sent.load()
              << " datagrams, requests overlapped it: " << (overlapped ? "yes" : "no") << "\n";

    // Permitted data still arrives.
    const Bytes hello{'h', 'e', 'l', 'l', 'o'};
    bool delivered = false;
    for (int i = 0; i < 20 && !delivered; ++i) {
        permitted.send_to(*relayed, hello);
        for (int frames = 0; frames < 50; ++frames) {
            const auto got = client.receive_raw(100ms);
            if (!got) break;
            MessageView v;
            if (MessageView::parse(*got, v) == protocol::ParseError::ok &&
                v.method() == Method::data && v.data() &&
                std::equal(v.data()->begin(), v.data()->end(), hello.begin(), hello.end())) {
                delivered = true;
            }
        }
    }
    EXPECT_TRUE(delivered) << ternd.output();
    // Nothing from the flooder reached the client, on any path that read from the socket.
    for (const auto& peer : client.data_peers()) {
        EXPECT_EQ(peer, permitted.local_address()) << "relayed from " << peer.to_string();
    }
    EXPECT_FALSE(client.data_peers().empty());
}

// ---------------------------------------------------------------------------------------------
// 5. The relay port range runs out: 508, and a freed port is handed out again.

// First of `count` consecutive ports free on 127.0.0.1 for UDP right now, below what anything
// else in the tests draws from (free_port() from 20000, the kernel's ephemeral ports from 32768,
// ternd's default relay range from 49152), so no other socket takes one while the test runs.
std::uint16_t free_port_run(int count) {
    std::uniform_int_distribution<int> dist(10000, 19990 - count);
    for (int attempt = 0; attempt < 100; ++attempt) {
        const auto first = static_cast<std::uint16_t>(dist(rng()));
        bool all = true;
        for (int i = 0; i < count && all; ++i) {
            const int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
            sockaddr_storage ss{};
            const socklen_t len = to_sockaddr(loopback4(static_cast<std::uint16_t>(first + i)), ss);
            all = fd >= 0 && ::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) == 0;
            if (fd >= 0) ::close(fd);
        }
        if (all) return first;
    }
    return 0;
}

TEST(FaultRelayPorts, ExhaustedRangeIs508AndADeletedAllocationsPortIsReused) {
    constexpr int range = 3;
    const std::uint16_t first = free_port_run(range);
    ASSERT_NE(first, 0);
    const std::uint16_t port = free_port();
    TerndProcess ternd(
        server_yaml(listen_url("udp", port), "",
                    ", ports: " + std::to_string(first) + "-" + std::to_string(first + range - 1)));
    expect_ready(ternd);

    std::vector<std::unique_ptr<TurnClient>> clients;
    std::vector<std::uint16_t> relay_ports;
    for (int i = 0; i < range; ++i) {
        auto c = std::make_unique<TurnClient>(loopback4(port), loopback4(0));
        const Reply r = c->request(Method::allocate, udp_transport);
        ASSERT_EQ(r.code(), 0) << "allocation " << i << "\n" << ternd.output();
        relay_ports.push_back(r.view.xor_relayed_address()->port);
        clients.push_back(std::move(c));
    }
    std::sort(relay_ports.begin(), relay_ports.end());
    for (int i = 0; i < range; ++i) EXPECT_EQ(relay_ports[static_cast<std::size_t>(i)], first + i);

    TurnClient refused(loopback4(port), loopback4(0));
    EXPECT_EQ(refused.allocate(), 508);
    EXPECT_EQ(refused.allocate(), 508);  // and stays refused, without a hang

    // Refresh with LIFETIME 0 deletes an allocation (RFC 8656 §7.3) and returns its port.
    ASSERT_EQ(
        clients[1]->request(Method::refresh, [](MessageBuilder& b) { b.add_lifetime(0); }).code(),
        0);
    TurnClient next(loopback4(port), loopback4(0));
    const Reply again = next.request(Method::allocate, udp_transport);
    ASSERT_EQ(again.code(), 0) << ternd.output();
    const auto p = again.view.xor_relayed_address()->port;
    EXPECT_TRUE(p >= first && p < first + range) << p;
    EXPECT_TRUE(ternd.running());
}

// ---------------------------------------------------------------------------------------------
// 6. The open-files limit: accept fails with EMFILE. ternd says so once, does not spin, keeps
// answering UDP, refuses Allocates with 508 (no fd for a relay socket) and recovers by itself.

TEST(FaultFdLimit, AcceptAndRelaySocketsFailCleanlyAtTheOpenFilesLimitAndRecover) {
    const std::uint16_t port = free_port();
    TerndProcess ternd(server_yaml(listen_url("udp", port) + ", " + listen_url("tcp", port),
                                   "max_connections: 1000, max_connections_per_ip: 1000"));
    expect_ready(ternd);
    // Lower the running ternd's limit (prlimit(2) on its PID, as prlimit(1) would): a few fds
    // above what it holds now, so TCP connections use them up quickly.
    const int base = open_fds(ternd.pid());
    ASSERT_GT(base, 0);
    constexpr int spare = 12;
    const rlimit limit{static_cast<rlim_t>(base + spare), static_cast<rlim_t>(base + spare)};
    ASSERT_EQ(::prlimit(ternd.pid(), RLIMIT_NOFILE, &limit, nullptr), 0) << std::strerror(errno);

    std::vector<std::unique_ptr<Stream>> held;
    std::unique_ptr<Stream> waiting;  // the first connection ternd could not accept
    for (int i = 0; i < spare + 10 && !waiting; ++i) {
        auto s = Stream::connect(loopback4(port));  // the kernel completes it from the backlog
        ASSERT_TRUE(s);
        if (stream_binding_works(*s, 1s)) {
            held.push_back(std::move(s));
        } else {
            waiting = std::move(s);
        }
    }
    ASSERT_TRUE(waiting) << "never hit the open-files limit with " << held.size()
                         << " connections\n"
                         << ternd.output();
    ASSERT_FALSE(held.empty());

    // At the limit: UDP still answered, no busy loop, one log line.
    const long ticks_before = cpu_ticks(ternd.pid());
    const auto window_start = Clock::now();
    int bindings = 0, answered = 0;
    for (int i = 0; i < 10 && Clock::now() - window_start < 2s; ++i) {
        ++bindings;
        if (udp_binding_works(port)) ++answered;
        std::this_thread::sleep_for(200ms);
    }
    std::this_thread::sleep_for(2s - std::min<Clock::duration>(2s, Clock::now() - window_start));
    const long ticks = cpu_ticks(ternd.pid()) - ticks_before;
    const long hz = ::sysconf(_SC_CLK_TCK);
    EXPECT_EQ(answered, bindings);
    // A spinning accept loop burns ~2 s of CPU here; a retry timer a few milliseconds.
    EXPECT_LT(ticks, hz / 2) << "ternd used " << ticks << " ticks in 2 s at the fd limit";
    const std::string log = ternd.output();
    EXPECT_EQ(count_of(log, "accept on"), 1u) << log;
    EXPECT_NE(log.find("open-files limit"), std::string::npos) << log;

    // No fd for a relay socket: 508, not a crash, and one log line for repeated failures.
    TurnClient blocked(loopback4(port), loopback4(0));
    EXPECT_EQ(blocked.allocate(), 508) << ternd.output();
    TurnClient blocked_too(loopback4(port), loopback4(0));
    EXPECT_EQ(blocked_too.allocate(), 508) << ternd.output();
    EXPECT_EQ(count_of(ternd.output(), "relay: cannot open"), 1u) << ternd.output();
    EXPECT_TRUE(ternd.running());

    // Recovery: closing a few connections frees fds; the waiting connection is accepted and
    // served, and an Allocate succeeds.
    for (int i = 0; i < 5 && !held.empty(); ++i) held.pop_back();
    EXPECT_TRUE(stream_binding_works(*waiting, 3s)) << ternd.output();
    bool allocated = false;
    for (int attempt = 0; attempt < 20 && !allocated; ++attempt) {
        allocated = blocked.allocate() == 0;
        if (!allocated) std::this_thread::sleep_for(100ms);
    }
    EXPECT_TRUE(allocated) << ternd.output();
    EXPECT_TRUE(ternd.wait_for_output("again", 2s)) << ternd.output();
    EXPECT_TRUE(ternd.running());
}

// ---------------------------------------------------------------------------------------------
// 7. A client that stops reading while its peer sends: bounded output (limits.max_pending_output)
// drops relayed data instead of queueing it, memory stays flat, other clients are served, and
// the slow client's own STUN answers are still delivered once it reads again.

void expect_stalled_reader_bounded(bool tls) {
    const std::uint16_t port = free_port();
    const std::uint16_t tls_port = free_port();
    TerndProcess ternd(server_yaml(listen_url("udp", port) + ", " + listen_url("tcp", port) + ", " +
                                       listen_url("tls", tls_port),
                                   "allocation_bandwidth: 0, user_bandwidth: 0, "
                                   "max_pending_output: 131072") +
                       tls_yaml());
    expect_ready(ternd);

    // A tiny receive window, so almost everything stays queued on ternd's side.
    auto stream = Stream::connect(loopback4(tls ? tls_port : port), tls, 4096);
    ASSERT_TRUE(stream);
    TurnClient slow(std::move(stream));
    const Reply allocated = slow.request(Method::allocate, udp_transport);
    ASSERT_EQ(allocated.code(), 0) << ternd.output();
    const auto relayed = *allocated.view.xor_relayed_address();
    UdpClient peer(loopback4(0));
    constexpr std::uint16_t channel = 0x4000;
    ASSERT_EQ(slow.request(Method::channel_bind,
                           [&](MessageBuilder& b) {
                               b.add_channel_number(channel);
                               b.add_xor_address(protocol::attr::xor_peer_address,
                                                 peer.local_address());
                           })
                  .code(),
              0);

    const long rss_before = vm_rss_kib(ternd.pid());
    ASSERT_GT(rss_before, 0);
    // ~96 MB towards a client that reads nothing: unbounded queueing would show in RSS.
    const Bytes payload(4092, 0x5A);
    int sent = 0;
    const auto flood_deadline = Clock::now() + 10s;
    for (int i = 0; i < 24000 && Clock::now() < flood_deadline; ++i) {
        if (peer.send_to(relayed, payload)) ++sent;
        if (i % 32 == 31) std::this_thread::sleep_for(1ms);  // let the worker keep up
    }
    std::this_thread::sleep_for(300ms);
    const long rss_after = vm_rss_kib(ternd.pid());
    std::cout << "ternd RSS " << rss_before << " KiB before, " << rss_after << " KiB after " << sent
              << " datagrams\n";
    EXPECT_LT(rss_after - rss_before, 30 * 1024)
        << "RSS grew from " << rss_before << " KiB to " << rss_after << " KiB after " << sent
        << " datagrams";

    // Others are still served, over UDP and over a second TCP connection.
    EXPECT_TRUE(udp_binding_works(port));
    {
        auto other = Stream::connect(loopback4(port));
        ASSERT_TRUE(other);
        EXPECT_TRUE(stream_binding_works(*other));
    }

    // The stalled client asks for something while its queue is full, then reads again: the
    // answer arrives (responses are queued past the bound, relayed data is not) and the
    // connection is still open.
    const Reply refreshed = slow.request(
        Method::refresh, [](MessageBuilder& b) { b.add_lifetime(600); }, 15s);
    EXPECT_EQ(refreshed.code(), 0) << ternd.output();
    EXPECT_EQ(slow.request(Method::refresh, [](MessageBuilder& b) { b.add_lifetime(600); }).code(),
              0);
    EXPECT_TRUE(ternd.running());
}

TEST(FaultSlowReader, StalledTcpReaderCostsBoundedMemoryAndStillGetsItsAnswers) {
    expect_stalled_reader_bounded(false);
}

TEST(FaultSlowReader, StalledTlsReaderCostsBoundedMemoryAndStillGetsItsAnswers) {
    expect_stalled_reader_bounded(true);
}

}  // namespace
}  // namespace tern::test
