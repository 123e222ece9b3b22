// TCP and TLS listening sockets of one worker (SO_REUSEPORT, so the kernel spreads connections
// over workers) and their connections: framing, bounded buffers, TLS handshake deadline.
#pragma once

#include <array>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <system_error>
#include <vector>

#include "tern/allocation/tally.hpp"
#include "tern/config/config.hpp"
#include "tern/server/request/connection_quota.hpp"
#include "tern/server/request/request_dispatcher.hpp"

namespace tern::server {

// A TCP/TLS client connection as the relay sees it: somewhere to queue bytes for the client.
class ClientConnection {
public:
    // Queues relayed `bytes` behind earlier output; false (dropped, as a congested UDP path
    // would drop it) while the queue is over the output bound. No allocation once the buffers
    // have grown, and no log line: this is the packet path.
    virtual bool send(std::span<const std::uint8_t> bytes) noexcept = 0;

protected:
    ~ClientConnection() = default;
};

// The worker's table of live stream connections, so relayed data can find its client.
class ConnectionRegistry {
public:
    virtual allocation::ClientRoute attach(ClientConnection& connection) = 0;
    // The connection is gone: forget it and end the allocation it controlled (RFC 8656 §3.1).
    virtual void detach(allocation::ClientRoute id, const PacketContext& context) noexcept = 0;

protected:
    ~ConnectionRegistry() = default;
};

// Per-worker tallies of the TCP/TLS listeners. The worker owns them and they outlive its
// connections; the metrics endpoint reads them from another thread.
struct StreamCounters {
    std::array<allocation::Tally, 2> opened;  // [0] TCP, [1] TLS; active = opened - closed
    std::array<allocation::Tally, 2> closed;
    allocation::Tally tls_handshakes_failed;  // errors and handshake_timeout alike
    allocation::Tally rejected_total;         // over limits.max_connections
    allocation::Tally rejected_per_ip;        // over limits.max_connections_per_ip

    // Sorting new connections by their first bytes (ConnectionSorter): the shared port and
    // PROXY headers received. Indexed by the enums below.
    std::array<allocation::Tally, 3> sorted;         // SortedRoute
    std::array<allocation::Tally, 4> sort_refused;   // SortRefusal
    std::array<allocation::Tally, 5> proxy_refused;  // ProxyRefusal
    allocation::Tally fallback_opened;               // active = opened - closed
    allocation::Tally fallback_closed;
    std::array<allocation::Tally, 2> fallback_bytes;   // [0] to the fallback, [1] to the client
    std::array<allocation::Tally, 3> fallback_failed;  // FallbackFailure
};

enum class SortedRoute : std::uint8_t { turn_tls, turn_tcp, fallback };
// Closed on a shared port before any route: a ClientHello that does not parse, one over the
// cap, first bytes that did not arrive within limits.handshake_timeout, neither TLS nor STUN.
enum class SortRefusal : std::uint8_t { malformed, too_large, timeout, unrecognized };
// Closed for its PROXY header: one from a source not in proxy_protocol.trusted, none from a
// trusted source, one that does not parse or is over the cap, one not complete in time.
enum class ProxyRefusal : std::uint8_t { untrusted, missing, malformed, too_large, timeout };
// The fallback could not take a connection: not reachable in time, or over
// edge.fallback_max_connections(_per_ip).
enum class FallbackFailure : std::uint8_t { connect, max_connections, max_connections_per_ip };

// counters.sorted[route] and the like, spelled at(counters.sorted, route).
template <class Index, std::size_t N>
allocation::Tally& at(std::array<allocation::Tally, N>& tallies, Index index) noexcept {
    return tallies[static_cast<std::size_t>(index)];
}

// Where a shared port hands connections that are not TURN (edge.*).
struct FallbackRoute {
    protocol::TransportAddress upstream;
    bool proxy_v2 = false;  // a PROXY v2 header with the client's address goes first
    std::chrono::seconds connect_timeout{5};
    std::chrono::seconds idle_timeout{300};
};

// What the first bytes of a new TCP/TLS connection decide (edge.*, proxy_protocol.*). Swapped
// whole on reload; connections keep the one they started with.
struct ConnectionSorting {
    std::vector<protocol::Cidr> trusted_proxies;  // these must send a PROXY header, others not
    std::optional<FallbackRoute> fallback;        // set: every tls:// listener is a shared port
    std::vector<std::string> turn_names;          // SNI names that are TURN on a shared port
};

inline bool is_trusted_proxy(const ConnectionSorting& sorting,
                             const protocol::TransportAddress& source) noexcept {
    for (const auto& cidr : sorting.trusted_proxies) {
        if (cidr.contains(source)) return true;
    }
    return false;
}

struct StreamLimits {
    std::size_t max_frame_size = std::size_t{16} * 1024;  // bigger frames close the connection
    // Output queued towards a client that reads slowly. Over it, the client's input is not read
    // (back-pressure) and relayed data for it is dropped; at twice it, the client is dropped.
    std::size_t max_pending_output = std::size_t{256} * 1024;
    // TLS handshake, and then the first complete request or ChannelData, must each arrive
    // within this: a client that connects and stalls (slowloris) cannot hold a slot.
    std::chrono::seconds handshake_timeout{10};
    // No TURN request authenticated this long after the connection opened: closed.
    std::chrono::seconds unauthenticated_timeout{30};
    std::chrono::seconds idle_timeout{600};  // once authenticated, nothing received this long
};

class StreamListener {
public:
    // `registry` may be null (no relay): connections are then not registered.
    // `registry`, `quota` and `counters` may be null; `quota` and `counters` must outlive every
    // connection.
    StreamListener(boost::asio::io_context& io, RequestDispatcher& dispatcher,
                   protocol::Transport transport, StreamLimits limits,
                   ConnectionRegistry* registry = nullptr, ConnectionQuota* quota = nullptr,
                   StreamCounters* counters = nullptr);

    std::error_code open(const protocol::TransportAddress& address);
    protocol::TransportAddress local_address() const;
    void set_tls_context(std::shared_ptr<boost::asio::ssl::context> tls) { tls_ = std::move(tls); }
    void set_limits(const StreamLimits& limits) { limits_ = limits; }  // new connections only
    // New connections only. With trusted proxies or a fallback (tls:// only), each connection's
    // first bytes are read and sorted before TURN sees it; `fallback_quota` (may be null) bounds
    // the connections passed to the fallback and must outlive them.
    void set_sorting(std::shared_ptr<const ConnectionSorting> sorting,
                     ConnectionQuota* fallback_quota) {
        sorting_ = std::move(sorting);
        fallback_quota_ = fallback_quota;
    }
    void start();
    void close();

private:
    void accept();
    void on_accept_error(const boost::system::error_code& ec);
    // A slot of limits.max_connections(_per_ip) for `client`, or nullopt (counted) when full.
    std::optional<allocation::IpKey> take_connection_slot(const protocol::TransportAddress& client);

    boost::asio::io_context& io_;
    boost::asio::ip::tcp::acceptor acceptor_;
    boost::asio::steady_timer retry_timer_;
    RequestDispatcher& dispatcher_;
    protocol::Transport transport_;
    StreamLimits limits_;
    ConnectionRegistry* registry_;
    ConnectionQuota* quota_;
    StreamCounters* counters_;
    std::shared_ptr<boost::asio::ssl::context> tls_;
    std::shared_ptr<const ConnectionSorting> sorting_;
    ConnectionQuota* fallback_quota_ = nullptr;
    // Set while accept() is failing (EMFILE and the like): one warning per episode, not one per
    // retry, and one line when accepting works again.
    bool accept_failing_ = false;
};

}  // namespace tern::server
