#include "tern/server/relay_socket.hpp"

#include <netinet/in.h>

#include <boost/asio/ip/v6_only.hpp>
#include <cerrno>

#include "tern/server/socket_address.hpp"

namespace tern::server {

namespace asio = boost::asio;
using asio::ip::udp;

RelayReceiveBuffers::RelayReceiveBuffers() : storage(batch_size * slot_size) {
    for (std::size_t i = 0; i < batch_size; ++i)
        iov[i] = {storage.data() + i * slot_size, slot_size};
}

RelaySocket::RelaySocket(asio::io_context& io, RelaySink& sink, RelayReceiveBuffers& buffers)
    : socket_(io.get_executor()), sink_(sink), buffers_(buffers) {}

protocol::TransportAddress RelaySocket::local_address() const {
    boost::system::error_code ec;
    return from_endpoint(socket_.local_endpoint(ec));
}

std::error_code RelaySocket::open(const protocol::TransportAddress& address, bool dont_fragment) {
    boost::system::error_code ec;
    const udp::endpoint endpoint = to_udp_endpoint(address);
    socket_.open(endpoint.protocol(), ec);
    if (ec) return ec;
    if (endpoint.address().is_v6()) socket_.set_option(asio::ip::v6_only(true), ec);
    if (dont_fragment && address.family == protocol::AddressFamily::ipv4) {
        const int probe = IP_PMTUDISC_PROBE;  // DF set, and the kernel does not fragment for us
        if (::setsockopt(socket_.native_handle(), IPPROTO_IP, IP_MTU_DISCOVER, &probe,
                         sizeof probe) != 0) {
            return {errno, std::system_category()};
        }
    } else if (dont_fragment) {
        // IPv6 routers never fragment; this stops the sending host from doing it either.
        const int one = 1;
        if (::setsockopt(socket_.native_handle(), IPPROTO_IPV6, IPV6_DONTFRAG, &one, sizeof one) !=
            0) {
            return {errno, std::system_category()};
        }
    }
    socket_.bind(endpoint, ec);
    if (ec) return ec;
    socket_.non_blocking(true, ec);
    if (ec) return ec;
    return {};
}

void RelaySocket::start() {
    wait_readable();
}

void RelaySocket::close() {
    boost::system::error_code ec;
    socket_.close(ec);
}

bool RelaySocket::send_to(const protocol::TransportAddress& peer,
                          std::span<const std::uint8_t> payload) noexcept {
    sockaddr_storage to{};
    const socklen_t len = to_sockaddr(peer, to);
    return ::sendto(socket_.native_handle(), payload.data(), payload.size(), MSG_DONTWAIT,
                    reinterpret_cast<const sockaddr*>(&to), len) >= 0;
}

void RelaySocket::wait_readable() {
    socket_.async_wait(udp::socket::wait_read, [this](const boost::system::error_code& ec) {
        if (ec) return;  // closed
        drain();
        wait_readable();
    });
}

void RelaySocket::drain() {
    auto& b = buffers_;
    for (std::size_t i = 0; i < RelayReceiveBuffers::batch_size; ++i) {
        auto& h = b.headers[i].msg_hdr;
        h = {};
        h.msg_name = &b.sources[i];
        h.msg_namelen = sizeof(sockaddr_storage);
        h.msg_iov = &b.iov[i];
        h.msg_iovlen = 1;
    }
    // One batch per wake-up: a flooded relay port cannot starve the worker's other sockets.
    const int n = ::recvmmsg(socket_.native_handle(), b.headers.data(),
                             RelayReceiveBuffers::batch_size, MSG_DONTWAIT, nullptr);
    for (int i = 0; i < n && socket_.is_open(); ++i) {
        const auto peer = from_sockaddr(reinterpret_cast<const sockaddr*>(&b.sources[i]));
        sink_.on_peer_datagram(
            *this, peer,
            {b.storage.data() + static_cast<std::size_t>(i) * RelayReceiveBuffers::slot_size,
             b.headers[i].msg_len});
    }
}

}  // namespace tern::server
