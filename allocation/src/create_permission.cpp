// RFC 8656 §9 and §10: CreatePermission, by §10.2's rules, installing §9's permissions.
#include <algorithm>
#include <array>

#include "request_reply.hpp"
#include "tern/allocation/allocation_manager.hpp"

namespace tern::allocation {

using protocol::TransportAddress;

std::span<const std::uint8_t> AllocationManager::create_permission(
    const protocol::MessageView& request, Allocation& a, TimePoint now, Reply& r) {
    std::array<TransportAddress, protocol::max_attributes> peers{};
    const std::size_t n = request.xor_addresses(protocol::attr::xor_peer_address, peers);
    if (n == 0) return r.bad_request();
    const std::size_t count = std::min(n, peers.size());
    for (std::size_t i = 0; i < count; ++i) {
        peers[i] = peers[i].unmapped();
        if (relay_of(a, peers[i].family) == nullptr) return r.peer_family_mismatch();
        if (!peers_->permits(peers[i])) return r.forbidden();
    }
    // All or nothing: no room for every peer means none is installed.
    const auto result =
        a.permissions.install_all(std::span<const TransportAddress>(peers.data(), count), now);
    if (result == PermissionResult::quota_exceeded) return r.insufficient_capacity();
    note_most(a.usage.most_permissions, a.permissions.count());
    protocol::MessageBuilder b = r.success();
    return r.finish(b);
}

}  // namespace tern::allocation
