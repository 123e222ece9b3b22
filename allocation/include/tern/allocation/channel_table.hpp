// The channel bindings of one allocation (RFC 8656 §12): channel numbers 0x4000-0x4FFF bound
// one-to-one to peer transport addresses for 600 s, with a 5-minute quarantine after expiry.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <vector>

#include "tern/allocation/ip_key.hpp"
#include "tern/allocation/permission_table.hpp"
#include "tern/allocation/time_point.hpp"
#include "tern/protocol/transport_address.hpp"

namespace tern::allocation {

enum class ChannelBindResult : std::uint8_t {
    bound,            // a new binding (also: the same pair re-bound during its quarantine)
    refreshed,        // the same pair, still live: lifetime restarted
    invalid_channel,  // outside 0x4000-0x7FFF (400 Bad Request)
    channel_in_use,   // channel bound, or quarantined, to another peer (400)
    peer_in_use,      // peer bound, or quarantined, on another channel (400)
    quota_exceeded,   // `max` live bindings already (caller chooses 508)
    permission_quota_exceeded,  // bind_channel_with_permission only: no room for the permission
};

class ChannelTable {
public:
    static constexpr std::uint16_t first_channel = 0x4000;
    static constexpr std::uint16_t last_channel = 0x4FFF;
    // The table stores RFC 5766's wider range too; which numbers a client may bind is decided
    // by the caller (relay.channel_numbers).
    static constexpr std::uint16_t last_rfc5766_channel = 0x7FFF;
    static constexpr std::size_t channel_count = last_channel - first_channel + 1;
    // RFC 8656 §12: a binding lasts 10 minutes unless refreshed ...
    static constexpr Duration lifetime = std::chrono::seconds(600);
    // ... and after it expires neither the channel nor the peer may join a different binding
    // for 5 more minutes, so late packets on the old channel cannot reach a new peer.
    static constexpr Duration quarantine = std::chrono::seconds(300);

    explicit ChannelTable(std::size_t max_bindings) noexcept : max_(max_bindings) {}

    // Binding time windows: live on [t, t + 600 s), quarantined on [t + 600 s, t + 900 s).
    // `peer` is stored canonically (IPv4-mapped IPv6 turned into IPv4). Does NOT touch
    // permissions: use bind_channel_with_permission, or install the permission yourself.
    ChannelBindResult bind(std::uint16_t channel, const protocol::TransportAddress& peer,
                           TimePoint now);

    // Per-packet look-ups; no heap allocation. Only live bindings answer.
    std::optional<protocol::TransportAddress> peer_for(std::uint16_t channel,
                                                       TimePoint now) const noexcept;
    std::optional<std::uint16_t> channel_for(const protocol::TransportAddress& peer,
                                             TimePoint now) const noexcept;

    // Calls f(channel, peer) for each live binding; f must not change the table.
    template <class F>
    void for_each_live(TimePoint now, F&& f) const {
        for (const auto& b : by_channel_) {
            if (now < b.expires) f(b.channel, b.peer);
        }
    }

    // Forgets bindings whose quarantine has ended; returns how many.
    std::size_t expire(TimePoint now) noexcept;

    std::size_t live_count(TimePoint now) const noexcept;
    std::size_t max() const noexcept { return max_; }
    // A reload: later binds see the new quota; bindings over a lowered one stay.
    void set_max(std::size_t max_bindings) noexcept { max_ = max_bindings; }

private:
    // A binding, live or quarantined. Kept in a vector sorted by channel rather than a fixed
    // 4096-slot array: the array would cost ~200 KiB (or 8 KiB as an index) per allocation
    // while real clients bind a handful of channels, and binary search over a few entries is
    // as fast as indexing.
    struct Binding {
        std::uint16_t channel;
        PeerKey key;
        protocol::TransportAddress peer;
        TimePoint expires;  // end of the live window; quarantine runs to expires + quarantine
    };
    struct PeerIndex {
        PeerKey key;
        std::uint16_t channel;
    };
    static bool occupied(const Binding& b, TimePoint now) noexcept {
        return now < b.expires + quarantine;
    }
    const Binding* find(std::uint16_t channel) const noexcept;
    Binding* find(std::uint16_t channel) noexcept;
    void forget(std::uint16_t channel) noexcept;

    std::size_t max_;
    std::vector<Binding> by_channel_;  // sorted by channel
    std::vector<PeerIndex> by_peer_;   // sorted by key; one entry per binding
};

// ChannelBind as RFC 8656 §12.2 wants it: a successful bind also installs or refreshes the
// permission for the peer's IP. Checks room for the permission first so that a refusal leaves
// both tables untouched.
ChannelBindResult bind_channel_with_permission(ChannelTable& channels, PermissionTable& permissions,
                                               std::uint16_t channel,
                                               const protocol::TransportAddress& peer,
                                               TimePoint now);

}  // namespace tern::allocation
