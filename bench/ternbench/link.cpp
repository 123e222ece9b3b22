#include "link.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <optional>
#include <stdexcept>

#include "forwarder.hpp"

namespace ternbench {

sockaddr_in to_sockaddr_v4(const tern::protocol::TransportAddress& address) {
    sockaddr_in s{};
    s.sin_family = AF_INET;
    s.sin_port = htons(address.port);
    std::memcpy(&s.sin_addr, address.bytes.data(), 4);
    return s;
}

sockaddr_in client_source(std::size_t i) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    // 250 hosts per /24 keeps away from .0 and .255; 127.10/16 holds 65,000 clients.
    const auto third = static_cast<std::uint32_t>(i / 250);
    const auto fourth = static_cast<std::uint32_t>(i % 250 + 1);
    a.sin_addr.s_addr = htonl((127u << 24) | (10u << 16) | (third << 8) | fourth);
    return a;
}

SSL_CTX* make_client_tls() {
    SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == nullptr) throw std::runtime_error("SSL_CTX_new failed");
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
    return ctx;
}

namespace {
[[noreturn]] void fail(const std::string& what) {
    throw std::runtime_error(what + ": " + std::strerror(errno));
}

void set_nonblocking(int fd) {
    const int flags = ::fcntl(fd, F_GETFL, 0);
    if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) fail("fcntl");
}
}  // namespace

Link::Link(Transport transport, const sockaddr_in& server, const sockaddr_in& source, SSL_CTX* tls,
           const std::string& sni)
    : transport_(transport) {
    fd_ = ::socket(AF_INET, transport == Transport::udp ? SOCK_DGRAM : SOCK_STREAM, 0);
    if (fd_ < 0) fail("socket");
    const int one = 1;
    if (transport != Transport::udp) {
        ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        // Many links share one source address; the kernel picks distinct ports.
        ::setsockopt(fd_, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    }
    const int buffer = 1 << 20;
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &buffer, sizeof buffer);
    if (::bind(fd_, reinterpret_cast<const sockaddr*>(&source), sizeof source) != 0) fail("bind");
    if (::connect(fd_, reinterpret_cast<const sockaddr*>(&server), sizeof server) != 0) {
        fail("connect");
    }
    if (transport == Transport::tls) {
        ssl_ = SSL_new(tls);
        SSL_set_fd(ssl_, fd_);
        if (!sni.empty() && SSL_set_tlsext_host_name(ssl_, sni.c_str()) != 1) {
            ERR_clear_error();
            throw std::runtime_error("cannot send SNI " + sni);
        }
        if (SSL_connect(ssl_) != 1) {
            ERR_clear_error();
            throw std::runtime_error("TLS handshake failed");
        }
    }
    set_nonblocking(fd_);
    if (transport == Transport::udp) {
        datagram_ = std::make_unique<std::uint8_t[]>(max_datagram);
    } else {
        framer_ = std::make_unique<tern::protocol::StreamFramer>();
    }
}

Link::~Link() {
    if (ssl_ != nullptr) SSL_free(ssl_);
    if (fd_ >= 0) ::close(fd_);
}

bool Link::send(std::span<const std::uint8_t> bytes) noexcept {
    if (transport_ == Transport::udp) {
        return ::send(fd_, bytes.data(), bytes.size(), MSG_DONTWAIT) >= 0 || errno != ECONNRESET;
    }
    std::size_t done = 0;
    while (done < bytes.size()) {
        ssize_t n = 0;
        if (ssl_ != nullptr) {
            const int r =
                SSL_write(ssl_, bytes.data() + done, static_cast<int>(bytes.size() - done));
            if (r <= 0) {
                const int e = SSL_get_error(ssl_, r);
                if (e != SSL_ERROR_WANT_WRITE && e != SSL_ERROR_WANT_READ) return false;
                pollfd p{fd_, POLLOUT, 0};
                ::poll(&p, 1, 100);
                continue;
            }
            n = r;
        } else {
            n = ::send(fd_, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
            if (n < 0) {
                if (errno != EAGAIN && errno != EINTR) return false;
                pollfd p{fd_, POLLOUT, 0};
                ::poll(&p, 1, 100);
                continue;
            }
        }
        done += static_cast<std::size_t>(n);
    }
    return true;
}

Link::ReadResult Link::read_stream() {
    for (;;) {
        const auto area = framer_->write_area();
        if (area.empty()) return ReadResult::buffer_full;
        if (ssl_ != nullptr) {
            const int r = SSL_read(ssl_, area.data(), static_cast<int>(area.size()));
            if (r <= 0) {
                const int e = SSL_get_error(ssl_, r);
                const bool later = e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE;
                return later ? ReadResult::drained : ReadResult::closed;
            }
            framer_->commit(static_cast<std::size_t>(r));
        } else {
            const ssize_t n = ::recv(fd_, area.data(), area.size(), MSG_DONTWAIT);
            if (n == 0) return ReadResult::closed;
            if (n < 0) {
                return errno == EAGAIN || errno == EINTR ? ReadResult::drained : ReadResult::closed;
            }
            framer_->commit(static_cast<std::size_t>(n));
        }
    }
}

tern::protocol::TransportAddress forwarder_exchange(
    Link& link, std::uint8_t type, const tern::protocol::TransportAddress& address) {
    std::array<std::uint8_t, fwd_message_size> m{};
    m[0] = type;
    std::memcpy(m.data() + 4, address.bytes.data(), 4);
    const std::uint16_t port = htons(address.port);
    std::memcpy(m.data() + 8, &port, 2);
    for (int attempt = 0; attempt < 20; ++attempt) {
        link.send(m);
        pollfd p{link.fd(), POLLIN, 0};
        if (::poll(&p, 1, 100) <= 0) continue;
        std::optional<tern::protocol::TransportAddress> answer;
        link.receive([&](std::span<const std::uint8_t> frame) {
            if (frame.size() != fwd_message_size || frame[0] != type) return;
            tern::protocol::TransportAddress a{};
            a.family = tern::protocol::AddressFamily::ipv4;
            std::memcpy(a.bytes.data(), frame.data() + 4, 4);
            std::uint16_t p16 = 0;
            std::memcpy(&p16, frame.data() + 8, 2);
            a.port = ntohs(p16);
            answer = a;
        });
        if (answer) return *answer;
    }
    throw std::runtime_error("the forwarder does not answer its set-up messages");
}

}  // namespace ternbench
