// RFC 8656 §11 and §12: the relay path. Send indications (§11.2) and ChannelData (§12.5) from
// clients to peers, and peers' datagrams back as Data indications (§11.3) or ChannelData
// (§12.6). No heap, lock, log or exception here: the route_* functions run per datagram.
#include <cstring>

#include "tern/allocation/allocation_manager.hpp"
#include "tern/allocation/client_frame.hpp"
#include "tern/protocol/channel_data.hpp"

namespace tern::allocation {

using protocol::MessageView;
using protocol::TransportAddress;

// §11.2: a Send indication's data goes to the peer it names, if a permission covers it.
std::optional<AllocationManager::ToPeer> AllocationManager::route_send_indication(
    const MessageView& indication, const FiveTuple& tuple, TimePoint now) noexcept {
    Allocation* a = table_.find(tuple, now);
    if (a == nullptr) {
        ++counters_.dropped_no_allocation;
        return std::nullopt;
    }
    auto peer = indication.xor_peer_address();
    const auto data = indication.data();
    if (!peer || !data) return std::nullopt;  // §11.2: silently discarded
    *peer = peer->unmapped();
    // A permission is per IP (§9), so one for an own address (another client's relayed address)
    // would also let Send indications reach tern's listener ports: the policy checks the port of
    // own addresses. ChannelData needs no such check: ChannelBind checked the whole address.
    if (!a->permissions.allowed(*peer, now) || !peers_->permits_send(*peer)) {
        ++counters_.dropped_no_permission;
        return std::nullopt;
    }
    return route_to_peer(*a, *peer, *data, now);
}

// §12.5: ChannelData goes to the peer its channel is bound to, while that peer's permission
// lasts.
std::optional<AllocationManager::ToPeer> AllocationManager::route_channel_data(
    std::span<const std::uint8_t> message, const FiveTuple& tuple, TimePoint now) noexcept {
    protocol::ChannelDataView view;
    if (protocol::parse_channel_data(message, view) != protocol::ParseError::ok) {
        return std::nullopt;
    }
    Allocation* a = table_.find(tuple, now);
    if (a == nullptr) {
        ++counters_.dropped_no_allocation;
        return std::nullopt;
    }
    const auto peer = a->channels.peer_for(view.channel, now);
    if (!peer) {
        ++counters_.dropped_no_channel;
        return std::nullopt;
    }
    if (!a->permissions.allowed(*peer, now)) {
        ++counters_.dropped_no_permission;
        return std::nullopt;
    }
    return route_to_peer(*a, *peer, view.payload, now);
}

std::optional<AllocationManager::ToPeer> AllocationManager::route_to_peer(
    Allocation& a, const TransportAddress& peer, std::span<const std::uint8_t> payload,
    TimePoint now) noexcept {
    // From the relay of the peer's family; permission installation already refused others.
    for (std::size_t i = 0; i < a.relays.size(); ++i) {
        if (a.relays[i].family != peer.family) continue;
        if (!within_budget(a.to_peer_budget, a.user_budget ? &a.user_budget->to_peer : nullptr,
                           payload.size(), now)) {
            ++counters_.dropped_bandwidth;
            return std::nullopt;
        }
        ++a.usage.packets_to_peer;
        a.usage.bytes_to_peer += payload.size();
        return ToPeer{a.relay_ids[i], peer, payload};
    }
    return std::nullopt;
}

std::optional<AllocationManager::ToClient> AllocationManager::route_peer_datagram(
    RelayId relay, const TransportAddress& peer, std::size_t payload_size, TimePoint now) noexcept {
    if (relay >= by_relay_.size() || by_relay_[relay] == nullptr || !by_relay_[relay]->live(now)) {
        return std::nullopt;
    }
    Allocation& a = *by_relay_[relay];
    // Permissions are per IP (§9), so one for tern's own address (another client's relayed
    // address) would also let in datagrams from tern's listeners there: answers to requests
    // spoofed from this relay's address. A listener is never a permitted peer.
    if (!a.permissions.allowed(peer, now) || peers_->is_own_listener(peer)) {
        ++counters_.dropped_no_permission;  // §11.3 / §12.6: no permission, no delivery
        return std::nullopt;
    }
    if (!within_budget(a.to_client_budget, a.user_budget ? &a.user_budget->to_client : nullptr,
                       payload_size, now)) {
        ++counters_.dropped_bandwidth;
        return std::nullopt;
    }
    ++a.usage.packets_to_client;
    a.usage.bytes_to_client += payload_size;
    ToClient to{&a.tuple, a.client, 0, 0};
    // §12.6: ChannelData on a bound channel; a payload too long for its length field goes as a
    // Data indication, which fails to frame alike and is dropped.
    if (const auto channel = a.channels.channel_for(peer, now); channel && payload_size <= 0xFFFF) {
        to.channel = *channel;
    } else {
        to.indication_serial = ++data_indications_;
    }
    return to;
}

void AllocationManager::send_to_peer(const std::optional<ToPeer>& route) noexcept {
    if (!route) return;
    if (egress_.send_to_peer(route->relay, route->peer, route->payload)) {
        count_to_peer(1, route->payload.size(), 0);
    } else {
        count_to_peer(0, 0, 1);
    }
}

void AllocationManager::on_send_indication(const MessageView& indication, const FiveTuple& tuple,
                                           TimePoint now) noexcept {
    send_to_peer(route_send_indication(indication, tuple, now));
}

void AllocationManager::on_channel_data(std::span<const std::uint8_t> message,
                                        const FiveTuple& tuple, TimePoint now) noexcept {
    send_to_peer(route_channel_data(message, tuple, now));
}

void AllocationManager::on_peer_datagram(RelayId relay, const TransportAddress& peer,
                                         std::span<const std::uint8_t> payload,
                                         TimePoint now) noexcept {
    const auto to = route_peer_datagram(relay, peer, payload.size(), now);
    if (!to) return;
    const std::size_t slot = client_frame_headroom + payload.size() + client_frame_tailroom;
    if (slot > client_buffer_.size()) return;
    if (!payload.empty()) {  // an empty span's data() may be null, which memcpy forbids
        std::memcpy(client_buffer_.data() + client_frame_headroom, payload.data(), payload.size());
    }
    const auto message =
        frame_for_client({client_buffer_.data(), slot}, payload.size(), to->tuple->transport,
                         to->channel, to->indication_serial, peer);
    if (message.empty()) return;  // too large to carry in one STUN message
    if (egress_.send_to_client(*to->tuple, to->route, message)) {
        count_to_client(1, payload.size(), 0);
    } else {
        count_to_client(0, 0, 1);
    }
}

bool AllocationManager::within_budget(TokenBucket& own, SharedTokenBucket* user, std::size_t bytes,
                                      TimePoint now) noexcept {
    if (!own.consume(bytes, now, allocation_rate_)) return false;
    if (user == nullptr || user->consume(bytes, now, user_rate_)) return true;
    own.refund(bytes, allocation_rate_);
    return false;
}

}  // namespace tern::allocation
