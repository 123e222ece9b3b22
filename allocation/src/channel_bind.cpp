// RFC 8656 §12.2: ChannelBind, on the requester's own live allocation.
#include "request_reply.hpp"
#include "tern/allocation/allocation_manager.hpp"
#include "tern/protocol/channel_data.hpp"

namespace tern::allocation {

std::span<const std::uint8_t> AllocationManager::channel_bind(const protocol::MessageView& request,
                                                              Allocation& a, TimePoint now,
                                                              Reply& r) {
    const auto channel = request.channel_number();
    auto peer = request.xor_peer_address();  // the first one wins
    const bool channel_ok =
        channel && (protocol::is_valid_channel_number(*channel) ||
                    (settings_.rfc5766_channels && protocol::is_channel_data_number(*channel)));
    if (!channel_ok || !peer) return r.bad_request();
    *peer = peer->unmapped();
    if (relay_of(a, peer->family) == nullptr) return r.peer_family_mismatch();
    if (!peers_->permits(*peer)) return r.forbidden();
    switch (bind_channel_with_permission(a.channels, a.permissions, *channel, *peer, now)) {
        case ChannelBindResult::bound:
        case ChannelBindResult::refreshed:
            break;
        case ChannelBindResult::quota_exceeded:
        case ChannelBindResult::permission_quota_exceeded:
            return r.insufficient_capacity();
        default:
            return r.bad_request();  // invalid channel, or channel/peer bound elsewhere
    }
    note_most(a.usage.most_channels, a.channels.live_count(now));
    note_most(a.usage.most_permissions, a.permissions.count());
    sync_kernel(a, now);  // the kernel relays the channel from the next datagram on
    protocol::MessageBuilder b = r.success();
    return r.finish(b);
}

}  // namespace tern::allocation
