#include "tern/allocation/allocation_quota.hpp"

namespace tern::allocation {

void AllocationQuota::set_limits(std::size_t max_total, std::size_t max_per_user) {
    std::lock_guard lock(mutex_);
    max_total_ = max_total;
    max_per_user_ = max_per_user;
}

CreateResult AllocationQuota::acquire(std::string_view username) {
    std::lock_guard lock(mutex_);
    auto it = per_user_.find(username);
    const std::size_t held = it == per_user_.end() ? 0 : it->second;
    if (held >= max_per_user_) return CreateResult::user_quota;
    if (total_ >= max_total_) return CreateResult::capacity;
    if (it == per_user_.end()) it = per_user_.emplace(std::string(username), 0).first;
    ++it->second;
    ++total_;
    return CreateResult::created;
}

void AllocationQuota::release(std::string_view username) {
    std::lock_guard lock(mutex_);
    auto it = per_user_.find(username);
    if (it == per_user_.end()) return;  // never counted: nothing to give back
    if (--it->second == 0) per_user_.erase(it);
    --total_;
}

std::size_t AllocationQuota::total() {
    std::lock_guard lock(mutex_);
    return total_;
}

std::size_t AllocationQuota::count_for(std::string_view username) {
    std::lock_guard lock(mutex_);
    auto it = per_user_.find(username);
    return it == per_user_.end() ? 0 : it->second;
}

}  // namespace tern::allocation
