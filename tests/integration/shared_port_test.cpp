// TURN on port 443 beside the website: a tls:// listener with edge.fallback is a shared port.
// A real ternd in front of a real nginx (curl fetching the website through ternd, nginx's access
// log naming the client via PROXY v2), TURN over TLS by SNI or ALPN and STUN over TCP on the
// same port, a real haproxy in front of ternd sending PROXY v2 (XOR-MAPPED-ADDRESS reports the
// client behind it; coturn's turnutils_uclient relays through the chain), and hostile or broken
// input, each with its defined outcome: a ClientHello in 1-byte segments, one that never
// completes, one over 16 KiB, garbage in the SNI, an upstream that is down, one that reads
// slowly, PROXY headers from the wrong sources, and 10,000 connections opened and dropped.
//
// Routing rule, per new connection on a shared port (the contract these tests hold ternd to):
// a TLS ClientHello offering ALPN stun.turn or stun.nat-discovery, or with an SNI in
// edge.turn_names, is TURN (ternd terminates TLS); any other SNI goes to the fallback,
// undecrypted; no SNI but some ALPN goes to the fallback; no SNI and no ALPN is TURN. STUN or
// ChannelData first is TURN over TCP; other bytes are closed.
//
// Every address here is on loopback: clients bind 127.0.0.9 so the address a PROXY header
// carries differs from ternd's own 127.0.0.1 source towards the fallback.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "support.hpp"
#include "tern/ctl/endpoint_client.hpp"
#include "tern/ctl/status_report.hpp"
#include "tern/protocol/message.hpp"
#include "web_servers.hpp"

namespace tern::test {
namespace {

using Clock = std::chrono::steady_clock;
using Labels = std::vector<std::pair<std::string, std::string>>;

constexpr const char* turn_name = "turn.example.test";
constexpr const char* web_name = "www.example.test";
constexpr const char* rest_secret = "s3cret";
constexpr int handshake_timeout_s = 2;
constexpr int connect_timeout_s = 2;

const TransportAddress client_ip = TransportAddress::v4({127, 0, 0, 9}, 0);

TransportAddress from_ip(std::array<std::uint8_t, 4> ip) {
    return TransportAddress::v4(ip, 0);
}

std::string seconds_since(Clock::time_point start) {
    return std::to_string(std::chrono::duration<double>(Clock::now() - start).count()) + " s";
}

// ---------------------------------------------------------------------------------------------
// Raw sockets.

sockaddr_in sockaddr_of(const TransportAddress& a) {
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(a.port);
    std::memcpy(&sa.sin_addr, a.bytes.data(), 4);
    return sa;
}

TransportAddress local_address_of(int fd) {
    sockaddr_in sa{};
    socklen_t len = sizeof sa;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
    std::array<std::uint8_t, 4> b{};
    std::memcpy(b.data(), &sa.sin_addr, 4);
    return TransportAddress::v4(b, ntohs(sa.sin_port));
}

// A connected blocking TCP socket from `local` (port 0) with TCP_NODELAY, or -1.
int tcp_connect(const TransportAddress& server, std::optional<TransportAddress> local = {}) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    if (local) {
        const sockaddr_in from = sockaddr_of(*local);
        if (::bind(fd, reinterpret_cast<const sockaddr*>(&from), sizeof from) != 0) {
            ::close(fd);
            return -1;
        }
    }
    const sockaddr_in to = sockaddr_of(server);
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&to), sizeof to) != 0) {
        ::close(fd);
        return -1;
    }
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

bool send_all(int fd, const std::uint8_t* data, std::size_t size) {
    std::size_t sent = 0;
    while (sent < size) {
        const ssize_t n = ::send(fd, data + sent, size - sent, MSG_NOSIGNAL);
        if (n <= 0) return false;
        sent += static_cast<std::size_t>(n);
    }
    return true;
}

bool send_all(int fd, const Bytes& b) {
    return send_all(fd, b.data(), b.size());
}

// One byte per send (TCP_NODELAY: one segment each), `gap` apart.
bool send_bytewise(int fd, const Bytes& b, std::chrono::microseconds gap) {
    for (const auto byte : b) {
        if (::send(fd, &byte, 1, MSG_NOSIGNAL) != 1) return false;
        std::this_thread::sleep_for(gap);
    }
    return true;
}

// True when the peer closes (FIN or RST) within `timeout`; bytes that arrive are read and
// dropped (a TLS alert, say).
bool wait_fd_closed(int fd, std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    for (;;) {
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
        if (left.count() <= 0) return false;
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, static_cast<int>(left.count())) != 1) return false;
        std::uint8_t buf[4096];
        const ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n == 0 || (n < 0 && (errno == ECONNRESET || errno == EPIPE))) return true;
        if (n < 0 && errno != EAGAIN && errno != EINTR) return true;
    }
}

// An fd closed at scope exit.
struct Fd {
    int fd = -1;
    explicit Fd(int f) : fd(f) {}
    ~Fd() {
        if (fd >= 0) ::close(fd);
    }
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    explicit operator bool() const { return fd >= 0; }
};

// ---------------------------------------------------------------------------------------------
// A hand-built TLS ClientHello, for the tests that need exact bytes (garbage in the SNI, sizes
// over 16 KiB, a malformed extension): one handshake message cut into records of at most 16 KiB.

struct HelloSpec {
    std::optional<std::string> sni;
    std::vector<std::string> alpn;
    std::size_t padding = 0;        // bytes of a padding extension (RFC 7685)
    bool break_sni_length = false;  // SNI extension length one more than its content
};

HelloSpec hello_spec(std::optional<std::string> sni, std::vector<std::string> alpn = {},
                     std::size_t padding = 0, bool break_sni_length = false) {
    HelloSpec spec;
    spec.sni = std::move(sni);
    spec.alpn = std::move(alpn);
    spec.padding = padding;
    spec.break_sni_length = break_sni_length;
    return spec;
}

void put16(Bytes& b, std::size_t v) {
    b.push_back(static_cast<std::uint8_t>(v >> 8));
    b.push_back(static_cast<std::uint8_t>(v));
}

void put_extension(Bytes& b, std::uint16_t type, const Bytes& body, std::size_t claimed = 0) {
    put16(b, type);
    put16(b, claimed ? claimed : body.size());
    b.insert(b.end(), body.begin(), body.end());
}

Bytes client_hello(const HelloSpec& spec) {
    Bytes ext;
    if (spec.sni) {
        Bytes body;
        put16(body, spec.sni->size() + 3);  // server_name_list length
        body.push_back(0);                  // host_name
        put16(body, spec.sni->size());
        body.insert(body.end(), spec.sni->begin(), spec.sni->end());
        put_extension(ext, 0x0000, body, spec.break_sni_length ? body.size() + 1 : 0);
    }
    {
        Bytes groups;  // supported_groups: x25519, secp256r1
        put16(groups, 4);
        put16(groups, 0x001d);
        put16(groups, 0x0017);
        put_extension(ext, 0x000a, groups);
        Bytes versions{4, 0x03, 0x04, 0x03, 0x03};  // supported_versions: 1.3, 1.2
        put_extension(ext, 0x002b, versions);
    }
    if (!spec.alpn.empty()) {
        Bytes list;
        for (const auto& p : spec.alpn) {
            list.push_back(static_cast<std::uint8_t>(p.size()));
            list.insert(list.end(), p.begin(), p.end());
        }
        Bytes body;
        put16(body, list.size());
        body.insert(body.end(), list.begin(), list.end());
        put_extension(ext, 0x0010, body);
    }
    if (spec.padding > 0) put_extension(ext, 0x0015, Bytes(spec.padding, 0));

    Bytes hello{0x03, 0x03};  // legacy_version
    for (int i = 0; i < 32; ++i) hello.push_back(static_cast<std::uint8_t>(i * 7 + 1));  // random
    hello.push_back(32);  // legacy_session_id
    for (int i = 0; i < 32; ++i) hello.push_back(static_cast<std::uint8_t>(0xA0 + i));
    const std::uint16_t suites[] = {0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f};
    put16(hello, sizeof suites / sizeof suites[0] * 2);
    for (const auto s : suites) put16(hello, s);
    hello.push_back(1);  // compression methods: null
    hello.push_back(0);
    put16(hello, ext.size());
    hello.insert(hello.end(), ext.begin(), ext.end());

    Bytes handshake{0x01, static_cast<std::uint8_t>(hello.size() >> 16),
                    static_cast<std::uint8_t>(hello.size() >> 8),
                    static_cast<std::uint8_t>(hello.size())};
    handshake.insert(handshake.end(), hello.begin(), hello.end());

    Bytes records;
    for (std::size_t at = 0; at < handshake.size(); at += 16384) {
        const std::size_t n = std::min<std::size_t>(16384, handshake.size() - at);
        records.insert(records.end(), {0x16, 0x03, 0x01});
        put16(records, n);
        records.insert(records.end(), handshake.begin() + static_cast<std::ptrdiff_t>(at),
                       handshake.begin() + static_cast<std::ptrdiff_t>(at + n));
    }
    return records;
}

// ---------------------------------------------------------------------------------------------
// PROXY protocol headers (haproxy's proxy-protocol.txt), written and read.

const Bytes proxy_v2_signature{0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                               0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

Bytes proxy_v2(const TransportAddress& src, const TransportAddress& dst) {
    Bytes h = proxy_v2_signature;
    h.push_back(0x21);  // version 2, PROXY
    h.push_back(0x11);  // AF_INET, STREAM
    put16(h, 12);
    h.insert(h.end(), src.bytes.begin(), src.bytes.begin() + 4);
    h.insert(h.end(), dst.bytes.begin(), dst.bytes.begin() + 4);
    put16(h, src.port);
    put16(h, dst.port);
    return h;
}

Bytes proxy_v1(const TransportAddress& src, const TransportAddress& dst) {
    const std::string s = src.to_string(), d = dst.to_string();
    const std::string line = "PROXY TCP4 " + s.substr(0, s.rfind(':')) + " " +
                             d.substr(0, d.rfind(':')) + " " + std::to_string(src.port) + " " +
                             std::to_string(dst.port) + "\r\n";
    return Bytes(line.begin(), line.end());
}

struct ParsedProxyV2 {
    bool ok = false;
    TransportAddress source;
    TransportAddress destination;
    std::size_t length = 0;  // of the whole header
    std::string error;
};

ParsedProxyV2 parse_proxy_v2(const Bytes& b) {
    ParsedProxyV2 p;
    if (b.size() < 16 ||
        !std::equal(proxy_v2_signature.begin(), proxy_v2_signature.end(), b.begin())) {
        p.error = "no PROXY v2 signature";
        return p;
    }
    const std::size_t len = (static_cast<std::size_t>(b[14]) << 8) | b[15];
    p.length = 16 + len;
    if (b[12] != 0x21 || b[13] != 0x11 || len < 12 || b.size() < p.length) {
        p.error = "not a v2 PROXY TCP4 header";
        return p;
    }
    p.source = TransportAddress::v4({b[16], b[17], b[18], b[19]},
                                    static_cast<std::uint16_t>((b[24] << 8) | b[25]));
    p.destination = TransportAddress::v4({b[20], b[21], b[22], b[23]},
                                         static_cast<std::uint16_t>((b[26] << 8) | b[27]));
    p.ok = true;
    return p;
}

std::string hex(const Bytes& b, std::size_t max = 64) {
    static const char* digits = "0123456789abcdef";
    std::string s;
    for (std::size_t i = 0; i < std::min(max, b.size()); ++i) {
        s += digits[b[i] >> 4];
        s += digits[b[i] & 0xF];
    }
    return s + (b.size() > max ? "..." : "");
}

// ---------------------------------------------------------------------------------------------
// A TLS client over memory BIOs on a socket of our own: SNI and ALPN as asked, bound to a local
// address, optional bytes before the handshake (a PROXY header), and the first flight (the
// ClientHello) optionally sent one byte per segment.

struct TlsOptions {
    std::optional<std::string> sni;
    std::vector<std::string> alpn;
    std::string ca_file;                    // the certificate expected (self-signed)
    std::optional<TransportAddress> local;  // source address (port 0)
    Bytes prefix;                           // sent before the ClientHello
    bool bytewise_hello = false;            // ClientHello one byte per segment, 1 ms apart
};

class TlsClient {
public:
    static std::unique_ptr<TlsClient> connect(const TransportAddress& server, const TlsOptions& o,
                                              std::string& error) {
        auto c = std::unique_ptr<TlsClient>(new TlsClient());
        c->fd_ = tcp_connect(server, o.local);
        if (c->fd_ < 0) {
            error = "connect failed: " + std::string(std::strerror(errno));
            return nullptr;
        }
        c->ctx_ = SSL_CTX_new(TLS_client_method());
        SSL_CTX_set_verify(c->ctx_, SSL_VERIFY_PEER, nullptr);
        if (SSL_CTX_load_verify_locations(c->ctx_, o.ca_file.c_str(), nullptr) != 1) {
            error = "cannot load " + o.ca_file;
            return nullptr;
        }
        c->ssl_ = SSL_new(c->ctx_);
        if (o.sni) SSL_set_tlsext_host_name(c->ssl_, o.sni->c_str());
        if (!o.alpn.empty()) {
            Bytes wire;
            for (const auto& p : o.alpn) {
                wire.push_back(static_cast<std::uint8_t>(p.size()));
                wire.insert(wire.end(), p.begin(), p.end());
            }
            SSL_set_alpn_protos(c->ssl_, wire.data(), static_cast<unsigned>(wire.size()));
        }
        c->rbio_ = BIO_new(BIO_s_mem());
        c->wbio_ = BIO_new(BIO_s_mem());
        SSL_set_bio(c->ssl_, c->rbio_, c->wbio_);
        SSL_set_connect_state(c->ssl_);
        if (!o.prefix.empty() && !send_all(c->fd_, o.prefix)) {
            error = "sending the prefix failed";
            return nullptr;
        }
        c->bytewise_ = o.bytewise_hello;
        const auto deadline = Clock::now() + 6s;
        for (;;) {
            const int r = SSL_do_handshake(c->ssl_);
            if (!c->flush()) {
                error = "send failed during the handshake";
                return nullptr;
            }
            if (r == 1) break;
            const int e = SSL_get_error(c->ssl_, r);
            if (e != SSL_ERROR_WANT_READ) {
                error = "handshake failed: " + openssl_errors();
                return nullptr;
            }
            if (!c->pull(deadline)) {
                error = "handshake: connection closed or timed out";
                return nullptr;
            }
        }
        return c;
    }

    ~TlsClient() {
        if (ssl_) SSL_free(ssl_);  // frees both BIOs
        if (ctx_) SSL_CTX_free(ctx_);
        if (fd_ >= 0) ::close(fd_);
    }

    int fd() const { return fd_; }
    TransportAddress local_address() const { return local_address_of(fd_); }

    std::string peer_sha256() const {
        X509* cert = SSL_get1_peer_certificate(ssl_);
        if (!cert) return {};
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int len = 0;
        X509_digest(cert, EVP_sha256(), md, &len);
        X509_free(cert);
        return hex(Bytes(md, md + len), 64);
    }

    std::string alpn_selected() const {
        const unsigned char* p = nullptr;
        unsigned int n = 0;
        SSL_get0_alpn_selected(ssl_, &p, &n);
        return p ? std::string(reinterpret_cast<const char*>(p), n) : std::string();
    }

    bool send(const Bytes& b) {
        if (SSL_write(ssl_, b.data(), static_cast<int>(b.size())) != static_cast<int>(b.size())) {
            return false;
        }
        return flush();
    }

    // Up to `n` bytes of application data; empty on close or timeout.
    Bytes read_some(std::size_t n, Clock::time_point deadline) {
        Bytes out(n);
        for (;;) {
            const int r = SSL_read(ssl_, out.data(), static_cast<int>(n));
            if (r > 0) {
                out.resize(static_cast<std::size_t>(r));
                return out;
            }
            const int e = SSL_get_error(ssl_, r);
            flush();
            if (e != SSL_ERROR_WANT_READ || !pull(deadline)) return {};
        }
    }

    // One STUN message.
    std::optional<Bytes> receive_message(std::chrono::milliseconds timeout = 3s) {
        const auto deadline = Clock::now() + timeout;
        while (inbox_.size() < 20 ||
               inbox_.size() < 20 + (static_cast<std::size_t>(inbox_[2]) << 8 | inbox_[3])) {
            const Bytes more = read_some(4096, deadline);
            if (more.empty()) return std::nullopt;
            inbox_.insert(inbox_.end(), more.begin(), more.end());
        }
        const std::size_t n = 20 + (static_cast<std::size_t>(inbox_[2]) << 8 | inbox_[3]);
        Bytes msg(inbox_.begin(), inbox_.begin() + static_cast<std::ptrdiff_t>(n));
        inbox_.erase(inbox_.begin(), inbox_.begin() + static_cast<std::ptrdiff_t>(n));
        return msg;
    }

    // Everything until the peer closes or `timeout` passes.
    std::string read_until_close(std::chrono::milliseconds timeout) {
        const auto deadline = Clock::now() + timeout;
        std::string all;
        for (;;) {
            const Bytes more = read_some(65536, deadline);
            if (more.empty()) return all;
            all.append(more.begin(), more.end());
        }
    }

private:
    TlsClient() = default;

    static std::string openssl_errors() {
        std::string s;
        while (const unsigned long e = ERR_get_error()) {
            char buf[256];
            ERR_error_string_n(e, buf, sizeof buf);
            s += std::string(buf) + "; ";
        }
        return s;
    }

    bool flush() {
        std::array<std::uint8_t, 16384> buf{};
        while (BIO_ctrl_pending(wbio_) > 0) {
            const int n = BIO_read(wbio_, buf.data(), static_cast<int>(buf.size()));
            if (n <= 0) break;
            const Bytes chunk(buf.begin(), buf.begin() + n);
            if (bytewise_) {
                bytewise_ = false;  // the first flight only
                if (!send_bytewise(fd_, chunk, 1ms)) return false;
            } else if (!send_all(fd_, chunk)) {
                return false;
            }
        }
        return true;
    }

    bool pull(Clock::time_point deadline) {
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
        if (left.count() <= 0) return false;
        pollfd p{fd_, POLLIN, 0};
        if (::poll(&p, 1, static_cast<int>(left.count())) != 1) return false;
        std::array<std::uint8_t, 65536> buf{};
        const ssize_t n = ::recv(fd_, buf.data(), buf.size(), 0);
        if (n <= 0) return false;
        BIO_write(rbio_, buf.data(), static_cast<int>(n));
        return true;
    }

    int fd_ = -1;
    SSL_CTX* ctx_ = nullptr;
    SSL* ssl_ = nullptr;
    BIO* rbio_ = nullptr;
    BIO* wbio_ = nullptr;
    bool bytewise_ = false;
    Bytes inbox_;
};

// The XOR-MAPPED-ADDRESS of a Binding success `reply` to `request`, or an explanation.
std::optional<TransportAddress> mapped_address(const std::optional<Bytes>& reply,
                                               const protocol::TransactionId& id,
                                               std::string& why) {
    if (!reply) {
        why = "no reply";
        return std::nullopt;
    }
    protocol::MessageView view;
    if (protocol::MessageView::parse(*reply, view) != protocol::ParseError::ok) {
        why = "unparseable reply " + hex(*reply);
        return std::nullopt;
    }
    if (view.message_class() != protocol::MessageClass::success_response ||
        view.transaction_id().bytes != id.bytes) {
        why = "not the Binding success for our transaction";
        return std::nullopt;
    }
    auto m = view.xor_mapped_address();
    if (!m) why = "no XOR-MAPPED-ADDRESS";
    return m;
}

// A Binding over an established TLS client; its XOR-MAPPED-ADDRESS.
std::optional<TransportAddress> tls_binding(TlsClient& c, std::string& why) {
    protocol::TransactionId id;
    const Bytes req = binding_request(&id);
    if (!c.send(req)) {
        why = "send failed";
        return std::nullopt;
    }
    return mapped_address(c.receive_message(), id, why);
}

// A Binding over plain TCP from `local`, after `prefix` (a PROXY header); XOR-MAPPED-ADDRESS.
std::optional<TransportAddress> tcp_binding(const TransportAddress& server, std::string& why,
                                            std::optional<TransportAddress> local = {},
                                            const Bytes& prefix = {},
                                            TransportAddress* local_out = nullptr) {
    auto c = StreamClient::connect_tcp(server, 0, local);
    if (!c) {
        why = "connect failed";
        return std::nullopt;
    }
    if (local_out) *local_out = c->local_address();
    protocol::TransactionId id;
    Bytes bytes = prefix;
    const Bytes req = binding_request(&id);
    bytes.insert(bytes.end(), req.begin(), req.end());
    if (!c->send(bytes)) {
        why = "send failed";
        return std::nullopt;
    }
    return mapped_address(c->receive_message(3s), id, why);
}

// ---------------------------------------------------------------------------------------------
// /metrics.

class Metrics {
public:
    Metrics() = default;
    Metrics(std::vector<ctl::Sample> samples, std::string body)
        : samples_(std::move(samples)), body_(std::move(body)) {}
    // The sum over every sample named `name` whose labels include `labels`.
    double operator()(const std::string& name, const Labels& labels = {}) const {
        double sum = 0;
        for (const auto& s : samples_) {
            if (s.name != name) continue;
            bool match = true;
            for (const auto& [k, v] : labels) {
                const auto it = s.labels.find(k);
                match = match && it != s.labels.end() && it->second == v;
            }
            if (match) sum += s.value;
        }
        return sum;
    }
    bool has(const std::string& name) const {
        return std::any_of(samples_.begin(), samples_.end(),
                           [&](const ctl::Sample& s) { return s.name == name; });
    }
    // The page's lines about the edge and PROXY headers, for failure messages.
    std::string edge_lines() const {
        std::istringstream in(body_);
        std::string line, out;
        while (std::getline(in, line)) {
            if (line.rfind("tern_edge", 0) == 0 || line.rfind("tern_proxy", 0) == 0) {
                out += line + "\n";
            }
        }
        return out.empty() ? "(no tern_edge_* or tern_proxy_* samples on /metrics)\n" : out;
    }

private:
    std::vector<ctl::Sample> samples_;
    std::string body_;
};

Metrics scrape(std::uint16_t metrics_port) {
    const auto r = ctl::http_request(ctl::Endpoint{"127.0.0.1", std::to_string(metrics_port)},
                                     "GET", "/metrics");
    EXPECT_EQ(r.status, 200u) << r.error;
    return Metrics(ctl::parse_prometheus(r.body), r.body);
}

template <typename F>
bool eventually(F predicate, std::chrono::milliseconds timeout = 5s) {
    const auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
        if (predicate()) return true;
        std::this_thread::sleep_for(50ms);
    }
    return predicate();
}

const Labels route_turn_tls{{"route", "turn_tls"}};
const Labels route_turn_tcp{{"route", "turn_tcp"}};
const Labels route_fallback{{"route", "fallback"}};
// Connections a shared port closed before routing them, by reason (timeout, too_large,
// malformed, unrecognized).
constexpr const char* edge_refused = "tern_edge_refused_total";

// ---------------------------------------------------------------------------------------------
// Certificates and ternd.

// ternd's certificate names turn.example.test, the website's www.example.test; both self-signed
// and each its own trust anchor, so a client can tell which server it reached.
struct Pki {
    TempDir dir{"tern-it-pki"};
    TestCertificate turn = make_certificate(dir.path(), "turn", turn_name);
    TestCertificate web = make_certificate(dir.path(), "web", web_name);
};

struct TerndOptions {
    std::optional<std::uint16_t> fallback_port;  // edge.fallback; none = no shared port
    std::string fallback_proxy_protocol = "v2";
    bool trust_loopback_proxy = false;  // proxy_protocol.trusted: [127.0.0.1/32]
    std::string extra_edge;             // more edge.* lines, indented
    std::string extra_limits;           // more limits.* entries, ", a: 1"
    std::string log_level = "info";
};

std::string listen_url(const std::string& scheme, std::uint16_t port) {
    return "\"" + scheme + "://127.0.0.1:" + std::to_string(port) + "\"";
}

struct Ternd {
    std::uint16_t shared_port = free_port();  // tls:// (a shared port with edge.fallback)
    std::uint16_t tcp_port = free_port();     // tcp://
    std::uint16_t metrics_port = free_port();
    std::string yaml;
    std::unique_ptr<TerndProcess> process;

    Ternd(const Pki& pki, const TerndOptions& o) {
        yaml =
            "realm: tern.test\n"
            "threads: 2\n"
            "listen: [" +
            listen_url("tls", shared_port) + ", " + listen_url("tcp", tcp_port) +
            "]\n"
            "tls: { certificate: " +
            pki.turn.certificate + ", private_key: " + pki.turn.private_key + " }\n";
        if (o.fallback_port) {
            yaml +=
                "edge:\n"
                "  fallback: \"127.0.0.1:" +
                std::to_string(*o.fallback_port) +
                "\"\n"
                "  turn_names: [" +
                std::string(turn_name) +
                "]\n"
                "  fallback_proxy_protocol: " +
                o.fallback_proxy_protocol +
                "\n"
                "  fallback_connect_timeout: " +
                std::to_string(connect_timeout_s) + "\n" + o.extra_edge;
        }
        if (o.trust_loopback_proxy) yaml += "proxy_protocol: { trusted: [\"127.0.0.1/32\"] }\n";
        yaml += "auth: { secrets: [\"" + std::string(rest_secret) +
                "\"] }\n"
                // rfc5766: turnutils_uclient picks channels from RFC 5766's wider range.
                "relay: { allow_peers: [\"127.0.0.0/8\"], channel_numbers: rfc5766 }\n"
                "limits: { handshake_timeout: " +
                std::to_string(handshake_timeout_s) + ", shutdown_grace: 0" + o.extra_limits +
                " }\n"
                "metrics: { listen: \"127.0.0.1:" +
                std::to_string(metrics_port) +
                "\" }\n"
                "log: { level: " +
                o.log_level + " }\n";
        process = std::make_unique<TerndProcess>(yaml);
    }
    bool ready() const { return process->wait_for_output("is listening on", 10s); }
    TransportAddress shared() const { return loopback4(shared_port); }
    TransportAddress tcp() const { return loopback4(tcp_port); }
    Metrics metrics() const { return scrape(metrics_port); }
    std::string describe() const {
        return "ternd config:\n" + yaml + "ternd output (last 6000 bytes):\n" + tail(6000);
    }
    std::string tail(std::size_t n) const {
        const std::string out = process->output();
        return out.size() > n ? out.substr(out.size() - n) : out;
    }
};

#define REQUIRE_PROGRAMS(...)                                   \
    do {                                                        \
        for (const char* p : {__VA_ARGS__}) {                   \
            if (find_program(p).empty())                        \
                GTEST_SKIP() << p                               \
                             << " is not installed "            \
                                "(make test-deps installs it)"; \
        }                                                       \
    } while (0)

#define ASSERT_TERND_READY(t) \
    ASSERT_TRUE((t).ready()) << "ternd did not come up:\n" << (t).describe()

// curl's exit status, and what it printed (-v: the TLS details on stderr), fetching `path` from
// the website named web_name through 127.0.0.1:`port`, bound to `interface`.
int curl(std::uint16_t port, const std::string& path, const std::string& ca_file,
         const std::string& interface, std::string& out, const std::string& extra = "") {
    const std::string p = std::to_string(port);
    const std::string cmd = "timeout 30 curl -sS -v --max-time 20 --interface " + interface +
                            " --resolve " + web_name + ":" + p + ":127.0.0.1 --cacert " + ca_file +
                            " " + extra + " https://" + web_name + ":" + p + path;
    const int rc = run_command(cmd, out);
    out = "$ " + cmd + "\n" + out;
    return rc;
}

// ---------------------------------------------------------------------------------------------
// 1. The website and TURN on one port: nginx is edge.fallback, ternd sends it PROXY v2.

class SharedPort : public ::testing::Test {
protected:
    void SetUp() override {
        REQUIRE_PROGRAMS("nginx", "curl", "openssl");
        pki_ = std::make_unique<Pki>();
        NginxOptions n;
        n.certificate = pki_->web.certificate;
        n.private_key = pki_->web.private_key;
        n.proxy_protocol = true;
        nginx_ = std::make_unique<NginxProcess>(n);
        ASSERT_TRUE(nginx_->ready()) << nginx_->diagnostics();
        TerndOptions o;
        o.fallback_port = nginx_->port();
        ternd_ = std::make_unique<Ternd>(*pki_, o);
        ASSERT_TERND_READY(*ternd_);
    }
    void TearDown() override {
        if (ternd_) {
            EXPECT_TRUE(ternd_->process->running()) << "ternd died:\n" << ternd_->describe();
        }
    }

    // TLS to the shared port from 127.0.0.9, expecting ternd's certificate.
    std::unique_ptr<TlsClient> turn_tls(std::optional<std::string> sni,
                                        std::vector<std::string> alpn, std::string& error,
                                        bool bytewise = false) const {
        TlsOptions o;
        o.sni = std::move(sni);
        o.alpn = std::move(alpn);
        o.ca_file = pki_->turn.certificate;
        o.local = client_ip;
        o.bytewise_hello = bytewise;
        return TlsClient::connect(ternd_->shared(), o, error);
    }

    std::unique_ptr<Pki> pki_;
    std::unique_ptr<NginxProcess> nginx_;
    std::unique_ptr<Ternd> ternd_;
};

TEST_F(SharedPort, WebsiteThroughSharedPortIsNginxWithClientAddressFromProxyV2) {
    const Metrics before = ternd_->metrics();
    std::string out;
    const int rc = curl(ternd_->shared_port, "/", pki_->web.certificate, "127.0.0.9", out);
    ASSERT_EQ(rc, 0) << out << "\n" << ternd_->describe() << nginx_->diagnostics();
    // The page is nginx's, and so is the certificate (curl verified it against the website's
    // own, which names www.example.test; ternd's names turn.example.test).
    EXPECT_NE(out.find(nginx_->options().index_html), std::string::npos) << out;
    EXPECT_NE(out.find("subject: CN=www.example.test"), std::string::npos) << out;
    EXPECT_EQ(out.find("turn.example.test"), std::string::npos) << out;
    EXPECT_NE(pki_->web.sha256, pki_->turn.sha256);

    // Our own client too: the certificate shown for SNI www.example.test is the website's.
    {
        TlsOptions o;
        o.sni = web_name;
        o.ca_file = pki_->web.certificate;
        o.local = client_ip;
        std::string error;
        const auto c = TlsClient::connect(ternd_->shared(), o, error);
        ASSERT_TRUE(c) << error << "\n" << ternd_->describe();
        EXPECT_EQ(c->peer_sha256(), pki_->web.sha256);
    }

    // A large file arrives whole (the pass-through is not limited to small responses).
    const std::size_t large = nginx_->options().large_file_bytes;
    const int rc2 = curl(ternd_->shared_port, "/large.bin", pki_->web.certificate, "127.0.0.9", out,
                         "-o /dev/null -w 'size=%{size_download}\\n'");
    EXPECT_EQ(rc2, 0) << out;
    EXPECT_NE(out.find("size=" + std::to_string(large) + "\n"), std::string::npos) << out;

    // nginx's log: $remote_addr and $proxy_protocol_addr are the client (127.0.0.9), the TCP
    // peer ($realip_remote_addr) is ternd (127.0.0.1).
    std::string log;
    ASSERT_TRUE(eventually([&] {
        log = nginx_->access_log();
        return count_of(log, "\"GET") >= 2;  // our own client above sent no request
    })) << log;
    EXPECT_NE(log.find("remote=127.0.0.9 proxy=127.0.0.9 peer=127.0.0.1 sni=www.example.test "
                       "\"GET / HTTP/1.1\" 200"),
              std::string::npos)
        << log;
    EXPECT_NE(log.find("remote=127.0.0.9 proxy=127.0.0.9 peer=127.0.0.1 sni=www.example.test "
                       "\"GET /large.bin HTTP/1.1\" 200 " +
                       std::to_string(large)),
              std::string::npos)
        << log;

    // Counted: three connections passed to the fallback, bytes both ways.
    Metrics after;
    EXPECT_TRUE(eventually([&] {
        after = ternd_->metrics();
        return after("tern_edge_connections_total", route_fallback) -
                   before("tern_edge_connections_total", route_fallback) ==
               3;
    })) << after.edge_lines();
    EXPECT_GE(after("tern_edge_fallback_bytes_total", {{"direction", "to_client"}}),
              static_cast<double>(large))
        << after.edge_lines();
    EXPECT_GT(after("tern_edge_fallback_bytes_total", {{"direction", "to_upstream"}}), 0)
        << after.edge_lines();
    EXPECT_TRUE(eventually([&] { return ternd_->metrics()("tern_edge_fallback_active") == 0; }))
        << ternd_->metrics().edge_lines();
}

TEST_F(SharedPort, TurnSniGetsTerndCertificateAndBinding) {
    std::string error;
    const auto c = turn_tls(std::string(turn_name), {}, error);
    ASSERT_TRUE(c) << error << "\n" << ternd_->describe();
    EXPECT_EQ(c->peer_sha256(), pki_->turn.sha256);
    std::string why;
    const auto mapped = tls_binding(*c, why);
    ASSERT_TRUE(mapped) << why << "\n" << ternd_->describe();
    EXPECT_EQ(*mapped, c->local_address());
    EXPECT_GE(ternd_->metrics()("tern_edge_connections_total", route_turn_tls), 1)
        << ternd_->metrics().edge_lines();
    EXPECT_EQ(nginx_->access_log(), "");
}

TEST_F(SharedPort, TurnAlpnWithoutSniGetsBinding) {
    for (const std::string alpn : {"stun.turn", "stun.nat-discovery"}) {
        std::string error;
        const auto c = turn_tls(std::nullopt, {alpn}, error);
        ASSERT_TRUE(c) << alpn << ": " << error << "\n" << ternd_->describe();
        EXPECT_EQ(c->peer_sha256(), pki_->turn.sha256) << alpn;
        std::string why;
        const auto mapped = tls_binding(*c, why);
        ASSERT_TRUE(mapped) << alpn << ": " << why << "\n" << ternd_->describe();
        EXPECT_EQ(*mapped, c->local_address()) << alpn;
    }
    // ALPN stun.turn wins over an SNI that is not a TURN name, and over other protocols offered.
    std::string error;
    const auto c = turn_tls(std::string(web_name), {"h2", "stun.turn"}, error);
    ASSERT_TRUE(c) << error << "\n" << ternd_->describe();
    EXPECT_EQ(c->peer_sha256(), pki_->turn.sha256);
    std::string why;
    EXPECT_TRUE(tls_binding(*c, why)) << why;
    EXPECT_EQ(nginx_->access_log(), "");
}

TEST_F(SharedPort, NoSniNoAlpnIsTurn) {
    std::string error;
    const auto c = turn_tls(std::nullopt, {}, error);
    ASSERT_TRUE(c) << error << "\n" << ternd_->describe();
    EXPECT_EQ(c->peer_sha256(), pki_->turn.sha256);
    std::string why;
    const auto mapped = tls_binding(*c, why);
    ASSERT_TRUE(mapped) << why;
    EXPECT_EQ(*mapped, c->local_address());
}

TEST_F(SharedPort, NoSniWithHttpAlpnGoesToWebsite) {
    TlsOptions o;
    o.alpn = {"h2", "http/1.1"};
    o.ca_file = pki_->web.certificate;
    o.local = client_ip;
    std::string error;
    const auto c = TlsClient::connect(ternd_->shared(), o, error);
    ASSERT_TRUE(c) << error << "\n" << ternd_->describe() << nginx_->diagnostics();
    EXPECT_EQ(c->peer_sha256(), pki_->web.sha256);
    const std::string req = "GET / HTTP/1.1\r\nHost: www.example.test\r\nConnection: close\r\n\r\n";
    ASSERT_TRUE(c->send(Bytes(req.begin(), req.end())));
    const std::string response = c->read_until_close(5s);
    EXPECT_EQ(response.rfind("HTTP/1.1 200", 0), 0u) << response;
    EXPECT_NE(response.find(nginx_->options().index_html), std::string::npos) << response;
}

TEST_F(SharedPort, UnknownAlpnWithTurnSniIsTurn) {
    std::string error;
    const auto c = turn_tls(std::string(turn_name), {"x-unknown/9"}, error);
    ASSERT_TRUE(c) << error << "\n" << ternd_->describe();
    EXPECT_EQ(c->peer_sha256(), pki_->turn.sha256);
    std::string why;
    const auto mapped = tls_binding(*c, why);
    ASSERT_TRUE(mapped) << why << "\n" << ternd_->describe();
    EXPECT_EQ(nginx_->access_log(), "");
}

TEST_F(SharedPort, PlainTcpStunBindingOnSharedPort) {
    const Metrics before = ternd_->metrics();
    std::string why;
    TransportAddress local;
    const auto mapped = tcp_binding(ternd_->shared(), why, client_ip, {}, &local);
    ASSERT_TRUE(mapped) << why << "\n" << ternd_->describe();
    EXPECT_EQ(*mapped, local);
    EXPECT_EQ(ternd_->metrics()("tern_edge_connections_total", route_turn_tcp) -
                  before("tern_edge_connections_total", route_turn_tcp),
              1)
        << ternd_->metrics().edge_lines();
    // The tcp:// listener beside it is unaffected.
    EXPECT_TRUE(tcp_binding(ternd_->tcp(), why, client_ip)) << why;
}

TEST_F(SharedPort, ClientHelloInOneByteSegmentsStillRoutes) {
    // TURN by SNI, the ClientHello one byte per segment: the handshake and a Binding complete.
    std::string error;
    const auto start = Clock::now();
    const auto c = turn_tls(std::string(turn_name), {}, error, /*bytewise=*/true);
    ASSERT_TRUE(c) << error << " after " << seconds_since(start) << "\n" << ternd_->describe();
    EXPECT_EQ(c->peer_sha256(), pki_->turn.sha256);
    std::string why;
    EXPECT_TRUE(tls_binding(*c, why)) << why;

    // The website by SNI, byte by byte: nginx's certificate and page.
    TlsOptions o;
    o.sni = web_name;
    o.ca_file = pki_->web.certificate;
    o.local = client_ip;
    o.bytewise_hello = true;
    const auto w = TlsClient::connect(ternd_->shared(), o, error);
    ASSERT_TRUE(w) << error << "\n" << ternd_->describe() << nginx_->diagnostics();
    EXPECT_EQ(w->peer_sha256(), pki_->web.sha256);
    const std::string req = "GET / HTTP/1.1\r\nHost: www.example.test\r\nConnection: close\r\n\r\n";
    ASSERT_TRUE(w->send(Bytes(req.begin(), req.end())));
    const std::string response = w->read_until_close(5s);
    EXPECT_NE(response.find(nginx_->options().index_html), std::string::npos) << response;
}

// Without edge.fallback_proxy_protocol, nginx (no proxy_protocol on its listener) sees ternd.
TEST(SharedPortNoProxyHeader, WebsiteSeesTerndAsClient) {
    REQUIRE_PROGRAMS("nginx", "curl", "openssl");
    Pki pki;
    NginxOptions n;
    n.certificate = pki.web.certificate;
    n.private_key = pki.web.private_key;
    NginxProcess nginx(n);
    ASSERT_TRUE(nginx.ready()) << nginx.diagnostics();
    TerndOptions o;
    o.fallback_port = nginx.port();
    o.fallback_proxy_protocol = "off";
    Ternd ternd(pki, o);
    ASSERT_TERND_READY(ternd);
    std::string out;
    const int rc = curl(ternd.shared_port, "/", pki.web.certificate, "127.0.0.9", out);
    ASSERT_EQ(rc, 0) << out << "\n" << ternd.describe() << nginx.diagnostics();
    EXPECT_NE(out.find(n.index_html), std::string::npos) << out;
    std::string log;
    ASSERT_TRUE(eventually([&] {
        log = nginx.access_log();
        return count_of(log, "\"GET") >= 1;
    })) << log;
    EXPECT_NE(log.find("remote=127.0.0.1 proxy=- peer=127.0.0.1 sni=www.example.test \"GET / "),
              std::string::npos)
        << log;
    EXPECT_EQ(log.find("127.0.0.9"), std::string::npos) << log;
}

// ---------------------------------------------------------------------------------------------
// 2. Hostile and broken input on a shared port whose fallback is a raw upstream of ours that
// records what reaches it.

class SharedPortHostile : public ::testing::Test {
protected:
    void SetUp() override {
        REQUIRE_PROGRAMS("openssl");
        pki_ = std::make_unique<Pki>();
        upstream_ = std::make_unique<RawUpstream>(/*read_data=*/true);
        TerndOptions o;
        o.fallback_port = upstream_->port();
        ternd_ = std::make_unique<Ternd>(*pki_, o);
        ASSERT_TERND_READY(*ternd_);
    }
    void TearDown() override {
        if (ternd_) {
            EXPECT_TRUE(ternd_->process->running()) << "ternd died:\n" << ternd_->describe();
        }
    }

    // Sends `bytes` to the shared port from 127.0.0.9; the socket, or -1.
    int open_and_send(const Bytes& bytes) const {
        const int fd = tcp_connect(ternd_->shared(), client_ip);
        if (fd >= 0 && !bytes.empty() && !send_all(fd, bytes)) {
            ::close(fd);
            return -1;
        }
        return fd;
    }

    double refused(const Labels& reason = {}) const {
        return ternd_->metrics()(edge_refused, reason);
    }

    std::unique_ptr<Pki> pki_;
    std::unique_ptr<RawUpstream> upstream_;
    std::unique_ptr<Ternd> ternd_;
};

TEST_F(SharedPortHostile, ClientHelloInOneByteSegmentsReachesFallbackIntact) {
    const Bytes hello = client_hello(hello_spec(std::string(web_name), {"http/1.1"}));
    Fd fd(tcp_connect(ternd_->shared(), client_ip));
    ASSERT_TRUE(fd);
    const TransportAddress local = local_address_of(fd.fd);
    ASSERT_TRUE(send_bytewise(fd.fd, hello, 1ms));
    ASSERT_TRUE(eventually([&] { return upstream_->accepted() == 1; }, 3s)) << ternd_->describe();
    const std::size_t header = 28;  // PROXY v2, TCP4, no TLVs (at least)
    ASSERT_TRUE(upstream_->wait_received(0, header + hello.size(), 3s))
        << hex(upstream_->received(0)) << "\n"
        << ternd_->describe();
    const Bytes got = upstream_->received(0);
    const auto proxy = parse_proxy_v2(got);
    ASSERT_TRUE(proxy.ok) << proxy.error << ": " << hex(got);
    EXPECT_EQ(proxy.source, local);
    EXPECT_EQ(proxy.destination, ternd_->shared());
    EXPECT_EQ(Bytes(got.begin() + static_cast<std::ptrdiff_t>(proxy.length), got.end()), hello)
        << "the ClientHello must reach the fallback byte for byte";
    // And the client's later bytes follow, undecrypted.
    const Bytes more{0x17, 0x03, 0x03, 0x00, 0x02, 0xAB, 0xCD};
    ASSERT_TRUE(send_all(fd.fd, more));
    ASSERT_TRUE(upstream_->wait_received(0, proxy.length + hello.size() + more.size(), 3s));
    EXPECT_EQ(upstream_->received(0).size(), proxy.length + hello.size() + more.size());
}

TEST_F(SharedPortHostile, StalledClientHelloClosedAfterHandshakeTimeout) {
    const Bytes hello = client_hello(hello_spec(std::string(web_name)));
    const double refused_before = refused({{"reason", "timeout"}});
    // Three ways to stall: half a ClientHello, the record header only, and nothing at all.
    std::vector<std::pair<std::string, Bytes>> cases = {
        {"half a ClientHello", Bytes(hello.begin(), hello.begin() + 40)},
        {"a record header", Bytes(hello.begin(), hello.begin() + 5)},
        {"nothing", {}}};
    for (const auto& [name, bytes] : cases) {
        const auto start = Clock::now();
        Fd fd(open_and_send(bytes));
        ASSERT_TRUE(fd) << name;
        EXPECT_FALSE(
            wait_fd_closed(fd.fd, std::chrono::milliseconds(handshake_timeout_s * 1000 - 300)))
            << name << ": closed before limits.handshake_timeout";
        EXPECT_TRUE(wait_fd_closed(fd.fd, 3s))
            << name << ": still open " << seconds_since(start) << " after connecting\n"
            << ternd_->describe();
    }
    EXPECT_EQ(upstream_->accepted(), 0u) << "a stalled hello must not reach the fallback";
    Metrics m;
    EXPECT_TRUE(eventually([&] {
        m = ternd_->metrics();
        return m(edge_refused, {{"reason", "timeout"}}) - refused_before == 3;
    })) << m.edge_lines();
}

TEST_F(SharedPortHostile, OversizedClientHelloClosedAndCounted) {
    const double refused_before = refused({{"reason", "too_large"}});
    // 17 KiB of padding: the handshake message spans two records and exceeds 16 KiB.
    const Bytes hello = client_hello(hello_spec(std::string(web_name), {}, 17 * 1024));
    ASSERT_GT(hello.size(), 16u * 1024 + 5);
    const auto start = Clock::now();
    Fd fd(open_and_send(hello));
    ASSERT_TRUE(fd);
    // Closed: the size alone decides, so at once (the time is printed; the contract only says
    // closed, so the bound is limits.handshake_timeout).
    EXPECT_TRUE(wait_fd_closed(fd.fd, std::chrono::seconds(handshake_timeout_s + 1)))
        << "still open " << seconds_since(start) << " after sending " << hello.size() << " bytes\n"
        << ternd_->describe();
    std::cout << "[ info     ] a " << hello.size() << "-byte ClientHello was closed after "
              << seconds_since(start) << "\n";
    EXPECT_EQ(upstream_->accepted(), 0u);
    Metrics m;
    EXPECT_TRUE(eventually([&] {
        m = ternd_->metrics();
        return m(edge_refused, {{"reason", "too_large"}}) - refused_before == 1;
    })) << m.edge_lines();

    // Just under the limit (the whole hello, record headers included, within 16 KiB) routes.
    const Bytes big = client_hello(hello_spec(std::string(web_name), {}, 15 * 1024));
    ASSERT_LT(big.size(), 16u * 1024);
    Fd ok(open_and_send(big));
    ASSERT_TRUE(ok);
    EXPECT_TRUE(eventually([&] { return upstream_->accepted() == 1; }, 3s)) << ternd_->describe();
    EXPECT_TRUE(upstream_->wait_received(0, 28 + big.size(), 3s));
}

TEST_F(SharedPortHostile, MalformedFirstBytesClosedAndCounted) {
    const double refused_before = refused();
    Bytes broken_sni = client_hello(hello_spec(std::string(web_name), {}, 0, true));
    const std::string http = "GET / HTTP/1.1\r\nHost: www.example.test\r\n\r\n";
    Bytes not_tls_handshake = client_hello(hello_spec(std::string(web_name)));
    not_tls_handshake[5] = 0x02;  // a ServerHello where the ClientHello belongs
    std::vector<std::pair<std::string, Bytes>> cases = {
        {"SNI extension length past its end", broken_sni},
        {"plain HTTP", Bytes(http.begin(), http.end())},
        {"a TLS record that is not a ClientHello", not_tls_handshake},
        {"an SSH banner", Bytes{'S', 'S', 'H', '-', '2', '.', '0', '-', 'x', '\r', '\n'}}};
    for (const auto& [name, bytes] : cases) {
        const auto start = Clock::now();
        Fd fd(open_and_send(bytes));
        ASSERT_TRUE(fd) << name;
        EXPECT_TRUE(wait_fd_closed(fd.fd, std::chrono::seconds(handshake_timeout_s + 1)))
            << name << ": still open " << seconds_since(start) << "\n"
            << ternd_->describe();
        std::cout << "[ info     ] " << name << ": closed after " << seconds_since(start) << "\n";
    }
    EXPECT_EQ(upstream_->accepted(), 0u) << "malformed input must not reach the fallback";
    Metrics m;
    EXPECT_TRUE(eventually([&] {
        m = ternd_->metrics();
        // Malformed TLS or unrecognized bytes; none of them a timeout.
        return m(edge_refused) - refused_before == 4 &&
               m(edge_refused, {{"reason", "timeout"}}) == 0;
    })) << m.edge_lines();
}

TEST_F(SharedPortHostile, GarbageSniNamePassedToFallbackUndecrypted) {
    // A well-formed SNI extension whose name is not a host name at all: rule (c), any other SNI
    // goes to the fallback, as it is; the web server decides what to do with it.
    std::string garbage = "\x01\xfe not a host \x7f";
    garbage += std::string(1, '\0') + "..";
    const Bytes hello = client_hello(hello_spec(garbage));
    Fd fd(open_and_send(hello));
    ASSERT_TRUE(fd);
    ASSERT_TRUE(eventually([&] { return upstream_->accepted() == 1; }, 3s)) << ternd_->describe();
    ASSERT_TRUE(upstream_->wait_received(0, 28 + hello.size(), 3s)) << hex(upstream_->received(0));
    const Bytes got = upstream_->received(0);
    const auto proxy = parse_proxy_v2(got);
    ASSERT_TRUE(proxy.ok) << proxy.error;
    EXPECT_EQ(Bytes(got.begin() + static_cast<std::ptrdiff_t>(proxy.length), got.end()), hello);
    // A TURN name spelled in capitals is still the TURN name (host names are case-insensitive).
    std::string error;
    TlsOptions o;
    o.sni = "TURN.Example.TEST";
    o.ca_file = pki_->turn.certificate;
    o.local = client_ip;
    const auto c = TlsClient::connect(ternd_->shared(), o, error);
    ASSERT_TRUE(c) << error << "\n" << ternd_->describe();
    EXPECT_EQ(c->peer_sha256(), pki_->turn.sha256);
    EXPECT_EQ(upstream_->accepted(), 1u);
}

TEST_F(SharedPortHostile, ManyConnectionsOpenedAndDroppedLeaveNoTrace) {
    // A Binding first, so every lazily created descriptor exists before the baseline.
    std::string why;
    ASSERT_TRUE(tcp_binding(ternd_->shared(), why)) << why;
    const pid_t pid = ternd_->process->pid();
    const int fd_baseline = process_fd_count(pid);
    ASSERT_GT(fd_baseline, 0);

    const Bytes hello = client_hello(hello_spec(std::string(web_name)));
    const Bytes turn_hello = client_hello(hello_spec(std::string(turn_name)));
    constexpr int total = 10000;
    constexpr int batch = 50;
    const auto start = Clock::now();
    const auto time_limit = 60s;
    int opened = 0, failed = 0;
    for (int b = 0; opened < total && Clock::now() - start < time_limit; ++b) {
        // Sources 127.0.0.10-127.0.0.59, one batch each: per-source limits stay out of play.
        const TransportAddress from = from_ip({127, 0, 0, static_cast<std::uint8_t>(10 + b % 50)});
        std::vector<int> fds;
        for (int i = 0; i < batch; ++i) {
            const int fd = tcp_connect(ternd_->shared(), from);
            if (fd < 0) {
                ++failed;
                continue;
            }
            fds.push_back(fd);
            switch ((opened + i) % 5) {
                case 0:
                    break;  // nothing
                case 1:
                    send_all(fd, Bytes(hello.begin(), hello.begin() + 20));
                    break;  // partial
                case 2:
                    send_all(fd, hello);
                    break;  // to the fallback
                case 3:
                    send_all(fd, turn_hello);
                    break;  // TURN, handshake dropped
                case 4:
                    send_all(fd, binding_request());
                    break;  // STUN over TCP
            }
        }
        for (std::size_t i = 0; i < fds.size(); ++i) {
            if (i % 2 == 0) {  // half vanish with a RST, half close with a FIN
                const linger l{1, 0};
                ::setsockopt(fds[i], SOL_SOCKET, SO_LINGER, &l, sizeof l);
            }
            ::close(fds[i]);
        }
        opened += batch;
    }
    const auto took = Clock::now() - start;
    const Metrics counted = ternd_->metrics();
    EXPECT_GE(opened, total) << "only " << opened << " connections within " << seconds_since(start);
    EXPECT_LT(failed, opened / 100) << failed << " connects failed";
    std::cout << "[ info     ] " << opened << " connections opened and dropped in "
              << std::chrono::duration<double>(took).count() << " s; ternd counted so far:\n"
              << counted.edge_lines();

    // Still answering, on both routes.
    ASSERT_TRUE(ternd_->process->running()) << ternd_->describe();
    EXPECT_TRUE(tcp_binding(ternd_->shared(), why)) << why << "\n" << ternd_->describe();
    std::string error;
    TlsOptions o;
    o.sni = turn_name;
    o.ca_file = pki_->turn.certificate;
    const auto c = TlsClient::connect(ternd_->shared(), o, error);
    ASSERT_TRUE(c) << error << "\n" << ternd_->describe();
    EXPECT_TRUE(tls_binding(*c, why)) << why;

    // Descriptors back near the baseline (the TLS client above holds one, and its Binding
    // nothing more) once the connections dropped mid-handshake are noticed.
    int fds_now = 0;
    EXPECT_TRUE(eventually(
        [&] {
            fds_now = process_fd_count(pid);
            return fds_now <= fd_baseline + 5;
        },
        std::chrono::seconds(handshake_timeout_s + 8)))
        << "ternd holds " << fds_now << " descriptors, " << fd_baseline << " before";
    EXPECT_TRUE(eventually([&] { return ternd_->metrics()("tern_edge_fallback_active") == 0; }))
        << ternd_->metrics().edge_lines();
}

// ---------------------------------------------------------------------------------------------
// 3. The fallback misbehaving: down, not accepting, reading slowly.

TEST(SharedPortUpstream, UpstreamDownClosesClientQuicklyAndCounts) {
    REQUIRE_PROGRAMS("openssl");
    Pki pki;
    const std::uint16_t closed_port = free_port();  // nothing listens there
    TerndOptions o;
    o.fallback_port = closed_port;
    Ternd ternd(pki, o);
    ASSERT_TERND_READY(ternd);
    const Metrics before = ternd.metrics();
    const Bytes hello = client_hello(hello_spec(std::string(web_name)));
    for (int i = 0; i < 3; ++i) {
        const auto start = Clock::now();
        Fd fd(tcp_connect(ternd.shared(), client_ip));
        ASSERT_TRUE(fd);
        ASSERT_TRUE(send_all(fd.fd, hello));
        // Refused at once on loopback: well within the connect timeout.
        EXPECT_TRUE(wait_fd_closed(fd.fd, std::chrono::seconds(connect_timeout_s)))
            << "still open " << seconds_since(start) << "\n"
            << ternd.describe();
    }
    Metrics m;
    EXPECT_TRUE(eventually([&] {
        m = ternd.metrics();
        return m("tern_edge_fallback_refused_total") - before("tern_edge_fallback_refused_total") >=
               3;
    })) << m.edge_lines();
    // A refused connect leaves nothing active behind.
    EXPECT_TRUE(eventually([&] {
        m = ternd.metrics();
        return m("tern_edge_fallback_active") == 0;
    })) << m.edge_lines();
    // TURN on the same port is unaffected.
    std::string why;
    EXPECT_TRUE(tcp_binding(ternd.shared(), why)) << why;
}

// Reads from blocking `fd` until EOF (true) or `timeout` passes (false), appending to `out`.
bool read_to_eof(int fd, Bytes& out, std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    std::array<std::uint8_t, 4096> buf{};
    for (;;) {
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
        if (left.count() <= 0) return false;
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, static_cast<int>(left.count())) != 1) return false;
        const ssize_t n = ::recv(fd, buf.data(), buf.size(), 0);
        if (n == 0) return true;
        if (n < 0) return false;
        out.insert(out.end(), buf.begin(), buf.begin() + n);
    }
}

TEST(SharedPortUpstream, HalfCloseIsPassedOnInBothDirections) {
    REQUIRE_PROGRAMS("openssl");
    // The fallback: accepts two connections. On the first it waits for the client's FIN, then
    // answers and closes; on the second it sends and half-closes first, then reads to EOF.
    const int listener = ::socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_GE(listener, 0);
    const sockaddr_in at = sockaddr_of(loopback4(0));
    ASSERT_EQ(::bind(listener, reinterpret_cast<const sockaddr*>(&at), sizeof at), 0);
    ASSERT_EQ(::listen(listener, 4), 0);
    const std::uint16_t port = local_address_of(listener).port;
    const Bytes answer = {'a', 'f', 't', 'e', 'r', ' ', 'y', 'o', 'u', 'r', ' ', 'F', 'I', 'N'};
    const Bytes early = {'e', 'a', 'r', 'l', 'y'};
    std::atomic<bool> first_saw_eof{false};
    std::atomic<bool> second_saw_eof{false};
    Bytes second_got;
    std::thread web([&] {
        for (int i = 0; i < 2; ++i) {
            pollfd p{listener, POLLIN, 0};
            if (::poll(&p, 1, 10000) != 1) return;
            const int fd = ::accept(listener, nullptr, nullptr);
            if (fd < 0) return;
            Bytes got;
            if (i == 0) {
                first_saw_eof = read_to_eof(fd, got, 10s);
                send_all(fd, answer);
                ::shutdown(fd, SHUT_WR);
            } else {
                send_all(fd, early);
                ::shutdown(fd, SHUT_WR);
                second_saw_eof = read_to_eof(fd, second_got, 10s);
            }
            ::close(fd);
        }
    });
    // An ASSERT below returns early: the web server's thread must still be joined (its waits
    // are bounded), and its listener closed.
    struct Joiner {
        std::thread& thread;
        int fd;
        ~Joiner() {
            if (thread.joinable()) thread.join();
            ::close(fd);
        }
    } joiner{web, listener};
    Pki pki;
    TerndOptions o;
    o.fallback_port = port;
    Ternd ternd(pki, o);
    ASSERT_TERND_READY(ternd);
    const Bytes hello = client_hello(hello_spec(std::string(web_name)));
    {
        // Client FIN first: the web server sees EOF, and its answer still reaches the client.
        Fd fd(tcp_connect(ternd.shared(), client_ip));
        ASSERT_TRUE(fd);
        ASSERT_TRUE(send_all(fd.fd, hello));
        ASSERT_EQ(::shutdown(fd.fd, SHUT_WR), 0);
        Bytes got;
        EXPECT_TRUE(read_to_eof(fd.fd, got, 10s)) << ternd.describe();
        EXPECT_EQ(got, answer);
    }
    {
        // Web server FIN first: the client reads EOF, and its later bytes still reach the web
        // server.
        Fd fd(tcp_connect(ternd.shared(), client_ip));
        ASSERT_TRUE(fd);
        ASSERT_TRUE(send_all(fd.fd, hello));
        Bytes got;
        EXPECT_TRUE(read_to_eof(fd.fd, got, 10s)) << ternd.describe();
        EXPECT_EQ(got, early);
        const Bytes late(3000, 0x17);
        EXPECT_TRUE(send_all(fd.fd, late));
        ASSERT_EQ(::shutdown(fd.fd, SHUT_WR), 0);
        web.join();
        // The PROXY header (if any) and the hello came first; the late bytes end the stream.
        ASSERT_GE(second_got.size(), hello.size() + late.size());
        EXPECT_TRUE(std::equal(late.begin(), late.end(), second_got.end() - 3000));
    }
    EXPECT_TRUE(first_saw_eof) << "the client's FIN did not reach the web server";
    EXPECT_TRUE(second_saw_eof) << "the client's FIN after the web server's did not arrive";
    Metrics m;
    EXPECT_TRUE(eventually([&] {
        m = ternd.metrics();
        return m("tern_edge_fallback_active") == 0;
    })) << m.edge_lines();
}

TEST(SharedPortUpstream, FallbackConnectionLimitAndIdleTimeout) {
    REQUIRE_PROGRAMS("openssl");
    Pki pki;
    RawUpstream web(/*read_data=*/true);
    TerndOptions o;
    o.fallback_port = web.port();
    o.extra_edge = "  fallback_max_connections_per_ip: 2\n  fallback_idle_timeout: 2\n";
    Ternd ternd(pki, o);
    ASSERT_TERND_READY(ternd);
    const Bytes hello = client_hello(hello_spec(std::string(web_name)));
    const Labels per_ip{{"reason", "max_connections_per_ip"}};
    const double refused_before = ternd.metrics()("tern_edge_fallback_refused_total", per_ip);
    Fd first(tcp_connect(ternd.shared(), client_ip));
    Fd second(tcp_connect(ternd.shared(), client_ip));
    ASSERT_TRUE(first && second);
    ASSERT_TRUE(send_all(first.fd, hello) && send_all(second.fd, hello));
    ASSERT_TRUE(eventually([&] { return web.accepted() == 2; }, 3s)) << ternd.describe();
    const auto quiet_from = Clock::now();
    // A third from the same address is over edge.fallback_max_connections_per_ip: closed.
    Fd third(tcp_connect(ternd.shared(), client_ip));
    ASSERT_TRUE(third);
    ASSERT_TRUE(send_all(third.fd, hello));
    EXPECT_TRUE(wait_fd_closed(third.fd, 2s)) << ternd.describe();
    EXPECT_EQ(web.accepted(), 2u) << "the third must not reach the web server";
    Metrics m;
    EXPECT_TRUE(eventually([&] {
        m = ternd.metrics();
        return m("tern_edge_fallback_refused_total", per_ip) - refused_before == 1;
    })) << m.edge_lines();
    // The two passed connections say nothing more: closed by edge.fallback_idle_timeout (2 s,
    // checked every half second), not before.
    EXPECT_FALSE(wait_fd_closed(first.fd, 1500ms)) << "closed before the idle timeout";
    EXPECT_TRUE(wait_fd_closed(first.fd, 3s))
        << "still open " << seconds_since(quiet_from) << " after the last byte";
    EXPECT_TRUE(wait_fd_closed(second.fd, 1s));
    EXPECT_TRUE(eventually([&] {
        m = ternd.metrics();
        return m("tern_edge_fallback_active") == 0;
    })) << m.edge_lines();
}

TEST(SharedPortUpstream, UpstreamNotAcceptingClosedAtConnectTimeout) {
    REQUIRE_PROGRAMS("openssl");
    Pki pki;
    // A listener with a backlog of one that never accepts: once one connection fills it, the
    // kernel drops further SYNs, so a connect hangs until its own timeout.
    Fd listener(::socket(AF_INET, SOCK_STREAM, 0));
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::bind(listener.fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
    ASSERT_EQ(::listen(listener.fd, 0), 0);
    socklen_t len = sizeof sa;
    ::getsockname(listener.fd, reinterpret_cast<sockaddr*>(&sa), &len);
    const std::uint16_t port = ntohs(sa.sin_port);
    // Fill the accept queue (a backlog of 0 holds one, and Linux lets one more complete).
    std::vector<std::unique_ptr<Fd>> fillers;
    for (int i = 0; i < 4; ++i) {
        const int f = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        ::connect(f, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
        fillers.push_back(std::make_unique<Fd>(f));
    }
    std::this_thread::sleep_for(200ms);

    TerndOptions o;
    o.fallback_port = port;
    Ternd ternd(pki, o);
    ASSERT_TERND_READY(ternd);
    const Metrics before = ternd.metrics();
    const auto start = Clock::now();
    Fd fd(tcp_connect(ternd.shared(), client_ip));
    ASSERT_TRUE(fd);
    ASSERT_TRUE(send_all(fd.fd, client_hello(hello_spec(std::string(web_name)))));
    const bool closed = wait_fd_closed(fd.fd, std::chrono::seconds(connect_timeout_s + 3));
    const auto after = Clock::now() - start;
    EXPECT_TRUE(closed) << "still open " << seconds_since(start) << "\n" << ternd.describe();
    EXPECT_GE(after, std::chrono::milliseconds(connect_timeout_s * 1000 - 300))
        << "closed before edge.fallback_connect_timeout: did the connect succeed?";
    Metrics m;
    EXPECT_TRUE(eventually([&] {
        m = ternd.metrics();
        return m("tern_edge_fallback_refused_total") - before("tern_edge_fallback_refused_total") >=
               1;
    })) << m.edge_lines();
}

TEST(SharedPortUpstream, SlowReadingUpstreamBackPressureBoundsMemory) {
    REQUIRE_PROGRAMS("openssl");
    Pki pki;
    RawUpstream upstream(/*read_data=*/false);
    TerndOptions o;
    o.fallback_port = upstream.port();
    Ternd ternd(pki, o);
    ASSERT_TERND_READY(ternd);
    const pid_t pid = ternd.process->pid();
    const long rss_before = process_rss_kib(pid);
    ASSERT_GT(rss_before, 0);

    Fd fd(tcp_connect(ternd.shared(), client_ip));
    ASSERT_TRUE(fd);
    ASSERT_TRUE(send_all(fd.fd, client_hello(hello_spec(std::string(web_name)))));
    ASSERT_TRUE(eventually([&] { return upstream.accepted() == 1; }, 3s)) << ternd.describe();

    // Push up to 50 MB without blocking forever: stop at the total, after 8 s, or once nothing
    // could be sent for 1.5 s (the client's send blocks: back-pressure reached it).
    ::fcntl(fd.fd, F_SETFL, ::fcntl(fd.fd, F_GETFL) | O_NONBLOCK);
    const std::size_t target = 50u << 20;
    const Bytes chunk(64 * 1024, 0x5A);
    std::size_t sent = 0;
    long rss_peak = rss_before;
    const auto start = Clock::now();
    auto last_progress = start;
    bool blocked = false;
    while (sent < target && Clock::now() - start < 8s) {
        pollfd p{fd.fd, POLLOUT, 0};
        if (::poll(&p, 1, 100) == 1) {
            const ssize_t n =
                ::send(fd.fd, chunk.data(), std::min(chunk.size(), target - sent), MSG_NOSIGNAL);
            if (n > 0) {
                sent += static_cast<std::size_t>(n);
                last_progress = Clock::now();
            } else if (n < 0 && errno != EAGAIN) {
                break;  // ternd closed the connection: reported below
            }
        }
        rss_peak = std::max(rss_peak, process_rss_kib(pid));
        if (Clock::now() - last_progress > 1500ms) {
            blocked = true;
            break;
        }
    }
    std::cout << "[ info     ] sent " << (sent >> 10) << " KiB before blocking; ternd RSS "
              << rss_before << " -> peak " << rss_peak << " KiB\n";
    EXPECT_TRUE(blocked) << "the client sent " << sent << " bytes in " << seconds_since(start)
                         << " without its send blocking";
    EXPECT_LT(sent, target);
#ifndef TERN_SANITIZED  // ASan's shadow memory and quarantine grow RSS on their own
    EXPECT_LT(rss_peak - rss_before, 20 * 1024)
        << "ternd's RSS grew from " << rss_before << " to " << rss_peak << " KiB";
#endif
    const Metrics m = ternd.metrics();
    EXPECT_LT(m("tern_edge_fallback_bytes_total", {{"direction", "to_upstream"}}),
              static_cast<double>(sent))
        << m.edge_lines();
    EXPECT_EQ(m("tern_edge_fallback_active"), 1) << m.edge_lines();
    // ternd itself is not stalled by the stuck pass-through.
    std::string why;
    EXPECT_TRUE(tcp_binding(ternd.shared(), why)) << why << "\n" << ternd.describe();
}

// ---------------------------------------------------------------------------------------------
// 4. PROXY headers in: proxy_protocol.trusted sources must send one, others must not.

class ProxyProtocolIn : public ::testing::Test {
protected:
    void SetUp() override {
        REQUIRE_PROGRAMS("openssl");
        pki_ = std::make_unique<Pki>();
        upstream_ = std::make_unique<RawUpstream>(/*read_data=*/true);
        TerndOptions o;
        o.fallback_port = upstream_->port();
        o.trust_loopback_proxy = true;
        ternd_ = std::make_unique<Ternd>(*pki_, o);
        ASSERT_TERND_READY(*ternd_);
    }
    void TearDown() override {
        if (ternd_) {
            EXPECT_TRUE(ternd_->process->running()) << "ternd died:\n" << ternd_->describe();
        }
    }
    double proxy_refused() const { return ternd_->metrics()("tern_proxy_header_refused_total"); }

    // Connects from `local`, sends `bytes`; true if ternd closed the connection within
    // limits.handshake_timeout and a second (the time it took is printed).
    bool closed_after(const TransportAddress& server, std::optional<TransportAddress> local,
                      const Bytes& bytes, const std::string& name = "") const {
        const auto start = Clock::now();
        Fd fd(tcp_connect(server, local));
        if (!fd) return false;
        send_all(fd.fd, bytes);
        const bool closed = wait_fd_closed(fd.fd, std::chrono::seconds(handshake_timeout_s + 1));
        if (!name.empty()) {
            std::cout << "[ info     ] " << name << ": " << (closed ? "closed" : "open")
                      << " after " << seconds_since(start) << "\n";
        }
        return closed;
    }

    std::unique_ptr<Pki> pki_;
    std::unique_ptr<RawUpstream> upstream_;
    std::unique_ptr<Ternd> ternd_;
};

TEST_F(ProxyProtocolIn, V1AndV2HeadersFromTrustedSourceCarryTheClientAddress) {
    const TransportAddress client = TransportAddress::v4({198, 51, 100, 7}, 40001);
    for (const auto& server : {ternd_->tcp(), ternd_->shared()}) {
        std::string why;
        const auto v2 = tcp_binding(server, why, loopback4(0), proxy_v2(client, server));
        ASSERT_TRUE(v2) << "v2 to " << server.to_string() << ": " << why << "\n"
                        << ternd_->describe();
        EXPECT_EQ(*v2, client);
        const TransportAddress client1 = TransportAddress::v4({203, 0, 113, 5}, 40002);
        const auto v1 = tcp_binding(server, why, loopback4(0), proxy_v1(client1, server));
        ASSERT_TRUE(v1) << "v1 to " << server.to_string() << ": " << why;
        EXPECT_EQ(*v1, client1);
    }
    // TLS on the shared port after the header.
    TlsOptions o;
    o.sni = turn_name;
    o.ca_file = pki_->turn.certificate;
    o.local = loopback4(0);
    o.prefix = proxy_v2(client, ternd_->shared());
    std::string error;
    const auto c = TlsClient::connect(ternd_->shared(), o, error);
    ASSERT_TRUE(c) << error << "\n" << ternd_->describe();
    std::string why;
    const auto mapped = tls_binding(*c, why);
    ASSERT_TRUE(mapped) << why;
    EXPECT_EQ(*mapped, client);
}

// A Binding over a connection kept open: the connection (null when refused) and its answer.
struct OpenBinding {
    std::optional<StreamClient> client;
    std::optional<TransportAddress> mapped;
};

OpenBinding open_binding(const TransportAddress& server, const Bytes& prefix, std::string& why) {
    OpenBinding b{StreamClient::connect_tcp(server, 0, loopback4(0)), std::nullopt};
    if (!b.client) return b;
    protocol::TransactionId id;
    Bytes bytes = prefix;
    const Bytes req = binding_request(&id);
    bytes.insert(bytes.end(), req.begin(), req.end());
    if (b.client->send(bytes)) b.mapped = mapped_address(b.client->receive_message(3s), id, why);
    return b;
}

TEST(ProxyProtocolLimits, PerIpLimitCountsTheCarriedClientNotTheProxy) {
    REQUIRE_PROGRAMS("openssl");
    Pki pki;
    TerndOptions o;
    o.trust_loopback_proxy = true;
    o.extra_limits = ", max_connections_per_ip: 1";
    Ternd ternd(pki, o);
    ASSERT_TERND_READY(ternd);
    const TransportAddress x = TransportAddress::v4({198, 51, 100, 7}, 40001);
    const TransportAddress y = TransportAddress::v4({203, 0, 113, 5}, 40002);
    const TransportAddress x_again = TransportAddress::v4({198, 51, 100, 7}, 40003);
    const Labels per_ip{{"reason", "connection_limit_per_ip"}};
    const double before = ternd.metrics()("tern_rejections_total", per_ip);
    std::string why;
    // Both come from the proxy's one address; each counts under the client it carries.
    const auto first = open_binding(ternd.tcp(), proxy_v2(x, ternd.tcp()), why);
    ASSERT_TRUE(first.mapped) << why << "\n" << ternd.describe();
    EXPECT_EQ(*first.mapped, x);
    const auto second = open_binding(ternd.tcp(), proxy_v1(y, ternd.tcp()), why);
    ASSERT_TRUE(second.mapped) << "a second client behind the same proxy was refused: " << why;
    EXPECT_EQ(*second.mapped, y);
    // A second connection of client x is over limits.max_connections_per_ip (1).
    const auto third = open_binding(ternd.tcp(), proxy_v2(x_again, ternd.tcp()), why);
    EXPECT_FALSE(third.mapped) << "x's second connection was answered";
    Metrics m;
    EXPECT_TRUE(eventually([&] {
        m = ternd.metrics();
        return m("tern_rejections_total", per_ip) - before == 1;
    }));
}

TEST_F(ProxyProtocolIn, CarriedClientAddressIsWhatTheFallbackIsTold) {
    // A proxy in front (trusted) says the client is 198.51.100.7:40001; the PROXY v2 header ternd
    // writes to the fallback names that client, not the proxy.
    const TransportAddress client = TransportAddress::v4({198, 51, 100, 7}, 40001);
    Bytes bytes = proxy_v2(client, ternd_->shared());
    const Bytes hello = client_hello(hello_spec(std::string(web_name)));
    bytes.insert(bytes.end(), hello.begin(), hello.end());
    Fd fd(tcp_connect(ternd_->shared(), loopback4(0)));
    ASSERT_TRUE(fd);
    ASSERT_TRUE(send_all(fd.fd, bytes));
    ASSERT_TRUE(eventually([&] { return upstream_->accepted() == 1; }, 3s)) << ternd_->describe();
    ASSERT_TRUE(upstream_->wait_received(0, 28 + hello.size(), 3s)) << hex(upstream_->received(0));
    const auto proxy = parse_proxy_v2(upstream_->received(0));
    ASSERT_TRUE(proxy.ok) << proxy.error;
    EXPECT_EQ(proxy.source, client);
}

TEST_F(ProxyProtocolIn, HeaderFromUntrustedSourceClosedAndCounted) {
    const double before = proxy_refused();
    for (const auto& server : {ternd_->tcp(), ternd_->shared()}) {
        Bytes bytes = proxy_v2(TransportAddress::v4({198, 51, 100, 7}, 40001), server);
        const Bytes req = binding_request();
        bytes.insert(bytes.end(), req.begin(), req.end());
        EXPECT_TRUE(closed_after(server, client_ip, bytes)) << server.to_string();
        EXPECT_TRUE(closed_after(server, client_ip, proxy_v1(client_ip, server)))
            << server.to_string();
        // Control: the same untrusted source without a header is served, its own address.
        std::string why;
        TransportAddress local;
        const auto mapped = tcp_binding(server, why, client_ip, {}, &local);
        ASSERT_TRUE(mapped) << why << "\n" << ternd_->describe();
        EXPECT_EQ(*mapped, local);
    }
    Metrics m;
    EXPECT_TRUE(eventually([&] {
        m = ternd_->metrics();
        return m("tern_proxy_header_refused_total") - before >= 4;
    })) << m.edge_lines();
}

TEST_F(ProxyProtocolIn, MissingMalformedOrTruncatedHeaderFromTrustedSourceClosedAndCounted) {
    const double before = proxy_refused();
    const TransportAddress server = ternd_->tcp();
    const TransportAddress client = TransportAddress::v4({198, 51, 100, 7}, 40001);
    Bytes bad_version = proxy_v2(client, server);
    bad_version[12] = 0x31;  // version 3
    Bytes oversized = proxy_v2(client, server);
    oversized[14] = 0xFF;  // claims 65535 bytes of addresses and TLVs
    oversized[15] = 0xFF;
    oversized.resize(oversized.size() + 2000, 0);
    std::string long_v1 = "PROXY TCP4 198.51.100.7 127.0.0.1 40001 3478";
    long_v1 += std::string(200, ' ') + "\r\n";  // v1 lines are at most 107 bytes
    const std::string bad_v1 = "PROXY TCP4 not.an.ip 127.0.0.1 40001 3478\r\n";
    const Bytes v2 = proxy_v2(client, server);
    const std::vector<std::pair<std::string, Bytes>> cases = {
        {"no header (a Binding first)", binding_request()},
        {"v2 with version 3", bad_version},
        {"v2 claiming 64 KiB", oversized},
        {"v1 over 107 bytes", Bytes(long_v1.begin(), long_v1.end())},
        {"v1 with a bad address", Bytes(bad_v1.begin(), bad_v1.end())}};
    for (const auto& [name, bytes] : cases) {
        EXPECT_TRUE(closed_after(server, loopback4(0), bytes, name)) << name << "\n"
                                                                     << ternd_->tail(2000);
    }
    // Truncated: half a v2 header, then silence: closed at limits.handshake_timeout.
    {
        const auto start = Clock::now();
        Fd fd(tcp_connect(server, loopback4(0)));
        ASSERT_TRUE(fd);
        ASSERT_TRUE(send_all(fd.fd, Bytes(v2.begin(), v2.begin() + 14)));
        EXPECT_TRUE(wait_fd_closed(fd.fd, std::chrono::seconds(handshake_timeout_s + 2)))
            << "truncated header still open " << seconds_since(start);
    }
    // And with no header at all on the shared port, a TLS ClientHello from a trusted source.
    EXPECT_TRUE(closed_after(ternd_->shared(), loopback4(0),
                             client_hello(hello_spec(std::string(turn_name)))));
    EXPECT_EQ(upstream_->accepted(), 0u);
    Metrics m;
    EXPECT_TRUE(eventually([&] {
        m = ternd_->metrics();
        return m("tern_proxy_header_refused_total") - before >= 7;
    })) << m.edge_lines();
    // A good header still works afterwards.
    std::string why;
    const auto mapped = tcp_binding(server, why, loopback4(0), v2);
    ASSERT_TRUE(mapped) << why;
    EXPECT_EQ(*mapped, client);
}

// ---------------------------------------------------------------------------------------------
// 5. haproxy in front of ternd, sending PROXY v2 to its tcp:// and tls:// listeners.

struct HaproxyChain {
    std::unique_ptr<Pki> pki = std::make_unique<Pki>();
    std::unique_ptr<Ternd> ternd;
    std::unique_ptr<HaproxyProcess> haproxy;
    std::uint16_t tcp_front = 0;
    std::uint16_t tls_front = 0;

    // `fallback_port`: a shared port (0: none).
    explicit HaproxyChain(std::uint16_t fallback_port = 0) {
        TerndOptions o;
        if (fallback_port) o.fallback_port = fallback_port;
        o.trust_loopback_proxy = true;
        ternd = std::make_unique<Ternd>(*pki, o);
        haproxy = std::make_unique<HaproxyProcess>(std::vector<HaproxyFrontend>{
            {0, ternd->tcp_port, true}, {0, ternd->shared_port, true}});
        tcp_front = haproxy->frontends()[0].listen_port;
        tls_front = haproxy->frontends()[1].listen_port;
    }
    std::string describe() const { return ternd->describe() + haproxy->diagnostics(); }
};

TEST(HaproxyChainTest, BindingThroughHaproxyReportsTheClientAddress) {
    REQUIRE_PROGRAMS("haproxy", "openssl");
    RawUpstream upstream(/*read_data=*/true);
    HaproxyChain chain(upstream.port());
    ASSERT_TERND_READY(*chain.ternd);
    ASSERT_TRUE(chain.haproxy->ready()) << chain.describe();

    // TCP: the client at 127.0.0.9 -> haproxy -> ternd's tcp://.
    std::string why;
    TransportAddress local;
    const auto tcp = tcp_binding(loopback4(chain.tcp_front), why, client_ip, {}, &local);
    ASSERT_TRUE(tcp) << why << "\n" << chain.describe();
    EXPECT_EQ(*tcp, local) << "XOR-MAPPED-ADDRESS must be the client behind haproxy";

    // TLS: haproxy -> ternd's tls:// (a shared port): SNI turn.example.test, then no SNI at all.
    for (const bool sni : {true, false}) {
        TlsOptions o;
        if (sni) o.sni = turn_name;
        o.ca_file = chain.pki->turn.certificate;
        o.local = client_ip;
        std::string error;
        const auto c = TlsClient::connect(loopback4(chain.tls_front), o, error);
        ASSERT_TRUE(c) << error << "\n" << chain.describe();
        EXPECT_EQ(c->peer_sha256(), chain.pki->turn.sha256);
        const auto mapped = tls_binding(*c, why);
        ASSERT_TRUE(mapped) << why << "\n" << chain.describe();
        EXPECT_EQ(*mapped, c->local_address());
    }

    // STUN over TCP into haproxy's TLS frontend: the shared port's TURN-over-TCP route.
    const auto plain = tcp_binding(loopback4(chain.tls_front), why, client_ip, {}, &local);
    ASSERT_TRUE(plain) << why;
    EXPECT_EQ(*plain, local);

    // The website through both: the fallback is told the client behind haproxy.
    Fd fd(tcp_connect(loopback4(chain.tls_front), client_ip));
    ASSERT_TRUE(fd);
    const TransportAddress web_client = local_address_of(fd.fd);
    const Bytes hello = client_hello(hello_spec(std::string(web_name)));
    ASSERT_TRUE(send_all(fd.fd, hello));
    ASSERT_TRUE(eventually([&] { return upstream.accepted() == 1; }, 3s)) << chain.describe();
    ASSERT_TRUE(upstream.wait_received(0, 28 + hello.size(), 3s)) << hex(upstream.received(0));
    const auto proxy = parse_proxy_v2(upstream.received(0));
    ASSERT_TRUE(proxy.ok) << proxy.error;
    EXPECT_EQ(proxy.source, web_client);

    // Straight to ternd from 127.0.0.1 (trusted) without haproxy's header: refused.
    Fd direct(tcp_connect(chain.ternd->tcp(), loopback4(0)));
    ASSERT_TRUE(direct);
    ASSERT_TRUE(send_all(direct.fd, binding_request()));
    EXPECT_TRUE(wait_fd_closed(direct.fd, 2s));
}

// coturn's turnutils_uclient through haproxy -> ternd, echoed by turnutils_peer.
struct UclientRun {
    int rc = -1;
    std::string out;
    long sent = -1, received = -1, lost = -1;
    double lost_percent = -1;
};

UclientRun run_uclient(const std::string& options, std::uint16_t port, std::uint16_t peer_port) {
    UclientRun r;
    const std::string cmd =
        "timeout 60 turnutils_uclient -c -z 5 -n 50 -m 2 -l 120 -e 127.0.0.1 -r " +
        std::to_string(peer_port) + " -p " + std::to_string(port) + " -W " + rest_secret +
        " -u bob " + options + " 127.0.0.1";
    r.rc = run_command(cmd, r.out);
    r.out = "$ " + cmd + "\n" + r.out;
    static const std::regex totals(R"(start_mclient: tot_send_msgs=(\d+), tot_recv_msgs=(\d+))");
    static const std::regex lost(R"(Total lost packets (\d+) \(([0-9.]+)%\))");
    for (auto it = std::sregex_iterator(r.out.begin(), r.out.end(), totals);
         it != std::sregex_iterator(); ++it) {
        r.sent = std::stol((*it)[1]);
        r.received = std::stol((*it)[2]);
    }
    std::smatch m;
    if (std::regex_search(r.out, m, lost)) {
        r.lost = std::stol(m[1]);
        r.lost_percent = std::stod(m[2]);
    }
    return r;
}

class HaproxyUclient : public ::testing::Test {
protected:
    void SetUp() override {
        REQUIRE_PROGRAMS("haproxy", "turnutils_uclient", "turnutils_peer", "openssl");
        upstream_ = std::make_unique<RawUpstream>(/*read_data=*/true);
        chain_ = std::make_unique<HaproxyChain>(upstream_->port());
        ASSERT_TERND_READY(*chain_->ternd);
        ASSERT_TRUE(chain_->haproxy->ready()) << chain_->describe();
        peer_ = std::make_unique<BackgroundProcess>(std::vector<std::string>{
            "turnutils_peer", "-L", "127.0.0.1", "-p", std::to_string(peer_port_)});
        UdpClient probe(loopback4(0));
        const Bytes ping{'p', 'i', 'n', 'g'};
        bool echoed = false;
        for (int i = 0; i < 50 && !echoed; ++i) {
            probe.send_to(loopback4(peer_port_), ping);
            const auto echo = probe.receive(100ms);
            echoed = echo && *echo == ping;
        }
        ASSERT_TRUE(echoed) << "turnutils_peer did not echo:\n" << peer_->output();
    }
    void TearDown() override {
        if (chain_ && chain_->ternd) {
            EXPECT_TRUE(chain_->ternd->process->running()) << chain_->describe();
        }
    }
    std::unique_ptr<RawUpstream> upstream_;  // the shared port's fallback, unused
    std::unique_ptr<HaproxyChain> chain_;
    std::uint16_t peer_port_ = free_port();
    std::unique_ptr<BackgroundProcess> peer_;
};

TEST_F(HaproxyUclient, RelaysOverTcpThroughHaproxyWithoutLoss) {
    const auto r = run_uclient("-t", chain_->tcp_front, peer_port_);
    EXPECT_EQ(r.rc, 0) << r.out << "\n" << chain_->describe();
    EXPECT_EQ(r.sent, 100) << r.out;
    EXPECT_EQ(r.received, r.sent) << r.out;
    EXPECT_EQ(r.lost, 0) << r.out;
    // Every allocation was made for the client behind haproxy: ternd saw PROXY headers and
    // refused none of haproxy's. haproxy connects from 127.0.0.1, which is trusted, so its
    // connections can only be refused as missing, malformed, too_large or timeout; an
    // `untrusted` count can only come from another source (under ctest -j, a parallel test
    // whose ternd drew the same free port shares it through SO_REUSEPORT, as CI once saw).
    const auto m = chain_->ternd->metrics();
    for (const char* reason : {"missing", "malformed", "too_large", "timeout"}) {
        EXPECT_EQ(m("tern_proxy_header_refused_total", {{"reason", reason}}), 0) << reason << "\n"
                                                                                 << m.edge_lines();
    }
}

TEST_F(HaproxyUclient, RelaysOverTlsThroughHaproxyWithoutLoss) {
    // -S -t is TLS; uclient sends no SNI and no ALPN: the shared port's rule (e), TURN.
    const auto before = chain_->ternd->metrics();
    const auto r = run_uclient("-t -S", chain_->tls_front, peer_port_);
    const auto after = chain_->ternd->metrics();
    EXPECT_EQ(r.rc, 0) << r.out << "\n" << chain_->describe();
    EXPECT_EQ(r.sent, 100) << r.out;
    // Loss is judged at ternd: every message uclient sent went to the peer, and every echo went
    // back into the client's TLS connection, none dropped. uclient's own count is not the
    // judge over TLS: it retries TLS versions at connect (ternd refuses below 1.2) and its
    // fixed wait then counts an echo that arrives late as lost. A hand-run on the shared port
    // lost 1 of 100 by uclient's count while ternd's counters show all 100 echoes delivered.
    const auto delta = [&](const std::string& name, const Labels& labels) {
        return after(name, labels) - before(name, labels);
    };
    EXPECT_EQ(delta("tern_relayed_packets_total", {{"direction", "to_peer"}}), 100) << r.out;
    EXPECT_EQ(delta("tern_relayed_packets_total", {{"direction", "to_client"}}), 100) << r.out;
    EXPECT_EQ(delta("tern_relay_dropped_packets_total", {}), 0) << r.out;
#ifdef TERN_SANITIZED
    EXPECT_GT(r.received, 0) << r.out;  // ASan slows ternd past uclient's fixed wait
#else
    EXPECT_GE(r.received, r.sent - 5) << r.out;
#endif
}

}  // namespace
}  // namespace tern::test
