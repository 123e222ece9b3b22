// Relay direction one: datagrams from clients on a UDP listener to their peers. ChannelData is
// routed by allocation/'s rules and leaves its relay socket in batches; everything else (STUN
// requests, Send indications) goes to the request path and is answered in one batch.
// TCP/TLS clients reach the request path from StreamListener instead; their ChannelData and
// Send indications leave at once through RelaySockets::send_to_peer.
#pragma once

#include <chrono>

#include "tern/allocation/allocation_manager.hpp"
#include "tern/server/io/peer_send_queue.hpp"
#include "tern/server/io/udp_listener.hpp"
#include "tern/server/request/packet_context.hpp"
#include "tern/server/request/request_dispatcher.hpp"

namespace tern::server {

class RelaySockets;

class ClientToPeer {
public:
    ClientToPeer(RequestDispatcher& dispatcher, allocation::AllocationManager& manager,
                 const RelaySockets& relays);

    // Reads `listener` (a few batches at most, so one busy listener cannot starve the others)
    // and relays or answers each datagram; true when the listener was drained.
    bool relay(UdpListener& listener, std::chrono::steady_clock::time_point now) noexcept;

    // Sends what is queued for peers. Runs after each batch, and before a relay socket closes
    // (its descriptor number may be reused by the next one).
    void flush() noexcept;

    // A Send indication's data (RelaySockets::send_to_peer, counted by the manager when this
    // returns true): queued when it came in one of relay()'s batches, whose listener buffer
    // holds it until the batch is flushed; sent at once when it came from a TCP/TLS client.
    bool send_to_peer(int fd, const protocol::TransportAddress& peer,
                      std::span<const std::uint8_t> payload) noexcept;

private:
    RequestDispatcher& dispatcher_;
    allocation::AllocationManager& manager_;
    const RelaySockets& relays_;
    PeerSendQueue to_peers_;
    bool in_batch_ = false;  // relay() is handling a batch: payloads live in its listener
    PacketContext context_;
};

}  // namespace tern::server
