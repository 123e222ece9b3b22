// Permissions as a sorted flat vector: look-ups are per packet, installs only per request.
#include "tern/allocation/permission_table.hpp"

#include <algorithm>

namespace tern::allocation {

namespace {
struct ByIp {
    template <class E>
    bool operator()(const E& e, const IpKey& k) const noexcept {
        return e.ip < k;
    }
};
}  // namespace

std::vector<PermissionTable::Entry>::iterator PermissionTable::find(const IpKey& ip) noexcept {
    auto it = std::lower_bound(entries_.begin(), entries_.end(), ip, ByIp{});
    return (it != entries_.end() && it->ip == ip) ? it : entries_.end();
}

std::vector<PermissionTable::Entry>::const_iterator PermissionTable::find(
    const IpKey& ip) const noexcept {
    auto it = std::lower_bound(entries_.begin(), entries_.end(), ip, ByIp{});
    return (it != entries_.end() && it->ip == ip) ? it : entries_.end();
}

std::size_t PermissionTable::live_count(TimePoint now) const noexcept {
    return static_cast<std::size_t>(std::count_if(entries_.begin(), entries_.end(),
                                                  [&](const Entry& e) { return now < e.expires; }));
}

PermissionResult PermissionTable::install(const protocol::TransportAddress& peer, TimePoint now) {
    return install_all(std::span<const protocol::TransportAddress>(&peer, 1), now);
}

PermissionResult PermissionTable::install_all(std::span<const protocol::TransportAddress> peers,
                                              TimePoint now) {
    // Count the distinct addresses that would need a new live slot: absent or lapsed ones.
    std::size_t needed = 0;
    for (std::size_t i = 0; i < peers.size(); ++i) {
        const IpKey key = IpKey::of(peers[i]);
        bool repeated = false;
        for (std::size_t j = 0; j < i && !repeated; ++j) repeated = IpKey::of(peers[j]) == key;
        if (repeated) continue;
        const auto it = find(key);
        if (it == entries_.end() || now >= it->expires) ++needed;
    }
    if (needed > 0) {
        // Lapsed entries do not count against the quota.
        if (live_count(now) + needed > max_) return PermissionResult::quota_exceeded;
        expire(now);
    }
    bool any_new = false;
    for (const auto& peer : peers) {
        const IpKey key = IpKey::of(peer);
        auto it = std::lower_bound(entries_.begin(), entries_.end(), key, ByIp{});
        if (it != entries_.end() && it->ip == key) {
            it->expires = now + lifetime;
        } else {
            entries_.insert(it, Entry{key, now + lifetime});
            any_new = true;
        }
    }
    return any_new ? PermissionResult::installed : PermissionResult::refreshed;
}

bool PermissionTable::allowed(const protocol::TransportAddress& peer,
                              TimePoint now) const noexcept {
    const auto it = find(IpKey::of(peer));
    return it != entries_.end() && now < it->expires;
}

std::size_t PermissionTable::expire(TimePoint now) noexcept {
    const auto before = entries_.size();
    entries_.erase(std::remove_if(entries_.begin(), entries_.end(),
                                  [&](const Entry& e) { return now >= e.expires; }),
                   entries_.end());
    return before - entries_.size();
}

}  // namespace tern::allocation
