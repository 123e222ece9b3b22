// The first bytes of a new TCP/TLS connection decide where it goes, before TURN sees it:
//   1. a PROXY v1/v2 header: required from proxy_protocol.trusted sources, whose client address
//      then replaces the proxy's; refused from every other source;
//   2. on a shared tls:// port (edge.fallback): a TLS ClientHello is routed by its SNI and ALPN
//      (edge::route), to ternd's own TLS or undecrypted to the fallback; STUN or ChannelData is
//      TURN over TCP; anything else is closed.
// The bytes read while sorting are handed on with the socket, so the next owner sees the stream
// from its first byte. All of it must arrive within limits.handshake_timeout. Private to
// server/io: StreamListener starts one per connection that needs sorting.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "stream_connection.hpp"
#include "tern/allocation/ip_key.hpp"
#include "tern/edge/client_hello.hpp"
#include "tern/server/io/stream_listener.hpp"
#include "tern/server/request/packet_context.hpp"

namespace tern::server {

class ConnectionSorter final : public std::enable_shared_from_this<ConnectionSorter> {
public:
    // `slot`: the connection's key in services.quota, or nullopt for a trusted proxy's
    // connection (taken once its header names the client).
    ConnectionSorter(StreamServices services, tcp::socket socket, const PacketContext& context,
                     std::optional<allocation::IpKey> slot);
    ~ConnectionSorter();  // gives back a slot no next owner took
    ConnectionSorter(const ConnectionSorter&) = delete;
    ConnectionSorter& operator=(const ConnectionSorter&) = delete;

    void start();

private:
    enum class Step : std::uint8_t { proxy_header, first_bytes, client_hello };

    void read();
    void sort();  // after every read: decide, or read on
    bool sort_proxy_header();
    void to_turn(protocol::Transport transport);
    void to_fallback();
    void refuse(SortRefusal why);
    void refuse(ProxyRefusal why);
    void close();
    std::span<const std::uint8_t> unsorted() const noexcept {
        return {buffer_.data() + header_length_, filled_ - header_length_};
    }
    std::vector<std::uint8_t> take_unsorted();
    // A tls:// listener with edge.fallback; sorted by the listener's transport, not the route.
    bool shared_port() const noexcept {
        return listener_transport_ == protocol::Transport::tls && services_.sorting &&
               services_.sorting->fallback;
    }

    StreamServices services_;
    tcp::socket socket_;
    asio::steady_timer timer_;
    PacketContext context_;
    std::optional<allocation::IpKey> slot_;
    bool trusted_proxy_;
    protocol::Transport listener_transport_;
    Step step_ = Step::proxy_header;
    bool done_ = false;
    std::vector<std::uint8_t> buffer_;  // grows on demand up to max_sorted_bytes
    std::size_t filled_ = 0;
    std::size_t header_length_ = 0;  // bytes of the PROXY header at the front of buffer_
    std::unique_ptr<edge::ClientHelloReader> hello_;  // only once TLS is seen on a shared port
};

}  // namespace tern::server
