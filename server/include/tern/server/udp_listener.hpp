// A UDP listening socket owned by one worker: SO_REUSEPORT lets every worker bind the same
// address; readable bursts are drained with recvmmsg and answered with one sendmmsg.
#pragma once

#include <sys/socket.h>

#include <array>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/udp.hpp>
#include <cstdint>
#include <span>
#include <system_error>
#include <vector>

#include "tern/server/packet_context.hpp"
#include "tern/server/request_dispatcher.hpp"

namespace tern::server {

class UdpListener {
public:
    static constexpr std::size_t batch_size = 32;
    static constexpr std::size_t receive_slot_size = 9216;  // jumbo frames; larger are dropped
    static constexpr std::size_t reply_slot_size = 1024;    // replies are small by design

    // `client` is the worker's name for this listener (allocations remember it).
    UdpListener(boost::asio::io_context& io, RequestDispatcher& dispatcher,
                allocation::ClientId client = 0);

    // Opens and binds with SO_REUSEPORT (and IPV6_V6ONLY for IPv6); a wildcard address also
    // turns on packet info so replies leave from the address each request was sent to.
    std::error_code open(const protocol::TransportAddress& address);
    protocol::TransportAddress local_address() const;
    void start();
    void close();

    // One datagram to a client, leaving from `local` (the address the client reached). On the
    // relay path: no allocation, no logging; false when the kernel refused it.
    bool send_to(const protocol::TransportAddress& client, const protocol::TransportAddress& local,
                 std::span<const std::uint8_t> bytes) noexcept;

    // As send_to, but the datagram waits in this listener's queue until flush(), so relayed data
    // leaving one event-loop turn goes out in one sendmmsg (runs of equal-size datagrams to one
    // client as one UDP GSO send). A full queue flushes first; a datagram too big for a queue
    // slot is sent at once. True = queued (a refusal at flush is a loss, as for any datagram).
    bool queue_to(const protocol::TransportAddress& client, const protocol::TransportAddress& local,
                  std::span<const std::uint8_t> bytes) noexcept;
    void flush() noexcept;
    bool has_queued() const noexcept { return queued_ > 0; }

private:
    void wait_readable();
    void drain();

    boost::asio::ip::udp::socket socket_;
    RequestDispatcher& dispatcher_;
    PacketContext context_;
    // Buffers are allocated once per listener; nothing is allocated per datagram.
    std::vector<std::uint8_t> receive_buffer_;
    std::vector<std::uint8_t> reply_buffer_;
    std::array<mmsghdr, batch_size> receive_headers_{};
    std::array<iovec, batch_size> receive_iov_{};
    std::array<sockaddr_storage, batch_size> sources_{};
    std::array<mmsghdr, batch_size> reply_headers_{};
    std::array<iovec, batch_size> reply_iov_{};
    // Packet-info control messages: the destination each datagram was sent to comes in, and the
    // reply leaves from that same address, which a wildcard-bound socket would not guarantee.
    static constexpr std::size_t control_size = 64;
    struct alignas(cmsghdr) Control {
        std::array<std::uint8_t, control_size> bytes;
    };
    std::array<Control, batch_size> receive_control_{};
    std::array<Control, batch_size> reply_control_{};
    bool wildcard_ = false;

    // The outgoing queue of relayed datagrams (queue_to / flush).
    static constexpr std::size_t queue_slot_size = 2048;  // a ChannelData of a 1500-byte MTU
    std::vector<std::uint8_t> queue_buffer_;
    std::size_t queued_ = 0;
    std::array<sockaddr_storage, batch_size> queue_to_{};
    std::array<socklen_t, batch_size> queue_to_len_{};
    std::array<protocol::TransportAddress, batch_size> queue_local_{};
    std::array<iovec, batch_size> queue_iov_{};
    std::array<mmsghdr, batch_size> queue_headers_{};
    std::array<Control, batch_size> queue_control_{};
    bool gso_ = true;  // off after the kernel refuses a segmented send once (no UDP GSO here)
};

}  // namespace tern::server
