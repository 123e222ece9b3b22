// The allocation quotas of the whole process (limits.max_allocations and
// max_allocations_per_user), shared by every worker; taken only on Allocate and on removal.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "tern/allocation/allocation_table.hpp"
#include "tern/allocation/keyed_quota.hpp"

namespace tern::allocation {

class AllocationQuota {
public:
    AllocationQuota(std::size_t max_total, std::size_t max_per_user) noexcept
        : counts_(max_total, max_per_user) {}

    // A reload: later admissions see the new limits; counts held are kept.
    void set_limits(std::size_t max_total, std::size_t max_per_user) {
        counts_.set_limits(max_total, max_per_user);
    }

    // Counts one allocation for `username`, or says which quota is full: user_quota (486) is
    // reported before capacity (508), as the client's own limit is the more useful answer.
    CreateResult acquire(std::string_view username) {
        switch (counts_.acquire(username)) {
            case QuotaVerdict::granted:
                return CreateResult::created;
            case QuotaVerdict::key_full:
                return CreateResult::user_quota;
            case QuotaVerdict::total_full:
                break;
        }
        return CreateResult::capacity;
    }
    void release(std::string_view username) { counts_.release(username); }

    std::size_t total() { return counts_.total(); }
    std::size_t count_for(std::string_view username) { return counts_.count_for(username); }

private:
    KeyedQuota<std::string> counts_;
};

}  // namespace tern::allocation
