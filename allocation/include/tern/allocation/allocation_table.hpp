// TURN allocations (RFC 8656 §2.2, §7) as plain data with rules: one per client 5-tuple,
// lifetimes, refresh and deletion, and the per-user and total quotas (486 vs 508).
#pragma once

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tern/allocation/channel_table.hpp"
#include "tern/allocation/five_tuple.hpp"
#include "tern/allocation/kernel_routes.hpp"
#include "tern/allocation/permission_table.hpp"
#include "tern/allocation/relay_egress.hpp"
#include "tern/allocation/time_point.hpp"
#include "tern/allocation/token_bucket.hpp"
#include "tern/allocation/user_bandwidth.hpp"
#include "tern/protocol/transport_address.hpp"

namespace tern::allocation {

struct AllocationLimits {
    Duration default_lifetime = std::chrono::seconds(600);  // RFC 8656 §2.2 / §7.2
    Duration max_lifetime = std::chrono::seconds(3600);
    std::size_t max_allocations = 10000;         // total, per table (508 beyond)
    std::size_t max_allocations_per_user = 100;  // 486 beyond
    std::size_t max_permissions_per_allocation = 64;
    std::size_t max_channels_per_allocation = 64;
    // Relayed payload bytes per second, per direction; 0 = no cap.
    std::uint32_t allocation_bandwidth = 0;
    std::uint32_t user_bandwidth = 0;  // over all of one user name's allocations
};

// RFC 8656 §7.2/§7.3: min(requested, max), but never below the default; no LIFETIME attribute
// means the default. (A zero in Refresh means delete; that is handled by refresh().)
Duration granted_lifetime(std::optional<Duration> requested,
                          const AllocationLimits& limits) noexcept;

// An allocation's relayed addresses: one, or two with ADDITIONAL-ADDRESS-FAMILY (RFC 8656
// §7.2). Inline, because a heap block per allocation shows in the memory of idle allocations.
class RelayAddresses {
public:
    RelayAddresses() = default;
    // Implicit: callers hand over the vector of addresses they opened.
    RelayAddresses(const std::vector<protocol::TransportAddress>& addresses) noexcept {
        for (const auto& a : addresses) {
            if (size_ < addresses_.size()) addresses_[size_++] = a;
        }
    }
    std::size_t size() const noexcept { return size_; }
    const protocol::TransportAddress& operator[](std::size_t i) const noexcept {
        return addresses_[i];
    }
    const protocol::TransportAddress* begin() const noexcept { return addresses_.data(); }
    const protocol::TransportAddress* end() const noexcept { return addresses_.data() + size_; }
    friend bool operator==(const RelayAddresses& a,
                           const std::vector<protocol::TransportAddress>& b) noexcept {
        return std::equal(a.begin(), a.end(), b.begin(), b.end());
    }

private:
    std::array<protocol::TransportAddress, 2> addresses_{};
    std::uint8_t size_ = 0;
};

// Relayed traffic of one allocation, payload bytes, counted when a datagram is routed (a send the
// kernel then refuses is in RelayCounters::dropped_send_failed); and the most permissions and
// channels it held at once.
struct AllocationUsage {
    std::uint64_t packets_to_peer = 0;
    std::uint64_t bytes_to_peer = 0;
    std::uint64_t packets_to_client = 0;
    std::uint64_t bytes_to_client = 0;
    std::uint32_t most_permissions = 0;
    std::uint32_t most_channels = 0;
};

// A channel of the allocation that the kernel fast path relays, and what the kernel had counted
// for it at the last read.
struct KernelChannel {
    KernelRoute route;
    KernelRouteCounts seen;
};

struct Allocation {
    FiveTuple tuple;
    std::string username;  // the caller answers 441 when a request's username differs (§5)
    RelayAddresses relays;
    TimePoint expires;
    PermissionTable permissions;
    ChannelTable channels;
    ClientRoute client;                  // how the I/O layer reaches the control channel
    std::array<RelayId, 2> relay_ids{};  // parallel to relays
    TokenBucket to_peer_budget;          // limits.allocation_bandwidth, each direction
    TokenBucket to_client_budget;
    std::shared_ptr<UserBuckets>
        user_budget;       // limits.user_bandwidth; shared with the user's others
    std::uint64_t id = 0;  // unique in the process: the admin API's session id
    TimePoint started{};
    AllocationUsage usage;
    bool credential_capped = false;     // cap_expiry lowered its expiry (auth.expiry strict)
    std::vector<KernelChannel> kernel;  // relayed by the kernel fast path; empty without one
    // Its bandwidth caps in the kernel while `kernel` is not empty: allocation's, user's.
    std::array<KernelBudget, 2> kernel_budgets{no_kernel_budget, no_kernel_budget};

    bool live(TimePoint now) const noexcept { return now < expires; }
};

enum class CreateResult : std::uint8_t {
    created,
    mismatch,    // a live allocation already holds this 5-tuple (437)
    user_quota,  // the user has max_allocations_per_user already (486)
    capacity,    // the table holds max_allocations already (508)
};

struct CreateOutcome {
    CreateResult result;
    // The new one. Map nodes do not move, so it stays valid until this allocation is removed
    // (refresh with LIFETIME 0, or expire()).
    Allocation* allocation = nullptr;
};

enum class RefreshResult : std::uint8_t {
    refreshed,
    deleted,        // LIFETIME 0
    no_allocation,  // none, or already lapsed, for this 5-tuple (437)
};

struct RefreshOutcome {
    RefreshResult result;
    Duration lifetime{};                // granted, for the LIFETIME attribute of the response
    std::optional<Allocation> removed;  // on deleted: its relay ports are the caller's to free
};

class AllocationTable {
public:
    explicit AllocationTable(const AllocationLimits& limits, std::uint64_t hash_seed = 0);

    // The allocation for this 5-tuple if it is live; nullptr otherwise. No allocation.
    Allocation* find(const FiveTuple& tuple, TimePoint now) noexcept;
    const Allocation* find(const FiveTuple& tuple, TimePoint now) const noexcept;

    // Quotas are checked before the relay address is needed, so the caller may ask first
    // (admission) and acquire relay ports only when it returns `created`.
    CreateResult admit(const FiveTuple& tuple, std::string_view username, TimePoint now);
    CreateOutcome create(const FiveTuple& tuple, std::string_view username, RelayAddresses relays,
                         std::optional<Duration> requested_lifetime, TimePoint now);

    RefreshOutcome refresh(const FiveTuple& tuple, std::optional<Duration> requested_lifetime,
                           TimePoint now);

    // Takes the allocation for this 5-tuple out of the table, lapsed or not (its control
    // connection closed); nullopt when there is none. Its relay ports are the caller's to free.
    std::optional<Allocation> remove(const FiveTuple& tuple);

    // Ends `allocation` no later than `at` (a credential that expires under auth.expiry strict).
    void cap_expiry(Allocation& allocation, TimePoint at) noexcept;

    // New limits apply to later admissions; allocations over a lowered quota stay until they end.
    // Per-user counts are kept only under a finite max_allocations_per_user (a shared
    // AllocationQuota counts users instead, and a count per user costs memory per allocation).
    void set_limits(const AllocationLimits& limits);

    // Removes every lapsed allocation and returns them (plus any that admit()/create() had to
    // sweep to make room), so the caller can close relay sockets and free ports.
    std::vector<Allocation> expire(TimePoint now);

    // Calls f(Allocation&) for every allocation, lapsed ones included; f must not add or remove.
    template <class F>
    void for_each(F&& f) {
        for (auto& [tuple, allocation] : table_) f(allocation);
    }
    template <class F>
    void for_each(F&& f) const {
        for (const auto& [tuple, allocation] : table_) f(allocation);
    }

    std::size_t size() const noexcept { return table_.size(); }  // includes unswept lapsed ones
    std::size_t count_for(std::string_view username) const noexcept;
    const AllocationLimits& limits() const noexcept { return limits_; }

private:
    void sweep(TimePoint now);  // moves lapsed allocations to reaped_
    void forget_user(const std::string& username) noexcept;

    // Lets count_for() look a username up without building a std::string.
    struct UserHash {
        using is_transparent = void;
        std::size_t operator()(std::string_view s) const noexcept {
            return std::hash<std::string_view>{}(s);
        }
    };

    AllocationLimits limits_;
    std::unordered_map<FiveTuple, Allocation, FiveTupleHash> table_;
    std::unordered_map<std::string, std::size_t, UserHash, std::equal_to<>> per_user_;
    bool count_users_ = false;
    std::vector<Allocation> reaped_;
    // No allocation lapses before this (a lower bound, exact after each full sweep): lets a
    // flood of Allocate requests at quota skip the O(n) sweep when nothing can have lapsed.
    TimePoint earliest_expiry_ = TimePoint::max();
};

}  // namespace tern::allocation
