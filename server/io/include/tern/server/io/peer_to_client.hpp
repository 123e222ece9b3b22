// Relay direction two: datagrams from peers on relay sockets to their clients. Each is
// received with room in front, allocation/ says whether it may pass and how it is framed
// (§11.3, §12.6), the ChannelData header or Data indication is written around it in place, and
// it leaves on the client's listener in one batch per pass (or is copied once into a TCP/TLS
// connection's output, whose framing needs it).
#pragma once

#include <sys/socket.h>

#include <array>
#include <chrono>
#include <memory>
#include <span>
#include <vector>

#include "tern/allocation/allocation_manager.hpp"
#include "tern/allocation/client_frame.hpp"
#include "tern/server/io/stream_clients.hpp"
#include "tern/server/io/udp_listener.hpp"

namespace tern::server {

class RelaySockets;

class PeerToClient {
public:
    PeerToClient(allocation::AllocationManager& manager, const RelaySockets& relays,
                 std::vector<std::unique_ptr<UdpListener>>& listeners,
                 const StreamClients& streams);

    // Reads one batch from relay socket `relay` and delivers each datagram; true when the
    // socket was drained. One batch a visit: a flooded relay port cannot starve the others.
    bool relay(allocation::RelayId relay, std::chrono::steady_clock::time_point now) noexcept;

    // Sends what the listeners hold; once a pass, and whenever the receive slots run out.
    void flush() noexcept;
    // True when data went to a TCP/TLS connection since the last call: Asio has writes to
    // complete, so its handlers must run.
    bool take_stream_writes() noexcept;

    // A framed message to a client at once (RelayEgress::send_to_client).
    bool deliver(const allocation::FiveTuple& tuple, allocation::ClientRoute route,
                 std::span<const std::uint8_t> message) noexcept;

    static constexpr std::size_t batch_size = 32;
    static constexpr std::size_t slots = 128;
    // Headroom, the largest UDP payload (a relayed datagram is never cut short, RFC 8656
    // §11.3), tailroom; rounded to a cache line.
    static constexpr std::size_t slot_size =
        (allocation::client_frame_headroom + 65536 + allocation::client_frame_tailroom + 63) / 64 *
        64;

private:
    allocation::AllocationManager& manager_;
    const RelaySockets& relays_;
    std::vector<std::unique_ptr<UdpListener>>& listeners_;
    const StreamClients& streams_;
    // Receive slots shared by every relay socket of the worker: an idle allocation costs a
    // socket, not a buffer. Slots [0, used_) hold datagrams queued on listeners until flush().
    std::vector<std::uint8_t> storage_;
    std::size_t used_ = 0;
    bool to_streams_ = false;
    std::array<mmsghdr, batch_size> headers_{};
    std::array<iovec, batch_size> iov_{};
    std::array<sockaddr_storage, batch_size> sources_{};
};

}  // namespace tern::server
