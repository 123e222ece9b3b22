// The UDP socket behind one relayed transport address. It lives on the worker that owns its
// allocation; datagrams from peers are drained in batches into the worker's shared buffers.
#pragma once

#include <sys/socket.h>

#include <array>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/udp.hpp>
#include <cstdint>
#include <span>
#include <system_error>
#include <vector>

#include "tern/protocol/transport_address.hpp"

namespace tern::server {

class RelaySocket;

// Receives what peers send to a relay socket; called on the owning worker's thread. A sink
// may close() the socket from the callback but must defer destroying it (post to the worker).
class RelaySink {
public:
    virtual void on_peer_datagram(RelaySocket& socket, const protocol::TransportAddress& peer,
                                  std::span<const std::uint8_t> payload) = 0;

protected:
    ~RelaySink() = default;
};

// Receive buffers shared by every relay socket of one worker: one thread drains one socket at a
// time, so an idle allocation costs a socket, not a buffer.
struct RelayReceiveBuffers {
    static constexpr std::size_t batch_size = 32;
    // The largest UDP payload: a relayed datagram is never cut short (RFC 8656 §11.3/§12.6).
    static constexpr std::size_t slot_size = 65536;
    RelayReceiveBuffers();
    std::vector<std::uint8_t> storage;
    std::array<mmsghdr, batch_size> headers{};
    std::array<iovec, batch_size> iov{};
    std::array<sockaddr_storage, batch_size> sources{};
};

class RelaySocket {
public:
    RelaySocket(boost::asio::io_context& io, RelaySink& sink, RelayReceiveBuffers& buffers);

    // Binds `address` exactly (the port comes from the relay port pool). dont_fragment sets DF
    // on outgoing IPv4 datagrams (RFC 8656 §14.8, DONT-FRAGMENT).
    std::error_code open(const protocol::TransportAddress& address, bool dont_fragment);
    protocol::TransportAddress local_address() const;  // asks the kernel (tests, logs)
    // The owner's name for this socket (the allocation layer's RelayId), handed to the sink.
    void set_id(std::uint32_t id) noexcept { id_ = id; }
    std::uint32_t id() const noexcept { return id_; }
    int native_handle() noexcept { return socket_.native_handle(); }
    void start();
    void close();

    // One datagram to a peer; false when the kernel refused it (no retry: UDP semantics).
    bool send_to(const protocol::TransportAddress& peer,
                 std::span<const std::uint8_t> payload) noexcept;

private:
    void wait_readable();
    void drain();

    // Bound to the io_context's own executor type: an idle allocation pays for every byte here
    // (any_io_executor would add 32).
    boost::asio::basic_datagram_socket<boost::asio::ip::udp, boost::asio::io_context::executor_type>
        socket_;
    RelaySink& sink_;
    RelayReceiveBuffers& buffers_;
    std::uint32_t id_ = 0;
};

}  // namespace tern::server
