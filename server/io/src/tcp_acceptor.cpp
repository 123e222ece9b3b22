#include "tern/server/io/tcp_acceptor.hpp"

#include <sys/socket.h>

#include <boost/asio/ip/v6_only.hpp>
#include <cerrno>

#include "tern/server/request/socket_address.hpp"

namespace tern::server {

std::error_code open_acceptor(boost::asio::ip::tcp::acceptor& acceptor,
                              const protocol::TransportAddress& address, bool reuse_port) {
    using boost::asio::ip::tcp;
    boost::system::error_code ec;
    const tcp::endpoint endpoint = to_tcp_endpoint(address);
    acceptor.open(endpoint.protocol(), ec);
    if (ec) return ec;
    if (endpoint.address().is_v6()) acceptor.set_option(boost::asio::ip::v6_only(true), ec);
    acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
    const int one = 1;
    if (reuse_port &&
        ::setsockopt(acceptor.native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
        return {errno, std::system_category()};
    }
    acceptor.bind(endpoint, ec);
    if (ec) return ec;
    acceptor.listen(boost::asio::socket_base::max_listen_connections, ec);
    return ec;
}

}  // namespace tern::server
