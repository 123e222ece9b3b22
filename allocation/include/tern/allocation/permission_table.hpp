// The permissions of one allocation (RFC 8656 §9): peer IP addresses (ports ignored) the client
// may exchange data with, each living 300 s from its last install or refresh.
#pragma once

#include <chrono>
#include <cstdint>
#include <span>
#include <vector>

#include "tern/allocation/ip_key.hpp"
#include "tern/allocation/time_point.hpp"
#include "tern/protocol/transport_address.hpp"

namespace tern::allocation {

enum class PermissionResult : std::uint8_t {
    installed,
    refreshed,
    quota_exceeded,  // the allocation already holds `max` live permissions (caller: 508)
};

class PermissionTable {
public:
    // RFC 8656 §9: "The Permission Lifetime MUST be 300 seconds (= 5 minutes)".
    static constexpr Duration lifetime = std::chrono::seconds(300);

    explicit PermissionTable(std::size_t max_permissions) noexcept : max_(max_permissions) {}

    // A permission is valid on [install, install + 300 s): at exactly 300 s it has lapsed.
    PermissionResult install(const protocol::TransportAddress& peer, TimePoint now);

    // CreatePermission with several XOR-PEER-ADDRESS attributes is all or nothing (RFC 8656
    // §9.2): either every address gets installed or refreshed, or nothing changes.
    PermissionResult install_all(std::span<const protocol::TransportAddress> peers, TimePoint now);

    // The per-packet check; no heap allocation (binary search over a sorted flat vector).
    bool allowed(const protocol::TransportAddress& peer, TimePoint now) const noexcept;

    // Drops lapsed entries; returns how many.
    std::size_t expire(TimePoint now) noexcept;

    std::size_t count() const noexcept { return entries_.size(); }  // includes lapsed, unswept
    std::size_t max() const noexcept { return max_; }
    // A reload: later installs see the new quota; permissions over a lowered one stay.
    void set_max(std::size_t max_permissions) noexcept { max_ = max_permissions; }

private:
    struct Entry {
        IpKey ip;
        TimePoint expires;
    };
    std::vector<Entry>::iterator find(const IpKey& ip) noexcept;
    std::vector<Entry>::const_iterator find(const IpKey& ip) const noexcept;
    std::size_t live_count(TimePoint now) const noexcept;

    std::size_t max_;
    std::vector<Entry> entries_;  // sorted by ip
};

}  // namespace tern::allocation
