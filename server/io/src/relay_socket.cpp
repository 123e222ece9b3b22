#include "tern/server/io/relay_socket.hpp"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "tern/server/request/socket_address.hpp"

namespace tern::server {

namespace {
std::error_code last_error() {
    return {errno, std::system_category()};
}
}  // namespace

std::error_code RelaySocket::open(const protocol::TransportAddress& address, bool dont_fragment) {
    close();
    const bool v6 = address.family == protocol::AddressFamily::ipv6;
    const int fd = ::socket(v6 ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return last_error();
    fd_ = fd;
    const int one = 1;
    if (v6 && ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) != 0) {
        const auto ec = last_error();
        close();
        return ec;
    }
    if (dont_fragment) {
        // IPv4: DF set, and the kernel does not fragment for us. IPv6 routers never fragment;
        // IPV6_DONTFRAG stops the sending host from doing it either.
        const int probe = IP_PMTUDISC_PROBE;
        const int rc = v6 ? ::setsockopt(fd, IPPROTO_IPV6, IPV6_DONTFRAG, &one, sizeof one)
                          : ::setsockopt(fd, IPPROTO_IP, IP_MTU_DISCOVER, &probe, sizeof probe);
        if (rc != 0) {
            const auto ec = last_error();
            close();
            return ec;
        }
    }
    sockaddr_storage at{};
    const socklen_t len = to_sockaddr(address, at);
    if (::bind(fd, reinterpret_cast<const sockaddr*>(&at), len) != 0) {
        const auto ec = last_error();
        close();
        return ec;
    }
    return {};
}

protocol::TransportAddress RelaySocket::local_address() const {
    sockaddr_storage at{};
    socklen_t len = sizeof at;
    if (fd_ < 0 || ::getsockname(fd_, reinterpret_cast<sockaddr*>(&at), &len) != 0) return {};
    return from_sockaddr(reinterpret_cast<const sockaddr*>(&at));
}

void RelaySocket::close() noexcept {
    if (fd_ >= 0) ::close(fd_);  // also leaves every epoll set it was in
    fd_ = -1;
}

bool RelaySocket::send_to(const protocol::TransportAddress& peer,
                          std::span<const std::uint8_t> payload) const noexcept {
    sockaddr_storage to{};
    const socklen_t len = to_sockaddr(peer, to);
    return ::sendto(fd_, payload.data(), payload.size(), MSG_DONTWAIT,
                    reinterpret_cast<const sockaddr*>(&to), len) >= 0;
}

}  // namespace tern::server
