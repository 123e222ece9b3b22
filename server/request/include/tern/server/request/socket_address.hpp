// Conversions between protocol::TransportAddress and the kernel's and Asio's address types,
// kept in one place so the pure layers never see a sockaddr.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/udp.hpp>

#include "tern/protocol/transport_address.hpp"

namespace tern::server {

using protocol::TransportAddress;

// IPv4-mapped IPv6 sources come back as plain IPv4, so XOR-MAPPED-ADDRESS shows what the
// client would recognise as its own address.
TransportAddress from_sockaddr(const sockaddr* sa) noexcept;
socklen_t to_sockaddr(const TransportAddress& a, sockaddr_storage& out) noexcept;

TransportAddress from_endpoint(const boost::asio::ip::udp::endpoint& e) noexcept;
TransportAddress from_endpoint(const boost::asio::ip::tcp::endpoint& e) noexcept;
boost::asio::ip::udp::endpoint to_udp_endpoint(const TransportAddress& a) noexcept;
boost::asio::ip::tcp::endpoint to_tcp_endpoint(const TransportAddress& a) noexcept;

}  // namespace tern::server
