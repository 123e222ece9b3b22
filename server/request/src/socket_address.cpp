#include "tern/server/request/socket_address.hpp"

#include <cstring>

namespace tern::server {

TransportAddress from_sockaddr(const sockaddr* sa) noexcept {
    if (sa->sa_family == AF_INET) {
        const auto* in = reinterpret_cast<const sockaddr_in*>(sa);
        std::array<std::uint8_t, 4> b{};
        std::memcpy(b.data(), &in->sin_addr, 4);
        return TransportAddress::v4(b, ntohs(in->sin_port));
    }
    if (sa->sa_family == AF_INET6) {
        const auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
        std::array<std::uint8_t, 16> b{};
        std::memcpy(b.data(), &in6->sin6_addr, 16);
        return TransportAddress::v6(b, ntohs(in6->sin6_port)).unmapped();
    }
    return {};
}

socklen_t to_sockaddr(const TransportAddress& a, sockaddr_storage& out) noexcept {
    std::memset(&out, 0, sizeof out);
    if (a.family == protocol::AddressFamily::ipv4) {
        auto* in = reinterpret_cast<sockaddr_in*>(&out);
        in->sin_family = AF_INET;
        in->sin_port = htons(a.port);
        std::memcpy(&in->sin_addr, a.bytes.data(), 4);
        return sizeof(sockaddr_in);
    }
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&out);
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(a.port);
    std::memcpy(&in6->sin6_addr, a.bytes.data(), 16);
    return sizeof(sockaddr_in6);
}

TransportAddress from_endpoint(const boost::asio::ip::udp::endpoint& e) noexcept {
    return from_sockaddr(e.data());
}
TransportAddress from_endpoint(const boost::asio::ip::tcp::endpoint& e) noexcept {
    return from_sockaddr(e.data());
}

boost::asio::ip::udp::endpoint to_udp_endpoint(const TransportAddress& a) noexcept {
    boost::asio::ip::udp::endpoint e;
    sockaddr_storage ss{};
    const socklen_t len = to_sockaddr(a, ss);
    std::memcpy(e.data(), &ss, len);
    return e;
}

boost::asio::ip::tcp::endpoint to_tcp_endpoint(const TransportAddress& a) noexcept {
    boost::asio::ip::tcp::endpoint e;
    sockaddr_storage ss{};
    const socklen_t len = to_sockaddr(a, ss);
    std::memcpy(e.data(), &ss, len);
    return e;
}

}  // namespace tern::server
