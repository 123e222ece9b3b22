// TCP and TLS listening sockets of one worker (SO_REUSEPORT, so the kernel spreads connections
// over workers) and their connections: framing, bounded buffers, TLS handshake deadline.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <memory>
#include <span>
#include <system_error>

#include "tern/config/config.hpp"
#include "tern/server/connection_quota.hpp"
#include "tern/server/request_dispatcher.hpp"

namespace tern::server {

// A TCP/TLS client connection as the relay sees it: somewhere to queue bytes for the client.
class ClientConnection {
public:
    // Queues `bytes` behind earlier output; false (dropped) when the client does not read fast
    // enough for the output bound. No allocation once the buffers have grown.
    virtual bool send(std::span<const std::uint8_t> bytes) noexcept = 0;

protected:
    ~ClientConnection() = default;
};

// The worker's table of live stream connections, so relayed data can find its client.
class ConnectionRegistry {
public:
    virtual allocation::ClientId attach(ClientConnection& connection) = 0;
    // The connection is gone: forget it and end the allocation it controlled (RFC 8656 §3.1).
    virtual void detach(allocation::ClientId id, const PacketContext& context) noexcept = 0;

protected:
    ~ConnectionRegistry() = default;
};

struct StreamLimits {
    std::size_t max_frame_size = std::size_t{16} * 1024;  // bigger frames close the connection
    std::size_t max_pending_output =
        std::size_t{64} * 1024;  // a client that does not read is dropped
    // TLS handshake, and then the first complete request or ChannelData, must each arrive
    // within this: a client that connects and stalls (slowloris) cannot hold a slot.
    std::chrono::seconds tls_handshake_timeout{10};
    std::chrono::seconds idle_timeout{600};  // nothing received for this long: closed
};

class StreamListener {
public:
    // `registry` may be null (no relay): connections are then not registered.
    // `registry` and `quota` may be null; `quota` must outlive every connection.
    StreamListener(boost::asio::io_context& io, RequestDispatcher& dispatcher,
                   config::Transport transport, StreamLimits limits,
                   ConnectionRegistry* registry = nullptr, ConnectionQuota* quota = nullptr);

    std::error_code open(const protocol::TransportAddress& address);
    protocol::TransportAddress local_address() const;
    void set_tls_context(std::shared_ptr<boost::asio::ssl::context> tls) { tls_ = std::move(tls); }
    void set_limits(const StreamLimits& limits) { limits_ = limits; }  // new connections only
    void start();
    void close();

private:
    void accept();

    boost::asio::io_context& io_;
    boost::asio::ip::tcp::acceptor acceptor_;
    boost::asio::steady_timer retry_timer_;
    RequestDispatcher& dispatcher_;
    config::Transport transport_;
    StreamLimits limits_;
    ConnectionRegistry* registry_;
    ConnectionQuota* quota_;
    std::shared_ptr<boost::asio::ssl::context> tls_;
};

}  // namespace tern::server
