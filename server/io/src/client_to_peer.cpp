#include "tern/server/io/client_to_peer.hpp"

#include <sys/socket.h>

#include <ctime>

#include "tern/protocol/message_type.hpp"
#include "tern/server/io/relay_sockets.hpp"
#include "tern/server/request/socket_address.hpp"

namespace tern::server {

ClientToPeer::ClientToPeer(RequestDispatcher& dispatcher, allocation::AllocationManager& manager,
                           const RelaySockets& relays)
    : dispatcher_(dispatcher), manager_(manager), relays_(relays) {
    context_.transport = protocol::Transport::udp;
}

bool ClientToPeer::relay(UdpListener& listener,
                         std::chrono::steady_clock::time_point now) noexcept {
    context_.client = allocation::ClientRoute::listener(listener.index());
    context_.now = now;
    context_.unix_now = 0;  // read once, and only when a batch holds a STUN message
    for (int batch = 0; batch < 8; ++batch) {
        const std::size_t n = listener.receive();
        if (n == 0) return true;
        in_batch_ = true;
        for (std::size_t i = 0; i < n; ++i) {
            const UdpListener::Datagram d = listener.datagram(i);
            if (d.truncated) continue;  // larger than any request or relayed datagram we take
            // RFC 8656 §12: ChannelData is told apart by its first two bits (01), before any
            // STUN parsing; allocation/ checks channel, permission and bandwidth (§12.5).
            if (!d.bytes.empty() && protocol::looks_like_channel_data(d.bytes[0])) {
                const allocation::FiveTuple tuple{d.source, d.local, protocol::Transport::udp};
                if (const auto to = manager_.route_channel_data(d.bytes, tuple, now)) {
                    PeerSendQueue::Sent sent;
                    to_peers_.push(relays_.descriptor(to->relay), to->peer, to->payload, sent);
                    manager_.count_to_peer(sent.packets, sent.bytes, sent.refused);
                }
                continue;
            }
            // STUN: Binding, the TURN methods and Send indications (RFC 8489 §6.3).
            if (context_.unix_now == 0) context_.unix_now = std::time(nullptr);
            context_.source = d.source;
            context_.local = d.local;
            const auto answer = dispatcher_.handle(d.bytes, context_, listener.answer_slot());
            if (!answer.empty()) listener.answer(i, answer);
        }
        in_batch_ = false;
        // The payloads live in the listener's buffers: they leave before the next receive.
        flush();
        listener.send_answers();
        if (n < UdpListener::batch_size) return true;
    }
    return false;
}

bool ClientToPeer::send_to_peer(int fd, const protocol::TransportAddress& peer,
                                std::span<const std::uint8_t> payload) noexcept {
    if (!in_batch_) {
        sockaddr_storage to{};
        const socklen_t len = to_sockaddr(peer, to);
        return ::sendto(fd, payload.data(), payload.size(), MSG_DONTWAIT,
                        reinterpret_cast<const sockaddr*>(&to), len) >= 0;
    }
    PeerSendQueue::Sent sent;
    to_peers_.push(fd, peer, payload, sent, /*counted=*/true);
    manager_.count_to_peer(sent.packets, sent.bytes, sent.refused);
    return true;
}

void ClientToPeer::flush() noexcept {
    if (to_peers_.empty()) return;
    const PeerSendQueue::Sent sent = to_peers_.flush();
    manager_.count_to_peer(sent.packets, sent.bytes, sent.refused);
}

}  // namespace tern::server
