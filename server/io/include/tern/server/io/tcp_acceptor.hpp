// Opening a listening TCP socket the way every tern listener does: IPv6 sockets v6-only, the
// address reusable at once after a restart, optionally shared by the workers (SO_REUSEPORT).
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <system_error>

#include "tern/protocol/transport_address.hpp"

namespace tern::server {

// Opens, binds and listens `acceptor` on `address`.
std::error_code open_acceptor(boost::asio::ip::tcp::acceptor& acceptor,
                              const protocol::TransportAddress& address, bool reuse_port);

}  // namespace tern::server
