// The allocation table: an unordered map by 5-tuple plus per-user counters for the quotas.
#include "tern/allocation/allocation_table.hpp"

#include <algorithm>
#include <cstdint>
#include <iterator>
#include <utility>

namespace tern::allocation {

Duration granted_lifetime(std::optional<Duration> requested,
                          const AllocationLimits& limits) noexcept {
    if (!requested) return limits.default_lifetime;
    const Duration capped = std::min(*requested, limits.max_lifetime);
    return std::max(capped, limits.default_lifetime);
}

AllocationTable::AllocationTable(const AllocationLimits& limits, std::uint64_t hash_seed)
    : table_(0, FiveTupleHash{hash_seed}) {
    set_limits(limits);
}

void AllocationTable::set_limits(const AllocationLimits& limits) {
    limits_ = limits;
    const bool count = limits.max_allocations_per_user != SIZE_MAX;
    if (count == count_users_) return;
    count_users_ = count;
    per_user_.clear();
    if (count) {
        for (const auto& [tuple, a] : table_) ++per_user_[a.username];
    }
}

Allocation* AllocationTable::find(const FiveTuple& tuple, TimePoint now) noexcept {
    auto it = table_.find(tuple);
    return (it != table_.end() && it->second.live(now)) ? &it->second : nullptr;
}

const Allocation* AllocationTable::find(const FiveTuple& tuple, TimePoint now) const noexcept {
    auto it = table_.find(tuple);
    return (it != table_.end() && it->second.live(now)) ? &it->second : nullptr;
}

std::size_t AllocationTable::count_for(std::string_view username) const noexcept {
    auto it = per_user_.find(username);
    return it == per_user_.end() ? 0 : it->second;
}

void AllocationTable::forget_user(const std::string& username) noexcept {
    auto it = per_user_.find(username);
    if (it == per_user_.end()) return;
    if (--it->second == 0) per_user_.erase(it);
}

void AllocationTable::sweep(TimePoint now) {
    if (now < earliest_expiry_) return;
    earliest_expiry_ = TimePoint::max();
    for (auto it = table_.begin(); it != table_.end();) {
        if (it->second.live(now)) {
            earliest_expiry_ = std::min(earliest_expiry_, it->second.expires);
            ++it;
            continue;
        }
        forget_user(it->second.username);
        reaped_.push_back(std::move(it->second));
        it = table_.erase(it);
    }
}

CreateResult AllocationTable::admit(const FiveTuple& tuple, std::string_view username,
                                    TimePoint now) {
    auto it = table_.find(tuple);
    if (it != table_.end()) {
        if (it->second.live(now)) return CreateResult::mismatch;
        sweep(now);  // the lapsed one must give back its 5-tuple before a new one may take it
    }
    const bool user_full = count_for(username) >= limits_.max_allocations_per_user;
    const bool table_full = table_.size() >= limits_.max_allocations;
    if (user_full || table_full) {
        sweep(now);  // lapsed allocations must not hold quota
        // Per-user first: it is the client's own limit (486) and tells it to stop asking,
        // while 508 would invite it to try another server.
        if (count_for(username) >= limits_.max_allocations_per_user) {
            return CreateResult::user_quota;
        }
        if (table_.size() >= limits_.max_allocations) return CreateResult::capacity;
    }
    return CreateResult::created;
}

CreateOutcome AllocationTable::create(const FiveTuple& tuple, std::string_view username,
                                      RelayAddresses relays,
                                      std::optional<Duration> requested_lifetime, TimePoint now) {
    const CreateResult admitted = admit(tuple, username, now);
    if (admitted != CreateResult::created) return CreateOutcome{admitted, nullptr};
    Allocation a{tuple,
                 std::string(username),
                 relays,
                 now + granted_lifetime(requested_lifetime, limits_),
                 PermissionTable(limits_.max_permissions_per_allocation),
                 ChannelTable(limits_.max_channels_per_allocation),
                 ClientRoute{},
                 {},
                 TokenBucket{},
                 TokenBucket{},
                 nullptr,
                 0,
                 now,
                 AllocationUsage{},
                 false,
                 {},
                 {no_kernel_budget, no_kernel_budget}};
    auto [it, inserted] = table_.emplace(tuple, std::move(a));
    (void)inserted;  // admit() guaranteed the key was free
    if (count_users_) ++per_user_[it->second.username];
    earliest_expiry_ = std::min(earliest_expiry_, it->second.expires);
    return CreateOutcome{CreateResult::created, &it->second};
}

RefreshOutcome AllocationTable::refresh(const FiveTuple& tuple,
                                        std::optional<Duration> requested_lifetime, TimePoint now) {
    auto it = table_.find(tuple);
    if (it == table_.end() || !it->second.live(now)) {
        return RefreshOutcome{RefreshResult::no_allocation, {}, std::nullopt};
    }
    if (requested_lifetime && *requested_lifetime == Duration::zero()) {
        return RefreshOutcome{RefreshResult::deleted, Duration::zero(), remove(tuple)};
    }
    const Duration lifetime = granted_lifetime(requested_lifetime, limits_);
    it->second.expires = now + lifetime;
    earliest_expiry_ = std::min(earliest_expiry_, it->second.expires);  // it may have shortened
    return RefreshOutcome{RefreshResult::refreshed, lifetime, std::nullopt};
}

std::optional<Allocation> AllocationTable::remove(const FiveTuple& tuple) {
    auto it = table_.find(tuple);
    if (it == table_.end()) return std::nullopt;
    forget_user(it->second.username);
    std::optional<Allocation> removed(std::move(it->second));
    table_.erase(it);
    return removed;
}

void AllocationTable::cap_expiry(Allocation& allocation, TimePoint at) noexcept {
    if (at < allocation.expires) allocation.credential_capped = true;
    allocation.expires = std::min(allocation.expires, at);
    earliest_expiry_ = std::min(earliest_expiry_, allocation.expires);
}

std::vector<Allocation> AllocationTable::expire(TimePoint now) {
    sweep(now);
    return std::exchange(reaped_, {});
}

}  // namespace tern::allocation
