#include "tern/server/io/peer_to_client.hpp"

#include <algorithm>

#include "tern/allocation/client_frame.hpp"
#include "tern/server/io/datagram_batch.hpp"
#include "tern/server/io/relay_sockets.hpp"
#include "tern/server/request/socket_address.hpp"

namespace tern::server {

PeerToClient::PeerToClient(allocation::AllocationManager& manager, const RelaySockets& relays,
                           std::vector<std::unique_ptr<UdpListener>>& listeners,
                           const StreamClients& streams)
    : manager_(manager),
      relays_(relays),
      listeners_(listeners),
      streams_(streams),
      storage_(slots * slot_size) {}

bool PeerToClient::relay(allocation::RelayId relay,
                         std::chrono::steady_clock::time_point now) noexcept {
    const int fd = relays_.descriptor(relay);
    if (fd < 0) return true;  // closed since it became ready
    if (used_ == slots) flush();
    const std::size_t base = used_;
    const std::size_t batch = std::min(batch_size, slots - base);
    // Each datagram lands behind client_frame_headroom bytes of its slot.
    for (std::size_t i = 0; i < batch; ++i) {
        std::uint8_t* slot = storage_.data() + (base + i) * slot_size;
        iov_[i] = {slot + allocation::client_frame_headroom, 65536};
        prepare_receive(headers_[i], sources_[i], iov_[i]);
    }
    const int n =
        ::recvmmsg(fd, headers_.data(), static_cast<unsigned>(batch), MSG_DONTWAIT, nullptr);
    if (n <= 0) return true;  // EAGAIN, or an error the next readiness will show again
    // Slots of datagrams queued on a listener stay taken until flush(); the others are simply
    // not reused before it either.
    used_ = base + static_cast<std::size_t>(n);
    for (std::size_t i = 0; i < static_cast<std::size_t>(n); ++i) {
        const protocol::TransportAddress peer =
            from_sockaddr(reinterpret_cast<const sockaddr*>(&sources_[i]));
        const std::size_t size = headers_[i].msg_len;
        // allocation/: permission, bandwidth, and ChannelData or Data indication.
        const auto to = manager_.route_peer_datagram(relay, peer, size, now);
        if (!to) continue;
        const std::span<std::uint8_t> slot(storage_.data() + (base + i) * slot_size, slot_size);
        const auto message = allocation::frame_for_client(slot, size, to->tuple->transport,
                                                          to->channel, to->indication_serial, peer);
        if (message.empty()) continue;  // too large to carry in one STUN message
        if (to->route.is_listener() && to->route.listener_index() < listeners_.size()) {
            // Sent at flush(): the slot stays taken until then.
            UdpListener::Flushed flushed;
            listeners_[to->route.listener_index()]->queue_to(to->tuple->client, to->tuple->server,
                                                             message, size, flushed);
            manager_.count_to_client(flushed.packets, flushed.payload_bytes, flushed.refused);
        } else if (ClientConnection* c = streams_.find(to->route);
                   c != nullptr && c->send(message)) {
            manager_.count_to_client(1, size, 0);
            to_streams_ = true;  // Asio completes the write: its handlers run after this pass
        } else {
            manager_.count_to_client(0, 0, 1);
        }
    }
    return static_cast<std::size_t>(n) < batch;
}

void PeerToClient::flush() noexcept {
    for (auto& l : listeners_) {
        if (!l->has_queued()) continue;
        const UdpListener::Flushed f = l->flush();
        manager_.count_to_client(f.packets, f.payload_bytes, f.refused);
    }
    used_ = 0;
}

bool PeerToClient::take_stream_writes() noexcept {
    const bool wrote = to_streams_;
    to_streams_ = false;
    return wrote;
}

bool PeerToClient::deliver(const allocation::FiveTuple& tuple, allocation::ClientRoute route,
                           std::span<const std::uint8_t> message) noexcept {
    if (route.is_listener()) {
        return route.listener_index() < listeners_.size() &&
               listeners_[route.listener_index()]->send_to(tuple.client, tuple.server, message);
    }
    ClientConnection* c = streams_.find(route);
    if (c == nullptr || !c->send(message)) return false;
    to_streams_ = true;
    return true;
}

}  // namespace tern::server
