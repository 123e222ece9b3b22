// Channel bindings: two sorted flat vectors (by channel, by peer) searched without allocating.
#include "tern/allocation/channel_table.hpp"

#include <algorithm>

namespace tern::allocation {

namespace {
struct ByKey {
    template <class E>
    bool operator()(const E& e, const PeerKey& k) const noexcept {
        return e.key < k;
    }
};
struct ByChannel {
    template <class E>
    bool operator()(const E& e, std::uint16_t c) const noexcept {
        return e.channel < c;
    }
};
}  // namespace

const ChannelTable::Binding* ChannelTable::find(std::uint16_t channel) const noexcept {
    auto it = std::lower_bound(by_channel_.begin(), by_channel_.end(), channel, ByChannel{});
    return (it != by_channel_.end() && it->channel == channel) ? &*it : nullptr;
}

ChannelTable::Binding* ChannelTable::find(std::uint16_t channel) noexcept {
    auto it = std::lower_bound(by_channel_.begin(), by_channel_.end(), channel, ByChannel{});
    return (it != by_channel_.end() && it->channel == channel) ? &*it : nullptr;
}

void ChannelTable::forget(std::uint16_t channel) noexcept {
    auto it = std::lower_bound(by_channel_.begin(), by_channel_.end(), channel, ByChannel{});
    if (it == by_channel_.end() || it->channel != channel) return;
    auto p = std::lower_bound(by_peer_.begin(), by_peer_.end(), it->key, ByKey{});
    if (p != by_peer_.end() && p->key == it->key) by_peer_.erase(p);
    by_channel_.erase(it);
}

std::size_t ChannelTable::live_count(TimePoint now) const noexcept {
    return static_cast<std::size_t>(std::count_if(
        by_channel_.begin(), by_channel_.end(), [&](const Binding& b) { return now < b.expires; }));
}

ChannelBindResult ChannelTable::bind(std::uint16_t channel, const protocol::TransportAddress& peer,
                                     TimePoint now) {
    if (channel < first_channel || channel > last_rfc5766_channel) {
        return ChannelBindResult::invalid_channel;
    }
    const PeerKey key = PeerKey::of(peer);

    Binding* existing = find(channel);
    if (existing != nullptr && !occupied(*existing, now)) {
        forget(channel);  // quarantine over but not yet swept
        existing = nullptr;
    }
    if (existing != nullptr && existing->key != key) return ChannelBindResult::channel_in_use;

    auto p = std::lower_bound(by_peer_.begin(), by_peer_.end(), key, ByKey{});
    if (p != by_peer_.end() && p->key == key && p->channel != channel) {
        const Binding* other = find(p->channel);
        if (other != nullptr && occupied(*other, now)) return ChannelBindResult::peer_in_use;
        forget(p->channel);
        existing = find(channel);  // the erase may have moved the vector's elements
    }

    if (existing != nullptr) {  // the same pair
        if (now < existing->expires) {
            existing->expires = now + lifetime;
            return ChannelBindResult::refreshed;
        }
        // Quarantined with this very pair: RFC 8656 §12 only forbids a *different* binding.
        if (live_count(now) >= max_) return ChannelBindResult::quota_exceeded;
        existing->expires = now + lifetime;
        return ChannelBindResult::bound;
    }

    if (live_count(now) >= max_) return ChannelBindResult::quota_exceeded;
    const Binding b{channel, key, peer.unmapped(), now + lifetime};
    by_channel_.insert(
        std::lower_bound(by_channel_.begin(), by_channel_.end(), channel, ByChannel{}), b);
    by_peer_.insert(std::lower_bound(by_peer_.begin(), by_peer_.end(), key, ByKey{}),
                    PeerIndex{key, channel});
    return ChannelBindResult::bound;
}

std::optional<protocol::TransportAddress> ChannelTable::peer_for(std::uint16_t channel,
                                                                 TimePoint now) const noexcept {
    const Binding* b = find(channel);
    if (b == nullptr || now >= b->expires) return std::nullopt;
    return b->peer;
}

std::optional<std::uint16_t> ChannelTable::channel_for(const protocol::TransportAddress& peer,
                                                       TimePoint now) const noexcept {
    const PeerKey key = PeerKey::of(peer);
    auto p = std::lower_bound(by_peer_.begin(), by_peer_.end(), key, ByKey{});
    if (p == by_peer_.end() || p->key != key) return std::nullopt;
    const Binding* b = find(p->channel);
    if (b == nullptr || now >= b->expires) return std::nullopt;
    return p->channel;
}

std::size_t ChannelTable::expire(TimePoint now) noexcept {
    std::size_t freed = 0;
    for (std::size_t i = by_channel_.size(); i-- > 0;) {
        if (!occupied(by_channel_[i], now)) {
            forget(by_channel_[i].channel);
            ++freed;
        }
    }
    return freed;
}

ChannelBindResult bind_channel_with_permission(ChannelTable& channels, PermissionTable& permissions,
                                               std::uint16_t channel,
                                               const protocol::TransportAddress& peer,
                                               TimePoint now) {
    // Probe the permission first: a fresh install that would exceed the quota must not leave
    // a channel bound without its permission. Sweeping lapsed permissions changes nothing
    // observable.
    if (!permissions.allowed(peer, now) && permissions.count() >= permissions.max()) {
        permissions.expire(now);
        if (permissions.count() >= permissions.max()) {
            return ChannelBindResult::permission_quota_exceeded;
        }
    }
    const ChannelBindResult result = channels.bind(channel, peer, now);
    if (result == ChannelBindResult::bound || result == ChannelBindResult::refreshed) {
        permissions.install(peer, now);  // cannot fail: room was checked above
    }
    return result;
}

}  // namespace tern::allocation
